//! Complete, Cancel, Suspend, Resume and Add: what happens to the job and to
//! the files.

use crate::support::{content, read, temp_files, Home};
use bits_test_support::{Fault, TestServer};
use std::time::Duration;

/// Until Complete, a transferred file exists only as a hidden temporary
/// file; Complete renames it into place and the job is Acknowledged.
#[test]
fn complete_makes_transferred_files_appear() {
    let server = TestServer::start();
    server.put_file("/x.bin", content(40_000, 21));
    let h = Home::new();
    let dest = h.path("x.bin");
    let id = h.start_async(&[&server.url("x.bin"), dest.to_str().unwrap()]);
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(10));
    assert!(!dest.exists(), "invisible before Complete");
    let temp = info["FileList"][0]["TemporaryName"].as_str().unwrap();
    assert_eq!(read(std::path::Path::new(temp)), content(40_000, 21));
    assert_eq!(info["FileList"][0]["IsTransferComplete"], true);
    assert!(info["TransferCompletionTime"].is_string());
    let done = h.ok(&["complete", &id, "--json"]).json();
    assert_eq!(done["JobState"], "Acknowledged");
    assert_eq!(read(&dest), content(40_000, 21));
    assert!(temp_files(h.work.path()).is_empty());
    // A final job cannot be acted on any more.
    assert_eq!(h.bits(&["resume", &id]).code, 4);
}

/// Cancel deletes the temporary files, transferred ones included, and never
/// creates the destination.
#[test]
fn cancel_deletes_temporary_and_transferred_files() {
    let server = TestServer::start();
    server.put_file("/y1.bin", content(30_000, 22));
    server.put_file("/y2.bin", content(3_000_000, 23));
    server.set_default_fault(
        "/y2.bin",
        Some(Fault::Slow {
            bytes_per_sec: 200_000,
        }),
    );
    let h = Home::new();
    let out = h.path("out");
    std::fs::create_dir(&out).unwrap();
    let id = h.start_async(&[
        &server.url("y1.bin"),
        &server.url("y2.bin"),
        out.to_str().unwrap(),
    ]);
    h.wait_for(&id, Duration::from_secs(10), |j| {
        j["FilesTransferred"] == 1 && j["FileList"][1]["BytesTransferred"].as_u64().unwrap() > 0
    });
    // The second file's temporary file is created by its first write (a
    // full buffer or the first checkpoint).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while temp_files(&out).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(temp_files(&out).len(), 2);
    let r = h.ok(&["remove", &id, "--json"]).json();
    assert_eq!(r["JobState"], "Cancelled");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert!(!out.join("y1.bin").exists());
    assert!(!out.join("y2.bin").exists());
}

/// Suspend stops the transfer and keeps the bytes; Resume continues from
/// them. Files are transferred in order.
#[test]
fn suspend_keeps_progress_and_resume_continues() {
    let server = TestServer::start();
    let body = content(1_500_000, 24);
    server.put_file("/z.bin", body.clone());
    server.set_default_fault(
        "/z.bin",
        Some(Fault::Slow {
            bytes_per_sec: 500_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("z.bin");
    let id = h.start_async(&[
        "--name",
        "nightly",
        &server.url("z.bin"),
        dest.to_str().unwrap(),
    ]);
    h.wait_for(&id, Duration::from_secs(10), |j| {
        j["BytesTransferred"].as_u64().unwrap() > 200_000
    });
    // The DisplayName names the job when it is unique.
    let s = h.ok(&["suspend", "nightly", "--json"]).json();
    assert_eq!(s["JobState"], "Suspended");
    std::thread::sleep(Duration::from_millis(300));
    let kept = h.info(&id)["BytesTransferred"].as_u64().unwrap();
    assert!(kept > 0);
    let n = server.requests_for("/z.bin").len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.requests_for("/z.bin").len(),
        n,
        "nothing moves while suspended"
    );
    server.set_default_fault("/z.bin", None);
    h.ok(&["resume", &id]);
    assert_eq!(read(&dest), body);
    let last = server.requests_for("/z.bin").last().unwrap().range_start();
    assert!(last.unwrap_or(0) > 0, "resume continues past zero");
}

/// Files added to a suspended job join its file list after the first ones and
/// are transferred with them.
#[test]
fn added_files_transfer_after_the_first_ones() {
    let server = TestServer::start();
    server.put_file("/f1.bin", content(5000, 31));
    server.put_file("/f2.bin", content(6000, 32));
    let h = Home::new();
    let out = h.path("out");
    std::fs::create_dir(&out).unwrap();
    let id = h.start_async(&["--suspended", &server.url("f1.bin"), out.to_str().unwrap()]);
    h.ok(&["add", &id, &server.url("f2.bin"), out.to_str().unwrap()]);
    assert_eq!(h.info(&id)["FilesTotal"], 2);
    h.ok(&["resume", &id]);
    assert_eq!(read(&out.join("f1.bin")), content(5000, 31));
    assert_eq!(read(&out.join("f2.bin")), content(6000, 32));
    let info = h.info(&id);
    assert_eq!(
        info["FileList"][0]["LocalName"],
        out.join("f1.bin").to_str().unwrap()
    );
    assert_eq!(
        info["FileList"][1]["LocalName"],
        out.join("f2.bin").to_str().unwrap()
    );
}

/// Set changes properties that list and info then show.
#[test]
fn set_changes_properties() {
    let server = TestServer::start();
    server.put_file("/s.bin", content(100, 1));
    let h = Home::new();
    let id = h.start_async(&[
        "--suspended",
        &server.url("s.bin"),
        h.path("s.bin").to_str().unwrap(),
    ]);
    let j = h
        .ok(&[
            "set",
            &id,
            "--priority",
            "low",
            "--name",
            "later",
            "--retry-interval",
            "30",
            "--connections",
            "6",
            "--json",
        ])
        .json();
    assert_eq!(j["Connections"], 6);
    assert_eq!(j["Priority"], "Low");
    assert_eq!(j["DisplayName"], "later");
    assert_eq!(j["MinimumRetryDelay"], 30);
    let listed = h.ok(&["list", "--name", "lat*", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

/// Ctrl-C during a synchronous start stops waiting, leaves the job in the
/// queue, says how to resume or remove it, and exits 130.
#[test]
fn ctrl_c_during_synchronous_start_leaves_the_job() {
    let server = TestServer::start();
    server.put_file("/i.bin", content(2_000_000, 41));
    server.set_default_fault(
        "/i.bin",
        Some(Fault::Slow {
            bytes_per_sec: 200_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("i.bin");
    let child = h
        .command()
        .args(["start", &server.url("i.bin"), dest.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.body_bytes_sent("/i.bin") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "transfer never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("bits resume") && stderr.contains("bits remove"),
        "{stderr}"
    );
    let jobs = h.ok(&["list", "--json"]).json();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "the job stays queued");
    assert!(!dest.exists());
}
