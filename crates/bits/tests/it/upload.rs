//! Upload jobs end to end: `bits start --type upload` through bitsd to
//! `bits serve --upload`, both real processes.

use crate::support::{content, read, Home, Serve};
use bits_test_support::TestServer;
use nix::sys::signal::Signal;
use std::time::Duration;

/// A synchronous upload: the file appears on the server under its name,
/// byte-exact, and no session is left behind.
#[test]
fn upload_arrives_byte_exact() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    let local = h.path("report.bin");
    std::fs::write(&local, content(5_000_000, 3)).unwrap();
    h.ok(&[
        "start",
        "--type",
        "upload",
        local.to_str().unwrap(),
        &server.url("report.bin"),
    ]);
    assert_eq!(read(&served.join("report.bin")), content(5_000_000, 3));
    let list = h.ok(&["list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 0);
}

/// An upload job holds one file: a second one is refused with
/// BG_E_TOO_MANY_FILES and nothing is created.
#[test]
fn upload_job_takes_one_file() {
    let h = Home::new();
    std::fs::write(h.path("a"), b"a").unwrap();
    std::fs::write(h.path("b"), b"b").unwrap();
    let id = h.start_async(&[
        "--suspended",
        "--type",
        "upload",
        h.path("a").to_str().unwrap(),
        "http://127.0.0.1:9/a",
    ]);
    let r = h.bits(&[
        "add",
        &id,
        h.path("b").to_str().unwrap(),
        "http://127.0.0.1:9/b",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(h.info(&id)["FilesTotal"], 1);
}

/// Pauses the server process (SIGSTOP) so that an upload is caught half-way,
/// whatever the machine's speed; resumes it on drop.
struct Paused(nix::unistd::Pid);
impl Paused {
    fn new(server: &Serve) -> Paused {
        let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
        nix::sys::signal::kill(pid, Signal::SIGSTOP).unwrap();
        Paused(pid)
    }
}
impl Drop for Paused {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, Signal::SIGCONT);
    }
}

/// Starts an upload capped at 4 MB/s and returns once the server has
/// acknowledged its first fragment: 24 MB then take about six seconds, so
/// the test acts while the upload is surely in the middle, however fast
/// the machine (uncapped, loopback finishes 24 MB in some 50 ms, before
/// the test's next request).
fn start_capped_upload(h: &Home, local: &std::path::Path, url: &str) -> String {
    let id = h.start_async(&[
        "--type",
        "upload",
        "--max-bandwidth",
        "4M",
        local.to_str().unwrap(),
        url,
    ]);
    h.wait_for(&id, Duration::from_secs(30), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 0
    });
    id
}

