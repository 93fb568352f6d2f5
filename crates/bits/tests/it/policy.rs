//! The daemon-wide policy and per-job caps: kept across restarts, applied
//! to running transfers at once, blocking windows, quotas.

use crate::support::{content, read, Home};
use bits_test_support::TestServer;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn bytes(h: &Home, id: &str) -> u64 {
    h.info(id)["BytesTransferred"].as_u64().unwrap()
}

/// The job's rate over `span`, in bytes per second.
fn rate_over(h: &Home, id: &str, span: Duration) -> f64 {
    let (b0, t0) = (bytes(h, id), Instant::now());
    std::thread::sleep(span);
    let (b1, t1) = (bytes(h, id), Instant::now());
    (b1 - b0) as f64 / (t1 - t0).as_secs_f64()
}

#[test]
fn the_policy_is_kept_across_a_restart_and_bad_settings_are_named() {
    let h = Home::new();
    let shown = h
        .ok(&[
            "policy",
            "set",
            "--max-background-bandwidth",
            "1.5M",
            "--bandwidth-schedule",
            "Mon-08:00,512k 18:00,off",
            "--background-jobs",
            "2",
            "--max-jobs-per-user",
            "50",
            "--json",
        ])
        .json();
    assert_eq!(shown["MaxBackgroundBandwidth"], 1_500_000);
    assert_eq!(shown["BandwidthSchedule"], "Mon-08:00,512k 18:00,off");
    assert!(shown["NextScheduleChange"].is_string(), "{shown}");
    h.signal_daemon(Signal::SIGKILL);
    let after = h.ok(&["policy", "show", "--json"]).json();
    assert_eq!(after, shown);
    let text = h.ok(&["policy", "show"]).stdout;
    assert!(
        text.contains("MaxBackgroundBandwidth : 1.5M (1500000 bytes/s)"),
        "{text}"
    );

    for (args, says) in [
        (vec!["--bandwidth-schedule", "25:00,1M"], "25:00,1M"),
        (
            vec!["--max-background-bandwidth", "fast"],
            "'fast' is not a rate",
        ),
        (vec!["--max-background-bandwidth", "0"], "off"),
        (vec!["--background-jobs", "0"], "--background-jobs"),
        (vec!["--max-files-per-job", "100001"], "--max-files-per-job"),
        (vec![], "required"),
    ] {
        let mut all = vec!["policy", "set"];
        all.extend(args);
        let r = h.bits(&all);
        assert_eq!(r.code, 2, "{all:?}: {r:?}");
        assert!(r.stderr.contains(says), "{all:?}: {}", r.stderr);
    }
    // Nothing changed.
    assert_eq!(h.ok(&["policy", "show", "--json"]).json(), shown);
    // `off` removes the cap and the schedule.
    let off = h
        .ok(&[
            "policy",
            "set",
            "--max-background-bandwidth",
            "off",
            "--bandwidth-schedule",
            "off",
            "--json",
        ])
        .json();
    assert!(
        off["MaxBackgroundBandwidth"].is_null() && off["BandwidthSchedule"].is_null(),
        "{off}"
    );
}

/// A window of 0 holds background jobs in TransientError with the reason;
/// foreground jobs go on; when the window is gone they run at once.
#[test]
fn a_blocking_window_holds_background_jobs_and_lets_them_go_when_it_ends() {
    let server = TestServer::start();
    let body = content(3_000_000, 131);
    server.put_file("/b.bin", body.clone());
    let h = Home::new();
    // Running when the block begins: a capped Low job.
    let running = h.start_async(&[
        "--priority",
        "low",
        "--max-bandwidth",
        "300k",
        &server.url("b.bin"),
        h.path("running.bin").to_str().unwrap(),
    ]);
    h.wait_for(&running, Duration::from_secs(10), |j| {
        j["JobState"] == "Transferring" && j["BytesTransferred"].as_u64().unwrap() > 0
    });
    h.ok(&["policy", "set", "--bandwidth-schedule", "0"]);
    let held = h.wait_state(&running, "TransientError", Duration::from_secs(10));
    assert_eq!(held["ErrorCode"], "0x8020003E", "{held}");
    assert!(
        held["ErrorDescription"]
            .as_str()
            .unwrap()
            .contains("Blocked by policy"),
        "{held}"
    );
    let waiting = h.start_async(&[
        "--priority",
        "normal",
        &server.url("b.bin"),
        h.path("waiting.bin").to_str().unwrap(),
    ]);
    let w = h.wait_state(&waiting, "TransientError", Duration::from_secs(10));
    assert_eq!(w["ErrorCode"], "0x8020003E");
    assert!(h.ok(&["policy", "show", "--json"]).json()["BackgroundBlocked"] == true);
    // Foreground jobs are not background jobs.
    h.ok(&[
        "start",
        &server.url("b.bin"),
        h.path("fg.bin").to_str().unwrap(),
    ]);
    assert_eq!(read(&h.path("fg.bin")), body);
    let before = bytes(&h, &running);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bytes(&h, &running), before, "a held job does not transfer");

    h.ok(&["policy", "set", "--bandwidth-schedule", "off"]);
    h.ok(&["set", &running, "--max-bandwidth", "off"]);
    for id in [&running, &waiting] {
        h.wait_state(id, "Transferred", Duration::from_secs(15));
        h.ok(&["complete", id]);
    }
    assert_eq!(read(&h.path("running.bin")), body);
    assert_eq!(read(&h.path("waiting.bin")), body);
}

