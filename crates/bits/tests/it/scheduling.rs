//! Scheduling as BITS does it: every Foreground job at once, one background
//! job at a time by priority, preemption by a higher priority, and turns of
//! one time slice between jobs of the same priority.

use crate::support::{content, read, Home};
use bits_test_support::{Fault, TestServer};
use std::time::{Duration, Instant};

fn slow(server: &TestServer, path: &str, len: usize, seed: u8, rate: u64) -> Vec<u8> {
    let body = content(len, seed);
    server.put_file(path, body.clone());
    server.set_default_fault(
        path,
        Some(Fault::Slow {
            bytes_per_sec: rate,
        }),
    );
    body
}

/// Starts the home's daemon with a time slice of `secs` seconds.
fn daemon_with_slice(h: &Home, secs: u64) {
    let r = h
        .command()
        .args(["list"])
        .env("BITS_TIME_SLICE", secs.to_string())
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
}

fn state(h: &Home, id: &str) -> String {
    h.info(id)["JobState"].as_str().unwrap().to_string()
}

/// The states of two jobs from one `bits list`: one snapshot of the daemon.
fn states(h: &Home, a: &str, b: &str) -> (String, String) {
    let list = h.ok(&["list", "--json"]).json();
    let of = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|j| j["JobId"] == id)
            .map_or("gone".to_string(), |j| {
                j["JobState"].as_str().unwrap().to_string()
            })
    };
    (of(a), of(b))
}

/// A High job that becomes ready takes the slot from a running Low job at
/// once: the Low job checkpoints and waits in Queued, the High job finishes,
/// then the Low job resumes from its checkpoint. Both files are exact.
#[test]
fn a_higher_priority_job_takes_the_slot_from_a_lower_one() {
    let server = TestServer::start();
    let low_body = slow(&server, "/low.bin", 1_500_000, 51, 300_000);
    let high_body = slow(&server, "/high.bin", 400_000, 52, 400_000);
    let h = Home::new();
    let low_dest = h.path("low.bin");
    let high_dest = h.path("high.bin");
    let low = h.start_async(&[
        "--priority",
        "low",
        &server.url("low.bin"),
        low_dest.to_str().unwrap(),
    ]);
    h.wait_for(&low, Duration::from_secs(20), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 200_000
    });
    let high = h.start_async(&[
        "--priority",
        "high",
        &server.url("high.bin"),
        high_dest.to_str().unwrap(),
    ]);
    h.wait_state(&low, "Queued", Duration::from_secs(10));
    // While the High job runs, the Low job keeps waiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, low_state) = states(&h, &high, &low);
        if s == "Transferred" {
            break;
        }
        assert_eq!(low_state, "Queued", "the low job waits while high is {s}");
        assert!(Instant::now() < deadline, "high job did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = h.bits(&["wait", &low, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    let gets = server.requests_for("/low.bin");
    assert!(gets.len() >= 2, "{gets:?}");
    assert!(
        gets.last().unwrap().range_start().unwrap_or(0) > 0,
        "the low job resumed from its checkpoint: {gets:?}"
    );
    h.ok(&["complete", &high]);
    h.ok(&["complete", &low]);
    assert_eq!(read(&high_dest), high_body);
    assert_eq!(read(&low_dest), low_body);
}

/// Two Normal jobs take turns of one time slice: never both transferring,
/// each gives the slot back after its slice, and both end exact.
#[test]
fn background_jobs_of_one_priority_take_turns() {
    let server = TestServer::start();
    let a_body = slow(&server, "/a.bin", 1_200_000, 53, 300_000);
    let b_body = slow(&server, "/b.bin", 1_200_000, 54, 300_000);
    let h = Home::new();
    daemon_with_slice(&h, 1);
    let a_dest = h.path("a.bin");
    let b_dest = h.path("b.bin");
    let a = h.start_async(&[
        "--priority",
        "normal",
        &server.url("a.bin"),
        a_dest.to_str().unwrap(),
    ]);
    h.wait_state(&a, "Transferring", Duration::from_secs(10));
    let b = h.start_async(&[
        "--priority",
        "normal",
        &server.url("b.bin"),
        b_dest.to_str().unwrap(),
    ]);
    let mut a_turns = 0;
    let mut b_turns = 0;
    let mut last = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (sa, sb) = states(&h, &a, &b);
        assert!(
            !(sa == "Transferring" && sb == "Transferring"),
            "two background jobs transferring at once"
        );
        if sa == "Transferring" && last.0 != "Transferring" {
            a_turns += 1;
        }
        if sb == "Transferring" && last.1 != "Transferring" {
            b_turns += 1;
        }
        if sa == "Transferred" && sb == "Transferred" {
            break;
        }
        assert!(Instant::now() < deadline, "a {sa}, b {sb}\n{}", h.log());
        last = (sa, sb);
        std::thread::sleep(Duration::from_millis(30));
    }
    // About 4 s of transfer each with a 1 s slice: several turns each.
    assert!(
        a_turns >= 2 && b_turns >= 2,
        "turns: a {a_turns}, b {b_turns}"
    );
    h.ok(&["complete", &a]);
    h.ok(&["complete", &b]);
    assert_eq!(read(&a_dest), a_body);
    assert_eq!(read(&b_dest), b_body);
}

/// Foreground jobs do not wait for the background slot, and do not take it:
/// a Foreground job and a Low job transfer at the same time.
#[test]
fn foreground_jobs_run_beside_the_background_job() {
    let server = TestServer::start();
    slow(&server, "/bg.bin", 1_000_000, 55, 250_000);
    slow(&server, "/fg.bin", 1_000_000, 56, 250_000);
    let h = Home::new();
    let bg = h.start_async(&[
        "--priority",
        "low",
        &server.url("bg.bin"),
        h.path("bg.bin").to_str().unwrap(),
    ]);
    h.wait_state(&bg, "Transferring", Duration::from_secs(10));
    let fg = h.start_async(&[&server.url("fg.bin"), h.path("fg.bin").to_str().unwrap()]);
    h.wait_state(&fg, "Transferring", Duration::from_secs(10));
    assert_eq!(state(&h, &bg), "Transferring");
    h.ok(&["remove", &bg]);
    h.ok(&["remove", &fg]);
}