/// kill -9 of bitsd in the middle of an upload: the next daemon continues
/// the same session from the server's acknowledgement (the server's data
/// is not sent twice), and the server's file is exact.
#[test]
fn upload_resumes_after_kill_9() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    let local = h.path("big.bin");
    let body = content(24_000_000, 5);
    std::fs::write(&local, &body).unwrap();
    let id = start_capped_upload(&h, &local, &server.url("big.bin"));
    let paused = Paused::new(&server);
    let acked = h.info(&id)["BytesTransferred"].as_u64().unwrap();
    assert!(acked < body.len() as u64, "caught mid-upload");
    h.signal_daemon(Signal::SIGKILL);
    drop(paused);
    let r = h.bits(&["wait", &id, "--timeout", "60"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    h.ok(&["complete", &id]);
    assert_eq!(read(&served.join("big.bin")), body);
}

/// The server makes acknowledged bytes durable in background batches. When
/// such a sync fails, the bytes after the last durable point may be gone:
/// the server answers the next fragment with a 416 naming that point; the
/// bytes resent from there are synced before their Ack, so a disk that keeps
/// failing puts the job in TransientError (it had looped, acknowledged and
/// taken back, in the first version). Once the disk works, the upload
/// arrives byte-exact.
#[test]
fn a_failed_background_sync_on_the_server_sends_the_upload_back() {
    let faults = bits_test_support::SyncFaults::new();
    let env = faults.env();
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start_with_env(
        &served,
        &["--upload"],
        &[
            (env[0].0, env[0].1.as_os_str()),
            (env[1].0, env[1].1.as_os_str()),
        ],
    );
    let local = h.path("big.bin");
    let body = content(24_000_000, 7);
    std::fs::write(&local, &body).unwrap();
    // The first fragment (8 MiB, its sync before its Ack) is in; the next
    // one's batch is synced in the background, and fails.
    let id = start_capped_upload(&h, &local, &server.url("big.bin"));
    faults.fail("/data");
    // The resent bytes are then synced before their Ack, and fail too: the
    // job waits for its retry instead of sending them round again.
    let stopped = h.wait_state(&id, "TransientError", Duration::from_secs(30));
    assert!(
        faults.log().iter().any(|l| l.starts_with("fail ")),
        "a server sync failed"
    );
    assert!(
        server.log().contains("an upload's background sync failed"),
        "the failed sync was a background batch's: {}",
        server.log()
    );
    assert!(
        !served.join("big.bin").exists(),
        "nothing stored: {stopped:#}"
    );
    faults.clear();
    h.ok(&["set", &id, "--max-bandwidth", "off"]);
    h.ok(&["resume", &id, "--async"]);
    let r = h.bits(&["wait", &id, "--timeout", "60"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    h.ok(&["complete", &id]);
    assert_eq!(read(&served.join("big.bin")), body);
}

/// A local file that changes during an upload puts the job in Error with
/// BG_E_LOCAL_FILE_CHANGED, context LocalFile.
#[test]
fn local_file_changed_during_upload_is_an_error() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    let local = h.path("moving.bin");
    std::fs::write(&local, content(24_000_000, 1)).unwrap();
    let id = start_capped_upload(&h, &local, &server.url("moving.bin"));
    let paused = Paused::new(&server);
    h.ok(&["suspend", &id]);
    std::fs::write(&local, content(24_000_001, 2)).unwrap();
    drop(paused);
    h.ok(&["resume", &id, "--async"]);
    let info = h.wait_state(&id, "Error", Duration::from_secs(20));
    assert_eq!(info["ErrorCode"], "0x8020001D", "{info:#}");
    assert_eq!(info["ErrorContext"], "LocalFile");
    assert!(!served.join("moving.bin").exists());
}

/// An upload to a server that does not speak BITS fails at once with a
/// clear error, not an endless retry loop.
#[test]
fn upload_to_a_server_without_bits_is_an_error() {
    let plain = TestServer::start();
    let h = Home::new();
    let local = h.path("x.bin");
    std::fs::write(&local, b"hello").unwrap();
    let r = h.bits(&[
        "start",
        "--type",
        "upload",
        local.to_str().unwrap(),
        &plain.url("x.bin"),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    let job = &h.ok(&["list", "--json"]).json()[0];
    assert_eq!(job["JobState"], "Error");
    assert_eq!(job["ErrorCode"], "0x80190195", "HTTP 405: {job:#}");
    assert!(
        job["ErrorDescription"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("bits"),
        "{job:#}"
    );
}

/// A server application for `--notify-url`: answers every POST with
/// "got N bytes" and counts what it received.
fn notify_backend() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/app", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counter.fetch_add(length as u64, std::sync::atomic::Ordering::SeqCst);
            let reply = format!("got {length} bytes");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, received)
}

/// Upload-reply: the server hands the upload to its application, and the
/// application's answer arrives in the reply file, visible after Complete.
#[test]
fn upload_reply_brings_back_the_server_application_answer() {
    let (app, received) = notify_backend();
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload", "--notify-url", &app]);
    let local = h.path("form.bin");
    std::fs::write(&local, content(300_000, 8)).unwrap();
    let reply = h.path("answer.txt");
    let id = h.start_async(&[
        "--type",
        "upload-reply",
        "--reply-file",
        reply.to_str().unwrap(),
        local.to_str().unwrap(),
        &server.url("form.bin"),
    ]);
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(20));
    assert_eq!(info["ReplyFileName"], reply.to_str().unwrap());
    assert!(!reply.exists(), "the reply appears only on Complete");
    h.ok(&["complete", &id]);
    assert_eq!(std::fs::read_to_string(&reply).unwrap(), "got 300000 bytes");
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 300_000);
}

/// Removing an unfinished upload cancels its session on the server: the
/// partial data leaves nothing behind.
#[test]
fn removing_an_upload_cancels_the_server_session() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    let local = h.path("half.bin");
    std::fs::write(&local, content(24_000_000, 9)).unwrap();
    let id = start_capped_upload(&h, &local, &server.url("half.bin"));
    let paused = Paused::new(&server);
    h.ok(&["suspend", &id]);
    drop(paused);
    std::thread::sleep(Duration::from_millis(200));
    h.ok(&["remove", &id]);
    let sessions = served.join(".bits-sessions");
    let left: Vec<_> = std::fs::read_dir(&sessions)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sessions left: {left:?}");
    assert!(!served.join("half.bin").exists());
}

