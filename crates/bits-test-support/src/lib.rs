//! Test fixtures for the `bits` workspace.
//!
//! The main item is [`TestServer`], a deliberately misbehaving HTTP/1.1 server bound to
//! `127.0.0.1` on an ephemeral port. It is written directly on tokio's `TcpListener` with a
//! hand-written request parser instead of using a real HTTP server library, because the point
//! is to misbehave in ways real servers never do: drop a connection in the middle of a body,
//! stall, lie in `Content-Range`, ignore `Range`, change the content between requests, throttle.
//! The download engine's resume and validation logic is tested against it.
//!
//! Normal serving follows RFC 9110 closely enough for the engine to be checked against it:
//! `GET`/`HEAD`, `Content-Length`, `Accept-Ranges: bytes`, strong `ETag`s and
//! `Last-Modified`, a single `Range` (`bytes=a-b`, `bytes=a-`, `bytes=-n`) answered with 206,
//! 416 for unsatisfiable ranges and `If-Range` evaluation. Connections are kept alive
//! (HTTP/1.1 persistent connections, including pipelined requests) unless the client asks for
//! `Connection: close`.
//!
//! Faults ([`Fault`]) are queued per path with [`TestServer::push_faults`] and consumed one per
//! request; a persistent per-path default can be set with [`TestServer::set_default_fault`].
//! Everything the server sees is recorded ([`TestServer::requests`]) so tests can assert on what
//! the client actually sent (for example the start offset of a resumed request).
//!
//! [`TestServer::start_tls`] serves the same behaviour, faults included, over TLS (HTTPS) with a
//! certificate for `localhost` and `127.0.0.1` signed by a CA generated for that server alone;
//! [`TestServer::ca_pem`] / [`TestServer::write_ca_pem`] hand the CA to the client under test.
//!
//! ```
//! use bits_test_support::{Fault, TestServer};
//!
//! let server = TestServer::start();
//! server.put_file("/a.bin", vec![7u8; 1024]);
//! // The first GET of /a.bin is cut after 100 body bytes; later ones are served normally.
//! server.push_faults("/a.bin", [Fault::DropAfter(100)]);
//! assert!(server.url("a.bin").starts_with("http://127.0.0.1:"));
//! ```

#![deny(missing_docs)]

mod auth;
mod http;
mod proxy;
mod server;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use auth::{Auth, Scheme};
use bytes::Bytes;
pub use proxy::{ProxiedRequest, TestProxy};
pub use tls::TlsOptions;

/// Process-wide version counter. It is global (not per server) so that ETags are unique even
/// across several servers in one test binary: a client that wrongly carried a validator from one
/// server to another could otherwise get a false match.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// `Last-Modified` of version N is this instant plus N seconds (2021-01-01T00:00:00Z). A fixed
/// base keeps dates deterministic and well in the past; adding N makes every version's date
/// distinct at HTTP-date's one-second resolution.
const LAST_MODIFIED_BASE_SECS: u64 = 1_609_459_200;

