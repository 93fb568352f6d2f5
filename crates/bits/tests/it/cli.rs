//! The CLI's contract: exit codes, bad input refused with a message that
//! names the argument, and nothing created half-way.

use crate::support::{content, Home};
use bits_test_support::{Fault, TestServer};
use std::time::Duration;

fn assert_code(r: &crate::support::Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "{r:?}");
    assert!(
        r.stderr.contains(needle),
        "stderr should mention {needle:?}: {r:?}"
    );
}

/// Exit 4 for an unknown job, 2 for bad arguments.
#[test]
fn unknown_job_is_4_and_bad_arguments_are_2() {
    let h = Home::new();
    assert_code(&h.bits(&["info", "no-such-job"]), 4, "no-such-job");
    assert_code(
        &h.bits(&["resume", "00000000-0000-4000-8000-000000000000"]),
        4,
        "00000000",
    );
    assert_eq!(h.bits(&["start"]).code, 2);
    assert_eq!(h.bits(&["frobnicate"]).code, 2);
    assert_eq!(h.bits(&["start", "--priority", "urgent", "a", "b"]).code, 2);
}

/// Without a daemon and with autostart off: exit 3 and a clear message.
#[test]
fn no_daemon_and_no_autostart_is_3() {
    let h = Home::new();
    let r = h
        .command()
        .args(["list"])
        .env("BITS_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(3), "{r:?}");
    assert!(h.daemon_pid().is_none());
}

/// The first command starts bitsd, whose directory is private.
#[test]
fn autostart_creates_a_private_home_and_a_pid_file() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    h.ok(&["list"]);
    assert!(h.daemon_pid().is_some());
    let mode = std::fs::metadata(h.home.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// Wildcards in a URL or a destination, a missing local source, a missing
/// destination directory, an unsupported scheme: exit 2, naming the
/// argument, and no job is created.
#[test]
fn bad_sources_and_destinations_are_refused_and_create_nothing() {
    let h = Home::new();
    let dest = h.path("out.bin");
    let d = dest.to_str().unwrap();
    assert_code(
        &h.bits(&["start", "http://127.0.0.1:9/a*.bin", d]),
        2,
        "a*.bin",
    );
    assert_code(
        &h.bits(&["start", &h.src(), &h.path("o*.bin").to_string_lossy()]),
        2,
        "o*.bin",
    );
    assert_code(
        &h.bits(&["start", &h.path("nope.bin").to_string_lossy(), d]),
        2,
        "nope.bin",
    );
    assert_code(
        &h.bits(&["start", &h.src(), "/no/such/dir/x"]),
        2,
        "/no/such/dir",
    );
    assert_code(&h.bits(&["start", "ftp://127.0.0.1/x", d]), 2, "ftp");
    assert_code(
        &h.bits(&["start", "--connections", "0", "http://127.0.0.1:9/a", d]),
        2,
        "--connections must be between 1 and 16",
    );
    assert_code(
        &h.bits(&["start", "--connections", "17", "http://127.0.0.1:9/a", d]),
        2,
        "--connections",
    );
    assert_code(
        &h.bits(&[
            "start",
            "--type",
            "upload",
            "--connections",
            "2",
            &h.src(),
            "http://127.0.0.1:9/up",
        ]),
        2,
        "--connections applies only to download jobs",
    );
    let list = h.ok(&["list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing created: {list}");
}

/// A malformed CSV is refused with the line that is wrong, and nothing is
/// created.
#[test]
fn malformed_csv_names_the_line() {
    let h = Home::new();
    std::fs::write(
        h.path("bad.csv"),
        format!(
            "Source,Destination\n{},{}\n{}\n",
            h.src(),
            h.path("a").display(),
            h.src()
        ),
    )
    .unwrap();
    let r = h.bits(&["start", "--from-csv", "bad.csv"]);
    assert_code(&r, 2, "line 3");
    assert_eq!(
        h.ok(&["list", "--json"]).json().as_array().unwrap().len(),
        0
    );
}

/// An action the state does not allow is exit 4; `wait` exits 1 for Error,
/// 5 on timeout.
#[test]
fn invalid_state_is_4_wait_error_is_1_wait_timeout_is_5() {
    let server = TestServer::start();
    server.put_file("/slow.bin", content(2_000_000, 1));
    server.set_default_fault(
        "/slow.bin",
        Some(Fault::Slow {
            bytes_per_sec: 100_000,
        }),
    );
    let h = Home::new();
    let slow = h.start_async(&[
        &server.url("slow.bin"),
        h.path("slow.bin").to_str().unwrap(),
    ]);
    let r = h.bits(&["wait", &slow, "--timeout", "1"]);
    assert_eq!(r.code, 5, "{r:?}");
    h.ok(&["remove", &slow]);
    assert_eq!(h.bits(&["complete", &slow]).code, 4);

    let missing = h.start_async(&[
        &server.url("missing.bin"),
        h.path("m.bin").to_str().unwrap(),
    ]);
    let r = h.bits(&["wait", &missing, "--timeout", "20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("0x80190194"), "{r:?}");
    h.wait_state(&missing, "Error", Duration::from_secs(1));
}

/// `--json` output has the contract's keys.
#[test]
fn json_job_object_has_the_contract_keys() {
    let h = Home::new();
    let j = h
        .ok(&[
            "start",
            "--suspended",
            "--json",
            &h.src(),
            h.path("h").to_str().unwrap(),
        ])
        .json();
    for key in [
        "JobId",
        "DisplayName",
        "Description",
        "TransferType",
        "JobState",
        "Priority",
        "OwnerAccount",
        "BytesTotal",
        "BytesTransferred",
        "FilesTotal",
        "FilesTransferred",
        "CreationTime",
        "ModificationTime",
        "TransferCompletionTime",
        "TransientErrorCount",
        "MinimumRetryDelay",
        "NoProgressTimeout",
        "MaxDownloadTime",
        "ErrorContext",
        "ErrorCode",
        "ErrorDescription",
        "FileList",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j:#}");
    }
    assert_eq!(j["DisplayName"], "BITS Transfer");
    assert_eq!(j["Priority"], "Foreground");
    assert_eq!(j["JobState"], "Suspended");
    assert_eq!(j["MinimumRetryDelay"], 600);
    assert_eq!(j["NoProgressTimeout"], 1_209_600);
    assert!(j["BytesTotal"].is_null());
    let id = j["JobId"].as_str().unwrap();
    assert_eq!(id, id.to_lowercase());
    // A unique prefix of the JobId names the job.
    assert_eq!(h.info(&id[..8])["JobId"], id);
}

/// Regression: several commands autostarting at once on a fresh BITS_HOME
/// all succeed against the one daemon that wins the pid-file lock (the
/// others' daemons step aside).
#[test]
fn concurrent_autostart_all_clients_succeed() {
    let h = Home::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            h.command()
                .args(["list", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(h.daemon_pid().is_some());
}

/// BITS_RUNTIME_DIR holds the socket and the pid file; the state stays in
/// BITS_HOME.
#[test]
fn runtime_dir_holds_the_socket_and_pid_file() {
    let h = Home::new();
    let run = tempfile::tempdir().unwrap();
    let r = h
        .command()
        .args(["list"])
        .env("BITS_RUNTIME_DIR", run.path())
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{r:?}");
    assert!(run.path().join("bits.sock").exists());
    let pid: i32 = std::fs::read_to_string(run.path().join("bitsd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(h.home.path().join("jobs.sqlite3").exists());
    assert!(!h.home.path().join("bits.sock").exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    while crate::support::alive(pid) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A job with 10,000 files is accepted (no per-job file quota is set), in
/// one atomic request, and listed with all of them.
#[test]
fn a_job_of_ten_thousand_files_is_accepted() {
    let h = Home::new();
    let out = h.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut csv = String::from("Source,Destination\n");
    for i in 0..10_000 {
        csv.push_str(&format!(
            "http://127.0.0.1:9/f{i}.bin,{}/f{i}.bin\n",
            out.display()
        ));
    }
    std::fs::write(h.path("big.csv"), csv).unwrap();
    let j = h
        .ok(&["start", "--suspended", "--json", "--from-csv", "big.csv"])
        .json();
    assert_eq!(j["FilesTotal"], 10_000);
    let id = j["JobId"].as_str().unwrap().to_string();
    let info = h.info(&id);
    assert_eq!(info["FileList"].as_array().unwrap().len(), 10_000);
    assert_eq!(
        info["FileList"][9_999]["RemoteName"],
        "http://127.0.0.1:9/f9999.bin"
    );
}

/// Create and Complete answer without the job's files when the client asks
/// for a summary (as `bits start` does when it shows only the JobId): a
/// job of thousands of files is not sent back at each end of a transfer.
/// `FilesTotal` still counts them, the files are all there for `info`, and
/// the commands that print the job as JSON still get every file.
#[test]
fn create_and_complete_leave_the_files_out_of_a_summary() {
    use bits_proto::{client::Client, CreateJob, FileSpec, Request, Response};
    let h = Home::new();
    std::fs::create_dir(h.path("out")).unwrap();
    h.ok(&["list"]);
    let files: Vec<FileSpec> = (0..50)
        .map(|i| FileSpec {
            remote: h.src(),
            local: h.path(&format!("out/f{i}")).to_string_lossy().into_owned(),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let job = |r: Response| match r {
        Response::Job { job } => *job,
        other => panic!("not a job: {other:?}"),
    };
    let (id, summary_done) = rt.block_on(async {
        let mut c = Client::connect(&h.home.path().join("bits.sock"))
            .await
            .unwrap();
        let created = job(c
            .call(&Request::Create(CreateJob {
                transfer_type: "download".into(),
                properties: Default::default(),
                files: files.clone(),
                resume: true,
                summary: true,
            }))
            .await
            .unwrap());
        assert!(created.file_list.is_empty(), "{created:?}");
        assert!(created.file_list_next.is_none());
        assert_eq!(created.files_total, 50);
        let id = created.job_id.clone();
        h.wait_state(&id, "Transferred", Duration::from_secs(20));
        let done = job(c
            .call(&Request::Complete {
                job: id.clone(),
                summary: true,
            })
            .await
            .unwrap());
        (id, done)
    });
    assert_eq!(summary_done.job_state, "Acknowledged");
    assert!(summary_done.file_list.is_empty());
    assert!(summary_done.complete_result.is_some());
    assert_eq!(h.info(&id)["FileList"].as_array().unwrap().len(), 50);

    // Without summary (what the CLI asks when it prints JSON): every file.
    let printed = h
        .ok(&[
            "start",
            "--json",
            &h.src(),
            h.path("out/g").to_str().unwrap(),
        ])
        .json();
    assert_eq!(printed["JobState"], "Acknowledged");
    assert_eq!(printed["FileList"].as_array().unwrap().len(), 1);
    let suspended = h
        .ok(&[
            "start",
            "--suspended",
            "--json",
            &h.src(),
            h.path("out/h").to_str().unwrap(),
        ])
        .json();
    assert_eq!(suspended["FileList"].as_array().unwrap().len(), 1);
    let id = suspended["JobId"].as_str().unwrap().to_string();
    h.ok(&["resume", "--async", &id]);
    h.wait_state(&id, "Transferred", Duration::from_secs(20));
    let completed = h.ok(&["complete", "--json", &id]).json();
    assert_eq!(completed["FileList"].as_array().unwrap().len(), 1);
}

/// `bits monitor` redraws the job list every refresh; piped, it prints the
/// table each time.
#[test]
fn monitor_prints_the_jobs_each_refresh() {
    let h = Home::new();
    let j = h
        .ok(&[
            "start",
            "--suspended",
            "--json",
            "--name",
            "watched",
            &h.src(),
            h.path("m").to_str().unwrap(),
        ])
        .json();
    let id = j["JobId"].as_str().unwrap().to_string();
    let (code, text) = monitor_for(&h, &["--refresh", "0.2"], 900);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.matches(&id).count() >= 2, "several refreshes: {text}");
    assert!(
        text.contains("watched") && text.contains("Suspended"),
        "{text}"
    );
}

/// Start-BitsTransfer without -Destination saves into the current
/// directory; `bits start URL` used to be refused.
#[test]
fn a_download_without_a_destination_goes_into_the_current_directory() {
    let h = Home::new();
    let server = TestServer::start();
    let data = content(50_000, 71);
    server.put_file("/here.bin", data.clone());
    h.ok(&["start", &server.url("here.bin")]);
    assert_eq!(std::fs::read(h.path("here.bin")).unwrap(), data);
    // An upload still needs its URL.
    assert_code(
        &h.bits(&["start", "--type", "upload", &h.src()]),
        2,
        "DESTINATION",
    );
}

/// `bits list` with nothing to list says so (it printed nothing).
#[test]
fn list_says_when_there_are_no_jobs() {
    let h = Home::new();
    assert_eq!(h.ok(&["list"]).stdout, "No jobs.\n");
    assert_eq!(h.ok(&["list", "--json"]).stdout.trim(), "[]");
}

/// Shell completions come from the same definitions as the parser.
#[test]
fn completions_are_printed_for_each_shell() {
    let h = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = h.ok(&["completions", shell]);
        assert!(
            r.stdout.contains("start") && r.stdout.contains("priority"),
            "{shell}"
        );
    }
    assert_eq!(h.bits(&["completions", "tcsh"]).code, 2);
}

/// A job waiting to retry says when (it said only the error, then nothing
/// for 600 s), in `info` and off a terminal one line per change of state.
#[test]
fn a_job_waiting_to_retry_says_when_it_tries_again_and_when_it_gives_up() {
    let h = Home::new();
    let server = TestServer::start();
    server.put_file("/busy.bin", content(10_000, 72));
    server.set_default_fault(
        "/busy.bin",
        Some(Fault::Status {
            code: 503,
            retry_after: Some(120),
        }),
    );
    let id = h.start_async(&[
        &server.url("busy.bin"),
        &h.path("busy.bin").to_string_lossy(),
    ]);
    let info = h.wait_state(&id, "TransientError", Duration::from_secs(20));
    let next = info["NextRetryTime"]
        .as_str()
        .unwrap_or_else(|| panic!("{info}"));
    let give_up = info["GiveUpTime"]
        .as_str()
        .unwrap_or_else(|| panic!("{info}"));
    assert!(next < give_up, "{info}");
    let text = h.ok(&["info", &id]).stdout;
    assert!(
        text.contains("NextRetryTime") && text.contains(next),
        "{text}"
    );
    // Off a terminal, `wait` prints the state with its reason and times.
    let r = h.bits(&["wait", &id, "--timeout", "1"]);
    assert_eq!(r.code, 5, "{r:?}");
    let line = r.stderr.lines().next().unwrap_or_default();
    assert!(line.starts_with("TransientError: "), "{r:?}");
    assert!(line.contains(&format!("next try {next}")), "{r:?}");
    assert!(
        line.contains(&format!("Error if no progress by {give_up}")),
        "{r:?}"
    );
    // Once it is over, no retry time is shown.
    h.ok(&["suspend", &id]);
    assert!(h.info(&id).get("NextRetryTime").is_none());
}

/// An upload's size is known when it is created (one that failed before
/// reaching its server showed `0 B / ?`).
#[test]
fn an_upload_knows_its_size_before_it_starts() {
    let h = Home::new();
    let size = std::fs::metadata(h.src()).unwrap().len();
    let id = h.start_async(&[
        "--suspended",
        "--type",
        "upload",
        &h.src(),
        "http://127.0.0.1:9/up.txt",
    ]);
    let info = h.info(&id);
    assert_eq!(info["BytesTotal"], size, "{info}");
    assert!(h
        .ok(&["info", &id])
        .stdout
        .contains(&format!("0 B / {size} B")));
}

/// `--json` on `wait` (the job object as the wait ends, Error included) and
/// on `monitor` (a JSON array per refresh).
#[test]
fn wait_and_monitor_print_json_when_asked() {
    let h = Home::new();
    let server = TestServer::start();
    server.put_file("/w.bin", content(20_000, 74));
    let ok = h.start_async(&[&server.url("w.bin"), &h.path("w.bin").to_string_lossy()]);
    let r = h.ok(&["wait", &ok, "--json"]);
    assert_eq!(r.json()["JobState"], "Transferred", "{r:?}");
    let bad = h.start_async(&[
        &server.url("missing.bin"),
        &h.path("m.bin").to_string_lossy(),
    ]);
    let r = h.bits(&["wait", &bad, "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["JobState"], "Error", "{r:?}");

    let (_, text) = monitor_for(&h, &["--json", "--refresh", "0.2"], 700);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let jobs: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            jobs.as_array()
                .unwrap()
                .iter()
                .any(|j| j["JobId"] == ok.as_str()),
            "{line}"
        );
    }
}

/// Regression: `bits wait --json` of a job that ended in Error printed the
/// watch's summary, with an empty `FileList`; it prints the whole job.
#[test]
fn wait_json_of_a_failed_job_lists_its_files() {
    let h = Home::new();
    let server = TestServer::start();
    server.put_file("/here.bin", content(5_000, 75));
    std::fs::create_dir(h.path("out")).unwrap();
    let list = h.path("list.csv");
    std::fs::write(
        &list,
        format!(
            "Source,Destination\n{},{}\n{},{}\n",
            server.url("here.bin"),
            h.path("out/a").display(),
            server.url("missing.bin"),
            h.path("out/b").display()
        ),
    )
    .unwrap();
    let id = h.start_async(&["--from-csv", list.to_str().unwrap()]);
    let r = h.bits(&["wait", &id, "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let job = r.json();
    assert_eq!(job["JobState"], "Error", "{r:?}");
    assert_eq!(job["FileList"].as_array().unwrap().len(), 2, "{r:?}");
    assert_eq!(job["FileList"][1]["RemoteName"], server.url("missing.bin"));
}

/// Runs `bits monitor ARGS` for `ms` milliseconds, then Ctrl-C; its exit
/// code and standard output.
fn monitor_for(h: &Home, args: &[&str], ms: u64) -> (Option<i32>, String) {
    let child = h
        .command()
        .arg("monitor")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
