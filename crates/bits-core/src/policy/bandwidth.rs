//! Bandwidth policy: rates as people write them, and a weekly schedule of
//! caps for background jobs (rclone's `--bwlimit` timetable style):
//!
//! ```text
//! 512k                          always 512 kB/s
//! 08:00,512k 18:00,off          every day: capped from 08:00, free from 18:00
//! Mon-08:00,1M Sat-00:00,off    weekdays from Monday 08:00 at 1 MB/s, weekends free
//! 23:00,off 07:00,0             background jobs only at night (0 blocks them)
//! ```
//!
//! Each entry starts a window that lasts until the next one (the last
//! wraps around the week). An entry without a day holds on every day.
//! Rates are bytes per second with the suffixes k, M, G (×1000); `off` is
//! no cap; `0` blocks background jobs for the window.
//!
//! Pure: the caller supplies the local time.

use std::fmt;

/// What a window allows background jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// No cap.
    Unlimited,
    /// At most this many bytes per second, all background jobs together.
    Rate(u64),
    /// Background jobs do not transfer.
    Blocked,
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Unlimited => f.write_str("off"),
            Cap::Rate(r) => f.write_str(&format_rate(*r)),
            Cap::Blocked => f.write_str("0"),
        }
    }
}

/// Why a rate or a schedule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not a rate.
    #[error("'{0}' is not a rate: give bytes per second with an optional k, M or G (x1000), `off`, or 0")]
    Rate(String),
    /// Not a schedule entry.
    #[error("'{0}' is not a schedule entry: write [Day-]HH:MM,RATE (for example Mon-08:00,512k)")]
    Entry(String),
    /// Two entries start at the same moment.
    #[error("two schedule entries start at {0}")]
    Duplicate(String),
    /// Nothing given.
    #[error("the schedule is empty")]
    Empty,
}

/// The largest rate accepted: a terabyte per second is no cap any link
/// will meet.
const MAX_RATE: u64 = 1_000_000_000_000;

/// Reads a rate: `512k`, `1.5M`, `2G`, `800000`, `off`, `0`.
pub fn parse_rate(text: &str) -> Result<Cap, PolicyError> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(Cap::Unlimited);
    }
    let bad = || PolicyError::Rate(text.to_string());
    let (number, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > MAX_RATE as f64 {
        return Err(bad());
    }
    Ok(match bytes.round() as u64 {
        0 if value == 0.0 => Cap::Blocked,
        // A fraction of a byte per second rounds up, not to a block.
        0 => Cap::Rate(1),
        n => Cap::Rate(n),
    })
}

/// A rate as [`parse_rate`] reads it back: `512k`, `1.5M`, `800123`.
pub fn format_rate(rate: u64) -> String {
    for (suffix, scale) in [("G", 1e9), ("M", 1e6), ("k", 1e3)] {
        let v = rate as f64 / scale;
        if v >= 1.0 && (v * 1000.0).fract() == 0.0 {
            return format!("{}{suffix}", trim_zeros(v));
        }
    }
    rate.to_string()
}

fn trim_zeros(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Minutes in a week.
const WEEK: u32 = 7 * 24 * 60;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A moment of the week: the day (0 = Monday) and the minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekTime {
    /// 0 = Monday … 6 = Sunday.
    pub day: u32,
    /// 0 ..= 1439.
    pub minute: u32,
}

impl WeekTime {
    fn minutes(self) -> u32 {
        (self.day % 7) * 24 * 60 + self.minute.min(24 * 60 - 1)
    }
}

/// One entry as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// `None`: every day.
    day: Option<u32>,
    minute: u32,
    cap: Cap,
}

/// A weekly schedule of caps for background jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
    /// Window starts in minutes of the week, sorted, with their caps.
    windows: Vec<(u32, Cap)>,
}

impl Schedule {
    /// Reads a schedule (see the module documentation).
    pub fn parse(text: &str) -> Result<Schedule, PolicyError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.is_empty() {
            return Err(PolicyError::Empty);
        }
        // A lone rate: one window for the whole week.
        if let [only] = parts.as_slice() {
            if !only.contains(',') {
                let cap = parse_rate(only)?;
                let entries = vec![Entry {
                    day: None,
                    minute: 0,
                    cap,
                }];
                return Ok(Schedule {
                    entries,
                    windows: vec![(0, cap)],
                });
            }
        }
        let mut entries = Vec::new();
        for part in parts {
            entries.push(parse_entry(part)?);
        }
        for (i, e) in entries.iter().enumerate() {
            if entries[..i]
                .iter()
                .any(|o| o.day == e.day && o.minute == e.minute)
            {
                return Err(PolicyError::Duplicate(describe(e.day, e.minute)));
            }
        }
        let mut windows: Vec<(u32, Cap)> = Vec::new();
        // Every-day entries first: an entry for one day wins over them at
        // the same moment.
        for specific in [false, true] {
            for e in entries.iter().filter(|e| e.day.is_some() == specific) {
                let days: Vec<u32> = e.day.map_or_else(|| (0..7).collect(), |d| vec![d]);
                for day in days {
                    let at = WeekTime {
                        day,
                        minute: e.minute,
                    }
                    .minutes();
                    match windows.iter_mut().find(|w| w.0 == at) {
                        Some(w) => w.1 = e.cap,
                        None => windows.push((at, e.cap)),
                    }
                }
            }
        }
        windows.sort_by_key(|w| w.0);
        Ok(Schedule { entries, windows })
    }

    /// The cap in force at `t`.
    pub fn cap_at(&self, t: WeekTime) -> Cap {
        let now = t.minutes();
        self.windows
            .iter()
            .rev()
            .find(|w| w.0 <= now)
            .or_else(|| self.windows.last())
            .map_or(Cap::Unlimited, |w| w.1)
    }

    /// Minutes from `t` to the next window start (at most a week).
    pub fn minutes_to_next_change(&self, t: WeekTime) -> u32 {
        let now = t.minutes();
        self.windows
            .iter()
            .map(|w| (w.0 + WEEK - now - 1) % WEEK + 1)
            .min()
            .unwrap_or(WEEK)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.entries {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if let Some(d) = e.day {
                write!(f, "{}-", DAYS[d as usize])?;
            }
            write!(f, "{:02}:{:02},{}", e.minute / 60, e.minute % 60, e.cap)?;
        }
        Ok(())
    }
}

fn describe(day: Option<u32>, minute: u32) -> String {
    let time = format!("{:02}:{:02}", minute / 60, minute % 60);
    match day {
        Some(d) => format!("{} {time}", DAYS[d as usize]),
        None => time,
    }
}

fn parse_entry(part: &str) -> Result<Entry, PolicyError> {
    let bad = || PolicyError::Entry(part.to_string());
    let (when, rate) = part.split_once(',').ok_or_else(bad)?;
    let (day, time) = match when.split_once('-') {
        Some((d, t)) => {
            let day = DAYS
                .iter()
                .position(|n| n.eq_ignore_ascii_case(d))
                .ok_or_else(bad)?;
            (Some(day as u32), t)
        }
        None => (None, when),
    };
    let (h, m) = time.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(Entry {
        day,
        minute: h * 60 + m,
        cap: parse_rate(rate)?,
    })
}

#[cfg(test)]
mod tests;
