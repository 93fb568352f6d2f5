//! The upload engine against the real upload server (`bits_server` with
//! uploads on), reached through a small TCP proxy that records what the
//! client sends (packet types, fragment ranges) and can cut a connection
//! after a number of bytes or be pointed at another server (a "restart").
//!
//! The central promises: the server ends up with the exact file, a resumed
//! upload continues the same session without resending what the server
//! acknowledged, and every failure that retrying cannot fix ends quickly
//! as a fatal error that says what happened.

use bits_core::error::codes;
use bits_core::{ErrorContext, FileValidator, UploadSession};
use bits_server::{Notify, NotifyKind, ServeConfig, UploadConfig};
use bits_test_support::{content, TestServer};
use bits_transfer::{
    Class, Engine, EngineConfig, Saved, TransferError, UploadOutcome, UploadProgress,
    UploadTransfer,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Fragment size of the tests: small, so a modest file takes many packets.
const FRAGMENT: u64 = 64 * 1024;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        read_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        upload_fragment: FRAGMENT,
        ..EngineConfig::default()
    })
    .unwrap()
}

// ------------------------------------------------------------ the recorder

type AckHook = Box<dyn FnMut(u64) + Send>;

/// Everything the engine reported, i.e. what the daemon would persist.
#[derive(Default)]
struct Recorder {
    sessions: Vec<(UploadSession, FileValidator, u64)>,
    /// Every acknowledgement reported, saved or only shown, in order.
    acks: Vec<u64>,
    /// Runs on every acknowledgement, saved or not (to cancel, or to touch
    /// the file).
    on_ack: Option<AckHook>,
}

impl UploadProgress for Recorder {
    fn session<'a>(
        &'a mut self,
        session: &'a UploadSession,
        validator: &'a FileValidator,
        total: u64,
    ) -> Saved<'a> {
        self.sessions
            .push((session.clone(), validator.clone(), total));
        Box::pin(std::future::ready(Ok(())))
    }
    fn acknowledged(&mut self, bytes: u64) -> Saved<'_> {
        self.acks.push(bytes);
        if let Some(hook) = self.on_ack.as_mut() {
            hook(bytes);
        }
        Box::pin(std::future::ready(Ok(())))
    }
    fn moved(&mut self, bytes: u64) {
        self.acks.push(bytes);
        if let Some(hook) = self.on_ack.as_mut() {
            hook(bytes);
        }
    }
}

/// What a daemon would have persisted after some attempts.
#[derive(Debug, Clone, Default)]
struct Persisted {
    session: UploadSession,
    validator: FileValidator,
    acknowledged: u64,
    /// A background job's pace (not persisted by a daemon; kept here so
    /// that a test can run every attempt paced).
    pace: Option<std::sync::Arc<bits_transfer::Pacer>>,
}

impl Persisted {
    /// Applies what an attempt reported.
    fn update(&mut self, rec: &Recorder) {
        if let Some((s, v, _)) = rec.sessions.last() {
            self.session = s.clone();
            self.validator = v.clone();
        }
        if let Some(&n) = rec.acks.last() {
            self.acknowledged = n;
        }
    }
}

/// One `upload` call from the persisted state; updates it.
async fn attempt(
    engine: &Engine,
    local: &Path,
    url: &str,
    state: &mut Persisted,
    reply_to: Option<&Path>,
    rec: &mut Recorder,
    cancel: &CancellationToken,
) -> Result<UploadOutcome, TransferError> {
    let (url, credential) = bits_transfer::split_credential(url);
    let t = UploadTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        local,
        url: &url,
        credential: credential.as_ref(),
        validator: &state.validator,
        session: &state.session,
        acknowledged: state.acknowledged,
        reply_to,
        pace: state.pace.clone(),
    };
    let r = engine.upload(t, rec, cancel).await;
    state.update(rec);
    r
}

/// A recorder that cancels `cancel` once the server acknowledged `at_least`
/// bytes: an attempt stopped mid-upload, deterministically.
fn cancelling_after(at_least: u64, cancel: &CancellationToken) -> Recorder {
    let cancel = cancel.clone();
    Recorder {
        on_ack: Some(Box::new(move |n| {
            if n >= at_least {
                cancel.cancel();
            }
        })),
        ..Recorder::default()
    }
}

// -------------------------------------------------------------- the server

