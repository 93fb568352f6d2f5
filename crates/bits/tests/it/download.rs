//! Downloads against a misbehaving server: the file on disk is byte-exact
//! whatever the server does.

use crate::support::{content, read, temp_files, Home, SmallDisk};
use bits_test_support::{Fault, TestServer};
use std::time::Duration;

/// A plain synchronous download completes, the file appears under its name
/// with the server's bytes, and no temporary file is left.
#[test]
fn plain_download_completes_and_file_appears() {
    let server = TestServer::start();
    let body = content(300_000, 1);
    server.put_file("/a.bin", body.clone());
    let h = Home::new();
    let dest = h.path("a.bin");
    let r = h.ok(&["start", &server.url("a.bin"), dest.to_str().unwrap()]);
    assert!(
        r.stdout.is_empty(),
        "synchronous start prints nothing: {r:?}"
    );
    assert_eq!(read(&dest), body);
    assert!(temp_files(h.work.path()).is_empty());
    let list = h.ok(&["list", "--json"]).json();
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "completed jobs are not listed"
    );
}

/// The file's modification time is the server's Last-Modified.
#[test]
fn modification_time_comes_from_last_modified() {
    let server = TestServer::start();
    server.put_file("/m.bin", content(1000, 2));
    let lm = httpdate::parse_http_date(&server.last_modified("/m.bin").unwrap()).unwrap();
    let h = Home::new();
    let dest = h.path("m.bin");
    h.ok(&["start", &server.url("m.bin"), dest.to_str().unwrap()]);
    let mtime = std::fs::metadata(&dest).unwrap().modified().unwrap();
    assert_eq!(mtime, lm);
}

/// Ten connection cuts in the middle of the body: each attempt resumes
/// where the last stopped (Range past zero), and the file is exact.
#[test]
fn many_connection_drops_mid_body_resume_and_stay_exact() {
    let server = TestServer::start();
    let body = content(1_000_000, 3);
    server.put_file("/d.bin", body.clone());
    server.push_faults("/d.bin", (0..10).map(|_| Fault::DropAfter(60_000)));
    let h = Home::new();
    let dest = h.path("d.bin");
    h.ok(&["start", &server.url("d.bin"), dest.to_str().unwrap()]);
    assert_eq!(read(&dest), body);
    let reqs = server.requests_for("/d.bin");
    let gets: Vec<_> = reqs.iter().filter(|r| r.method == "GET").collect();
    assert!(gets.len() >= 11, "expected 11+ GETs, saw {}", gets.len());
    assert!(
        gets.iter()
            .skip(1)
            .all(|r| r.range_start().unwrap_or(0) > 0),
        "every retry resumes past zero: {:?}",
        gets.iter().map(|r| r.range.clone()).collect::<Vec<_>>()
    );
    // Resumes reuse what arrived: nothing is downloaded twice.
    assert!(server.body_bytes_sent("/d.bin") <= body.len() as u64 + 10 * 65_536);
}

