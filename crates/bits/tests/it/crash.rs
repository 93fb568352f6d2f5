//! The daemon dies or stops mid-transfer: jobs survive, resume from their
//! last durable checkpoint, and the bytes are exact.

use crate::support::{content, read, Home};
use bits_test_support::{Fault, TestServer};
use nix::sys::signal::Signal;
use std::time::Duration;

/// `kill -9` of bitsd in the middle of a download: the next daemon resumes
/// from the checkpoint (the resumed request starts past zero, at or below
/// what had been reported), and the completed file is byte-exact.
#[test]
fn kill_9_mid_transfer_resumes_from_the_checkpoint() {
    let server = TestServer::start();
    let body = content(3_000_000, 11);
    server.put_file("/k.bin", body.clone());
    // 400 kB/s: the transfer lasts long enough for a few 1 s checkpoints.
    server.set_default_fault(
        "/k.bin",
        Some(Fault::Slow {
            bytes_per_sec: 400_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("k.bin");
    let id = h.start_async(&[&server.url("k.bin"), dest.to_str().unwrap()]);
    // Wait until well past the first checkpoint.
    h.wait_for(&id, Duration::from_secs(20), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 1_000_000
    });
    let reported = h.info(&id)["BytesTransferred"].as_u64().unwrap();
    h.signal_daemon(Signal::SIGKILL);

    server.set_default_fault("/k.bin", None);
    // `bits wait` autostarts a new daemon, which picks the job up.
    let r = h.bits(&["wait", &id, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    let gets: Vec<_> = server
        .requests_for("/k.bin")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    let resumed_at = gets.last().unwrap().range_start().unwrap_or(0);
    assert!(resumed_at > 0, "the resumed request starts past zero");
    assert!(
        resumed_at <= reported,
        "resumed at {resumed_at}, reported {reported}"
    );
    // At most one checkpoint interval (1 s at 400 kB/s, plus slack for the
    // polling above) is downloaded again.
    assert!(
        reported - resumed_at <= 800_000,
        "lost {} bytes of progress",
        reported - resumed_at
    );
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}

/// SIGTERM: bitsd checkpoints, exits 0, and the job carries on from where it
/// stopped when the daemon comes back.
#[test]
fn sigterm_checkpoints_and_the_job_carries_on_after_restart() {
    let server = TestServer::start();
    let body = content(2_000_000, 12);
    server.put_file("/t.bin", body.clone());
    server.set_default_fault(
        "/t.bin",
        Some(Fault::Slow {
            bytes_per_sec: 500_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("t.bin");
    let id = h.start_async(&[&server.url("t.bin"), dest.to_str().unwrap()]);
    h.wait_for(&id, Duration::from_secs(20), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 300_000
    });
    h.signal_daemon(Signal::SIGTERM);
    assert!(h.log().contains("bitsd stopped"), "clean stop: {}", h.log());
    server.set_default_fault("/t.bin", None);
    let info = h.info(&id);
    assert!(
        ["Queued", "Connecting", "Transferring", "Transferred"]
            .contains(&info["JobState"].as_str().unwrap()),
        "{info:#}"
    );
    let r = h.bits(&["wait", &id, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{r:?}");
    let last = server.requests_for("/t.bin").last().unwrap().range_start();
    assert!(last.unwrap_or(0) > 300_000, "resumed at {last:?}");
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}

/// A Suspended job stays Suspended across a daemon restart (kill -9
/// included) and the server never sees a request for it.
#[test]
fn suspended_jobs_stay_suspended_across_restarts() {
    let server = TestServer::start();
    server.put_file("/p.bin", content(1000, 13));
    let h = Home::new();
    let dest = h.path("p.bin");
    let r = h.ok(&[
        "start",
        "--suspended",
        &server.url("p.bin"),
        dest.to_str().unwrap(),
    ]);
    let id = r.stdout.trim().to_string();
    assert_eq!(h.info(&id)["JobState"], "Suspended");
    h.signal_daemon(Signal::SIGKILL);
    assert_eq!(h.info(&id)["JobState"], "Suspended");
    h.signal_daemon(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.info(&id)["JobState"], "Suspended");
    assert!(server.requests_for("/p.bin").is_empty());
}

/// kill -9 in the middle of a job of many small files (moved several at a
/// time, made durable in batches): the next daemon finishes the job and
/// every file is exact; files already counted as transferred are not
/// fetched again.
#[test]
fn kill_9_during_a_many_file_job_loses_nothing() {
    let server = TestServer::start();
    let n = 120;
    for i in 0..n {
        server.put_file(&format!("/m{i}.bin"), content(3000 + i, i as u8));
        // Slow enough that the job is caught half-way.
        server.set_default_fault(
            &format!("/m{i}.bin"),
            Some(Fault::Slow {
                bytes_per_sec: 20_000,
            }),
        );
    }
    let h = Home::new();
    let out = h.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut csv = String::from("Source,Destination\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{},{}\n",
            server.url(&format!("m{i}.bin")),
            out.join(format!("m{i}.bin")).display()
        ));
    }
    std::fs::write(h.path("list.csv"), csv).unwrap();
    let id = h.start_async(&["--from-csv", "list.csv"]);
    let before = h.wait_for(&id, Duration::from_secs(30), |j| {
        j["FilesTransferred"].as_u64().unwrap_or(0) >= 10
    });
    let done_before: Vec<usize> = (0..n)
        .filter(|&i| before["FileList"][i]["IsTransferComplete"] == true)
        .collect();
    h.signal_daemon(Signal::SIGKILL);
    for i in 0..n {
        server.set_default_fault(&format!("/m{i}.bin"), None);
    }
    let r = h.bits(&["wait", &id, "--timeout", "60"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    h.ok(&["complete", &id]);
    for i in 0..n {
        assert_eq!(
            read(&out.join(format!("m{i}.bin"))),
            content(3000 + i, i as u8),
            "file {i}"
        );
    }
    for i in done_before {
        let gets = server
            .requests_for(&format!("/m{i}.bin"))
            .into_iter()
            .filter(|r| r.method == "GET")
            .count();
        assert_eq!(
            gets, 1,
            "file {i} was complete before the crash and fetched again"
        );
    }
}

/// Regression: a command sent while a killed daemon is still dying (its
/// socket may accept and then reset the connection, its pid-file lock may
/// still be held) starts a new daemon instead of failing with "cannot
/// reach bitsd".
#[test]
fn a_command_right_after_kill_9_reaches_a_new_daemon() {
    let server = TestServer::start();
    server.put_file("/busy.bin", content(5_000_000, 3));
    server.set_default_fault(
        "/busy.bin",
        Some(Fault::Slow {
            bytes_per_sec: 500_000,
        }),
    );
    let h = Home::new();
    let id = h.start_async(&[
        &server.url("busy.bin"),
        h.path("busy.bin").to_str().unwrap(),
    ]);
    for round in 0..8 {
        let pid = h.daemon_pid().expect("a daemon runs");
        // No waiting for it to be gone: the next command races its death.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let r = h.bits(&["info", &id, "--json"]);
        assert_eq!(r.code, 0, "round {round}: {r:?}");
    }
}

/// `kill -9` of bitsd while one file comes over four connections: the next
/// daemon asks only for ranges (each tied to the version by If-Range), the
/// bytes fetched twice are at most about one checkpoint interval of all
/// connections, and the completed file is byte-exact.
#[test]
fn kill_9_mid_segmented_download_resumes_the_missing_ranges() {
    let server = TestServer::start();
    let body = content(6_000_000, 15);
    server.put_file("/s.bin", body.clone());
    // 400 kB/s per connection, 1.6 MB/s for the four.
    server.set_default_fault(
        "/s.bin",
        Some(Fault::Slow {
            bytes_per_sec: 400_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("s.bin");
    let id = h.start_async(&[
        "--connections",
        "4",
        &server.url("s.bin"),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(h.info(&id)["Connections"], 4);
    h.wait_for(&id, Duration::from_secs(20), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 4_000_000
    });
    h.signal_daemon(Signal::SIGKILL);
    let before_kill = server.requests_for("/s.bin").len();

    server.set_default_fault("/s.bin", None);
    let r = h.bits(&["wait", &id, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    let after: Vec<_> = server.requests_for("/s.bin")[before_kill..].to_vec();
    assert!(!after.is_empty());
    for req in &after {
        assert!(
            req.range_start().unwrap_or(0) > 0 || req.range.is_some(),
            "only ranges after the restart: {req:?}"
        );
        assert_eq!(req.header("if-range"), server.etag("/s.bin").as_deref());
    }
    let again = server.body_bytes_sent("/s.bin") - body.len() as u64;
    // One checkpoint interval (1 s) of four connections is 1.6 MB; allow
    // for the polling above and the connections' buffers.
    assert!(again <= 2_400_000, "fetched {again} bytes twice");
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}