/// `bits_server` with uploads on, serving `root`.
struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(root: &Path, upload: UploadConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let config = ServeConfig {
            upload: Some(upload),
            ..ServeConfig::new(root)
        };
        let task = tokio::spawn(bits_server::serve(listener, config, shutdown.clone()));
        let task = tokio::spawn(async move {
            task.await.unwrap().expect("the server runs");
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Entries in the server's session directory.
fn sessions_on_disk(root: &Path) -> usize {
    match std::fs::read_dir(root.join(".bits-sessions")) {
        Ok(dir) => dir.count(),
        Err(_) => 0,
    }
}

// --------------------------------------------------------------- the proxy

/// A TCP proxy: forwards connections to `upstream`, keeps every byte the
/// client sent, and cuts one connection when `cut_after` bytes have passed.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    upstream: Mutex<Option<SocketAddr>>,
    /// Client-to-server bytes since the last `clear`.
    sent: Mutex<Vec<u8>>,
    /// Cuts to make: client-to-server bytes still allowed before the
    /// connection carrying them is cut; the next counts from there.
    cuts: Mutex<VecDeque<u64>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState::default());
        *state.upstream.lock().unwrap() = Some(upstream);
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, Arc::clone(&s)));
            }
        });
        Proxy { addr, state, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn point_to(&self, upstream: SocketAddr) {
        *self.state.upstream.lock().unwrap() = Some(upstream);
    }

    /// Cuts the connection carrying the client's byte `after[0]` (counted
    /// from now), then the one carrying the `after[1]`th byte after that…
    fn cut_after(&self, after: &[u64]) {
        *self.state.cuts.lock().unwrap() = after.iter().copied().collect();
    }

    fn clear(&self) {
        self.state.sent.lock().unwrap().clear();
    }

    /// The client's bytes, lowercased (hyper sends lowercase header names;
    /// this makes the search independent of it).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.sent.lock().unwrap().to_ascii_lowercase()).into_owned()
    }

    /// How many packets of this type the client sent.
    fn packets(&self, packet_type: &str) -> usize {
        let needle = format!("bits-packet-type: {}\r\n", packet_type.to_ascii_lowercase());
        self.text().matches(&needle).count()
    }

    /// The fragments the client sent, as `(first, last)`.
    fn fragments(&self) -> Vec<(u64, u64)> {
        let text = self.text();
        text.match_indices("content-range: bytes ")
            .map(|(i, m)| {
                let rest = &text[i + m.len()..];
                let range = &rest[..rest.find('/').unwrap()];
                let (a, b) = range.split_once('-').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection both ways until either side closes (then closes
/// both, so the client sees a closed server as closed) or the cut.
async fn pipe(client: TcpStream, state: Arc<ProxyState>) {
    let Some(upstream) = *state.upstream.lock().unwrap() else {
        return;
    };
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let (pass, cut) = {
                let mut cuts = state.cuts.lock().unwrap();
                match cuts.front_mut() {
                    Some(left) if n as u64 >= *left => {
                        let pass = *left as usize;
                        cuts.pop_front();
                        (pass, true)
                    }
                    Some(left) => {
                        *left -= n as u64;
                        (n, false)
                    }
                    None => (n, false),
                }
            };
            state.sent.lock().unwrap().extend_from_slice(&buf[..pass]);
            if server_wr.write_all(&buf[..pass]).await.is_err() || cut {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut server_rd, &mut client_wr);
    tokio::select! {
        () = up => {}
        _ = down => {}
    }
}

// ------------------------------------------------------------------- tests

/// A complete upload: the server holds the file byte-exact under the URL's
/// name, the session is reported before any fragment, acknowledgements
/// rise to the total, fragments go in order without gaps or repeats,
/// Close-Session is sent and the server keeps no session.
#[tokio::test]
async fn upload_arrives_byte_exact_and_session_is_closed() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(1_000_003, 1);
    let local = work.path().join("report.bin");
    std::fs::write(&local, &body).unwrap();

    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let cancel = CancellationToken::new();
    let out = attempt(
        &engine(),
        &local,
        &proxy.url("report.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();

    assert_eq!(
        out,
        UploadOutcome {
            bytes: body.len() as u64,
            reply_bytes: None,
            via: None,
        }
    );
    assert_eq!(std::fs::read(root.path().join("report.bin")).unwrap(), body);
    let (session, validator, total) = &rec.sessions[0];
    assert!(session.id.is_some());
    assert_eq!(validator.size, Some(body.len() as u64));
    assert!(validator.last_modified.is_some());
    assert_eq!(*total, body.len() as u64);
    assert!(rec.acks.windows(2).all(|w| w[0] <= w[1]), "{:?}", rec.acks);
    assert_eq!(rec.acks.last(), Some(&(body.len() as u64)));
    let frags = proxy.fragments();
    assert_eq!(frags.len(), body.len().div_ceil(FRAGMENT as usize));
    let mut next = 0;
    for (a, b) in frags {
        assert_eq!(a, next);
        next = b + 1;
    }
    assert_eq!(next, body.len() as u64);
    assert_eq!(proxy.packets("Create-Session"), 1);
    assert_eq!(proxy.packets("Close-Session"), 1);
    assert_eq!(proxy.text().matches("content-name: report.bin").count(), 1);
    assert_eq!(sessions_on_disk(root.path()), 0);
    server.stop().await;
}

/// A background (paced) upload arrives byte-exact: the pace holds its bytes
/// back, it never changes them. Capped at 300 kB/s, 600 kB take about two
/// seconds, however fast the controller finds loopback to be.
#[tokio::test]
async fn a_paced_upload_arrives_byte_exact() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let body = content(600_000, 9);
    let local = work.path().join("bg.bin");
    std::fs::write(&local, &body).unwrap();
    let mut state = Persisted {
        pace: Some(std::sync::Arc::new(bits_transfer::Pacer::new(
            std::sync::Arc::new(bits_transfer::Limits::new(true, Some(300_000))),
            std::sync::Arc::new(bits_transfer::SharedCap::new(None)),
        ))),
        ..Persisted::default()
    };
    let mut rec = Recorder::default();
    let cancel = CancellationToken::new();
    let started = std::time::Instant::now();
    attempt(
        &engine(),
        &local,
        &format!("http://{}/bg.bin", server.addr),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(root.path().join("bg.bin")).unwrap(), body);
    // Held to the cap (less the first burst), not the instant a loopback
    // upload takes unpaced.
    let took = started.elapsed();
    assert!(took > std::time::Duration::from_millis(1500), "{took:?}");
    server.stop().await;
}

/// A connection cut in the middle of a fragment is sent again at once on a
/// new connection, from the server's last acknowledgement: the cut fragment
/// (never acknowledged) is the only one sent twice, and the session is kept.
#[tokio::test]
async fn cut_connection_is_resent_from_the_acknowledgement() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(1_000_000, 2);
    let local = work.path().join("a.bin");
    std::fs::write(&local, &body).unwrap();

    // About 4.5 fragments in, counting request headers.
    proxy.cut_after(&[300_000]);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    attempt(
        &engine(),
        &local,
        &proxy.url("a.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(root.path().join("a.bin")).unwrap(), body);
    assert_eq!(rec.sessions.len(), 1);
    assert_eq!(proxy.packets("Create-Session"), 1);
    let frags = proxy.fragments();
    let repeated: Vec<_> = frags.windows(2).filter(|w| w[0] == w[1]).collect();
    assert_eq!(repeated.len(), 1, "{frags:?}");
    let (cut_at, _) = repeated[0][0];
    assert!(cut_at > 0 && cut_at < 300_000, "{cut_at}");
    assert!(
        rec.acks.contains(&cut_at),
        "the resend starts at an acknowledgement"
    );
    assert_eq!(sessions_on_disk(root.path()), 0);
    server.stop().await;
}

/// When the connection keeps breaking, the attempt ends with a transient
/// error that made progress; the next attempt (as after a daemon restart)
/// continues the same session from the persisted acknowledgement: no
/// acknowledged byte is sent again, no new session.
#[tokio::test]
async fn interrupted_upload_resumes_without_resending_acknowledged_bytes() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(1_000_000, 2);
    let local = work.path().join("a.bin");
    std::fs::write(&local, &body).unwrap();
    let url = proxy.url("a.bin");
    let engine = engine();
    let cancel = CancellationToken::new();

    // The first cut, then each resend of the fragment cut too.
    proxy.cut_after(&[300_000, 1000, 1000]);
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err.class(), Class::Transient { .. }), "{err:?}");
    assert!(err.made_progress(), "{err:?}");
    assert_eq!(err.job_error().context, ErrorContext::GeneralTransport);
    let acked = state.acknowledged;
    assert!(acked > 0 && acked < body.len() as u64, "{acked}");
    let first_session = state.session.id.clone();

    proxy.clear();
    let mut rec = Recorder::default();
    attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.path().join("a.bin")).unwrap(), body);
    assert!(rec.sessions.is_empty(), "same session: {:?}", rec.sessions);
    assert_eq!(state.session.id, first_session);
    assert_eq!(proxy.packets("Create-Session"), 0);
    let frags = proxy.fragments();
    assert_eq!(frags[0].0, acked, "resumes at the acknowledgement");
    let sent: u64 = frags.iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(sent, body.len() as u64 - acked, "{frags:?}");
    assert_eq!(sessions_on_disk(root.path()), 0);
    server.stop().await;
}

