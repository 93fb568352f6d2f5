//! The engine against servers that demand credentials and servers that
//! redirect: Basic and Digest answered from the server's challenge, a wrong
//! password ending at once, credentials kept to the origin they were given
//! for, and the redirect policy.
//!
//! The servers check Digest answers with their own RFC 7616 code
//! (`bits_test_support::Auth`), not with the client's.

use bits_core::error::codes;
use bits_core::{AuthScheme, ConnectionProps, Credential, ErrorContext, Secret};
use bits_test_support::{content, Auth, Fault, Scheme, TestServer};
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

fn alice(password: &str, scheme: Option<AuthScheme>) -> Credential {
    Credential {
        user: "alice".into(),
        password: Secret::new(password),
        scheme,
    }
}

/// Downloads `remote` into `temp`; `flags` are the job's security flags.
async fn fetch(
    remote: &str,
    credential: Option<&Credential>,
    flags: &str,
    connections: u32,
    temp: &Path,
) -> Result<Outcome, TransferError> {
    let nothing = FileState::default();
    let props = ConnectionProps {
        security_flags: flags.parse().unwrap(),
        ..ConnectionProps::default()
    };
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        remote,
        credential,
        connection: Connection {
            props: &props,
            proxy_credential: None,
        },
        temp,
        resume: &nothing,
        sync_on_finish: true,
        connections,
        pace: None,
    };
    engine()
        .download(file, &mut NoProgress, &CancellationToken::new())
        .await
}

fn authorizations(server: &TestServer, path: &str) -> Vec<Option<String>> {
    server
        .requests_for(path)
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect()
}

#[tokio::test]
async fn basic_is_answered_only_after_the_challenge() {
    let server = TestServer::start();
    let body = content(50_000, 1);
    server.put_file("/a.bin", body.clone());
    server.require_auth(Auth::basic("alice", "pw one"));
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("a.tmp");
    let cred = alice("pw one", None);
    fetch(&server.url("a.bin"), Some(&cred), "", 1, &temp)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&temp).unwrap(), body);
    let sent = authorizations(&server, "/a.bin");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0], None);
    // base64("alice:pw one")
    assert_eq!(sent[1].as_deref(), Some("Basic YWxpY2U6cHcgb25l"));
}

/// Digest with each algorithm, over several connections: every range
/// request is answered with the one nonce (its count rising), not a new
/// challenge each.
#[tokio::test]
async fn digest_sha256_and_md5_are_answered_for_every_range() {
    for scheme in [Scheme::DigestSha256, Scheme::DigestMd5] {
        let server = TestServer::start();
        let body = content(6 << 20, 2);
        server.put_file("/big.bin", body.clone());
        server.require_auth(Auth::new(
            "alice",
            "pw",
            vec![scheme.clone(), Scheme::Basic],
        ));
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("big.tmp");
        let cred = alice("pw", None);
        fetch(&server.url("big.bin"), Some(&cred), "", 4, &temp)
            .await
            .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
        assert_eq!(std::fs::read(&temp).unwrap(), body, "{scheme:?}");
        let requests = server.requests_for("/big.bin");
        let refused = requests.iter().filter(|r| r.status == 401).count();
        let ranged = requests.iter().filter(|r| r.status == 206).count();
        assert!(ranged >= 3, "{scheme:?}: {ranged} ranges");
        // One challenge to start with; ranges started before its answer
        // came back may meet one each, never more.
        assert!(
            refused <= 4,
            "{scheme:?}: {refused} refusals of {}",
            requests.len()
        );
        let algorithm = if scheme == Scheme::DigestMd5 {
            "MD5"
        } else {
            "SHA-256"
        };
        for r in requests.iter().filter(|r| r.status == 206) {
            let a = r.header("authorization").unwrap();
            assert!(a.starts_with("Digest ") && a.contains(algorithm), "{a}");
        }
    }
}

/// A server whose challenges come in one header, Digest after Basic.
#[tokio::test]
async fn challenges_in_one_header_are_read() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 3));
    let mut auth = Auth::new("alice", "pw", vec![Scheme::Basic, Scheme::DigestSha256]);
    auth.one_header = true;
    server.require_auth(auth);
    let dir = tempfile::tempdir().unwrap();
    let cred = alice("pw", None);
    fetch(
        &server.url("a.bin"),
        Some(&cred),
        "",
        1,
        &dir.path().join("t"),
    )
    .await
    .unwrap();
    let last = authorizations(&server, "/a.bin").pop().flatten().unwrap();
    assert!(last.starts_with("Digest "), "the stronger scheme: {last}");
}

