//! The engine's routes against real local servers: a job's own
//! certificate authority, each security flag loosening exactly one check,
//! forward proxies (plain, CONNECT, with authentication, an unreachable one
//! first), custom headers kept to their origin, and the redirect policy.

use bits_core::error::codes;
use bits_core::{ConnectionProps, Credential, CustomHeader, ProxySettings, ProxyUsage, Secret};
use bits_test_support::{content, Fault, TestProxy, TestServer, TlsOptions};
use bits_transfer::{
    Class, Connection, Engine, EngineConfig, FileState, FileTransfer, NoProgress, Outcome,
    TransferError,
};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        read_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..EngineConfig::default()
    })
    .unwrap()
}

async fn fetch(
    engine: &Engine,
    remote: &str,
    props: &ConnectionProps,
    proxy_credential: Option<&Credential>,
    temp: &Path,
) -> Result<Outcome, TransferError> {
    let nothing = FileState::default();
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        remote,
        credential: None,
        connection: Connection {
            props,
            proxy_credential,
        },
        temp,
        resume: &nothing,
        sync_on_finish: true,
        connections: 1,
        pace: None,
    };
    engine
        .download(file, &mut NoProgress, &CancellationToken::new())
        .await
}

fn with_ca(server: &TestServer, dir: &Path, flags: &str) -> ConnectionProps {
    ConnectionProps {
        ca_cert: Some(server.write_ca_pem(dir)),
        security_flags: flags.parse().unwrap(),
        ..ConnectionProps::default()
    }
}

fn tls_server(options: TlsOptions) -> TestServer {
    let server = TestServer::start_tls_with(&options);
    server.put_file("/t.bin", content(30_000, 11));
    server
}

fn is_certificate_error(e: &TransferError, what: &str) {
    let job = e.job_error();
    assert_eq!(job.code, codes::E_SECURE_FAILURE, "{e}");
    assert!(
        job.description.contains(what),
        "expected {what}: {}",
        job.description
    );
}

