//! Every wait has an end: servers that never answer, absurd Retry-After
//! values, daemons that never answer, thousands of idle clients, jobs too
//! big for one answer, daemons that cannot start. Each test is named after
//! what once broke.

use crate::support::{content, Home, SmallDisk};
use bits_test_support::{Fault, TestServer};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Regression (item 10): a server that accepts and never answers kept a job
/// Connecting for ever, holding the one background slot. Now the wait ends
/// (here after `--network-timeout 2`) in TransientError with a reason.
#[test]
fn a_server_that_never_answers_puts_the_job_in_transient_error() {
    let server = TestServer::start();
    server.put_file("/n.bin", content(1000, 71));
    server.set_default_fault("/n.bin", Some(Fault::NoAnswer));
    let h = Home::with_env(&[("BITS_NETWORK_TIMEOUT", "2".as_ref())]);
    let dest = h.path("n.bin");
    let id = h.start_async(&[&server.url("n.bin"), dest.to_str().unwrap()]);
    let job = h.wait_state(&id, "TransientError", Duration::from_secs(15));
    let why = job["ErrorDescription"].as_str().unwrap();
    assert!(
        why.contains("did not send a complete response within 2 seconds"),
        "{why}"
    );
}

/// Regression (item 11): `Retry-After: 18446744073709551615` panicked a
/// runtime worker (overflow adding it to the time) and left the job
/// Connecting for ever. Now it is a long wait in TransientError, and the
/// daemon goes on serving.
#[test]
fn retry_after_u64_max_neither_panics_nor_sticks() {
    let server = TestServer::start();
    server.put_file("/r.bin", content(1000, 72));
    server.set_default_fault(
        "/r.bin",
        Some(Fault::Status {
            code: 503,
            retry_after: Some(u64::MAX),
        }),
    );
    let h = Home::new();
    let dest = h.path("r.bin");
    let id = h.start_async(&[
        "--retry-interval",
        "1",
        &server.url("r.bin"),
        dest.to_str().unwrap(),
    ]);
    let job = h.wait_state(&id, "TransientError", Duration::from_secs(15));
    assert_eq!(job["ErrorCode"], "0x801901F7", "{job:#}");
    assert!(!h.log().contains("panicked"), "{}", h.log());
    h.ok(&["list"]);
}