/// The machine-wide cap holds background jobs within 10 %; a priority or
/// cap change applies to the running transfer at once.
#[test]
fn caps_hold_and_priority_changes_apply_to_a_running_transfer() {
    let server = TestServer::start();
    let body = content(8_000_000, 132);
    server.put_file("/c.bin", body.clone());
    let h = Home::new();
    h.ok(&["policy", "set", "--max-background-bandwidth", "400k"]);
    let id = h.start_async(&[
        "--priority",
        "low",
        &server.url("c.bin"),
        h.path("c.bin").to_str().unwrap(),
    ]);
    h.wait_for(&id, Duration::from_secs(10), |j| {
        j["BytesTransferred"].as_u64().unwrap() > 0
    });
    std::thread::sleep(Duration::from_millis(500));
    let capped = rate_over(&h, &id, Duration::from_secs(2));
    assert!(
        (200_000.0..=440_000.0).contains(&capped),
        "background under a 400k cap: {capped:.0} B/s"
    );
    // Its own cap, lower, wins.
    h.ok(&["set", &id, "--max-bandwidth", "150k"]);
    std::thread::sleep(Duration::from_millis(300));
    let own = rate_over(&h, &id, Duration::from_secs(2));
    assert!(
        (75_000.0..=165_000.0).contains(&own),
        "own 150k cap: {own:.0} B/s"
    );
    eprintln!("measured: under the 400k background cap {capped:.0} B/s, under its own 150k cap {own:.0} B/s");
    // Foreground: the background cap no longer applies, its own still does.
    h.ok(&[
        "set",
        &id,
        "--priority",
        "foreground",
        "--max-bandwidth",
        "off",
    ]);
    let started = Instant::now();
    h.wait_state(&id, "Transferred", Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let done = h.info(&id);
    assert_eq!(
        done["TransientErrorCount"], 0,
        "no new attempt was needed: {done}"
    );
    h.ok(&["complete", &id]);
    assert_eq!(read(&h.path("c.bin")), body);
}

#[test]
fn quotas_refuse_before_anything_is_created() {
    let server = TestServer::start();
    server.put_file("/q.bin", content(1000, 133));
    for i in 0..4 {
        server.put_file(&format!("/q{i}.bin"), content(100, i));
    }
    let h = Home::new();
    h.ok(&[
        "policy",
        "set",
        "--max-jobs-per-user",
        "2",
        "--max-files-per-job",
        "3",
    ]);
    for name in ["a", "b"] {
        h.start_async(&[
            "--suspended",
            &server.url("q.bin"),
            h.path(name).to_str().unwrap(),
        ]);
    }
    let r = h.bits(&[
        "start",
        "--async",
        &server.url("q.bin"),
        h.path("c").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("MaxJobsPerUser 2"), "{}", r.stderr);
    assert_eq!(
        h.ok(&["list", "--json"]).json().as_array().unwrap().len(),
        2
    );

    h.ok(&["policy", "set", "--max-jobs-per-user", "10"]);
    let dir = h.path("many");
    let urls: Vec<String> = (0..4).map(|i| server.url(&format!("q{i}.bin"))).collect();
    let mut args = vec!["start", "--async"];
    args.extend(urls.iter().map(String::as_str));
    args.push(dir.to_str().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let r = h.bits(&args);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("at most 3 files"), "{}", r.stderr);
    assert_eq!(
        h.ok(&["list", "--json"]).json().as_array().unwrap().len(),
        2
    );
}
