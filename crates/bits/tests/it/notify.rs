//! Notification commands (`--notify-cmd`, `--notify-flags`): run when the
//! job becomes Transferred or Error, with the job's id and state in their
//! environment; run again after the retry delay when they fail.

use crate::support::{content, read, Home};
use bits_test_support::TestServer;
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The seed's pattern without a polling loop: the notification command
/// itself completes the job, so the file appears with nobody waiting.
#[test]
fn a_notify_command_completes_its_own_job() {
    let server = TestServer::start();
    let body = content(40_000, 111);
    server.put_file("/n.bin", body.clone());
    let h = Home::new();
    let dest = h.path("n.bin");
    let said = h.path("said.txt");
    let cmd = format!(
        "'{}' complete \"$BITS_JOB_ID\" --json > '{}' 2>&1",
        env!("CARGO_BIN_EXE_bits"),
        said.display()
    );
    let id = h.start_async(&[
        "--notify-cmd",
        &cmd,
        &server.url("n.bin"),
        dest.to_str().unwrap(),
    ]);
    let info = h.info(&id);
    assert_eq!(info["NotifyCmdLine"], cmd.as_str());
    assert_eq!(info["NotifyFlags"][0], "transferred");
    h.wait_state(&id, "Acknowledged", Duration::from_secs(20));
    assert_eq!(read(&dest), body);
    let said = wait_for_file(&said, Duration::from_secs(10));
    assert!(
        said.contains(&id) && said.contains("Acknowledged"),
        "{said}"
    );
}

/// A command that exits non-zero runs again after the retry delay, with
/// the job's state in its environment.
#[test]
fn a_failing_notify_command_runs_again() {
    let server = TestServer::start();
    server.put_file("/f.bin", content(1000, 112));
    let h = Home::new();
    let marker = h.path("first-run");
    let done = h.path("done.txt");
    let cmd = format!(
        "if [ -e '{m}' ]; then echo \"$BITS_JOB_STATE $BITS_JOB_ID\" > '{d}'; \
         else touch '{m}'; echo failing on purpose; exit 3; fi",
        m = marker.display(),
        d = done.display()
    );
    let started = Instant::now();
    let id = h.start_async(&[
        "--retry-interval",
        "2",
        "--notify-cmd",
        &cmd,
        &server.url("f.bin"),
        h.path("f.bin").to_str().unwrap(),
    ]);
    let said = wait_for_file(&done, Duration::from_secs(20));
    assert_eq!(said.trim(), format!("Transferred {id}"));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let log = h.log();
    assert!(log.contains("failing on purpose"), "{log}");
    assert!(log.contains("the notification command failed"), "{log}");
}

/// `--notify-flags error`: the command runs for an Error, not for
/// Transferred; and one set after the event runs at once.
#[test]
fn notify_flags_choose_the_events_and_a_late_command_runs_at_once() {
    let server = TestServer::start();
    server.put_file("/ok.bin", content(1000, 113));
    let h = Home::new();
    let on_error = h.path("on-error.txt");
    let cmd = format!("echo \"$BITS_JOB_STATE\" >> '{}'", on_error.display());
    let missing = h.start_async(&[
        "--notify-flags",
        "error",
        "--notify-cmd",
        &cmd,
        &server.url("missing.bin"),
        h.path("m.bin").to_str().unwrap(),
    ]);
    h.wait_state(&missing, "Error", Duration::from_secs(10));
    assert_eq!(
        wait_for_file(&on_error, Duration::from_secs(10)).trim(),
        "Error"
    );
    let fine = h.start_async(&[
        "--notify-flags",
        "error",
        "--notify-cmd",
        &cmd,
        &server.url("ok.bin"),
        h.path("ok.bin").to_str().unwrap(),
    ]);
    h.wait_state(&fine, "Transferred", Duration::from_secs(10));
    // Set after the job became Transferred: runs now.
    let late = h.path("late.txt");
    h.ok(&[
        "set",
        &fine,
        "--notify-flags",
        "transferred",
        "--notify-cmd",
        &format!("echo \"$BITS_JOB_STATE\" > '{}'", late.display()),
    ]);
    assert_eq!(
        wait_for_file(&late, Duration::from_secs(10)).trim(),
        "Transferred"
    );
    // The error-only command never ran for the transferred job.
    assert_eq!(std::fs::read_to_string(&on_error).unwrap().trim(), "Error");
    let bad = h.bits(&["set", &fine, "--notify-flags", "sometimes"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("sometimes"), "{bad:?}");
}
