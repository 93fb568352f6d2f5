//! How jobs reach their servers, end to end: the proxy environment of the
//! command that made the job (not the daemon's), the seed's override
//! example with an unreachable proxy first, proxy credentials, a private
//! CA given to the job or installed while the daemon runs, custom headers
//! and the redirect report.

use crate::support::{content, read, Home};
use bits_test_support::{Fault, TestProxy, TestServer};
use std::time::Duration;

fn dead_proxy() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// Regression: the only proxy bits used was the `http_proxy` the daemon
/// inherited from the command that autostarted it. Now each job keeps the
/// proxy environment of the command that created it.
#[test]
fn a_job_uses_the_proxy_environment_of_the_command_that_made_it() {
    let server = TestServer::start();
    let body = content(60_000, 101);
    server.put_file("/e.bin", body.clone());
    let proxy = TestProxy::start();
    let h = Home::new();
    // The daemon starts from a command without any proxy.
    h.ok(&["list"]);
    let dest = h.path("e.bin");
    let created = h
        .command()
        .env("http_proxy", proxy.url())
        .args([
            "start",
            "--async",
            "--json",
            &server.url("e.bin"),
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let job: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = job["JobId"].as_str().unwrap().to_string();
    assert_eq!(job["ProxyUsage"], "SystemDefault");
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(20));
    assert_eq!(info["ProxyUsed"], proxy.url().as_str());
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.target == server.url("e.bin")));
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);

    // A job made without the variable goes directly, though the daemon
    // now has jobs that use a proxy.
    let before = proxy.requests().len();
    let direct = h.path("d.bin");
    h.ok(&["start", &server.url("e.bin"), direct.to_str().unwrap()]);
    assert_eq!(proxy.requests().len(), before);
    // And no-proxy ignores a proxy environment.
    let r = h
        .command()
        .env("http_proxy", format!("http://{}", dead_proxy()))
        .args([
            "start",
            "--proxy-usage",
            "no-proxy",
            &server.url("e.bin"),
            h.path("n.bin").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
}

/// The seed's third example, translated: a display name, server
/// credentials, and a proxy list whose first entry is unreachable.
#[test]
fn the_seeds_credential_and_proxy_list_example_runs() {
    let server = TestServer::start();
    let body = content(80_000, 102);
    server.put_file("/seed.bin", body.clone());
    server.require_auth(bits_test_support::Auth::basic(
        r"Username\Domain",
        "seed-pw-e2e",
    ));
    let proxy = TestProxy::start_with_auth("pu", "proxy-pw-e2e");
    let h = Home::new();
    let dest = h.path("seed.bin");
    let list = format!("{},{}", dead_proxy(), proxy.url());
    let run = h.bits_with_stdin(
        &[
            "start",
            "--name",
            "MyJob",
            "--credential",
            r"Username\Domain",
            "--proxy-usage",
            "override",
            "--proxy-list",
            &list,
            "--proxy-credential",
            "pu",
            "--password-stdin",
            &server.url("seed.bin"),
            dest.to_str().unwrap(),
        ],
        "seed-pw-e2e\nproxy-pw-e2e\n",
    );
    assert_eq!(run.code, 0, "{run:?}\n{}", h.log());
    assert_eq!(read(&dest), body);
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.refused == 0 && r.authorization.is_some()));
    for secret in ["seed-pw-e2e", "proxy-pw-e2e"] {
        assert!(!h.log().contains(secret));
        h.assert_nowhere_on_disk(secret);
    }
    // A wrong proxy password: Error with 0x80190197 at once.
    let created = h.bits_with_stdin(
        &[
            "start",
            "--async",
            "--json",
            "--proxy-usage",
            "override",
            "--proxy-list",
            &proxy.url(),
            "--proxy-credential",
            "pu",
            "--password-stdin",
            &server.url("seed.bin"),
            h.path("w.bin").to_str().unwrap(),
        ],
        "wrong\n",
    );
    assert_eq!(created.code, 0, "{created:?}");
    let id = created.json()["JobId"].as_str().unwrap().to_string();
    let job = h.wait_state(&id, "Error", Duration::from_secs(10));
    assert_eq!(job["ErrorCode"], "0x80190197");
    assert_eq!(job["ErrorContext"], "RemoteFile");
    assert_eq!(job["ProxyList"][0], proxy.url().as_str());
}

/// A proxy URL's userinfo in the environment becomes the job's proxy
/// credential, and stays out of the store and the job.
#[test]
fn userinfo_in_http_proxy_is_a_proxy_credential_kept_sealed() {
    let server = TestServer::start();
    server.put_file("/u.bin", content(10_000, 103));
    let proxy = TestProxy::start_with_auth("envuser", "env-proxy-pw");
    let h = Home::new();
    let with_user = proxy
        .url()
        .replacen("http://", "http://envuser:env-proxy-pw@", 1);
    let r = h
        .command()
        .env("HTTP_PROXY", &with_user)
        .args([
            "start",
            &server.url("u.bin"),
            h.path("u.bin").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}\n{}", h.log());
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.refused == 0 && r.proxy_authorization.is_some()));
    h.assert_nowhere_on_disk("env-proxy-pw");
}