/// A misbehaving HTTP server on `127.0.0.1:<ephemeral>`. Runs on its own thread with its own
/// tokio runtime, so it works from both sync and async tests. Stops when dropped.
///
/// [`TestServer::start`] serves plain HTTP, [`TestServer::start_tls`] HTTPS; everything else
/// (files, faults, recorded requests, counters) is the same in both modes.
///
/// All methods take `&self` and the type is `Send + Sync`, so it can be shared (e.g. in an
/// `Arc`) between the test body and the code under test.
pub struct TestServer {
    addr: SocketAddr,
    state: Shared,
    /// The CA certificate (PEM) of a TLS server; `None` for plain HTTP.
    ca_pem: Option<String>,
    /// Sending (or dropping) this stops the accept loop; see [`Drop`].
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the server does with one request. Queue faults with [`TestServer::push_faults`] or set a
/// persistent one with [`TestServer::set_default_fault`].
#[derive(Debug, Clone)]
pub enum Fault {
    /// Serve normally (a placeholder to let later faults apply to later requests).
    Normal,
    /// Send the headers (as for a normal response honouring Range) and then only `n` bytes of
    /// the body, then close the connection abruptly.
    ///
    /// The close is a plain FIN without any `Connection: close` announcement, so the client sees
    /// a body shorter than the advertised `Content-Length`. (An RST could make the kernel discard
    /// the `n` bytes before the client reads them, which would make tests flaky.)
    DropAfter(u64),
    /// Ignore any Range / If-Range: answer 200 with the whole current content.
    IgnoreRange,
    /// Answer with this status and a short body; `retry_after` adds a `Retry-After: <secs>`
    /// header. Applies even if the path has no content. `code` should be a final status
    /// (200..=599); 204 and 304 are sent without a body.
    Status {
        /// The status code to answer with.
        code: u16,
        /// If set, a `Retry-After: <secs>` header is added.
        retry_after: Option<u64>,
    },
    /// Replace the content (new version, as put_file) before serving this request, then serve
    /// normally. The path keeps its validator mode: content put with
    /// [`TestServer::put_file_without_validators`] stays without validators.
    ReplaceWith(Vec<u8>),
    /// Answer a ranged request with 206 but a Content-Range whose start is off by `delta` bytes
    /// from the requested start (the body is the correctly requested bytes) — a broken server.
    ///
    /// Both ends of the advertised range are shifted by `delta` (clamped at 0), so the advertised
    /// length still matches `Content-Length` and only the offset is wrong. Requests that are not
    /// answered with 206 are unaffected.
    WrongContentRange {
        /// Signed offset added to the advertised start (and end).
        delta: i64,
    },
    /// Send headers and `after` body bytes, then stall (keep the connection open, send nothing)
    /// for `stall`, then close.
    Stall {
        /// Body bytes sent before stalling.
        after: u64,
        /// How long to keep the connection silent before closing it.
        stall: Duration,
    },
    /// Throttle: send the body at this many bytes per second (in small chunks with sleeps).
    /// Useful to make a transfer last long enough for a test to kill a process mid-transfer.
    /// Other connections are not affected. A rate of 0 is treated as 1.
    Slow {
        /// Target rate in bytes per second.
        bytes_per_sec: u64,
    },
    /// Read the request and never answer: the connection stays open, silent, until the server
    /// stops (a hung server, or one that accepts more than it can handle).
    NoAnswer,
    /// Send the response head one byte at a time, `every` apart (a server trickling its
    /// headers to keep a client waiting), then the body as usual.
    TrickleHeaders {
        /// The pause between two bytes of the head.
        every: Duration,
    },
    /// Answer with a redirect: this status (301, 302, 303, 307, 308) and `Location: location`.
    /// Applies even if the path has no content.
    Redirect {
        /// The redirect status.
        status: u16,
        /// The `Location` value (absolute or relative).
        location: String,
    },
    /// Serve normally, but with `Content-Encoding: <coding>` (the body is the file's bytes as
    /// they are, so a client that stores them as the file is storing a "coded" body).
    Coded(String),
}

/// One request as received by the [`TestServer`].
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request method, e.g. `"GET"` or `"HEAD"` (other methods are recorded and answered 405).
    pub method: String,
    /// Path without query string, e.g. `"/a.bin"`.
    pub path: String,
    /// Raw `Range` header value.
    pub range: Option<String>,
    /// Raw `If-Range` header value.
    pub if_range: Option<String>,
    /// All request headers, in order, names as sent by the client.
    pub headers: Vec<(String, String)>,
    /// When the request head was received.
    pub at: Instant,
    /// Status we answered.
    pub status: u16,
    /// The raw request-target from the request line (path plus any query, or absolute form).
    pub target: String,
}

impl RecordedRequest {
    /// Start offset parsed from `"bytes=N-"` / `"bytes=N-M"`, if any. Suffix ranges
    /// (`"bytes=-N"`), other units and malformed values give `None`.
    pub fn range_start(&self) -> Option<u64> {
        let spec = http::strip_bytes_unit(self.range.as_deref()?)?;
        let (start, _) = spec.split_once('-')?;
        http::parse_decimal(start.trim())
    }

