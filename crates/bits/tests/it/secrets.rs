//! Secrets and the state directory: credentials in URLs are kept and used,
//! never shown; signed URLs stay out of the log; every file under
//! BITS_HOME is its owner's alone.

use crate::support::{content, read, Home};
use bits_test_support::{Auth, TestServer};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Every file under `dir` with its mode, recursively.
fn modes(dir: &std::path::Path) -> Vec<(String, u32, bool)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let name = entry.path().display().to_string();
        out.push((name, meta.permissions().mode() & 0o777, meta.is_dir()));
        if meta.is_dir() {
            out.extend(modes(&entry.path()));
        }
    }
    out
}

/// Regression (item 15): `http://user:secret@host/f` showed `secret` in
/// `bits info`, `list --json` and the debug log, and the store, its WAL and
/// the log were mode 0644. Now the userinfo is the file's credential (answered
/// to the server's Basic challenge, never shown, sealed at rest: RemoteName is without it), the
/// query string of a signed URL stays out of the log at info level, and
/// every file under BITS_HOME is 0600.
#[test]
fn credentials_in_urls_are_used_but_never_shown_and_the_state_is_private() {
    let server = TestServer::start();
    let body = content(100_000, 81);
    server.put_file("/p.bin", body.clone());
    server.require_auth(Auth::basic("alice", "s3cr3tpw"));
    let url = server.url("p.bin?sig=TOPSECRETSIGNATURE");
    let with_user = url.replacen("http://", "http://alice:s3cr3tpw@", 1);
    for log_level in ["info", "debug"] {
        let h = Home::with_env(&[("BITS_LOG", log_level.as_ref())]);
        let dest = h.path("p.bin");
        let created = h.ok(&[
            "start",
            "--async",
            "--json",
            &with_user,
            dest.to_str().unwrap(),
        ]);
        assert!(!created.stdout.contains("s3cr3tpw"), "{created:?}");
        let id = created.json()["JobId"].as_str().unwrap().to_string();
        let job = h.wait_state(&id, "Transferred", Duration::from_secs(20));
        assert_eq!(job["FileList"][0]["RemoteName"], url.as_str());
        for shown in [
            h.ok(&["info", &id]).stdout,
            h.ok(&["info", &id, "--json"]).stdout,
            h.ok(&["list", "--json"]).stdout,
            h.ok(&["list"]).stdout,
        ] {
            assert!(!shown.contains("s3cr3tpw"), "{shown}");
        }
        let log = h.log();
        assert!(!log.contains("s3cr3tpw"), "{log}");
        h.assert_nowhere_on_disk("s3cr3tpw");
        if log_level == "info" {
            assert!(!log.contains("TOPSECRETSIGNATURE"), "{log}");
        }
        // The server got the credential.
        let get = server
            .requests_for("/p.bin")
            .into_iter()
            .rev()
            .find(|r| r.method == "GET")
            .unwrap();
        // base64("alice:s3cr3tpw")
        assert_eq!(
            get.header("authorization"),
            Some("Basic YWxpY2U6czNjcjN0cHc=")
        );
        h.ok(&["complete", &id]);
        assert_eq!(read(&dest), body);

        for (name, mode, is_dir) in modes(h.home.path()) {
            let want = if is_dir { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{name} is {mode:o}");
        }
        let home_mode = std::fs::metadata(h.home.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(home_mode, 0o700);
    }
}