/// 503 with Retry-After: the job waits in TransientError for at least the
/// server's delay (longer than the job's retry interval), then finishes.
#[test]
fn service_unavailable_with_retry_after_is_honoured() {
    let server = TestServer::start();
    let body = content(50_000, 4);
    server.put_file("/s.bin", body.clone());
    server.push_faults(
        "/s.bin",
        [Fault::Status {
            code: 503,
            retry_after: Some(2),
        }],
    );
    let h = Home::new();
    let dest = h.path("s.bin");
    let id = h.start_async(&[
        "--retry-interval",
        "1",
        &server.url("s.bin"),
        dest.to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "TransientError", Duration::from_secs(10));
    assert_eq!(info["ErrorCode"], "0x801901F7");
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(15));
    assert_eq!(info["TransientErrorCount"], 1);
    let gets: Vec<_> = server
        .requests_for("/s.bin")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    let waited = gets[1].at - gets[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}

/// A server that answers a ranged request with the whole file (200): the
/// result is still exact (the prefix is skipped or rewritten, never doubled).
#[test]
fn server_ignoring_range_still_gives_exact_file() {
    let server = TestServer::start();
    let body = content(800_000, 5);
    server.put_file("/r.bin", body.clone());
    server.push_faults("/r.bin", [Fault::DropAfter(300_000), Fault::IgnoreRange]);
    let h = Home::new();
    let dest = h.path("r.bin");
    h.ok(&["start", &server.url("r.bin"), dest.to_str().unwrap()]);
    assert_eq!(read(&dest), body);
}

/// The file is replaced on the server between two ranges: the result is the
/// new file, byte-exact, never the old prefix spliced onto the new tail.
#[test]
fn file_replaced_between_ranges_yields_the_new_file() {
    let server = TestServer::start();
    let old = content(900_000, 6);
    let new = content(700_000, 99);
    server.put_file("/c.bin", old);
    server.push_faults(
        "/c.bin",
        [Fault::DropAfter(400_000), Fault::ReplaceWith(new.clone())],
    );
    let h = Home::new();
    let dest = h.path("c.bin");
    h.ok(&["start", &server.url("c.bin"), dest.to_str().unwrap()]);
    assert_eq!(read(&dest), new);
}

/// A 206 whose Content-Range does not match the request is an error, not
/// data: no byte of it lands in the file, and the file ends exact.
#[test]
fn mismatched_content_range_is_not_written() {
    let server = TestServer::start();
    let body = content(500_000, 7);
    server.put_file("/w.bin", body.clone());
    server.push_faults(
        "/w.bin",
        [
            Fault::DropAfter(200_000),
            Fault::WrongContentRange { delta: 1000 },
        ],
    );
    let h = Home::new();
    let dest = h.path("w.bin");
    let id = h.start_async(&[
        "--retry-interval",
        "1",
        &server.url("w.bin"),
        dest.to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(20));
    assert!(info["TransientErrorCount"].as_u64().unwrap() >= 1);
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}

/// 404 puts the job in Error with BITS' code for HTTP 404 and a sentence;
/// a synchronous start exits 1 and says so.
#[test]
fn not_found_is_error_0x80190194() {
    let server = TestServer::start();
    let h = Home::new();
    let dest = h.path("missing.bin");
    let r = h.bits(&["start", &server.url("missing.bin"), dest.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("0x80190194"), "{r:?}");
    let list = h.ok(&["list", "--json"]).json();
    let job = &list[0];
    assert_eq!(job["JobState"], "Error");
    assert_eq!(job["ErrorCode"], "0x80190194");
    assert_eq!(job["ErrorContext"], "RemoteFile");
    assert!(job["ErrorDescription"].as_str().unwrap().contains("404"));
    assert!(!dest.exists());
}

/// A server that keeps failing without progress: TransientError, then Error
/// once NoProgressTimeout has run out.
#[test]
fn no_progress_timeout_turns_transient_error_into_error() {
    let server = TestServer::start();
    server.put_file("/busy.bin", content(10, 8));
    server.set_default_fault(
        "/busy.bin",
        Some(Fault::Status {
            code: 503,
            retry_after: None,
        }),
    );
    let h = Home::new();
    let dest = h.path("busy.bin");
    let id = h.start_async(&[
        "--retry-interval",
        "1",
        "--retry-timeout",
        "3",
        &server.url("busy.bin"),
        dest.to_str().unwrap(),
    ]);
    h.wait_state(&id, "TransientError", Duration::from_secs(10));
    let info = h.wait_state(&id, "Error", Duration::from_secs(20));
    assert_eq!(info["ErrorCode"], "0x801901F7");
}

/// Several local sources by wildcard go into a destination directory, in
/// one job, and arrive exact.
#[test]
fn local_wildcard_sources_into_a_directory() {
    let h = Home::new();
    let src = h.path("src");
    std::fs::create_dir(&src).unwrap();
    for (i, n) in ["a.log", "b.log", "c.txt"].iter().enumerate() {
        std::fs::write(src.join(n), content(10_000 + i, i as u8)).unwrap();
    }
    let out = h.path("out");
    std::fs::create_dir(&out).unwrap();
    h.ok(&[
        "start",
        src.join("*.log").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(read(&out.join("a.log")), content(10_000, 0));
    assert_eq!(read(&out.join("b.log")), content(10_001, 1));
    assert!(!out.join("c.txt").exists());
}

/// A CSV file list makes one job with every row, spaces around commas
/// allowed.
#[test]
fn csv_file_list_downloads_every_row() {
    let server = TestServer::start();
    server.put_file("/1.bin", content(2000, 1));
    server.put_file("/2.bin", content(3000, 2));
    let h = Home::new();
    let csv = format!(
        "Source , Destination\n{} , {}\n{} , {}\n",
        server.url("1.bin"),
        h.path("one.bin").display(),
        server.url("2.bin"),
        h.path("two.bin").display()
    );
    std::fs::write(h.path("list.csv"), csv).unwrap();
    h.ok(&["start", "--from-csv", "list.csv"]);
    assert_eq!(read(&h.path("one.bin")), content(2000, 1));
    assert_eq!(read(&h.path("two.bin")), content(3000, 2));
}

/// A job that spends longer than MaxDownloadTime transferring goes to Error
/// with BG_E_MAXDOWNLOAD_TIMEOUT, keeping what it downloaded.
#[test]
fn max_download_time_puts_the_job_in_error() {
    let server = TestServer::start();
    server.put_file("/long.bin", content(2_000_000, 9));
    server.set_default_fault(
        "/long.bin",
        Some(Fault::Slow {
            bytes_per_sec: 200_000,
        }),
    );
    let h = Home::new();
    let dest = h.path("long.bin");
    let id = h.start_async(&[
        "--max-download-time",
        "1",
        &server.url("long.bin"),
        dest.to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "Error", Duration::from_secs(10));
    assert_eq!(info["ErrorCode"], "0x80200054");
    assert!(info["BytesTransferred"].as_u64().unwrap() > 0);
}

/// A full disk is a TransientError that names the cause, and the job
/// resumes by itself once there is space again. Needs root to mount a small
/// tmpfs; elsewhere it says so and passes.
#[test]
fn full_disk_is_transient_and_resumes_when_space_returns() {
    let h = Home::new();
    let Some(disk) = SmallDisk::mount(h.path("small-disk"), "1m") else {
        return;
    };
    let small = disk.path.clone();

    let server = TestServer::start();
    let body = content(3_000_000, 10);
    server.put_file("/big.bin", body.clone());
    let dest = small.join("big.bin");
    let id = h.start_async(&[
        "--retry-interval",
        "1",
        &server.url("big.bin"),
        dest.to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "TransientError", Duration::from_secs(15));
    assert_eq!(info["ErrorCode"], "0x80070070", "{info:#}");
    assert_eq!(info["ErrorContext"], "LocalFile");
    assert!(
        info["ErrorDescription"].as_str().unwrap().contains("space"),
        "{info:#}"
    );
    disk.resize("16m");
    h.wait_state(&id, "Transferred", Duration::from_secs(20));
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}

/// Regression (a paced download forgot its size): the size announced with
/// the version was shown, then dropped by the first checkpoint, which
/// announces none (`5.70 MiB / ?` in `monitor` while a capped job ran).
#[test]
fn a_paced_download_keeps_its_size_past_the_first_checkpoint() {
    let h = Home::new();
    let server = TestServer::start();
    let data = content(3_000_000, 73);
    server.put_file("/paced.bin", data.clone());
    let id = h.start_async(&[
        "--max-bandwidth",
        "1M",
        &server.url("paced.bin"),
        &h.path("paced.bin").to_string_lossy(),
    ]);
    // Checkpoints come every second: look after two.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let info = h.info(&id);
    assert_eq!(info["JobState"], "Transferring", "{info}");
    assert!(
        info["BytesTransferred"].as_u64().unwrap() > 1_000_000,
        "{info}"
    );
    assert_eq!(info["BytesTotal"], 3_000_000, "{info}");
    h.ok(&["remove", &id]);
}

/// Small files are created by the batch that makes them durable. One that
/// cannot be created (a directory where its temporary file goes) fails
/// alone: the job stops naming it, the files of its batch that could be
/// written are kept, and once the way is clear only the files not yet
/// transferred are fetched again.
#[test]
fn a_small_file_that_cannot_be_written_fails_alone_and_the_rest_are_kept() {
    let server = TestServer::start();
    let h = Home::new();
    let n = 6;
    let mut csv = String::from("Source,Destination\n");
    for i in 0..n {
        server.put_file(&format!("/s{i}.bin"), content(10_000 + i, i as u8));
        csv += &format!(
            "{},{}\n",
            server.url(&format!("s{i}.bin")),
            h.path(&format!("s{i}.bin")).display()
        );
    }
    std::fs::write(h.path("list.csv"), csv).unwrap();
    let id = h.start_async(&["--suspended", "--from-csv", "list.csv"]);
    let blocked = h.path(&format!(".s3.bin.bits-{id}.tmp"));
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"something in the way").unwrap();

    h.ok(&["resume", "--async", &id]);
    let failed = h.wait_for(&id, Duration::from_secs(20), |j| {
        j["JobState"] == "Error" || j["JobState"] == "TransientError"
    });
    assert_eq!(failed["ErrorContext"], "LocalFile", "{failed:#}");
    let why = failed["ErrorDescription"].as_str().unwrap();
    assert!(why.contains(blocked.to_str().unwrap()), "{failed:#}");
    let files = failed["FileList"].as_array().unwrap();
    assert_eq!(files[3]["IsTransferComplete"], false, "{failed:#}");
    let kept: Vec<usize> = (0..n)
        .filter(|&i| files[i]["IsTransferComplete"] == true)
        .collect();
    assert!(
        !kept.is_empty(),
        "the files written beside it are kept: {failed:#}"
    );

    std::fs::remove_dir_all(&blocked).unwrap();
    h.ok(&["resume", "--async", &id]);
    let r = h.bits(&["wait", &id, "--timeout", "30"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", h.log());
    h.ok(&["complete", &id]);
    for i in 0..n {
        assert_eq!(
            read(&h.path(&format!("s{i}.bin"))),
            content(10_000 + i, i as u8)
        );
        let gets = server
            .requests_for(&format!("/s{i}.bin"))
            .into_iter()
            .filter(|r| r.method == "GET")
            .count();
        if kept.contains(&i) {
            assert_eq!(gets, 1, "file {i} was kept, yet fetched again");
        }
    }
    assert!(temp_files(h.work.path()).is_empty());
}