/// Cancellation stops between fragments with `Cancelled` (the daemon's
/// suspend or shutdown); the next call, as after a daemon restart, resumes
/// the persisted session where the server's acknowledgement says.
#[tokio::test]
async fn cancelled_upload_resumes_in_the_same_session() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(500_000, 3);
    let local = work.path().join("b.bin");
    std::fs::write(&local, &body).unwrap();
    let url = proxy.url("b.bin");
    let engine = engine();

    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = cancelling_after(2 * FRAGMENT, &cancel);
    let err = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    assert_eq!(state.acknowledged, 2 * FRAGMENT);
    assert!(!root.path().join("b.bin").exists(), "no partial upload");

    proxy.clear();
    let cancel = CancellationToken::new();
    let mut rec = Recorder::default();
    attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.path().join("b.bin")).unwrap(), body);
    assert_eq!(proxy.fragments()[0].0, 2 * FRAGMENT);
    assert_eq!(proxy.packets("Create-Session"), 0);
    server.stop().await;
}

/// A server that lost the session (restarted on an empty directory) answers
/// BG_E_SESSION_NOT_FOUND: the engine reports a new session, resets the
/// resume point to 0 and completes the upload there.
#[tokio::test]
async fn lost_session_starts_a_new_one() {
    let root1 = tempfile::tempdir().unwrap();
    let root2 = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server1 = Server::start(root1.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server1.addr).await;
    let body = content(400_000, 4);
    let local = work.path().join("c.bin");
    std::fs::write(&local, &body).unwrap();
    let url = proxy.url("c.bin");
    let engine = engine();

    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = cancelling_after(FRAGMENT, &cancel);
    let _ = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel).await;
    let old = state.session.id.clone().unwrap();
    assert!(state.acknowledged > 0);

    server1.stop().await;
    let server2 = Server::start(root2.path(), UploadConfig::default()).await;
    proxy.point_to(server2.addr);
    let cancel = CancellationToken::new();
    let mut rec = Recorder::default();
    attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap();
    assert_eq!(std::fs::read(root2.path().join("c.bin")).unwrap(), body);
    assert_eq!(rec.sessions.len(), 1, "one new session");
    assert_ne!(rec.sessions[0].0.id.as_deref(), Some(old.as_str()));
    assert_eq!(rec.acks[0], 0, "the resume point goes back to 0 first");
    assert_eq!(proxy.packets("Create-Session"), 2);
    assert_eq!(sessions_on_disk(root2.path()), 0);
    server2.stop().await;
}

