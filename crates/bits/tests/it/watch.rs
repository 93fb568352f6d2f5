//! `bits watch`: a line per event, for programs (`--json`) and people,
//! following a job across a restart of the daemon.

use crate::support::{content, Home};
use bits_test_support::{Fault, TestServer};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running `bits watch` whose stdout lines arrive on a channel.
struct Watcher {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(h: &Home, args: &[&str]) -> Watcher {
        let mut child = h
            .command()
            .arg("watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `cond`; returns it.
    fn until(&mut self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if cond(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line {what} within {timeout:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads JSON lines until one satisfies `cond`.
    fn until_json(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let line = self.until(what, timeout, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| cond(&v))
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for the command to end by itself; its exit code and the rest
    /// of its output.
    fn end(mut self, timeout: Duration) -> (i32, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("watch did not end; seen:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (code, std::mem::take(&mut self.seen))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v["EventTime"].as_str().unwrap()).unwrap()
}

/// `watch --json` prints the job object with its event per line, progress
/// at most every 500 ms, keeps following when bitsd is killed and
/// restarted, and ends when the job is Acknowledged.
#[test]
fn watch_json_follows_a_job_across_a_daemon_restart() {
    let server = TestServer::start();
    let body = content(2_000_000, 121);
    server.put_file("/w.bin", body.clone());
    server.set_default_fault(
        "/w.bin",
        Some(Fault::Slow {
            bytes_per_sec: 400_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("w.bin");
    let id = h.start_async(&[&server.url("w.bin"), dest.to_str().unwrap()]);
    let mut w = Watcher::start(&h, &[&id[..8], "--json"]);
    let first = w.until_json("Current", Duration::from_secs(10), |_| true);
    assert_eq!(first["Event"], "Current");
    assert_eq!(first["JobId"], id.as_str());
    let before = w.until_json("Progress", Duration::from_secs(10), |v| {
        v["Event"] == "Progress" && v["BytesTransferred"].as_u64().unwrap() > 0
    });

    let old_pid = h.daemon_pid().unwrap();
    h.signal_daemon(Signal::SIGKILL);
    // The watch itself starts the next daemon, which resumes the job.
    let after = w.until_json("progress after the restart", Duration::from_secs(20), |v| {
        v["BytesTransferred"].as_u64().unwrap() > before["BytesTransferred"].as_u64().unwrap()
            && h.daemon_pid().is_some_and(|p| p != old_pid)
    });
    assert_eq!(after["JobId"], id.as_str());
    w.until_json("Transferred", Duration::from_secs(30), |v| {
        v["Event"] == "StateChanged" && v["JobState"] == "Transferred"
    });
    h.ok(&["complete", &id]);
    let (code, lines) = w.end(Duration::from_secs(10));
    assert_eq!(code, 0, "{lines:#?}");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = events.last().unwrap();
    assert_eq!(
        (&last["Event"], &last["JobState"]),
        (&"StateChanged".into(), &"Acknowledged".into())
    );
    assert_eq!(last["BytesTransferred"], body.len() as u64);
    // The job object's keys are all there, after the event's own.
    let info = h.info(&id);
    for key in info.as_object().unwrap().keys() {
        assert!(last.get(key).is_some(), "{key} missing from {last}");
    }
    // Progress steps are at least 500 ms apart (state changes are not
    // held back and reset the interval).
    let mut previous: Option<&Value> = None;
    for e in &events {
        if let (Some(p), "Progress") = (previous, e["Event"].as_str().unwrap()) {
            let gap = event_time(e) - event_time(p);
            assert!(gap.num_milliseconds() >= 490, "{gap} between\n{p}\n{e}");
        }
        previous = Some(e);
    }
    // Nothing is said twice: each line differs from the one before in state
    // or counts.
    for pair in events.windows(2) {
        let same = [
            "JobState",
            "BytesTransferred",
            "FilesTransferred",
            "BytesTotal",
        ]
        .iter()
        .all(|k| pair[0][k] == pair[1][k]);
        assert!(!same, "repeated:\n{}\n{}", pair[0], pair[1]);
    }
}

/// Without a job, every job is watched: one made afterwards is Created,
/// and its end is reported though it leaves the list. Without --json the
/// lines are for people.
#[test]
fn watch_every_job_reports_new_jobs_and_their_end() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(40_000, 122));
    // A second long: every job is watched by listing them twice a second.
    server.set_default_fault(
        "/a.bin",
        Some(Fault::Slow {
            bytes_per_sec: 40_000,
        }),
    );
    let h = Home::new();
    // A daemon with one job already.
    let old = h.start_async(&[
        "--suspended",
        &server.url("a.bin"),
        h.path("old.bin").to_str().unwrap(),
    ]);
    let mut w = Watcher::start(&h, &[]);
    let line = w.until("the existing job", Duration::from_secs(10), |l| {
        l.contains(&old[..8])
    });
    assert!(
        line.contains("Current") && line.contains("Suspended"),
        "{line}"
    );
    let id = h.start_async(&[&server.url("a.bin"), h.path("a.bin").to_str().unwrap()]);
    let line = w.until("the new job", Duration::from_secs(10), |l| {
        l.contains(&id[..8])
    });
    assert!(line.contains("Created"), "{line}");
    w.until("Transferred", Duration::from_secs(10), |l| {
        l.contains(&id[..8]) && l.contains("StateChanged") && l.contains("Transferred")
    });
    h.ok(&["complete", &id]);
    let line = w.until("Acknowledged", Duration::from_secs(10), |l| {
        l.contains(&id[..8]) && l.contains("Acknowledged")
    });
    assert!(line.contains("39.06 KiB / 39.06 KiB (100%)"), "{line}");
    h.ok(&["remove", &old]);
    w.until("Cancelled", Duration::from_secs(10), |l| {
        l.contains(&old[..8]) && l.contains("Cancelled")
    });
}

/// A job that does not exist is an error naming it (exit 4).
#[test]
fn watch_of_an_unknown_job_fails() {
    let h = Home::new();
    let r = h.bits(&["watch", "nosuchjob"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("nosuchjob"), "{r:?}");
}