/// A private CA: refused by default (retried), accepted with `--ca-cert`,
/// and accepted without restarting bitsd once installed in the store the
/// daemon reads.
#[test]
fn a_private_ca_works_with_ca_cert_and_once_installed_without_a_restart() {
    let server = TestServer::start_tls();
    let body = content(50_000, 104);
    server.put_file("/c.bin", body.clone());
    let unrelated = TestServer::start_tls();
    let h = Home::new();
    // The daemon's trust store: one unrelated authority.
    let bundle = h.home.path().join("bundle.pem");
    std::fs::write(&bundle, unrelated.ca_pem()).unwrap();
    let run = |args: &[&str]| {
        let out = h
            .command()
            .env("SSL_CERT_FILE", &bundle)
            .env_remove("SSL_CERT_DIR")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}\n{}", h.log());
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let waiting = run(&[
        "start",
        "--async",
        "--json",
        "--retry-interval",
        "1",
        &server.url("c.bin"),
        h.path("a.bin").to_str().unwrap(),
    ]);
    let waiting = waiting["JobId"].as_str().unwrap().to_string();
    let info = h.wait_state(&waiting, "TransientError", Duration::from_secs(10));
    assert_eq!(info["ErrorCode"], "0x80072F8F");

    let ca = server.write_ca_pem(h.work.path());
    let with_ca = run(&[
        "start",
        "--async",
        "--json",
        "--ca-cert",
        ca.to_str().unwrap(),
        &server.url("c.bin"),
        h.path("b.bin").to_str().unwrap(),
    ]);
    assert_eq!(with_ca["CaCertFile"], ca.to_str().unwrap());
    let with_ca = with_ca["JobId"].as_str().unwrap().to_string();
    h.wait_state(&with_ca, "Transferred", Duration::from_secs(20));

    // Install the authority; the waiting job's next retry gets through.
    let mut both = unrelated.ca_pem();
    both.push_str(&server.ca_pem());
    std::fs::write(&bundle, both).unwrap();
    h.wait_state(&waiting, "Transferred", Duration::from_secs(20));
    h.ok(&["complete", &waiting]);
    assert_eq!(read(&h.path("a.bin")), body);
    assert!(h.log().contains("certificate authorities changed"));
}

#[test]
fn custom_headers_are_sent_and_write_only_ones_are_not_shown() {
    let server = TestServer::start();
    server.put_file("/h.bin", content(1000, 105));
    let h = Home::new();
    let id = h.start_async(&[
        "--header",
        "X-Api-Key: k3y-e2e",
        "--header",
        "X-Trace: 1",
        "--suspended",
        &server.url("h.bin"),
        h.path("h.bin").to_str().unwrap(),
    ]);
    let info = h.info(&id);
    assert_eq!(info["CustomHeaders"][0], "X-Api-Key: k3y-e2e");
    h.ok(&["set", &id, "--header-write-only"]);
    let info = h.info(&id);
    assert!(info["CustomHeaders"].is_null());
    assert_eq!(info["CustomHeadersWriteOnly"], true);
    assert!(!h.ok(&["info", &id]).stdout.contains("k3y-e2e"));
    h.ok(&["resume", &id]);
    let got = server.requests_for("/h.bin");
    assert_eq!(got[0].header("x-api-key"), Some("k3y-e2e"));
    h.assert_nowhere_on_disk("k3y-e2e");
    // Headers that would break the protocol are refused, by name.
    let r = h.bits(&[
        "start",
        "--header",
        "Range: bytes=0-10",
        &server.url("h.bin"),
        h.path("r.bin").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("Range"), "{r:?}");
}

#[test]
fn redirect_allow_report_makes_the_final_url_the_remote_name() {
    let server = TestServer::start();
    server.put_file("/final.bin", content(2000, 106));
    server.set_default_fault(
        "/start.bin",
        Some(Fault::Redirect {
            status: 302,
            location: "/final.bin".into(),
        }),
    );
    let h = Home::new();
    let id = h.start_async(&[
        "--security-flags",
        "redirect-allow-report",
        &server.url("start.bin"),
        h.path("r.bin").to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "Transferred", Duration::from_secs(10));
    assert_eq!(
        info["FileList"][0]["RemoteName"],
        server.url("final.bin").as_str()
    );
    assert_eq!(info["SecurityFlags"][0], "redirect-allow-report");
    let id = h.start_async(&[
        "--security-flags",
        "redirect-disallow",
        &server.url("start.bin"),
        h.path("s.bin").to_str().unwrap(),
    ]);
    let info = h.wait_state(&id, "Error", Duration::from_secs(10));
    assert_eq!(info["ErrorCode"], "0x8019012E"); // HTTP 302
    let r = h.bits(&[
        "start",
        "--security-flags",
        "ignore-everything",
        "http://h/x",
        "/tmp/x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ignore-everything"), "{r:?}");
}