/// A local file rewritten between two attempts (same size, new content) is
/// BG_E_LOCAL_FILE_CHANGED in context LocalFile, fatal, naming the file;
/// nothing more is sent.
#[tokio::test]
async fn local_file_changed_between_attempts_is_fatal() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let local = work.path().join("d.bin");
    std::fs::write(&local, content(300_000, 5)).unwrap();
    let url = proxy.url("d.bin");
    let engine = engine();

    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = cancelling_after(FRAGMENT, &cancel);
    let _ = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel).await;
    assert!(state.acknowledged > 0);

    std::fs::write(&local, content(300_000, 6)).unwrap();
    proxy.clear();
    let cancel = CancellationToken::new();
    let mut rec = Recorder::default();
    let err = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, codes::BG_E_LOCAL_FILE_CHANGED);
    assert_eq!(job.code, 0x8020_001D);
    assert_eq!(job.context, ErrorContext::LocalFile);
    assert!(
        job.description.contains(local.to_str().unwrap()),
        "{}",
        job.description
    );
    assert!(proxy.fragments().is_empty());
    server.stop().await;
}

/// A local file that changes while it is being sent stops the upload at
/// the next fragment with the same fatal error (after progress).
#[tokio::test]
async fn local_file_changed_during_upload_is_fatal() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let local = work.path().join("e.bin");
    std::fs::write(&local, content(300_000, 7)).unwrap();
    let url = format!("http://{}/e.bin", server.addr);

    let touched = local.clone();
    let mut rec = Recorder {
        on_ack: Some(Box::new(move |n| {
            if n == 0 {
                return; // the new session's resume point
            }
            // Appending changes size and mtime.
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&touched)
                .unwrap();
            std::io::Write::write_all(&mut f, b"more").unwrap();
        })),
        ..Recorder::default()
    };
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let err = attempt(&engine(), &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    assert_eq!(err.job_error().code, codes::BG_E_LOCAL_FILE_CHANGED);
    // The file changed once the first fragment was acknowledged. The
    // second had been read ahead before that, wholly of the first version
    // (its size and mtime checked after its read), so it still goes; the
    // third, read after the change, stops the upload. The last
    // acknowledgement, only shown so far, is saved as the call ends.
    // (Had the read ahead been slower than the round trip, it would have
    // seen the change itself: then it stops at the second.)
    let (f, f2) = (FRAGMENT, 2 * FRAGMENT);
    assert!(
        rec.acks == [0, f, f2, f2] || rec.acks == [0, f, f],
        "{:?}",
        rec.acks
    );
    assert_eq!(Some(&state.acknowledged), rec.acks.last());
    assert!(err.made_progress());
    assert!(!root.path().join("e.bin").exists());
    server.stop().await;
}

/// A missing local file is a fatal LocalFile error naming it.
#[tokio::test]
async fn missing_local_file_is_fatal() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("nope.bin");
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &local,
        "http://127.0.0.1:9/nope.bin",
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.context, ErrorContext::LocalFile);
    assert_eq!(job.code, codes::E_FILE_NOT_FOUND);
    assert!(job.description.contains("nope.bin"), "{}", job.description);
}