/// A wrong password ends the transfer at once, fatally, with BITS' 401
/// code: no loop of refused requests.
#[tokio::test]
async fn a_wrong_password_is_a_fatal_401_at_once() {
    for (scheme, name) in [(Scheme::Basic, "Basic"), (Scheme::DigestSha256, "Digest")] {
        let server = TestServer::start();
        server.put_file("/a.bin", content(1000, 4));
        server.require_auth(Auth::new("alice", "right", vec![scheme]));
        let dir = tempfile::tempdir().unwrap();
        let cred = alice("wrong", None);
        let e = fetch(
            &server.url("a.bin"),
            Some(&cred),
            "",
            1,
            &dir.path().join("t"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.class(), Class::Fatal, "{e}");
        let job = e.job_error();
        assert_eq!(job.code, codes::http_status(401));
        assert_eq!(job.context, ErrorContext::RemoteFile);
        assert!(job.description.contains(name), "{}", job.description);
        assert!(!job.description.contains("wrong"), "{}", job.description);
        assert_eq!(server.requests_for("/a.bin").len(), 2, "{name}");
    }
}

/// No credential at all: the 401 is the file's error, as any status.
#[tokio::test]
async fn no_credential_gets_the_servers_401() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 5));
    server.require_auth(Auth::basic("alice", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(&server.url("a.bin"), None, "", 1, &dir.path().join("t"))
        .await
        .unwrap_err();
    assert_eq!(e.job_error().code, codes::http_status(401));
    assert_eq!(server.requests_for("/a.bin").len(), 1);
}

/// NTLM and Negotiate have no maintained pure-Rust client: a server that
/// offers only those gets a clear refusal naming them.
#[tokio::test]
async fn ntlm_and_negotiate_only_are_named_as_unsupported() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 6));
    server.require_auth(Auth::new(
        "alice",
        "pw",
        vec![
            Scheme::Other("Negotiate".into()),
            Scheme::Other("NTLM".into()),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let cred = alice("pw", None);
    let e = fetch(
        &server.url("a.bin"),
        Some(&cred),
        "",
        1,
        &dir.path().join("t"),
    )
    .await
    .unwrap_err();
    let job = e.job_error();
    assert_eq!(job.code, codes::http_status(401));
    assert!(
        job.description.contains("Negotiate, NTLM") && job.description.contains("not support"),
        "{}",
        job.description
    );
    // `--auth basic` against a Digest-only server: named too.
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 6));
    server.require_auth(Auth::new("alice", "pw", vec![Scheme::DigestMd5]));
    let cred = alice("pw", Some(AuthScheme::Basic));
    let e = fetch(
        &server.url("a.bin"),
        Some(&cred),
        "",
        1,
        &dir.path().join("u"),
    )
    .await
    .unwrap_err();
    assert!(e.job_error().description.contains("only Basic"), "{e}");
}

/// A redirect to another port drops the credential: the second server
/// never sees it, whether it needs one (the file ends in a 401) or not.
#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let body = content(20_000, 7);
    for other_needs_auth in [false, true] {
        let origin = TestServer::start();
        let other = TestServer::start();
        origin.require_auth(Auth::basic("alice", "pw"));
        origin.set_default_fault(
            "/a.bin",
            Some(Fault::Redirect {
                status: 302,
                location: other.url("b.bin"),
            }),
        );
        other.put_file("/b.bin", body.clone());
        if other_needs_auth {
            other.require_auth(Auth::basic("alice", "pw"));
        }
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("t");
        let cred = alice("pw", None);
        let result = fetch(&origin.url("a.bin"), Some(&cred), "", 1, &temp).await;
        // The origin was answered (its redirect came after the challenge).
        assert!(authorizations(&origin, "/a.bin").last().unwrap().is_some());
        assert!(
            authorizations(&other, "/b.bin").iter().all(Option::is_none),
            "credentials reached another origin"
        );
        match (other_needs_auth, result) {
            (false, Ok(_)) => assert_eq!(std::fs::read(&temp).unwrap(), body),
            (true, Err(e)) => assert_eq!(e.job_error().code, codes::http_status(401)),
            (_, r) => panic!("unexpected: {:?}", r.map(|o| o.bytes)),
        }
    }
}

/// The same origin keeps its credential across a redirect (another path).
#[tokio::test]
async fn a_redirect_within_the_origin_keeps_the_credential() {
    let server = TestServer::start();
    let body = content(20_000, 8);
    server.put_file("/new.bin", body.clone());
    server.set_default_fault(
        "/old.bin",
        Some(Fault::Redirect {
            status: 301,
            location: "/new.bin".into(),
        }),
    );
    server.require_auth(Auth::new("alice", "pw", vec![Scheme::DigestSha256]));
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("t");
    let cred = alice("pw", None);
    fetch(&server.url("old.bin"), Some(&cred), "", 1, &temp)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&temp).unwrap(), body);
    assert!(authorizations(&server, "/new.bin")
        .iter()
        .any(Option::is_some));
}

#[tokio::test]
async fn a_job_that_disallows_redirects_fails_with_the_redirect_status() {
    let server = TestServer::start();
    server.put_file("/new.bin", content(100, 9));
    server.set_default_fault(
        "/old.bin",
        Some(Fault::Redirect {
            status: 307,
            location: "/new.bin".into(),
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let disallow = "redirect-disallow";
    let e = fetch(
        &server.url("old.bin"),
        None,
        disallow,
        1,
        &dir.path().join("t"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.job_error().code, codes::http_status(307));
    assert_eq!(e.class(), Class::Fatal);
    assert!(server.requests_for("/new.bin").is_empty());
}

/// A redirect loop ends after ten hops with a clear error.
#[tokio::test]
async fn a_redirect_loop_ends() {
    let server = TestServer::start();
    server.set_default_fault(
        "/loop",
        Some(Fault::Redirect {
            status: 302,
            location: "/loop".into(),
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(&server.url("loop"), None, "", 1, &dir.path().join("t"))
        .await
        .unwrap_err();
    assert!(
        e.job_error().description.contains("more than 10 redirects"),
        "{e}"
    );
    assert_eq!(server.requests_for("/loop").len(), 11);
}