/// Regression: a synchronous upload completes the job the moment it is
/// Transferred, while its runner is still finishing; Complete must wait for
/// the runner, not suspend the job (an upload cannot be completed from
/// Suspended).
#[test]
fn complete_right_after_transfer_does_not_suspend_the_job() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    for i in 0..40 {
        let local = h.path(&format!("f{i}.bin"));
        std::fs::write(&local, content(1000 + i, i as u8)).unwrap();
        let name = format!("f{i}.bin");
        h.ok(&[
            "start",
            "--type",
            "upload",
            local.to_str().unwrap(),
            &server.url(&name),
        ]);
        assert_eq!(read(&served.join(&name)), content(1000 + i, i as u8));
    }
}

/// A CSV file list with --type upload makes one job per row, and the
/// synchronous form waits for all of them.
#[test]
fn csv_upload_makes_one_job_per_row() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    let server = Serve::start(&served, &["--upload"]);
    let mut csv = String::from("Source, Destination\n");
    for i in 0..3 {
        let local = h.path(&format!("row{i}.bin"));
        std::fs::write(&local, content(20_000 + i, i as u8)).unwrap();
        csv.push_str(&format!(
            "{}, {}\n",
            local.display(),
            server.url(&format!("row{i}.bin"))
        ));
    }
    std::fs::write(h.path("up.csv"), csv).unwrap();
    h.ok(&["start", "--type", "upload", "--from-csv", "up.csv"]);
    for i in 0..3 {
        assert_eq!(
            read(&served.join(format!("row{i}.bin"))),
            content(20_000 + i, i as u8)
        );
    }
}

/// The server's limits reach the job as BITS errors: an upload over
/// --max-upload-size is Error BG_E_TOO_LARGE; one onto an existing file
/// without --allow-overwrite is Error with the code the server sent
/// (ERROR_FILE_EXISTS).
#[test]
fn server_limits_become_job_errors() {
    let h = Home::new();
    let served = h.path("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("taken.bin"), b"old").unwrap();
    let server = Serve::start(&served, &["--upload", "--max-upload-size", "1000"]);
    let big = h.path("big.bin");
    std::fs::write(&big, content(5000, 1)).unwrap();
    let r = h.bits(&[
        "start",
        "--type",
        "upload",
        big.to_str().unwrap(),
        &server.url("big.bin"),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("0x80200020"), "{r:?}");
    let small = h.path("small.bin");
    std::fs::write(&small, content(10, 2)).unwrap();
    let r = h.bits(&[
        "start",
        "--type",
        "upload",
        small.to_str().unwrap(),
        &server.url("taken.bin"),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("0x80070050"), "{r:?}");
    assert_eq!(std::fs::read(served.join("taken.bin")).unwrap(), b"old");
}