/// A server without BITS support is a fatal error at once, with a sentence
/// saying so and BG_E_HTTP_ERROR_nnn; no retry. Here `bits serve` without
/// `--upload`, which answers BITS_POST with 405. Credentials in the URL
/// never reach the error.
#[tokio::test]
async fn server_without_bits_is_fatal_and_quick() {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bits_server::serve(
        listener,
        ServeConfig::new(root.path()),
        shutdown.clone(),
    ));
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("f.bin");
    std::fs::write(&local, content(10_000, 8)).unwrap();
    let url = format!("http://alice:s3cret@{addr}/f.bin");

    let started = Instant::now();
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(&engine(), &local, &url, &mut state, None, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, 0x8019_0195);
    assert_eq!(job.context, ErrorContext::RemoteFile);
    assert_eq!(
        job.description,
        format!(
            "The server at http://{addr}/f.bin does not accept BITS uploads \
             (HTTP 405 Method Not Allowed)."
        )
    );
    assert!(!format!("{err} {err:?} {job:?}").contains("s3cret"));
    assert!(rec.sessions.is_empty() && rec.acks.is_empty());
    shutdown.cancel();
    let _ = task.await;
}

/// The same with the test suite's plain HTTP server, which refuses the
/// method outright: fatal, quick, and the sentence names the status.
#[tokio::test]
async fn plain_http_server_is_not_a_bits_server() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("f.bin");
    std::fs::write(&local, content(10_000, 8)).unwrap();
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let err = attempt(
        &engine(),
        &local,
        &server.url("f.bin"),
        &mut Persisted::default(),
        None,
        &mut Recorder::default(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    // 405, or 400 from servers that reject the `_` in BITS_POST.
    assert!(
        [0x8019_0190, 0x8019_0195].contains(&job.code),
        "{:#x}",
        job.code
    );
    let prefix = format!(
        "The server at {} does not accept BITS uploads (HTTP 4",
        server.url("f.bin")
    );
    assert!(job.description.starts_with(&prefix), "{}", job.description);
}

/// Cancel-Session (a removed job) ends the server's session: its directory
/// goes, and no file appears.
#[tokio::test]
async fn cancel_upload_removes_the_server_session() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(root.path(), UploadConfig::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let local = work.path().join("g.bin");
    std::fs::write(&local, content(300_000, 9)).unwrap();
    let url = proxy.url("g.bin");
    let engine = engine();

    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = cancelling_after(FRAGMENT, &cancel);
    let _ = attempt(&engine, &local, &url, &mut state, None, &mut rec, &cancel).await;
    assert_eq!(sessions_on_disk(root.path()), 1);

    engine
        .cancel_upload(
            &url,
            None,
            Default::default(),
            &state.session,
            &bits_transfer::Identity::own(),
        )
        .await
        .unwrap();
    assert_eq!(proxy.packets("Cancel-Session"), 1);
    assert_eq!(sessions_on_disk(root.path()), 0);
    assert!(!root.path().join("g.bin").exists());
    // No session: nothing to do, nothing sent.
    proxy.clear();
    engine
        .cancel_upload(
            &url,
            None,
            Default::default(),
            &UploadSession::default(),
            &bits_transfer::Identity::own(),
        )
        .await
        .unwrap();
    assert!(proxy.text().is_empty());
    server.stop().await;
}

/// An empty file cannot be described by a Fragment: a fatal LocalFile error
/// before anything is sent.
#[tokio::test]
async fn empty_file_is_refused_before_sending() {
    let server = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("empty");
    std::fs::write(&local, b"").unwrap();
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &local,
        &server.url("empty"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    assert_eq!(err.job_error().context, ErrorContext::LocalFile);
    assert!(server.requests().is_empty());
}

// ------------------------------------------------- a scripted BITS server

/// One request as a [`Scripted`] server saw it.
#[derive(Debug, Clone)]
struct Seen {
    packet_type: String,
    range: Option<(u64, u64, u64)>,
    session: Option<String>,
}

/// What a [`Scripted`] server answers: status and headers (empty body).
type Script = Box<dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>) + Send + Sync>;

/// A hand-written BITS server whose answers come from a closure, for the
/// answers a correct server never gives (416, acks for unsent bytes, host
/// ids, a missing reply). Keeps connections alive.
struct Scripted {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(script: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let s = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(scripted_conn(conn, Arc::clone(&s), Arc::clone(&script)));
            }
        });
        Scripted { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, packet_type: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.packet_type.eq_ignore_ascii_case(packet_type))
            .count()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted_conn(mut conn: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, script: Arc<Script>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        let range = header("content-range").map(|r| {
            let r = r.trim_start_matches("bytes ");
            let (span, total) = r.split_once('/').unwrap();
            let (a, b) = span.split_once('-').unwrap();
            (
                a.parse().unwrap(),
                b.parse().unwrap(),
                total.parse().unwrap(),
            )
        });
        let req = Seen {
            packet_type: header("bits-packet-type").unwrap_or_default(),
            range,
            session: header("bits-session-id"),
        };
        seen.lock().unwrap().push(req.clone());
        let (status, headers) = script(&req);
        let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        if conn.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// An Ack that creates session `id` (headers for a scripted answer).
fn created(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BITS-Packet-Type", "Ack".into()),
        (
            "BITS-Protocol",
            "{7DF0354D-249B-430F-820D-3D2A9BEF4931}".into(),
        ),
        ("BITS-Session-Id", id.into()),
    ]
}