    /// The first header with this name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        http::find_header(&self.headers, name)
    }
}

/// State shared between the [`TestServer`] handle and the connection tasks. A std mutex is
/// enough: it is only ever held for short, non-async critical sections.
pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the shared state, ignoring poisoning: a panicking test thread must not turn every
/// later server operation into a second, confusing panic.
pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the server knows, keyed by normalised path (always with a leading `/`).
#[derive(Default)]
pub(crate) struct State {
    pub(crate) files: HashMap<String, FileEntry>,
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    pub(crate) default_faults: HashMap<String, Fault>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) body_bytes: HashMap<String, u64>,
    /// Every version a path had before its current one, oldest first.
    pub(crate) history: HashMap<String, Vec<FileEntry>>,
    /// Paths served like a pool of mirrors some of which are stale: an If-Range naming an
    /// old version gets a range of that old version.
    pub(crate) stale: std::collections::HashSet<String>,
    /// Credentials every GET and HEAD must carry, if set.
    pub(crate) auth: Option<Auth>,
    /// Digest nonces issued and still good.
    pub(crate) nonces: Vec<String>,
    /// Digest nonces retired by [`TestServer::expire_nonces`].
    pub(crate) expired_nonces: Vec<String>,
    pub(crate) nonce_counter: u64,
}

impl State {
    /// The behaviour for the next GET/HEAD of `path`: the queue front, else the default, else
    /// normal serving.
    pub(crate) fn next_fault(&mut self, path: &str) -> Fault {
        if let Some(fault) = self.faults.get_mut(path).and_then(VecDeque::pop_front) {
            return fault;
        }
        self.default_faults
            .get(path)
            .cloned()
            .unwrap_or(Fault::Normal)
    }

    /// Stores a new version of `path`.
    pub(crate) fn put(&mut self, path: String, content: Vec<u8>, validators: Validators) {
        let entry = FileEntry::new(content.into(), validators);
        if let Some(old) = self.files.insert(path.clone(), entry) {
            self.history.entry(path).or_default().push(old);
        }
    }
}

/// Which validators a version carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validators {
    /// A strong ETag and a Last-Modified well in the past (strong too).
    Strong,
    /// Neither ETag nor Last-Modified.
    None,
    /// A weak ETag only.
    WeakEtag,
    /// A Last-Modified of "now" only: weak, since it is not a second older than `Date`.
    RecentDate,
}

/// One version of the content served at a path.
#[derive(Clone)]
pub(crate) struct FileEntry {
    pub(crate) content: Bytes,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    pub(crate) validators: Validators,
}

impl FileEntry {
    fn new(content: Bytes, validators: Validators) -> FileEntry {
        // Take a version number even without validators, so the numbering stays one counter.
        let version = NEXT_VERSION.fetch_add(1, Ordering::Relaxed);
        let modified = UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_BASE_SECS + version);
        let (etag, last_modified) = match validators {
            Validators::Strong => (
                Some(format!("\"v{version}\"")),
                Some(httpdate::fmt_http_date(modified)),
            ),
            Validators::None => (None, None),
            Validators::WeakEtag => (Some(format!("W/\"v{version}\"")), None),
            Validators::RecentDate => (None, Some(httpdate::fmt_http_date(SystemTime::now()))),
        };
        FileEntry {
            content,
            etag,
            last_modified,
            validators,
        }
    }

    /// Whether an `If-Range` value lets the `Range` apply: an exact match of the current strong
    /// ETag or of the exact `Last-Modified` string. Anything else (including weak ETags, which
    /// can never equal our strong ones) means "the client's copy is stale, send everything".
    pub(crate) fn if_range_matches(&self, value: &str) -> bool {
        let value = value.trim();
        let strong_tag = self.etag.as_deref().filter(|t| !t.starts_with("W/"));
        strong_tag == Some(value) || self.last_modified.as_deref() == Some(value)
    }
}

