//! Lifecycle changes fired at once cannot interleave wrongly, and no lock
//! that requests or transfers need is held across slow disk work.

use crate::support::{content, read, temp_files, Home};
use bits_test_support::{Fault, SyncFaults, TestServer};
use std::process::Child;
use std::time::{Duration, Instant};

/// Regression (item 7): Complete, Cancel, Resume and a finishing runner
/// raced: the lock was released while a runner was awaited and the state
/// not checked again, so a `resume` in between started a runner that wrote
/// into files Complete was renaming. Now they are fired together, round
/// after round, and every round ends consistent: a final job leaves no
/// temporary file behind (none appears later either), a completed file is
/// whole, a cancelled job leaves nothing.
#[test]
fn complete_cancel_resume_and_suspend_fired_together_stay_consistent() {
    let server = TestServer::start();
    let body = content(400_000, 91);
    server.put_file("/r.bin", body.clone());
    let h = Home::new();
    let actions: [&[&str]; 4] = [
        &["complete"],
        &["resume", "--async"],
        &["suspend"],
        &["remove"],
    ];
    for round in 0..12 {
        // Slow in some rounds (the job is mid-transfer), fast in others
        // (it may be Transferred or finishing).
        let rate = if round % 2 == 0 { 300_000 } else { 50_000_000 };
        server.set_default_fault(
            "/r.bin",
            Some(Fault::Slow {
                bytes_per_sec: rate,
            }),
        );
        let dest = h.path(&format!("r{round}.bin"));
        let id = h.start_async(&[&server.url("r.bin"), dest.to_str().unwrap()]);
        h.wait_for(&id, Duration::from_secs(20), |j| {
            j["JobState"] == "Transferring" || j["JobState"] == "Transferred"
        });
        // Complete and Resume always; Suspend or Remove in turns.
        let mut fired: Vec<&[&str]> = vec![actions[0], actions[1]];
        fired.push(actions[2 + round % 2]);
        let children: Vec<Child> = fired
            .iter()
            .map(|a| {
                let mut c = h.command();
                c.arg(a[0]).arg(&id).args(&a[1..]);
                c.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                c.spawn().unwrap()
            })
            .collect();
        for mut c in children {
            c.wait().unwrap();
        }
        settle(&h, &id, &dest, &body);
    }
}

/// Drives job `id` to an end and checks what it left.
fn settle(h: &Home, id: &str, dest: &std::path::Path, body: &[u8]) {
    let state = h
        .bits(&["info", id, "--json"])
        .stdout
        .parse::<serde_json::Value>()
        .ok()
        .and_then(|j| j["JobState"].as_str().map(str::to_string))
        .unwrap_or_default();
    match state.as_str() {
        "Acknowledged" | "Cancelled" => {}
        _ => {
            // Still alive (a resume or suspend came last): finish it.
            h.ok(&["resume", id, "--async"]);
            let r = h.bits(&["wait", id, "--timeout", "30"]);
            assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
            h.ok(&["complete", id]);
        }
    }
    // Whatever ran is gone: no temporary file now or a moment later.
    std::thread::sleep(Duration::from_millis(300));
    let dir = dest.parent().unwrap();
    assert!(
        temp_files(dir)
            .iter()
            .all(|t| !t.contains(&format!("bits-{id}"))),
        "{:?}",
        temp_files(dir)
    );
    let final_state = h.info(id)["JobState"].clone();
    match final_state.as_str() {
        Some("Acknowledged") => {
            // Completed whole, or completed while partial (nothing kept).
            if dest.exists() {
                assert_eq!(read(dest), body, "a completed file is whole");
            }
        }
        Some("Cancelled") => assert!(!dest.exists(), "a cancelled job leaves nothing"),
        other => panic!("job {id} ended {other:?}"),
    }
}

/// Regression (item 16): the state lock was held across SQLite commits,
/// checkpoint fsyncs and Complete's renames, while every network chunk took
/// the same lock, so one slow fsync stalled every transfer and client. Now,
/// while one job's checkpoint fsync takes seconds, requests are answered at
/// once and another job keeps moving; while the job database's fsync is
/// slow, reads are answered at once.
#[test]
fn a_slow_fsync_stalls_neither_clients_nor_other_transfers() {
    let faults = SyncFaults::new();
    let h = Home::with_sync_faults(&faults);
    let server = TestServer::start();
    let a = content(6_000_000, 92);
    let b = content(6_000_000, 93);
    server.put_file("/a.bin", a.clone());
    server.put_file("/b.bin", b.clone());
    for p in ["/a.bin", "/b.bin"] {
        server.set_default_fault(
            p,
            Some(Fault::Slow {
                bytes_per_sec: 1_000_000,
            }),
        );
    }
    // Every checkpoint of a.bin takes 3 s.
    faults.delay(".a.bin.bits-", Duration::from_secs(3));
    let da = h.path("a.bin");
    let db = h.path("b.bin");
    let ja = h.start_async(&[&server.url("a.bin"), da.to_str().unwrap()]);
    let jb = h.start_async(&[&server.url("b.bin"), db.to_str().unwrap()]);
    // Wait until a.bin's first checkpoint is stuck in its fsync.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !faults.log().iter().any(|l| l.starts_with("delay")) {
        assert!(Instant::now() < deadline, "no checkpoint of a.bin began");
        std::thread::sleep(Duration::from_millis(20));
    }
    let b_then = h.info(&jb)["BytesTransferred"].as_u64().unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        h.ok(&["list", "--json"]);
        h.ok(&["info", &ja, "--json"]);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_millis(1000),
        "a request took {slowest:?}"
    );
    let b_now = h.info(&jb)["BytesTransferred"].as_u64().unwrap();
    assert!(
        b_now > b_then + 500_000,
        "b.bin moved on: {b_then} -> {b_now}"
    );

    // The job database's fsync is slow: reads still answer at once.
    faults.delay("jobs.sqlite3", Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    h.ok(&["list", "--json"]);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    faults.clear();
    for p in ["/a.bin", "/b.bin"] {
        server.set_default_fault(p, None);
    }
    for (id, dest, body) in [(&ja, &da, &a), (&jb, &db, &b)] {
        let r = h.bits(&["wait", id, "--timeout", "60"]);
        assert_eq!(r.code, 0, "{r:?}");
        h.ok(&["complete", id]);
        assert_eq!(&read(dest), body);
    }
}