/// An Ack for a fragment: the server now expects `next`.
fn acked(next: u64) -> Vec<(&'static str, String)> {
    vec![
        ("BITS-Packet-Type", "Ack".into()),
        ("BITS-Received-Content-Range", next.to_string()),
    ]
}

/// The ordinary answer of a correct server that keeps every byte.
fn well_behaved(seen: &Seen) -> (u16, Vec<(&'static str, String)>) {
    match seen.packet_type.as_str() {
        "Create-Session" => (200, created("{s1}")),
        "Fragment" => {
            let (_, last, _) = seen.range.unwrap();
            (200, acked(last + 1))
        }
        _ => (200, vec![("BITS-Packet-Type", "Ack".into())]),
    }
}

fn small_file(dir: &tempfile::TempDir, len: usize) -> std::path::PathBuf {
    let p = dir.path().join("s.bin");
    std::fs::write(&p, content(len, 42)).unwrap();
    p
}

/// BITS-Host-Id: after Create-Session at the job's URL, every packet of the
/// session (fragments, Close-Session) goes to the named host, and the host
/// id is reported with the session.
#[tokio::test]
async fn host_id_receives_the_rest_of_the_session() {
    let node = Scripted::start(Box::new(well_behaved)).await;
    let node_addr = node.addr;
    let front = Scripted::start(Box::new(move |seen: &Seen| {
        let mut h = created("{s1}");
        h.push(("BITS-Host-Id", node_addr.to_string()));
        h.push(("BITS-Host-Id-Fallback-Timeout", "3600".into()));
        match seen.packet_type.as_str() {
            "Create-Session" => (200, h),
            _ => (500, vec![]),
        }
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 200_000);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(front.count("Create-Session"), 1);
    assert_eq!(front.seen().len(), 1);
    assert_eq!(node.count("Fragment"), 4);
    assert_eq!(node.count("Close-Session"), 1);
    assert!(node
        .seen()
        .iter()
        .all(|s| s.session.as_deref() == Some("{s1}")));
    let session = &rec.sessions[0].0;
    assert_eq!(
        session.host_id.as_deref(),
        Some(node_addr.to_string().as_str())
    );
    let fallback = session.host_fallback_at.unwrap();
    let left = fallback
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
}

/// A session host that cannot be reached once its fallback timeout has
/// passed is given up: a new session is created at the job's URL and the
/// upload completes there.
#[tokio::test]
async fn unreachable_host_past_fallback_starts_over_at_the_job_url() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let creates = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&creates);
    let front = Scripted::start(Box::new(move |seen: &Seen| {
        if seen.packet_type == "Create-Session" {
            let mut n = c.lock().unwrap();
            *n += 1;
            if *n == 1 {
                let mut h = created("{s1}");
                h.push(("BITS-Host-Id", dead.to_string()));
                h.push(("BITS-Host-Id-Fallback-Timeout", "0".into()));
                return (200, h);
            }
            return (200, created("{s2}"));
        }
        well_behaved(seen)
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 100_000);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(*creates.lock().unwrap(), 2);
    assert_eq!(rec.sessions.len(), 2);
    assert_eq!(rec.sessions[1].0.id.as_deref(), Some("{s2}"));
    assert_eq!(rec.sessions[1].0.host_id, None);
    assert_eq!(front.count("Fragment"), 2);
}

/// Before the fallback time, an unreachable session host is an ordinary
/// transient error: the session (which may still be there) is kept.
#[tokio::test]
async fn unreachable_host_before_fallback_is_transient() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let front = Scripted::start(Box::new(move |seen: &Seen| {
        let mut h = created("{s1}");
        h.push(("BITS-Host-Id", dead.to_string()));
        match seen.packet_type.as_str() {
            "Create-Session" => (200, h),
            _ => (500, vec![]),
        }
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 100_000);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Connect { .. }), "{err:?}");
    assert!(matches!(err.class(), Class::Transient { .. }));
    assert_eq!(state.session.id.as_deref(), Some("{s1}"));
    assert_eq!(front.count("Create-Session"), 1);
}

/// A 416 names where the server is: the engine continues from there (here:
/// further than it thought, so those bytes are not sent again).
#[tokio::test]
async fn range_416_continues_from_the_servers_offset() {
    let front = Scripted::start(Box::new(|seen: &Seen| match seen.range {
        Some((0, _, _)) => (416, acked(2 * FRAGMENT)),
        _ => well_behaved(seen),
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 300_000);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    let starts: Vec<u64> = front
        .seen()
        .iter()
        .filter_map(|s| s.range)
        .map(|r| r.0)
        .collect();
    assert_eq!(starts, [0, 2 * FRAGMENT, 3 * FRAGMENT, 4 * FRAGMENT]);
    assert_eq!(
        rec.acks,
        [0, 2 * FRAGMENT, 3 * FRAGMENT, 4 * FRAGMENT, 300_000]
    );
}

/// An Ack for bytes that were never sent is a broken server: fatal,
/// BG_E_INVALID_SERVER_RESPONSE, rather than skipping data.
#[tokio::test]
async fn ack_beyond_what_was_sent_is_fatal() {
    let front = Scripted::start(Box::new(|seen: &Seen| match seen.range {
        Some((0, last, _)) => (200, acked(last + 2)),
        _ => well_behaved(seen),
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 300_000);
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        None,
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    assert_eq!(err.job_error().code, codes::BG_E_INVALID_SERVER_RESPONSE);
    assert_eq!(front.count("Fragment"), 1);
}

/// A refusal with BITS-Error-Code is fatal with that code and context (7:
/// the server application); a 503 Ack is transient and honours Retry-After.
#[tokio::test]
async fn ack_errors_carry_their_code_and_context() {
    let front = Scripted::start(Box::new(|seen: &Seen| match seen.packet_type.as_str() {
        "Create-Session" => (
            409,
            vec![
                ("BITS-Packet-Type", "Ack".into()),
                ("BITS-Error-Code", "0x80070050".into()),
                ("BITS-Error-Context", "0x7".into()),
            ],
        ),
        _ => (500, vec![]),
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 1000);
    let cancel = CancellationToken::new();
    let err = attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut Persisted::default(),
        None,
        &mut Recorder::default(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, 0x8007_0050);
    assert_eq!(job.context, ErrorContext::RemoteApplication);
    assert!(
        job.description.contains("409 Conflict"),
        "{}",
        job.description
    );

    let busy = Scripted::start(Box::new(|_: &Seen| {
        (
            503,
            vec![
                ("BITS-Packet-Type", "Ack".into()),
                ("BITS-Error-Code", "0x801901F7".into()),
                ("Retry-After", "7".into()),
            ],
        )
    }))
    .await;
    let err = attempt(
        &engine(),
        &local,
        &busy.url("s.bin"),
        &mut Persisted::default(),
        None,
        &mut Recorder::default(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.class(),
        Class::Transient {
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

/// Upload-reply: a final Ack without BITS-Reply-URL means the application
/// has not replied yet: transient. The retry asks again with one byte (the
/// last), not the file, and fetches the reply once the URL comes.
#[tokio::test]
async fn missing_reply_url_is_transient_and_retry_sends_one_byte() {
    let reply_server = TestServer::start();
    reply_server.put_file("/r", b"the reply".to_vec());
    let reply_url = reply_server.url("r");
    let replies = Arc::new(Mutex::new(false));
    let r = Arc::clone(&replies);
    let front = Scripted::start(Box::new(move |seen: &Seen| match seen.range {
        Some((_, last, total)) if last + 1 == total => {
            let mut h = acked(total);
            if *r.lock().unwrap() {
                h.push(("BITS-Reply-URL", reply_url.clone()));
            }
            (200, h)
        }
        _ => well_behaved(seen),
    }))
    .await;
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 100_000);
    let reply_to = work.path().join("reply.tmp");
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        Some(&reply_to),
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err.class(), Class::Transient { .. }), "{err:?}");
    assert_eq!(err.job_error().context, ErrorContext::RemoteApplication);
    assert_eq!(state.acknowledged, 100_000);

    *replies.lock().unwrap() = true;
    let before = front.seen().len();
    let mut rec = Recorder::default();
    let out = attempt(
        &engine(),
        &local,
        &front.url("s.bin"),
        &mut state,
        Some(&reply_to),
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(out.reply_bytes, Some(9));
    assert_eq!(std::fs::read(&reply_to).unwrap(), b"the reply");
    let later: Vec<Seen> = front.seen()[before..].to_vec();
    assert_eq!(later[0].range, Some((99_999, 99_999, 100_000)));
    assert_eq!(later[1].packet_type, "Close-Session");
    assert!(state.session.reply_url.is_some());
}

// ------------------------------------------------------------ upload-reply

/// A server application for upload-reply (notification type 2, the file in
/// the request body): keeps what it received and answers with `reply`.
async fn notify_app(reply: Vec<u8>) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 65536];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break 0,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            if head_end == 0 {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < head_end + len {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            r.lock().unwrap().push(buf[head_end..].to_vec());
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(&reply).await;
        }
    });
    (addr, received)
}

/// Upload-reply against the server's notification back end: the
/// application gets the exact file, its reply lands in `reply_to` exactly,
/// the reply URL is reported before it is fetched, and the session is
/// closed afterwards.
#[tokio::test]
async fn upload_reply_writes_the_applications_reply() {
    let reply: Vec<u8> = content(70_001, 11);
    let (app, received) = notify_app(reply.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(
        root.path(),
        UploadConfig {
            notify: Some(Notify {
                url: format!("http://{app}/app"),
                kind: NotifyKind::File,
            }),
            ..UploadConfig::default()
        },
    )
    .await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(200_000, 12);
    let local = work.path().join("req.bin");
    std::fs::write(&local, &body).unwrap();
    let reply_to = work.path().join("reply.tmp");

    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    let out = attempt(
        &engine(),
        &local,
        &proxy.url("req.bin"),
        &mut state,
        Some(&reply_to),
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(out.bytes, body.len() as u64);
    assert_eq!(out.reply_bytes, Some(reply.len() as u64));
    assert_eq!(std::fs::read(&reply_to).unwrap(), reply);
    assert_eq!(received.lock().unwrap().as_slice(), [body]);
    let reported = rec.sessions.last().unwrap();
    assert!(reported.0.reply_url.is_some(), "{reported:?}");
    assert_eq!(proxy.packets("Close-Session"), 1);
    assert_eq!(sessions_on_disk(root.path()), 0);
    server.stop().await;
}

/// After a restart between the last fragment and the reply's download (the
/// reply URL persisted, every byte acknowledged), the next call fetches the
/// reply without sending any byte of the file again.
#[tokio::test]
async fn reply_is_fetched_after_restart_without_reuploading() {
    let reply = b"ok: stored".to_vec();
    let (app, received) = notify_app(reply.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(
        root.path(),
        UploadConfig {
            notify: Some(Notify {
                url: format!("http://{app}/app"),
                kind: NotifyKind::File,
            }),
            ..UploadConfig::default()
        },
    )
    .await;
    let proxy = Proxy::start(server.addr).await;
    let body = content(150_000, 13);
    let local = work.path().join("req.bin");
    std::fs::write(&local, &body).unwrap();
    let reply_to = work.path().join("reply.tmp");
    let url = proxy.url("req.bin");
    let engine = engine();

    // Stop as soon as the reply URL is known: the reply fetch is cancelled.
    let cancel = CancellationToken::new();
    let mut state = Persisted::default();
    let mut rec = Recorder::default();
    {
        // Cancel when the final acknowledgement arrives; the reply URL is
        // reported right after it, before the fetch, which then sees the
        // cancellation.
        let c = cancel.clone();
        let total = body.len() as u64;
        rec.on_ack = Some(Box::new(move |n| {
            if n == total {
                c.cancel();
            }
        }));
    }
    let err = attempt(
        &engine,
        &local,
        &url,
        &mut state,
        Some(&reply_to),
        &mut rec,
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    assert_eq!(state.acknowledged, body.len() as u64);
    assert!(state.session.reply_url.is_some());

    proxy.clear();
    let cancel = CancellationToken::new();
    let mut rec = Recorder::default();
    let out = attempt(
        &engine,
        &local,
        &url,
        &mut state,
        Some(&reply_to),
        &mut rec,
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(out.reply_bytes, Some(reply.len() as u64));
    assert_eq!(std::fs::read(&reply_to).unwrap(), reply);
    assert!(proxy.fragments().is_empty(), "nothing uploaded again");
    assert_eq!(proxy.packets("Close-Session"), 1);
    assert_eq!(received.lock().unwrap().len(), 1, "one notification");
    server.stop().await;
}

/// A server that accepts the connection and the packet but never answers
/// is a transient stall after the read timeout, not a hang.
#[tokio::test]
async fn silent_server_is_a_stall_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            held.push(conn);
        }
    });
    let engine = Engine::new(EngineConfig {
        read_timeout: Duration::from_secs(1),
        upload_fragment: FRAGMENT,
        ..EngineConfig::default()
    })
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let local = small_file(&work, 1000);
    let started = Instant::now();
    let err = attempt(
        &engine,
        &local,
        &format!("http://{addr}/s.bin"),
        &mut Persisted::default(),
        None,
        &mut Recorder::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(err, TransferError::UploadStalled { .. }),
        "{err:?}"
    );
    assert!(matches!(err.class(), Class::Transient { .. }));
    silent.abort();
}