/// Accepts `"a.bin"` as well as `"/a.bin"`, so callers can share strings with [`TestServer::url`].
fn normalise(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl TestServer {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving on a dedicated thread.
    ///
    /// The socket is bound before this returns, so [`TestServer::addr`] is immediately usable
    /// (connections made before the thread gets going wait in the listen backlog).
    ///
    /// # Panics
    /// If the socket cannot be bound or the thread/runtime cannot be created: this is a test
    /// fixture, and a panic is the most useful failure.
    pub fn start() -> TestServer {
        TestServer::spawn(None)
    }

    /// Like [`TestServer::start`], but every connection is TLS: HTTPS on 127.0.0.1 with a
    /// certificate for the DNS name `localhost` and the IP address `127.0.0.1` (an IP SAN),
    /// signed by a test CA generated for this server alone. [`TestServer::url`] gives
    /// `https://` URLs; a client must trust [`TestServer::ca_pem`] (for instance through a file
    /// from [`TestServer::write_ca_pem`]) to verify the server.
    ///
    /// Faults behave as over plain HTTP, measured in plaintext body bytes. Where a plain
    /// connection is ended with a FIN, a TLS one is ended with a `close_notify` alert and then
    /// the FIN, so a [`Fault::DropAfter`] body is short but cleanly closed at the TLS level.
    /// The TLS handshake runs in the connection's own task; a client that rejects the
    /// certificate just ends that connection, and nothing is recorded in
    /// [`TestServer::requests`] for it (no request was received).
    ///
    /// ```
    /// use bits_test_support::TestServer;
    ///
    /// let server = TestServer::start_tls();
    /// assert!(server.url("a.bin").starts_with("https://127.0.0.1:"));
    /// assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// ```
    ///
    /// # Panics
    /// As [`TestServer::start`], and if the certificates cannot be generated.
    pub fn start_tls() -> TestServer {
        TestServer::start_tls_with(&TlsOptions::default())
    }

    /// Like [`TestServer::start_tls`], with a server certificate that is wrong in the ways
    /// `options` say (another name, expired, not for servers), signed by the server's own CA.
    pub fn start_tls_with(options: &TlsOptions) -> TestServer {
        TestServer::spawn(Some(tls::TlsIdentity::generate(options)))
    }

    fn spawn(tls: Option<tls::TlsIdentity>) -> TestServer {
        let (ca_pem, acceptor) = match tls {
            Some(identity) => (
                Some(identity.ca_pem),
                Some(tokio_rustls::TlsAcceptor::from(identity.config)),
            ),
            None => (None, None),
        };
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bits-test-support: bind 127.0.0.1:0");
        // tokio requires a non-blocking std listener in `TcpListener::from_std`.
        listener
            .set_nonblocking(true)
            .expect("bits-test-support: set_nonblocking");
        let addr = listener
            .local_addr()
            .expect("bits-test-support: local_addr");
        let state: Shared = Arc::default();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("bits-test-server-{}", addr.port()))
            .spawn(move || {
                // Our own runtime (rather than the caller's) makes the server usable from sync
                // tests and immune to the caller's runtime flavour or blocking calls.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("bits-test-support: build tokio runtime");
                runtime.block_on(server::run(listener, acceptor, thread_state, shutdown_rx));
                // Dropping the runtime here cancels every connection task, which closes their
                // sockets: a stopped server leaves no half-served connection behind.
                drop(runtime);
            })
            .expect("bits-test-support: spawn server thread");
        TestServer {
            addr,
            state,
            ca_pem,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The address the server listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this server speaks TLS (started with [`TestServer::start_tls`]).
    pub fn is_tls(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// `"http://127.0.0.1:PORT/<path without leading slash>"`, or `"https://…"` for a server
    /// started with [`TestServer::start_tls`].
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The PEM certificate of the CA that signed this TLS server's certificate (one
    /// `-----BEGIN CERTIFICATE-----` block): what a client must trust to verify the server.
    ///
    /// # Panics
    /// If the server was started with [`TestServer::start`] (plain HTTP has no CA).
    pub fn ca_pem(&self) -> String {
        self.ca_pem
            .clone()
            .expect("bits-test-support: ca_pem() on a plain HTTP server (use start_tls)")
    }

    /// Writes [`TestServer::ca_pem`] to `dir/test-ca-<PORT>.pem` (the port keeps the files of
    /// several servers apart) and returns that path, e.g. for `SSL_CERT_FILE`.
    ///
    /// # Panics
    /// If the server is not a TLS server, or the file cannot be written.
    pub fn write_ca_pem(&self, dir: impl AsRef<Path>) -> PathBuf {
        let path = dir
            .as_ref()
            .join(format!("test-ca-{}.pem", self.addr.port()));
        std::fs::write(&path, self.ca_pem())
            .unwrap_or_else(|e| panic!("bits-test-support: write {}: {e}", path.display()));
        path
    }

    /// Sets (or replaces) the content served at `path` (`"/a.bin"`). Each call makes a new
    /// version: the strong ETag (`"\"v<N>\""` with a global counter) and Last-Modified (a fixed
    /// base date plus N seconds) change.
    pub fn put_file(&self, path: &str, content: Vec<u8>) {
        lock(&self.state).put(normalise(path), content, Validators::Strong);
    }

    /// Like [`TestServer::put_file`] but the responses for this path carry neither ETag nor
    /// Last-Modified (so `If-Range` can never match and ranges are then never honoured when
    /// `If-Range` is sent).
    pub fn put_file_without_validators(&self, path: &str, content: Vec<u8>) {
        lock(&self.state).put(normalise(path), content, Validators::None);
    }

    /// Like [`TestServer::put_file`] but the only validator is a weak ETag (`W/"v<N>"`), which
    /// proves nothing about bytes; ranges without `If-Range` are still served.
    pub fn put_file_with_weak_etag(&self, path: &str, content: Vec<u8>) {
        lock(&self.state).put(normalise(path), content, Validators::WeakEtag);
    }

    /// Like [`TestServer::put_file`] but the only validator is a Last-Modified of the moment
    /// the file was put, and the responses' `Date` is that same second: weak (RFC 9110
    /// §8.8.2.2), since it is not a second older than `Date`.
    pub fn put_file_with_recent_date(&self, path: &str, content: Vec<u8>) {
        lock(&self.state).put(normalise(path), content, Validators::RecentDate);
    }

    /// Serves `path` like a pool of mirrors some of which still hold old versions (a CDN
    /// whose edges are not all up to date): while on, a ranged request whose `If-Range` names
    /// one of the path's earlier versions (strong ETag or date) is answered with a range of
    /// that old version, as a stale mirror would.
    pub fn serve_stale_versions(&self, path: &str, on: bool) {
        let mut state = lock(&self.state);
        if on {
            state.stale.insert(normalise(path));
        } else {
            state.stale.remove(&normalise(path));
        }
    }

    /// Demands credentials on every GET and HEAD: without valid ones the answer is 401 with
    /// the challenges of `auth` (see [`Auth`]). Recorded requests keep their `Authorization`.
    pub fn require_auth(&self, auth: Auth) {
        lock(&self.state).auth = Some(auth);
    }

    /// Retires every Digest nonce issued so far: an answer using one gets a 401 whose Digest
    /// challenges say `stale=true` (a client should answer the new nonce at once).
    pub fn expire_nonces(&self) {
        let mut state = lock(&self.state);
        let old = std::mem::take(&mut state.nonces);
        state.expired_nonces.extend(old);
    }

    /// Removes the content at `path`; later requests get 404.
    pub fn remove_file(&self, path: &str) {
        lock(&self.state).files.remove(&normalise(path));
    }

    /// The current ETag of `path` (with its quotes, e.g. `"\"v3\""`), if it has content with
    /// validators.
    pub fn etag(&self, path: &str) -> Option<String> {
        lock(&self.state)
            .files
            .get(&normalise(path))
            .and_then(|file| file.etag.clone())
    }

    /// The current `Last-Modified` value of `path`, if it has content with validators.
    pub fn last_modified(&self, path: &str) -> Option<String> {
        lock(&self.state)
            .files
            .get(&normalise(path))
            .and_then(|file| file.last_modified.clone())
    }

    /// Queues behaviours for the next requests (GET or HEAD) to `path`: each request takes the
    /// next one from the front; when the queue is empty requests are served normally (or with
    /// the default set by [`TestServer::set_default_fault`]).
    pub fn push_faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state)
            .faults
            .entry(normalise(path))
            .or_default()
            .extend(faults);
    }

    /// Sets (`Some`) or clears (`None`) a persistent behaviour applied to every GET/HEAD of
    /// `path` while its fault queue is empty (e.g. always `Slow`, or always `IgnoreRange`).
    pub fn set_default_fault(&self, path: &str, fault: Option<Fault>) {
        let mut state = lock(&self.state);
        match fault {
            Some(fault) => state.default_faults.insert(normalise(path), fault),
            None => state.default_faults.remove(&normalise(path)),
        };
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Requests for one path (query strings are ignored when matching).
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        let path = normalise(path);
        lock(&self.state)
            .requests
            .iter()
            .filter(|request| request.path == path)
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests (not the byte counters).
    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// Total body bytes sent for a path across all responses (to measure re-downloads).
    ///
    /// Only content bytes of 200/206 responses are counted (including partial bodies cut short
    /// by a fault or by the client going away); the short bodies of error responses are not, so
    /// a client that resumes perfectly has been sent exactly the file size. "Sent" means handed
    /// to the kernel (over TLS: to the TLS layer, as plaintext): bytes are counted before the
    /// client can possibly read them, so the value is already up to date when a client finishes
    /// reading.
    pub fn body_bytes_sent(&self, path: &str) -> u64 {
        lock(&self.state)
            .body_bytes
            .get(&normalise(path))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Ending the accept loop drops the listener, and the runtime drop in the server thread
        // closes every open connection. Joining makes the stop synchronous: once `drop`
        // returns, the port refuses connections.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

/// The shared library that makes `fsync`/`fdatasync`/`syncfs` fail or stall on demand, for
/// `LD_PRELOAD` into the program under test. See [`SyncFaults`].
pub fn sync_faults_library() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/libbits_syncfaults.so"))
}

/// The control directory of [`sync_faults_library`]: pass [`SyncFaults::env`] to the
/// program, then make syncs of files whose path contains a pattern fail with EIO
/// ([`SyncFaults::fail`]) or wait ([`SyncFaults::delay`]) until [`SyncFaults::clear`].
#[derive(Debug)]
pub struct SyncFaults {
    dir: tempfile::TempDir,
}

impl Default for SyncFaults {
    fn default() -> Self {
        SyncFaults::new()
    }
}

impl SyncFaults {
    /// A fresh control directory; no fault is on.
    pub fn new() -> SyncFaults {
        SyncFaults {
            dir: tempfile::tempdir().expect("bits-test-support: control directory"),
        }
    }

    /// The environment variables that load the library into a child process.
    pub fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("LD_PRELOAD", sync_faults_library()),
            ("BITS_FAULT_DIR", self.dir.path().to_path_buf()),
        ]
    }

    /// From now on, every sync of a file whose path contains `pattern` fails with EIO.
    pub fn fail(&self, pattern: &str) {
        std::fs::write(self.dir.path().join("sync-fail"), format!("{pattern}\n"))
            .expect("bits-test-support: write sync-fail");
    }

    /// From now on, every sync of a file whose path contains `pattern` first waits `delay`.
    pub fn delay(&self, pattern: &str, delay: Duration) {
        std::fs::write(
            self.dir.path().join("sync-delay"),
            format!("{pattern}\n{}\n", delay.as_millis()),
        )
        .expect("bits-test-support: write sync-delay");
    }

    /// Ends every fault.
    pub fn clear(&self) {
        for name in ["sync-fail", "sync-delay"] {
            let _ = std::fs::remove_file(self.dir.path().join(name));
        }
    }

    /// The faults injected so far, one line each (`fail PATH` or `delay PATH`).
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Used by the server side to stamp responses.
pub(crate) fn http_date_now() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

/// Deterministic, non-repeating test content (xorshift from `seed`), so a
/// spliced or shifted file never compares equal to the original.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