/// Regression (item 12): the CLI waited for ever on a daemon that accepted
/// and never answered. Now it gives up with a message that says so.
#[test]
fn the_cli_gives_up_on_a_daemon_that_never_answers() {
    let h = Home::with_env(&[("BITS_NO_AUTOSTART", "1".as_ref())]);
    let socket = h.home.path().join("bits.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let r = h.bits(&["list"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("did not answer within 5 s"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// Raises this process's descriptor limit so it can hold many sockets.
fn raise_own_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// The soft and hard "Max open files" of a process.
fn open_file_limits(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

/// Regression (item 12): bitsd kept the default soft limit of 1,024
/// descriptors, so 2,000 idle connections of the same user froze every
/// `bits` command without a word. Now the limit is raised to the hard one,
/// and a user's idle connections make room for new ones.
#[test]
fn two_thousand_idle_connections_do_not_lock_out_the_cli() {
    raise_own_limit();
    let h = Home::new();
    h.ok(&["list"]);
    let pid = h.daemon_pid().unwrap();
    let (soft, hard) = open_file_limits(pid);
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    let socket = h.home.path().join("bits.sock");
    let idle: Vec<UnixStream> = (0..2000)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let started = Instant::now();
    let r = h.bits(&["list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

/// Regression (item 13): a job of 400,000 files was created, but its answer
/// passed the 64 MiB frame limit, and from then on `list` and `info` failed
/// for every job. Now a list past the per-job limit is refused before
/// anything is created.
#[test]
fn a_file_list_past_the_per_job_limit_is_refused_before_anything_is_created() {
    let h = Home::new();
    let mut csv = String::from("Source,Destination\n");
    for i in 0..100_001 {
        csv.push_str(&format!("{},out/{i}\n", h.src()));
    }
    std::fs::create_dir(h.path("out")).unwrap();
    let list = h.path("list.csv");
    std::fs::write(&list, csv).unwrap();
    let r = h.bits(&["start", "--async", "--from-csv", list.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("more than 100000 files"), "{r:?}");
    assert_eq!(h.ok(&["list", "--json"]).json(), serde_json::json!([]));
}

/// Regression (item 13): answers are bounded whatever a job holds: a job
/// whose file list is larger than one answer is sent a page at a time, and
/// `info`, `list --json` and a restarted daemon all show every file.
#[test]
fn a_job_larger_than_one_answer_is_listed_whole() {
    let h = Home::new();
    std::fs::create_dir(h.path("out")).unwrap();
    let files = 30_000;
    let long = "x".repeat(150);
    let mut csv = String::from("Source,Destination\n");
    for i in 0..files {
        csv.push_str(&format!("{},out/{long}{i}\n", h.src()));
    }
    let list = h.path("list.csv");
    std::fs::write(&list, csv).unwrap();
    let id = h
        .ok(&[
            "start",
            "--suspended",
            "--json",
            "--from-csv",
            list.to_str().unwrap(),
        ])
        .json()["JobId"]
        .as_str()
        .unwrap()
        .to_string();
    let info = h.info(&id);
    assert_eq!(info["FileList"].as_array().unwrap().len(), files);
    assert!(info.get("FileListNext").is_none());
    let r = h.ok(&["info", &id, "--json"]);
    assert!(r.stdout.len() > 8 << 20, "more than one answer's worth");
    h.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    let listed = h.ok(&["list", "--json"]).json();
    assert_eq!(listed[0]["FileList"].as_array().unwrap().len(), files);
    assert_eq!(
        listed[0]["FileList"][files - 1]["LocalName"],
        info["FileList"][files - 1]["LocalName"]
    );
}

/// Regression (item 14): a daemon that could not start made the CLI print
/// "bitsd exited at once … see its log". Now it prints the reason.
#[test]
fn a_daemon_that_cannot_start_says_why() {
    let h = Home::new();
    std::fs::write(h.home.path().join("jobs.sqlite3"), vec![0x5A; 8192]).unwrap();
    let r = h.bits(&["list"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("bitsd could not start"), "{r:?}");
    assert!(r.stderr.contains("is damaged"), "{r:?}");

    let h = Home::new();
    h.ok(&["list"]);
    h.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    let db = rusqlite::Connection::open(h.home.path().join("jobs.sqlite3")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let r = h.bits(&["list"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("schema version 99"), "{r:?}");
}

/// Regression (found by the power-loss test): once the disk under the log
/// was full, a failed log write was reported on standard error, which is
/// the log itself once the daemon is detached; that failed too and
/// panicked, and the panic hook waited for the logger lock its own thread
/// held: the daemon stopped answering for good. Now failed log writes are
/// dropped and panics are written to the log file directly. Needs root to
/// mount a small tmpfs; elsewhere it says so and passes.
#[test]
fn a_full_disk_under_the_log_does_not_hang_the_daemon() {
    let state = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(state.path().join("home"), "4m") else {
        return;
    };
    let small = disk.path.clone();
    // The socket and pid file stay in the test's own home, where its
    // cleanup finds the daemon.
    let mut h = Home::new();
    let runtime = h.home.path().as_os_str().to_os_string();
    h.env
        .push(("BITS_HOME".into(), small.clone().into_os_string()));
    h.env.push(("BITS_RUNTIME_DIR".into(), runtime));
    h.ok(&["list"]);
    // Fill what is left of the disk.
    let filler = small.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let started = Instant::now();
    for _ in 0..60 {
        let r = h.bits(&["list"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    std::fs::remove_file(&filler).unwrap();
    let id = h.start_async(&["--suspended", &h.src(), h.path("x").to_str().unwrap()]);
    assert_eq!(h.info(&id)["JobState"], "Suspended");
}
