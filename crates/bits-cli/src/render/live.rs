//! The live table of `bits monitor`: the jobs with their rate and time
//! left, measured between two refreshes, fitted to the terminal's width.
//! Pure: the caller gives the jobs, what it saw last time and the width.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bits_proto::JobObject;
use indicatif::{HumanBytes, HumanDuration};

use super::job_cells;

/// What one refresh saw of each job, to measure the next one against.
#[derive(Debug, Default)]
pub struct Seen {
    jobs: HashMap<String, (u64, Instant)>,
}

impl Seen {
    /// The rate of `job` since it was last seen, bytes per second; `None`
    /// the first time, or when its count went back (a restart from 0).
    fn rate(&self, job: &JobObject, now: Instant) -> Option<f64> {
        let (bytes, at) = self.jobs.get(&job.job_id)?;
        let dt = now.saturating_duration_since(*at).as_secs_f64();
        (dt > 0.0 && job.bytes_transferred >= *bytes)
            .then(|| (job.bytes_transferred - bytes) as f64 / dt)
    }

    /// Remembers this refresh (and forgets jobs that are gone).
    fn note(&mut self, jobs: &[JobObject], now: Instant) {
        self.jobs = jobs
            .iter()
            .map(|j| (j.job_id.clone(), (j.bytes_transferred, now)))
            .collect();
    }
}

/// The table for `jobs` at `now`, no line wider than `width` columns.
pub fn table(jobs: &[JobObject], seen: &mut Seen, now: Instant, width: usize) -> String {
    if jobs.is_empty() {
        seen.note(jobs, now);
        return "No jobs.\n".to_string();
    }
    let header = [
        "JobId",
        "DisplayName",
        "Type",
        "JobState",
        "Owner",
        "Progress",
        "Rate",
        "ETA",
    ];
    let mut rows: Vec<[String; 8]> = jobs
        .iter()
        .map(|job| {
            let rate = seen.rate(job, now);
            let moving = matches!(job.job_state.as_str(), "Connecting" | "Transferring");
            let eta = match (rate, job.bytes_total) {
                (Some(r), Some(total)) if moving && r >= 1.0 => {
                    let left = total.saturating_sub(job.bytes_transferred) as f64 / r;
                    HumanDuration(Duration::from_secs_f64(left.min(1e9))).to_string()
                }
                _ => "-".to_string(),
            };
            let [id, name, kind, state, owner, progress] = job_cells(job);
            let rate = match rate {
                Some(r) if moving => format!("{}/s", HumanBytes(r as u64)),
                _ => "-".to_string(),
            };
            [id, name, kind, state, owner, progress, rate, eta]
        })
        .collect();
    seen.note(jobs, now);

    // Fit: shorter JobIds (a prefix of 8 is accepted by every command),
    // then without Type and Owner, then shorter names.
    let mut shown: Vec<usize> = (0..header.len()).collect();
    let line_width = |rows: &[[String; 8]], shown: &[usize]| {
        shown
            .iter()
            .map(|&c| column_width(&header, rows, c))
            .sum::<usize>()
            + 2 * shown.len().saturating_sub(1)
    };
    if line_width(&rows, &shown) > width {
        for row in &mut rows {
            row[0].truncate(8);
        }
    }
    for drop in [2, 4] {
        if line_width(&rows, &shown) > width {
            shown.retain(|&c| c != drop);
        }
    }
    let over = line_width(&rows, &shown).saturating_sub(width);
    if over > 0 {
        let name = column_width(&header, &rows, 1);
        let keep = name.saturating_sub(over).max(8);
        for row in &mut rows {
            if row[1].chars().count() > keep {
                row[1] = row[1].chars().take(keep - 1).chain(['…']).collect();
            }
        }
    }

    let header: Vec<&str> = shown.iter().map(|&c| header[c]).collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|row| shown.iter().map(|&c| row[c].as_str()).collect())
        .collect();
    super::columns(&header, &rows)
}

fn column_width(header: &[&str; 8], rows: &[[String; 8]], c: usize) -> usize {
    rows.iter()
        .map(|r| r[c].chars().count())
        .chain([header[c].chars().count()])
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, name: &str, done: u64, state: &str) -> JobObject {
        let mut j = crate::sample::job();
        j.job_id = id.to_string();
        j.display_name = name.to_string();
        j.bytes_transferred = done;
        j.bytes_total = Some(10_000_000);
        j.job_state = state.to_string();
        j
    }

    #[test]
    fn rate_and_eta_come_from_two_refreshes() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let id = "0f0e0d0c-0000-4000-8000-000000000001";
        let first = table(
            &[job(id, "a", 1_000_000, "Transferring")],
            &mut seen,
            t0,
            200,
        );
        let cells: Vec<&str> = first.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["-", "-"], "{first}");
        let later = t0 + Duration::from_secs(2);
        let second = table(
            &[job(id, "a", 3_000_000, "Transferring")],
            &mut seen,
            later,
            200,
        );
        let row = second.lines().nth(2).unwrap();
        // 2 MB in 2 s: ~977 KiB/s, 7 MB left: 7 s.
        assert!(row.contains("976.56 KiB/s"), "{second}");
        assert!(row.ends_with("7 seconds"), "{second}");
    }

    #[test]
    fn the_table_fits_the_width() {
        let mut seen = Seen::default();
        let jobs = [
            job(
                "0f0e0d0c-0000-4000-8000-000000000001",
                "a very long display name for a nightly mirror of everything",
                5_000_000,
                "Queued",
            ),
            job("0f0e0d0c-0000-4000-8000-000000000002", "b", 0, "Suspended"),
        ];
        for width in [80, 100, 120] {
            let text = table(&jobs, &mut seen, Instant::now(), width);
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}\n{text}");
            }
            assert!(text.contains("0f0e0d0c"), "{text}");
        }
        let wide = table(&jobs, &mut seen, Instant::now(), 400);
        assert!(wide.contains("0f0e0d0c-0000-4000-8000-000000000001"));
        assert!(wide.contains("everything"));
    }
}
