//! Server credentials end to end: `--credential` with the password from
//! standard input, answered to Basic and Digest challenges, never shown or
//! stored in the clear, a wrong one ending the job at once, and
//! `--clear-credentials`.

use crate::support::{content, read, Home};
use bits_test_support::{Auth, Scheme, TestServer};
use std::time::Duration;

const USER: &str = r"CORP\alice";
const PASSWORD: &str = "Pa55-w0rd-e2e-9f3";

/// Every way a job is shown, for one job.
fn every_view(h: &Home, id: &str) -> Vec<String> {
    vec![
        h.ok(&["info", id]).stdout,
        h.ok(&["info", id, "--json"]).stdout,
        h.ok(&["list", "--json"]).stdout,
        h.ok(&["list"]).stdout,
    ]
}

#[test]
fn a_credential_from_stdin_answers_digest_and_is_never_shown_or_stored() {
    let server = TestServer::start();
    let body = content(300_000, 91);
    server.put_file("/d.bin", body.clone());
    server.require_auth(Auth::new(USER, PASSWORD, vec![Scheme::DigestSha256]));
    let h = Home::new();
    let dest = h.path("d.bin");
    let url = server.url("d.bin");
    let input = format!("{PASSWORD}\n");
    // Synchronous: completes and the file appears.
    let run = h.bits_with_stdin(
        &[
            "start",
            "--credential",
            USER,
            "--password-stdin",
            &url,
            dest.to_str().unwrap(),
        ],
        &input,
    );
    assert_eq!(run.code, 0, "{run:?}\n{}", h.log());
    assert_eq!(read(&dest), body);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    let last = server.requests_for("/d.bin").pop().unwrap();
    assert!(last.header("authorization").unwrap().starts_with("Digest "));

    // An asynchronous one, shown every way while it exists.
    let dest2 = h.path("d2.bin");
    let created = h.bits_with_stdin(
        &[
            "start",
            "--async",
            "--json",
            "--credential",
            USER,
            "--password-stdin",
            &url,
            dest2.to_str().unwrap(),
        ],
        &input,
    );
    assert_eq!(created.code, 0, "{created:?}");
    assert!(!created.stdout.contains(PASSWORD));
    let id = created.json()["JobId"].as_str().unwrap().to_string();
    h.wait_state(&id, "Transferred", Duration::from_secs(20));
    for shown in every_view(&h, &id) {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
    assert!(!h.log().contains(PASSWORD));
    h.assert_nowhere_on_disk(PASSWORD);
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest2), body);
}

/// A wrong password is the job's Error with BITS' 401 code, at once: one
/// challenge, one refused answer, no retries.
#[test]
fn a_wrong_password_ends_the_job_in_error_at_once_and_set_fixes_it() {
    let server = TestServer::start();
    let body = content(50_000, 92);
    server.put_file("/w.bin", body.clone());
    server.require_auth(Auth::basic("bob", "right-pw-e2e"));
    let h = Home::new();
    let dest = h.path("w.bin");
    let created = h.bits_with_stdin(
        &[
            "start",
            "--async",
            "--json",
            "--credential",
            "bob",
            "--password-stdin",
            &server.url("w.bin"),
            dest.to_str().unwrap(),
        ],
        "wrong-pw-e2e\n",
    );
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["JobId"].as_str().unwrap().to_string();
    let job = h.wait_state(&id, "Error", Duration::from_secs(10));
    assert_eq!(job["ErrorCode"], "0x80190191");
    assert_eq!(job["ErrorContext"], "RemoteFile");
    assert_eq!(job["TransientErrorCount"], 0);
    let description = job["ErrorDescription"].as_str().unwrap();
    assert!(description.contains("refused"), "{description}");
    assert_eq!(server.requests_for("/w.bin").len(), 2);

    // The right password, then resume: done.
    let set = h.bits_with_stdin(
        &["set", &id, "--credential", "bob", "--password-stdin"],
        "right-pw-e2e\n",
    );
    assert_eq!(set.code, 0, "{set:?}");
    h.ok(&["resume", &id]);
    assert_eq!(read(&dest), body);
    for secret in ["wrong-pw-e2e", "right-pw-e2e"] {
        assert!(!h.log().contains(secret));
        h.assert_nowhere_on_disk(secret);
    }
}

/// `--clear-credentials` removes the job's credential and a URL's own, in
/// the store too: after a daemon restart the server still gets none.
#[test]
fn clear_credentials_removes_them_for_good() {
    let server = TestServer::start();
    server.put_file("/c.bin", content(10_000, 93));
    server.put_file("/u.bin", content(10_000, 94));
    server.require_auth(Auth::basic("carol", "clear-me-e2e"));
    let h = Home::new();
    let created = h.bits_with_stdin(
        &[
            "start",
            "--suspended",
            "--json",
            "--credential",
            "carol",
            "--password-stdin",
            &server.url("c.bin"),
            &server
                .url("u.bin")
                .replacen("http://", "http://carol:clear-me-e2e@", 1),
            h.work.path().to_str().unwrap(),
        ],
        "clear-me-e2e\n",
    );
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["JobId"].as_str().unwrap().to_string();
    h.ok(&["set", &id, "--clear-credentials"]);
    h.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    h.ok(&["resume", &id, "--async"]);
    let job = h.wait_state(&id, "Error", Duration::from_secs(10));
    assert_eq!(job["ErrorCode"], "0x80190191");
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
    h.assert_nowhere_on_disk("clear-me-e2e");
}

#[test]
fn unsupported_schemes_and_missing_passwords_are_clear_errors() {
    let h = Home::new();
    let dest = h.path("x.bin");
    let run = h.bits_with_stdin(
        &[
            "start",
            "--async",
            "--credential",
            "dave",
            "--auth",
            "ntlm",
            "--password-stdin",
            "http://127.0.0.1:9/x",
            dest.to_str().unwrap(),
        ],
        "pw\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("ntlm") && run.stderr.contains("not supported"),
        "{run:?}"
    );
    // No terminal to ask on and no --password-stdin.
    let run = h.bits(&[
        "start",
        "--async",
        "--credential",
        "dave",
        "http://127.0.0.1:9/x",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--password-stdin"), "{run:?}");
    // --password-stdin with nothing on stdin.
    let run = h.bits_with_stdin(
        &[
            "start",
            "--async",
            "--credential",
            "dave",
            "--password-stdin",
            "http://127.0.0.1:9/x",
            dest.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no line"), "{run:?}");
}