#[tokio::test]
async fn a_jobs_ca_file_is_trusted_for_that_job_only() {
    let server = tls_server(TlsOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let e = engine();
    let plain = ConnectionProps::default();
    let err = fetch(
        &e,
        &server.url("t.bin"),
        &plain,
        None,
        &dir.path().join("a"),
    )
    .await
    .unwrap_err();
    is_certificate_error(&err, "UnknownIssuer");
    assert_eq!(err.class(), Class::Transient { retry_after: None });
    let props = with_ca(&server, dir.path(), "");
    let out = fetch(
        &e,
        &server.url("t.bin"),
        &props,
        None,
        &dir.path().join("b"),
    )
    .await
    .unwrap();
    assert_eq!(out.bytes, 30_000);
    // The same engine, a job without the file: still refused.
    let err = fetch(
        &e,
        &server.url("t.bin"),
        &plain,
        None,
        &dir.path().join("c"),
    )
    .await
    .unwrap_err();
    is_certificate_error(&err, "UnknownIssuer");
}

/// A job's CA file is looked at again at most once a second, not on every
/// request; rewritten with another authority, it is trusted from then on,
/// by the same engine.
#[tokio::test]
async fn a_rewritten_ca_file_is_trusted_within_a_second() {
    let server = tls_server(TlsOptions::default());
    let other = tls_server(TlsOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let e = engine();
    let ca = dir.path().join("job-ca.pem");
    std::fs::write(&ca, other.ca_pem()).unwrap();
    let props = ConnectionProps {
        ca_cert: Some(ca.clone()),
        ..ConnectionProps::default()
    };
    let err = fetch(
        &e,
        &server.url("t.bin"),
        &props,
        None,
        &dir.path().join("a"),
    )
    .await
    .unwrap_err();
    is_certificate_error(&err, "UnknownIssuer");
    // Another size, so that the change shows even within the same
    // modification-time tick.
    std::fs::write(&ca, format!("{}\n", server.ca_pem())).unwrap();
    let started = std::time::Instant::now();
    let out = loop {
        match fetch(
            &e,
            &server.url("t.bin"),
            &props,
            None,
            &dir.path().join("b"),
        )
        .await
        {
            Ok(out) => break out,
            Err(err) => {
                is_certificate_error(&err, "UnknownIssuer");
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "the rewritten CA file was not read again: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(out.bytes, 30_000);
}

#[tokio::test]
async fn a_ca_file_that_is_not_one_is_a_clear_error() {
    let server = tls_server(TlsOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let props = ConnectionProps {
        ca_cert: Some(bogus),
        ..ConnectionProps::default()
    };
    let err = fetch(
        &engine(),
        &server.url("t.bin"),
        &props,
        None,
        &dir.path().join("a"),
    )
    .await
    .unwrap_err();
    assert!(err.job_error().description.contains("bogus.pem"), "{err}");
    assert_eq!(err.class(), Class::Fatal);
}

/// Each flag accepts its own defect and no other: a certificate for
/// another name passes only `ignore-cert-cn-invalid`, an expired one only
/// `ignore-cert-date-invalid`, a client certificate only
/// `ignore-cert-wrong-usage`, an unknown authority only `ignore-unknown-ca`.
#[tokio::test]
async fn each_security_flag_loosens_exactly_one_check() {
    let e = engine();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(TlsOptions, &str, &str); 3] = [
        (
            TlsOptions {
                names: Some(vec!["other.example".into()]),
                ..TlsOptions::default()
            },
            "ignore-cert-cn-invalid",
            "NotValidForName",
        ),
        (
            TlsOptions {
                expired: true,
                ..TlsOptions::default()
            },
            "ignore-cert-date-invalid",
            "expired",
        ),
        (
            TlsOptions {
                client_usage: true,
                ..TlsOptions::default()
            },
            "ignore-cert-wrong-usage",
            "InvalidPurpose",
        ),
    ];
    let all = [
        "ignore-cert-cn-invalid",
        "ignore-cert-date-invalid",
        "ignore-cert-wrong-usage",
        "ignore-unknown-ca",
    ];
    for (i, (options, flag, defect)) in cases.into_iter().enumerate() {
        let server = tls_server(options);
        let url = server.url("t.bin");
        for other in all.iter().filter(|f| **f != flag) {
            let props = with_ca(&server, dir.path(), other);
            let err = fetch(
                &e,
                &url,
                &props,
                None,
                &dir.path().join(format!("{i}{other}")),
            )
            .await
            .expect_err(&format!("{other} must not accept {defect}"));
            is_certificate_error(&err, defect);
        }
        let props = with_ca(&server, dir.path(), flag);
        fetch(&e, &url, &props, None, &dir.path().join(format!("{i}ok")))
            .await
            .unwrap_or_else(|err| panic!("{flag} should accept {defect}: {err}"));
    }
    // An unknown authority: only ignore-unknown-ca, which still checks the
    // name (and dates).
    let server = tls_server(TlsOptions::default());
    let url = server.url("t.bin");
    let flags = |f: &str| ConnectionProps {
        security_flags: f.parse().unwrap(),
        ..ConnectionProps::default()
    };
    for other in [
        "ignore-cert-cn-invalid",
        "ignore-cert-date-invalid",
        "ignore-cert-wrong-usage",
    ] {
        let err = fetch(
            &e,
            &url,
            &flags(other),
            None,
            &dir.path().join(format!("u{other}")),
        )
        .await
        .unwrap_err();
        is_certificate_error(&err, "UnknownIssuer");
    }
    fetch(
        &e,
        &url,
        &flags("ignore-unknown-ca"),
        None,
        &dir.path().join("uok"),
    )
    .await
    .unwrap();
    let wrong_name = tls_server(TlsOptions {
        names: Some(vec!["other.example".into()]),
        ..TlsOptions::default()
    });
    let err = fetch(
        &e,
        &wrong_name.url("t.bin"),
        &flags("ignore-unknown-ca"),
        None,
        &dir.path().join("uname"),
    )
    .await
    .unwrap_err();
    is_certificate_error(&err, "NotValidForName");
}

fn override_props(list: Vec<String>) -> ConnectionProps {
    ConnectionProps {
        proxy: ProxySettings {
            usage: ProxyUsage::Override,
            list,
            ..ProxySettings::default()
        },
        ..ConnectionProps::default()
    }
}

/// A dead port: something that refuses connections.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_proxy_moves_on_to_the_next_and_the_used_one_is_told() {
    let server = TestServer::start();
    let body = content(40_000, 12);
    server.put_file("/p.bin", body.clone());
    let proxy = TestProxy::start();
    let dead = format!("127.0.0.1:{}", dead_port());
    let props = override_props(vec![dead, proxy.url()]);
    let dir = tempfile::tempdir().unwrap();
    let out = fetch(
        &engine(),
        &server.url("p.bin"),
        &props,
        None,
        &dir.path().join("p"),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(dir.path().join("p")).unwrap(), body);
    assert_eq!(out.via.as_deref(), Some(proxy.url().as_str()));
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .any(|r| r.method == "GET" && r.target == server.url("p.bin")),
        "{seen:?}"
    );
    // Every proxy unreachable: a transient connect error.
    let props = override_props(vec![format!("127.0.0.1:{}", dead_port())]);
    let err = fetch(
        &engine(),
        &server.url("p.bin"),
        &props,
        None,
        &dir.path().join("q"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err.class(), Class::Transient { .. }), "{err}");
}

#[tokio::test]
async fn https_through_a_proxy_is_a_connect_tunnel() {
    let server = tls_server(TlsOptions::default());
    let proxy = TestProxy::start();
    let dir = tempfile::tempdir().unwrap();
    let mut props = with_ca(&server, dir.path(), "");
    props.proxy = override_props(vec![proxy.url()]).proxy;
    fetch(
        &engine(),
        &server.url("t.bin"),
        &props,
        None,
        &dir.path().join("t"),
    )
    .await
    .unwrap();
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, server.addr().to_string());
}

#[tokio::test]
async fn proxy_credentials_are_sent_to_the_proxy_and_a_wrong_one_is_a_407() {
    for https in [false, true] {
        let server = if https {
            tls_server(TlsOptions::default())
        } else {
            let s = TestServer::start();
            s.put_file("/t.bin", content(30_000, 11));
            s
        };
        let proxy = TestProxy::start_with_auth("pu", "proxy-pw");
        let dir = tempfile::tempdir().unwrap();
        let mut props = if https {
            with_ca(&server, dir.path(), "")
        } else {
            ConnectionProps::default()
        };
        props.proxy = override_props(vec![proxy.url()]).proxy;
        let good = Credential {
            user: "pu".into(),
            password: Secret::new("proxy-pw"),
            scheme: None,
        };
        fetch(
            &engine(),
            &server.url("t.bin"),
            &props,
            Some(&good),
            &dir.path().join("a"),
        )
        .await
        .unwrap_or_else(|e| panic!("https={https}: {e}"));
        assert!(proxy
            .requests()
            .iter()
            .all(|r| r.proxy_authorization.as_deref() == Some("Basic cHU6cHJveHktcHc=")));
        let bad = Credential {
            password: Secret::new("nope"),
            ..good.clone()
        };
        let err = fetch(
            &engine(),
            &server.url("t.bin"),
            &props,
            Some(&bad),
            &dir.path().join("b"),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.job_error().code,
            codes::http_status(407),
            "https={https}: {err}"
        );
        assert_eq!(err.class(), Class::Fatal);
        assert!(err.job_error().description.contains("proxy"), "{err}");
    }
}

#[tokio::test]
async fn custom_headers_go_to_the_files_origin_only() {
    let origin = TestServer::start();
    let other = TestServer::start();
    other.put_file("/b.bin", content(1000, 13));
    origin.set_default_fault(
        "/a.bin",
        Some(Fault::Redirect {
            status: 302,
            location: other.url("b.bin"),
        }),
    );
    let props = ConnectionProps {
        headers: vec![CustomHeader {
            name: "X-Token".into(),
            value: "t0ken".into(),
        }],
        ..ConnectionProps::default()
    };
    let dir = tempfile::tempdir().unwrap();
    fetch(
        &engine(),
        &origin.url("a.bin"),
        &props,
        None,
        &dir.path().join("a"),
    )
    .await
    .unwrap();
    assert_eq!(
        origin.requests_for("/a.bin")[0].header("x-token"),
        Some("t0ken")
    );
    assert_eq!(other.requests_for("/b.bin")[0].header("x-token"), None);
}

#[tokio::test]
async fn redirect_policies() {
    let server = TestServer::start();
    let body = content(5000, 14);
    server.put_file("/new.bin", body.clone());
    server.set_default_fault(
        "/old.bin",
        Some(Fault::Redirect {
            status: 301,
            location: "/new.bin".into(),
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let flags = |f: &str| ConnectionProps {
        security_flags: f.parse().unwrap(),
        ..ConnectionProps::default()
    };
    let e = engine();
    let silent = fetch(
        &e,
        &server.url("old.bin"),
        &flags(""),
        None,
        &dir.path().join("a"),
    )
    .await
    .unwrap();
    assert_eq!(silent.remote_name, None);
    let report = fetch(
        &e,
        &server.url("old.bin"),
        &flags("redirect-allow-report"),
        None,
        &dir.path().join("b"),
    )
    .await
    .unwrap();
    assert_eq!(
        report.remote_name.as_deref(),
        Some(server.url("new.bin").as_str())
    );

    // https → http: refused, unless allowed.
    let secure = tls_server(TlsOptions::default());
    secure.set_default_fault(
        "/down.bin",
        Some(Fault::Redirect {
            status: 302,
            location: server.url("new.bin"),
        }),
    );
    let props = with_ca(&secure, dir.path(), "");
    let err = fetch(
        &e,
        &secure.url("down.bin"),
        &props,
        None,
        &dir.path().join("c"),
    )
    .await
    .unwrap_err();
    assert!(
        err.job_error().description.contains("https to http"),
        "{err}"
    );
    assert_eq!(err.class(), Class::Fatal);
    let props = with_ca(&secure, dir.path(), "redirect-allow-https-to-http");
    fetch(
        &e,
        &secure.url("down.bin"),
        &props,
        None,
        &dir.path().join("d"),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(dir.path().join("d")).unwrap(), body);
}
