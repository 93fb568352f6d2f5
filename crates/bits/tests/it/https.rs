//! HTTPS downloads against the misbehaving server in TLS mode: the daemon
//! trusts what `SSL_CERT_FILE` names (rustls-native-certs reads it instead of
//! the system store), and an untrusted certificate is a TLS error.
//!
//! The CLI autostarts `bitsd` with its own environment and the engine loads
//! its root certificates once, when the daemon starts, so the variable is set
//! (or removed) on the first `bits` command of each test. The path must be
//! absolute: the daemon runs from `/`.

use crate::support::{content, read, temp_files, Home};
use bits_test_support::{Fault, TestServer};
use std::process::Command;
use std::time::Duration;

/// `h.command()` without any certificate-store override inherited from the
/// environment the tests run in.
fn command_without_cert_env(h: &Home) -> Command {
    let mut c = h.command();
    c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    c
}

/// With the test CA in SSL_CERT_FILE an https download is byte-exact, and a
/// connection cut mid-body (DropAfter) resumes over TLS from where it stopped.
#[test]
fn https_download_is_byte_exact_with_a_trusted_ca() {
    let server = TestServer::start_tls();
    let body = content(700_000, 21);
    server.put_file("/t.bin", body.clone());
    let cut = content(900_000, 22);
    server.put_file("/cut.bin", cut.clone());
    server.push_faults(
        "/cut.bin",
        [Fault::DropAfter(250_000), Fault::DropAfter(300_000)],
    );
    let h = Home::new();
    let ca = server.write_ca_pem(h.home.path());
    assert!(ca.is_absolute());
    let url = server.url("t.bin");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The first command autostarts the daemon, which inherits SSL_CERT_FILE.
    let dest = h.path("t.bin");
    let r = command_without_cert_env(&h)
        .env("SSL_CERT_FILE", &ca)
        .args(["start", &url, dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}\nlog:\n{}", h.log());
    assert_eq!(read(&dest), body);
    assert!(server
        .requests_for("/t.bin")
        .iter()
        .any(|r| r.method == "GET"));

    // Same daemon: two cuts mid-body, each attempt resumes past zero.
    let dest = h.path("cut.bin");
    h.ok(&["start", &server.url("cut.bin"), dest.to_str().unwrap()]);
    assert_eq!(read(&dest), cut);
    assert!(temp_files(h.work.path()).is_empty());
    let gets: Vec<_> = server
        .requests_for("/cut.bin")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert!(gets.len() >= 3, "expected 3+ GETs, saw {}", gets.len());
    assert!(
        gets.iter()
            .skip(1)
            .all(|r| r.range_start().unwrap_or(0) > 0),
        "every retry resumes past zero: {:?}",
        gets.iter().map(|r| r.range.clone()).collect::<Vec<_>>()
    );
    // Nothing is downloaded twice beyond what the cuts lost in flight.
    assert!(server.body_bytes_sent("/cut.bin") <= cut.len() as u64 + 2 * 65_536);
}

/// A certificate from a CA the daemon does not trust is a TransientError
/// with E_SECURE_FAILURE (0x80072F8F) and a description naming the
/// certificate problem, retried like any transient error; no HTTP request
/// ever reaches the server.
#[test]
fn https_with_an_unknown_ca_is_an_error_with_a_tls_code() {
    let server = TestServer::start_tls();
    server.put_file("/u.bin", content(10_000, 23));
    let h = Home::new();
    let dest = h.path("u.bin");
    // The first command autostarts the daemon with the system store only.
    let r = command_without_cert_env(&h)
        .args([
            "start",
            "--async",
            "--json",
            "--retry-interval",
            "1",
            &server.url("u.bin"),
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}\nlog:\n{}", h.log());
    let job: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let id = job["JobId"].as_str().unwrap().to_string();

    let info = h.wait_state(&id, "TransientError", Duration::from_secs(10));
    assert_eq!(info["ErrorCode"], "0x80072F8F", "{info:#}");
    assert_eq!(info["ErrorContext"], "GeneralTransport", "{info:#}");
    let description = info["ErrorDescription"].as_str().unwrap();
    assert!(
        description.contains("TLS") && description.contains("certificate"),
        "{description}"
    );
    assert!(
        description.contains("UnknownIssuer"),
        "names the cause: {description}"
    );
    // Retried (every second here), never turned into Error by itself.
    let info = h.wait_for(&id, Duration::from_secs(15), |j| {
        j["TransientErrorCount"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(info["JobState"], "TransientError", "{info:#}");
    assert!(!dest.exists());
    assert!(
        server.requests().is_empty(),
        "no request over an unverified connection: {:?}",
        server.requests()
    );
}
