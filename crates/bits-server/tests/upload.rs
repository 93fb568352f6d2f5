//! The BITS upload server driven packet by packet.
//!
//! The client here is written from Microsoft's protocol pages (Create-Session,
//! Fragment, Close-Session, Cancel-Session, Ping and their Acks) and
//! `[MC-BUP]`, on a raw TCP socket, with the header names spelt out as the
//! pages spell them: it deliberately does not use `bits-upload-proto`, so a
//! mistake shared by that crate and the server would still show here. Each
//! test starts `bits_server::serve` on 127.0.0.1:0 over a fresh directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bits_server::{serve, Notify, NotifyKind, ServeConfig, ServeError, UploadConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";
const BG_E_SESSION_NOT_FOUND: &str = "0x8020001f";
const BG_E_TOO_LARGE: &str = "0x80200020";
const E_INVALIDARG: &str = "0x80070057";
const E_ACCESSDENIED: &str = "0x80070005";
const ERROR_FILE_EXISTS: &str = "0x80070050";

/// Test content: not a repeating pattern of any fragment size used here.
/// The directory of the one upload session stored under `root`.
fn only_session_dir(root: &Path) -> PathBuf {
    std::fs::read_dir(root.join(".bits-sessions"))
        .expect("store")
        .next()
        .expect("one session")
        .expect("entry")
        .path()
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// The server under test

struct Server {
    addr: SocketAddr,
    root: PathBuf,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
    dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Serves a fresh `root` (with `outside/` beside it) with uploads on.
    async fn start(config: UploadConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("outside")).expect("mkdir");
        let mut server = Self::start_at(&root, config).await;
        server.dir = Some(dir);
        server
    }

    /// Serves an existing `root`.
    async fn start_at(root: &Path, config: UploadConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let serve_config = ServeConfig {
            root: root.to_path_buf(),
            upload: Some(config),
        };
        let task = tokio::spawn(serve(listener, serve_config, shutdown.clone()));
        Self {
            addr,
            root: root.to_path_buf(),
            shutdown,
            task,
            dir: None,
        }
    }

    /// Stops the server; hands back the directory so it can be served again.
    async fn stop(mut self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result");
        self.dir.take()
    }

    async fn connect(&self) -> Conn {
        Conn::connect(self.addr).await
    }

    fn sessions(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(".bits-sessions"))
            .expect("session store exists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client

struct Conn {
    stream: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// A header, looked up case-insensitively (HTTP header names are).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Checks the parts every Ack has: `BITS-Packet-Type: Ack` and
    /// `Content-Length` (0: Acks have no body).
    fn assert_ack(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(
            self.header("BITS-Packet-Type").map(str::to_ascii_lowercase),
            Some("ack".into()),
            "{self:#?}"
        );
        assert_eq!(self.header("Content-Length"), Some("0"), "{self:#?}");
        assert!(self.body.is_empty());
        self
    }

    /// Checks an error Ack: status, `BITS-Error-Code` (also sent as
    /// `BITS-Error`, [MC-BUP]'s name) and context.
    fn assert_error(&self, status: u16, code: &str, context: &str) {
        self.assert_ack(status);
        let got = self.header("BITS-Error-Code").map(str::to_ascii_lowercase);
        assert_eq!(got.as_deref(), Some(code), "{self:#?}");
        let got = self.header("BITS-Error").map(str::to_ascii_lowercase);
        assert_eq!(got.as_deref(), Some(code), "{self:#?}");
        assert_eq!(
            self.header("BITS-Error-Context"),
            Some(context),
            "{self:#?}"
        );
    }

    fn received(&self) -> u64 {
        self.header("BITS-Received-Content-Range")
            .unwrap_or_else(|| panic!("no BITS-Received-Content-Range: {self:#?}"))
            .parse()
            .expect("decimal offset")
    }
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Sends one request with `Content-Length` and reads the response.
    async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.send_raw(head.as_bytes(), body).await
    }

    /// Sends bytes as they are and reads one response.
    async fn send_raw(&mut self, head: &[u8], body: &[u8]) -> Reply {
        let socket = self.stream.get_mut();
        socket.write_all(head).await.expect("send head");
        socket.write_all(body).await.expect("send body");
        self.read_reply(method_is_head(head)).await
    }

    async fn read_reply(&mut self, head_only: bool) -> Reply {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header line");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').expect("header");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = reply
            .header("Content-Length")
            .map_or(0, |v| v.parse().expect("length"));
        if !head_only && status != 204 && status != 304 {
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await.expect("body");
            reply.body = body;
        }
        reply
    }

    // The packets, as the protocol pages write them.

    async fn ping(&mut self, url: &str) -> Reply {
        self.send("BITS_POST", url, &[("BITS-Packet-Type", "Ping")], b"")
            .await
    }

    async fn create_session_with(&mut self, url: &str, protocols: &str) -> Reply {
        self.send(
            "BITS_POST",
            url,
            &[
                ("BITS-Packet-Type", "Create-Session"),
                ("BITS-Supported-Protocols", protocols),
            ],
            b"",
        )
        .await
    }

    /// Create-Session that must succeed; returns the session id.
    async fn create_session(&mut self, url: &str) -> String {
        let reply = self.create_session_with(url, GUID).await;
        reply.assert_ack(200);
        assert_eq!(reply.header("BITS-Protocol"), Some(GUID), "{reply:#?}");
        assert_eq!(
            reply.header("Accept-Encoding").map(str::to_ascii_lowercase),
            Some("identity".into())
        );
        assert!(reply.header("BITS-Error-Code").is_none());
        let id = reply
            .header("BITS-Session-Id")
            .expect("session id")
            .to_owned();
        assert!(
            id.len() <= 100 && id.starts_with('{') && id.ends_with('}'),
            "{id}"
        );
        id
    }

    async fn fragment(
        &mut self,
        url: &str,
        session: &str,
        first: u64,
        total: u64,
        bytes: &[u8],
    ) -> Reply {
        let last = first + bytes.len() as u64 - 1;
        let range = format!("bytes {first}-{last}/{total}");
        self.send(
            "BITS_POST",
            url,
            &[
                ("BITS-Packet-Type", "Fragment"),
                ("BITS-Session-Id", session),
                ("Content-Name", "local.bin"),
                ("Content-Range", &range),
            ],
            bytes,
        )
        .await
    }

    async fn close(&mut self, url: &str, session: &str) -> Reply {
        self.send(
            "BITS_POST",
            url,
            &[
                ("BITS-Packet-Type", "Close-Session"),
                ("BITS-Session-Id", session),
            ],
            b"",
        )
        .await
    }

    async fn cancel(&mut self, url: &str, session: &str) -> Reply {
        self.send(
            "BITS_POST",
            url,
            &[
                ("BITS-Packet-Type", "Cancel-Session"),
                ("BITS-Session-Id", session),
            ],
            b"",
        )
        .await
    }

    async fn get(&mut self, target: &str) -> Reply {
        self.send("GET", target, &[], b"").await
    }

    /// Uploads `data` in fragments of `size`, each Ack checked.
    async fn upload(&mut self, url: &str, session: &str, data: &[u8], size: usize) -> Reply {
        let total = data.len() as u64;
        let mut last_reply = None;
        for (i, chunk) in data.chunks(size).enumerate() {
            let first = (i * size) as u64;
            let reply = self.fragment(url, session, first, total, chunk).await;
            reply.assert_ack(200);
            assert_eq!(reply.received(), first + chunk.len() as u64);
            assert_eq!(reply.header("BITS-Session-Id"), Some(session));
            last_reply = Some(reply);
        }
        last_reply.expect("at least one fragment")
    }
}

fn method_is_head(head: &[u8]) -> bool {
    head.starts_with(b"HEAD ")
}

// ---------------------------------------------------------------------------
// A server application (upload-reply back end)

/// One request the back end received.
#[derive(Debug, Clone)]
struct Notification {
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A tiny HTTP server that records each request and answers with what
/// `respond` makes of it: (status, extra headers, body).
struct BackEnd {
    url: String,
    seen: Arc<Mutex<Vec<Notification>>>,
    task: JoinHandle<()>,
}

type Responder = dyn Fn(&Notification) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync;

impl BackEnd {
    async fn start(respond: Arc<Responder>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/app/upload-done",
            listener.local_addr().expect("addr")
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                if stream.read_line(&mut line).await.is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut headers = HashMap::new();
                loop {
                    line.clear();
                    stream.read_line(&mut line).await.expect("header");
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    let (k, v) = trimmed.split_once(':').expect("header");
                    headers.insert(k.to_ascii_lowercase(), v.trim().to_owned());
                }
                let len: usize = headers
                    .get("content-length")
                    .map_or(0, |v| v.parse().expect("length"));
                let mut body = vec![0; len];
                stream.read_exact(&mut body).await.expect("body");
                let request = Notification {
                    target,
                    headers,
                    body,
                };
                let (status, extra, reply) = respond(&request);
                log.lock().expect("lock").push(request);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.len()
                );
                for (k, v) in extra {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let socket = stream.get_mut();
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&reply).await;
                let _ = socket.shutdown().await;
            }
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<Notification> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for BackEnd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// The tests

/// Create-Session, three Fragments, Close-Session: the file appears under
/// its name only with the last byte, byte-exact, and the session leaves
/// nothing behind.
#[tokio::test]
async fn upload_in_fragments_appears_only_when_complete() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(300_000);
    let mut conn = server.connect().await;
    assert_eq!(
        conn.ping("/sub/report.bin").await.assert_ack(200).status,
        200
    );
    let id = conn.create_session("/sub/report.bin").await;
    let target = server.root.join("sub/report.bin");
    let total = data.len() as u64;
    for (first, last) in [(0usize, 99_999usize), (100_000, 199_999)] {
        let reply = conn
            .fragment(
                "/sub/report.bin",
                &id,
                first as u64,
                total,
                &data[first..=last],
            )
            .await;
        reply.assert_ack(200);
        assert_eq!(reply.received(), last as u64 + 1);
        assert_eq!(reply.header("BITS-Session-Id"), Some(id.as_str()));
        assert!(reply.header("BITS-Reply-URL").is_none());
        assert!(!target.exists(), "no partial file under the real name");
    }
    let reply = conn
        .fragment("/sub/report.bin", &id, 200_000, total, &data[200_000..])
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), total);
    assert!(reply.header("BITS-Reply-URL").is_none(), "simple upload");
    assert_eq!(std::fs::read(&target).expect("stored"), data);

    conn.close("/sub/report.bin", &id).await.assert_ack(200);
    assert_eq!(server.sessions(), Vec::<String>::new());
    assert_eq!(std::fs::read(&target).expect("still there"), data);
    server.stop().await;
}

/// A fragment that starts after the bytes received is a gap: 416 with the
/// offset to continue from; the upload then continues from there.
#[tokio::test]
async fn gap_gets_416_with_the_received_offset() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(300);
    let mut conn = server.connect().await;
    let id = conn.create_session("/gap.bin").await;
    conn.fragment("/gap.bin", &id, 0, 300, &data[..100])
        .await
        .assert_ack(200);
    let reply = conn.fragment("/gap.bin", &id, 200, 300, &data[200..]).await;
    reply.assert_ack(416);
    assert_eq!(reply.received(), 100);
    assert_eq!(reply.header("BITS-Error-Context"), Some("0x5"));
    // The first fragment of a new session must start at 0, too.
    let other = conn.create_session("/gap2.bin").await;
    let reply = conn
        .fragment("/gap2.bin", &other, 1, 300, &data[1..10])
        .await;
    reply.assert_ack(416);
    assert_eq!(reply.received(), 0);

    conn.upload_from("/gap.bin", &id, &data, 100).await;
    assert_eq!(
        std::fs::read(server.root.join("gap.bin")).expect("file"),
        data
    );
    server.stop().await;
}

impl Conn {
    /// Sends `data[from..]` as one fragment and expects completion.
    async fn upload_from(&mut self, url: &str, session: &str, data: &[u8], from: usize) {
        let reply = self
            .fragment(url, session, from as u64, data.len() as u64, &data[from..])
            .await;
        reply.assert_ack(200);
        assert_eq!(reply.received(), data.len() as u64);
    }
}

/// An overlapping fragment only contributes its new bytes: what was
/// received first is kept, never overwritten (Fragment page: "BITS writes
/// only bytes 101 through 150").
#[tokio::test]
async fn overlap_keeps_earlier_bytes_and_writes_only_new_ones() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(200);
    let mut conn = server.connect().await;
    let id = conn.create_session("/overlap.bin").await;
    conn.fragment("/overlap.bin", &id, 0, 200, &data[..=100])
        .await
        .assert_ack(200);
    // 50..=150 with the overlapping part garbled: those bytes must be ignored.
    let mut second = data[50..=150].to_vec();
    second[..51].fill(b'X');
    let reply = conn.fragment("/overlap.bin", &id, 50, 200, &second).await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 151);
    // A fragment entirely before the offset (a retry whose Ack was lost).
    let reply = conn
        .fragment("/overlap.bin", &id, 0, 200, &[b'Y'; 20])
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 151);
    conn.upload_from("/overlap.bin", &id, &data, 151).await;
    assert_eq!(
        std::fs::read(server.root.join("overlap.bin")).expect("file"),
        data
    );
    // The last fragment again (its Ack was lost): same answer, file intact.
    let reply = conn
        .fragment("/overlap.bin", &id, 151, 200, &[b'Z'; 49])
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 200);
    assert_eq!(
        std::fs::read(server.root.join("overlap.bin")).expect("file"),
        data
    );
    server.stop().await;
}

/// Packets for a session the server does not know get 500 with
/// BG_E_SESSION_NOT_FOUND ([MC-BUP] 3.2.5.2.3), whatever the id looks like.
#[tokio::test]
async fn unknown_session_is_session_not_found() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    for id in [
        "{00000000-1111-2222-3333-444444444444}",
        "not-a-guid",
        "../../../etc/passwd",
    ] {
        let reply = conn.fragment("/x.bin", id, 0, 10, b"0123456789").await;
        reply.assert_error(500, BG_E_SESSION_NOT_FOUND, "0x5");
        conn.close("/x.bin", id)
            .await
            .assert_error(500, BG_E_SESSION_NOT_FOUND, "0x5");
        conn.cancel("/x.bin", id)
            .await
            .assert_error(500, BG_E_SESSION_NOT_FOUND, "0x5");
    }
    assert!(!server.root.join("x.bin").exists());
    server.stop().await;
}

/// Create-Session without our protocol GUID is 400 E_INVALIDARG and no
/// BITS-Protocol; the GUID is found in any case and in any list position.
#[tokio::test]
async fn unknown_protocol_guid_is_refused() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let reply = conn
        .create_session_with("/p.bin", "{00000000-0000-0000-0000-000000000001}")
        .await;
    reply.assert_error(400, E_INVALIDARG, "0x5");
    assert!(reply.header("BITS-Protocol").is_none());
    assert!(reply.header("BITS-Session-Id").is_none());
    assert_eq!(server.sessions(), Vec::<String>::new());

    let reply = conn
        .create_session_with(
            "/p.bin",
            "{00000000-0000-0000-0000-000000000001} {7DF0354D-249B-430F-820D-3D2A9BEF4931}",
        )
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.header("BITS-Protocol"), Some(GUID));
    server.stop().await;
}

/// Traversal, absolute paths, odd encodings, symlinks out of the root and
/// the session store are refused at Create-Session; nothing is written
/// outside the root.
#[tokio::test]
async fn paths_are_confined_to_the_root() {
    let server = Server::start(UploadConfig::default()).await;
    let outside = server.root.parent().expect("parent").join("outside");
    std::os::unix::fs::symlink("../outside", server.root.join("out")).expect("symlink");
    std::os::unix::fs::symlink("/etc/hostname", server.root.join("link.txt")).expect("symlink");
    let mut conn = server.connect().await;
    for (path, status) in [
        ("/../escape.bin", 403),
        ("/sub/../../escape.bin", 403),
        ("/%2e%2e/escape.bin", 403),
        ("/sub/%2E%2E/%2e%2e/escape.bin", 403),
        ("/out/escape.bin", 403),
        ("/link.txt", 403),
        ("/.bits-sessions/x.bin", 403),
        ("/%2Fetc%2Fescape.bin", 400),
        ("/sub%2F..%2F..%2Fescape.bin", 400),
        ("/sub%5C..%5Cescape.bin", 400),
        ("/%C0%AE%C0%AE/escape.bin", 400),
        ("/bad%00name.bin", 400),
        ("/sub/", 400),
        ("/sub", 400),
    ] {
        let reply = conn.create_session_with(path, GUID).await;
        let code = if status == 403 {
            E_ACCESSDENIED
        } else {
            E_INVALIDARG
        };
        reply.assert_error(status, code, "0x5");
        assert!(reply.header("BITS-Session-Id").is_none(), "{path}");
    }
    // An absolute path in the request line lands below the root (here in a
    // directory that does not exist: 404), never at the real /etc.
    let reply = conn.create_session_with("//etc/escape.bin", GUID).await;
    assert_eq!(reply.status, 404, "{reply:#?}");
    assert_eq!(
        reply.header("BITS-Error-Code").map(str::to_ascii_lowercase),
        Some("0x80070003".into())
    );
    assert_eq!(server.sessions(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
    assert!(!server
        .root
        .parent()
        .expect("parent")
        .join("escape.bin")
        .exists());
    server.stop().await;
}

/// An existing file is not overwritten without permission (409
/// ERROR_FILE_EXISTS); with allow_overwrite it is replaced.
#[tokio::test]
async fn overwrite_needs_permission() {
    let server = Server::start(UploadConfig::default()).await;
    std::fs::write(server.root.join("exists.bin"), b"old").expect("write");
    let mut conn = server.connect().await;
    conn.create_session_with("/exists.bin", GUID)
        .await
        .assert_error(409, ERROR_FILE_EXISTS, "0x5");
    // A file that appears during the upload is not replaced either.
    let id = conn.create_session("/late.bin").await;
    std::fs::write(server.root.join("late.bin"), b"someone else's").expect("write");
    let reply = conn.fragment("/late.bin", &id, 0, 3, b"new").await;
    reply.assert_error(409, ERROR_FILE_EXISTS, "0x5");
    assert_eq!(
        std::fs::read(server.root.join("late.bin")).expect("file"),
        b"someone else's"
    );
    let dir = server.stop().await;

    let config = UploadConfig {
        allow_overwrite: true,
        ..UploadConfig::default()
    };
    let root = dir.as_ref().expect("dir").path().join("root");
    let server = Server::start_at(&root, config).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/exists.bin").await;
    conn.upload("/exists.bin", &id, b"new content", 4).await;
    assert_eq!(
        std::fs::read(server.root.join("exists.bin")).expect("file"),
        b"new content"
    );
    server.stop().await;
}

/// An upload larger than the limit is refused at its first fragment with
/// 413 and BG_E_TOO_LARGE, and nothing is stored.
#[tokio::test]
async fn upload_over_the_limit_is_too_large() {
    let config = UploadConfig {
        max_upload_size: Some(1000),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/big.bin").await;
    let reply = conn.fragment("/big.bin", &id, 0, 1001, &content(100)).await;
    reply.assert_error(413, BG_E_TOO_LARGE, "0x5");
    assert!(!server.root.join("big.bin").exists());
    // Exactly the limit is fine.
    let id = conn.create_session("/fits.bin").await;
    conn.upload("/fits.bin", &id, &content(1000), 400).await;
    assert_eq!(
        std::fs::read(server.root.join("fits.bin")).expect("file"),
        content(1000)
    );
    server.stop().await;
}

/// Sessions are not tied to a connection: every packet may come on a new
/// one, as after a network drop.
#[tokio::test]
async fn upload_continues_on_a_new_connection() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(5000);
    let mut first = server.connect().await;
    let id = first.create_session("/reconnect.bin").await;
    first
        .fragment("/reconnect.bin", &id, 0, 5000, &data[..2000])
        .await
        .assert_ack(200);
    drop(first);
    let mut second = server.connect().await;
    second.ping("/reconnect.bin").await.assert_ack(200);
    second.upload_from("/reconnect.bin", &id, &data, 2000).await;
    drop(second);
    let mut third = server.connect().await;
    third.close("/reconnect.bin", &id).await.assert_ack(200);
    assert_eq!(
        std::fs::read(server.root.join("reconnect.bin")).expect("file"),
        data
    );
    server.stop().await;
}

/// A server restart between fragments loses nothing: the session is
/// reloaded from disk, bytes a crash left beyond the acknowledged offset are
/// dropped, and the upload continues exactly.
#[tokio::test]
async fn upload_continues_after_a_server_restart() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(10_000);
    let mut conn = server.connect().await;
    let id = conn.create_session("/sub/restart.bin").await;
    conn.fragment("/sub/restart.bin", &id, 0, 10_000, &data[..4000])
        .await
        .assert_ack(200);
    drop(conn);
    let root = server.root.clone();
    let dir = server.stop().await;

    // As if a fragment had been half written when the power went.
    let session_dir = only_session_dir(&root);
    let mut garbage = std::fs::OpenOptions::new()
        .append(true)
        .open(session_dir.join("data"))
        .expect("data");
    std::io::Write::write_all(&mut garbage, &[b'!'; 1234]).expect("append");
    drop(garbage);

    let server = Server::start_at(&root, UploadConfig::default()).await;
    let mut conn = server.connect().await;
    // The client does not know what arrived; it asks with its next fragment.
    let reply = conn
        .fragment("/sub/restart.bin", &id, 6000, 10_000, &data[6000..])
        .await;
    reply.assert_ack(416);
    assert_eq!(reply.received(), 4000);
    conn.upload_from("/sub/restart.bin", &id, &data, 4000).await;
    conn.close("/sub/restart.bin", &id).await.assert_ack(200);
    assert_eq!(
        std::fs::read(root.join("sub/restart.bin")).expect("file"),
        data
    );
    assert_eq!(server.sessions(), Vec::<String>::new());
    server.stop().await;
    drop(dir);
}

/// Acknowledged bytes become durable in batches; a power cut that takes
/// the bytes after the last batch is answered honestly: the restarted
/// server names what it holds (416) and the client resends the rest.
#[tokio::test]
async fn acknowledged_bytes_a_power_cut_lost_are_asked_for_again() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(30_000);
    let mut conn = server.connect().await;
    let id = conn.create_session("/cut.bin").await;
    for (first, last) in [(0usize, 10_000usize), (10_000, 20_000)] {
        let reply = conn
            .fragment("/cut.bin", &id, first as u64, 30_000, &data[first..last])
            .await;
        reply.assert_ack(200);
        assert_eq!(reply.received(), last as u64);
    }
    drop(conn);
    let root = server.root.clone();
    let dir = server.stop().await;

    // The power cut: every byte after the first fragment is gone.
    let session_dir = only_session_dir(&root);
    std::fs::OpenOptions::new()
        .write(true)
        .open(session_dir.join("data"))
        .expect("data")
        .set_len(10_000)
        .expect("cut");

    let server = Server::start_at(&root, UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let reply = conn
        .fragment("/cut.bin", &id, 20_000, 30_000, &data[20_000..])
        .await;
    reply.assert_ack(416);
    assert_eq!(reply.received(), 10_000);
    conn.upload_from("/cut.bin", &id, &data, 10_000).await;
    conn.close("/cut.bin", &id).await.assert_ack(200);
    assert_eq!(std::fs::read(root.join("cut.bin")).expect("file"), data);
    server.stop().await;
    drop(dir);
}

/// A batch made durable in the background (its fragment acknowledged
/// first): once its sync is done the session's record says so, so a
/// restarted server takes the next fragment where the batch ended.
#[tokio::test]
async fn a_batch_synced_in_the_background_is_recorded() {
    let server = Server::start(UploadConfig::default()).await;
    let data = content(30_000);
    let mut conn = server.connect().await;
    let id = conn.create_session("/batch.bin").await;
    conn.fragment("/batch.bin", &id, 0, 30_000, &data[..10_000])
        .await
        .assert_ack(200);
    // The next fragment comes after the batch interval: its bytes are
    // synced in the background.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = conn
        .fragment("/batch.bin", &id, 10_000, 30_000, &data[10_000..20_000])
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 20_000);
    let state = only_session_dir(&server.root).join("state");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.lines().any(|l| l == "received=20000") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record never said 20000 bytes: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(conn);
    let root = server.root.clone();
    let dir = server.stop().await;

    let server = Server::start_at(&root, UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let reply = conn
        .fragment("/batch.bin", &id, 20_000, 30_000, &data[20_000..])
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 30_000);
    conn.close("/batch.bin", &id).await.assert_ack(200);
    assert_eq!(std::fs::read(root.join("batch.bin")).expect("file"), data);
    server.stop().await;
    drop(dir);
}

/// Cancel-Session deletes the session and its data; nothing is left, a
/// repeated Cancel is still 200, and the session is gone for Fragments.
#[tokio::test]
async fn cancel_leaves_nothing_behind() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/cancelled.bin").await;
    conn.fragment("/cancelled.bin", &id, 0, 100, &content(50))
        .await
        .assert_ack(200);
    assert_eq!(server.sessions().len(), 1);
    let reply = conn.cancel("/cancelled.bin", &id).await;
    reply.assert_ack(200);
    assert_eq!(reply.header("BITS-Session-Id"), Some(id.as_str()));
    assert_eq!(server.sessions(), Vec::<String>::new());
    assert!(!server.root.join("cancelled.bin").exists());
    conn.cancel("/cancelled.bin", &id).await.assert_ack(200);
    conn.fragment("/cancelled.bin", &id, 50, 100, &content(50))
        .await
        .assert_error(500, BG_E_SESSION_NOT_FOUND, "0x5");

    // Close before the last byte discards the partial upload, too.
    let id = conn.create_session("/partial.bin").await;
    conn.fragment("/partial.bin", &id, 0, 100, &content(50))
        .await
        .assert_ack(200);
    conn.close("/partial.bin", &id).await.assert_ack(200);
    assert!(!server.root.join("partial.bin").exists());
    assert_eq!(server.sessions(), Vec::<String>::new());
    // A repeated Close (its Ack was lost) is answered 200 again.
    conn.close("/partial.bin", &id).await.assert_ack(200);

    // Cancel after the last byte does not remove the stored file.
    let id = conn.create_session("/kept.bin").await;
    conn.upload("/kept.bin", &id, b"kept", 4).await;
    conn.cancel("/kept.bin", &id).await.assert_ack(200);
    assert_eq!(
        std::fs::read(server.root.join("kept.bin")).expect("file"),
        b"kept"
    );
    server.stop().await;
}

/// A session idle for longer than the session timeout is swept with its
/// data; the client then gets BG_E_SESSION_NOT_FOUND.
#[tokio::test]
async fn stale_session_is_swept() {
    let config = UploadConfig {
        session_timeout: Duration::from_millis(300),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/stale.bin").await;
    conn.fragment("/stale.bin", &id, 0, 100, &content(10))
        .await
        .assert_ack(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.sessions().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "session not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.fragment("/stale.bin", &id, 10, 100, &content(10))
        .await
        .assert_error(500, BG_E_SESSION_NOT_FOUND, "0x5");
    assert!(!server.root.join("stale.bin").exists());
    server.stop().await;
}

/// Header names are case-insensitive (and packet types too): a client that
/// shouts or whispers is understood.
#[tokio::test]
async fn header_names_and_packet_types_are_case_insensitive() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let reply = conn
        .send(
            "BITS_POST",
            "/case.bin",
            &[
                ("bits-packet-type", "CREATE-SESSION"),
                ("BITS-SUPPORTED-PROTOCOLS", GUID),
            ],
            b"",
        )
        .await;
    reply.assert_ack(200);
    let id = reply.header("bits-session-id").expect("id").to_owned();
    let reply = conn
        .send(
            "BITS_POST",
            "/case.bin",
            &[
                ("Bits-Packet-Type", "fragment"),
                ("bits-session-id", &id.to_ascii_lowercase()),
                ("CONTENT-RANGE", "BYTES 0-2/3"),
            ],
            b"abc",
        )
        .await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 3);
    let reply = conn
        .send(
            "BITS_POST",
            "/case.bin",
            &[
                ("BITS-PACKET-TYPE", "close-session"),
                ("BITS-SESSION-ID", &id),
            ],
            b"",
        )
        .await;
    reply.assert_ack(200);
    assert_eq!(
        std::fs::read(server.root.join("case.bin")).expect("file"),
        b"abc"
    );
    server.stop().await;
}

/// Malformed packets: unknown packet type and broken ranges are 400
/// E_INVALIDARG, a Fragment without Content-Length 411, a total that
/// changes between fragments 400.
#[tokio::test]
async fn malformed_packets_are_refused() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    conn.send(
        "BITS_POST",
        "/m.bin",
        &[("BITS-Packet-Type", "Upload")],
        b"",
    )
    .await
    .assert_error(400, E_INVALIDARG, "0x5");
    conn.send("BITS_POST", "/m.bin", &[], b"")
        .await
        .assert_error(400, E_INVALIDARG, "0x5");
    let id = conn.create_session("/m.bin").await;
    for range in ["bytes 5-1/10", "bytes 0-9/5", "bytes */10", "lines 0-1/2"] {
        conn.send(
            "BITS_POST",
            "/m.bin",
            &[
                ("BITS-Packet-Type", "Fragment"),
                ("BITS-Session-Id", &id),
                ("Content-Range", range),
            ],
            b"01",
        )
        .await
        .assert_error(400, E_INVALIDARG, "0x5");
    }
    // Content-Length disagreeing with the range.
    conn.send(
        "BITS_POST",
        "/m.bin",
        &[
            ("BITS-Packet-Type", "Fragment"),
            ("BITS-Session-Id", &id),
            ("Content-Range", "bytes 0-9/10"),
        ],
        b"01",
    )
    .await
    .assert_error(400, E_INVALIDARG, "0x5");
    // A chunked Fragment has no Content-Length.
    let head = format!(
        "BITS_POST /m.bin HTTP/1.1\r\nHost: localhost\r\nBITS-Packet-Type: Fragment\r\n\
         BITS-Session-Id: {id}\r\nContent-Range: bytes 0-1/10\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.send_raw(head.as_bytes(), b"2\r\n01\r\n0\r\n\r\n")
        .await
        .assert_error(411, E_INVALIDARG, "0x5");
    conn.fragment("/m.bin", &id, 0, 10, b"01234")
        .await
        .assert_ack(200);
    conn.fragment("/m.bin", &id, 5, 11, b"56789")
        .await
        .assert_error(400, E_INVALIDARG, "0x5");
    server.stop().await;
}

/// At most max_sessions sessions at once; the next Create-Session is 503
/// with Retry-After until one ends.
#[tokio::test]
async fn session_limit_is_503() {
    let config = UploadConfig {
        max_sessions: 2,
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let a = conn.create_session("/a.bin").await;
    conn.create_session("/b.bin").await;
    let reply = conn.create_session_with("/c.bin", GUID).await;
    reply.assert_error(503, "0x801901f7", "0x5");
    assert!(reply.header("Retry-After").is_some());
    conn.cancel("/a.bin", &a).await.assert_ack(200);
    conn.create_session("/c.bin").await;
    server.stop().await;
}

/// Web-farm affinity: BITS-Host-Id and its fallback timeout are in the Ack
/// for Create-Session.
#[tokio::test]
async fn host_id_is_announced() {
    let config = UploadConfig {
        host_id: Some("node7.farm.example".into()),
        host_id_fallback_timeout: Some(86_400),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let reply = conn.create_session_with("/h.bin", GUID).await;
    reply.assert_ack(200);
    assert_eq!(reply.header("BITS-Host-Id"), Some("node7.farm.example"));
    assert_eq!(reply.header("BITS-Host-Id-Fallback-Timeout"), Some("86400"));
    server.stop().await;
}

/// The session store is invisible to GET: not listed, not readable.
#[tokio::test]
async fn session_store_is_hidden() {
    let server = Server::start(UploadConfig::default()).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/hidden.bin").await;
    conn.fragment("/hidden.bin", &id, 0, 10, b"secret")
        .await
        .assert_ack(200);
    let listing = conn.get("/").await;
    assert_eq!(listing.status, 200);
    assert!(!String::from_utf8_lossy(&listing.body).contains(".bits-sessions"));
    let dir = server.sessions().remove(0);
    for path in [
        "/.bits-sessions/".to_owned(),
        format!("/.bits-sessions/{dir}/data"),
        format!("/.bits-sessions/{dir}/state"),
        format!("/.bits-sessions/{dir}/reply"),
    ] {
        assert_eq!(conn.get(&path).await.status, 404, "{path}");
    }
    std::os::unix::fs::symlink(".bits-sessions", server.root.join("peek")).expect("symlink");
    assert_eq!(conn.get(&format!("/peek/{dir}/data")).await.status, 404);
    server.stop().await;
}

/// Upload-reply, by value (notification type 2): the completed file is
/// posted to the server application, its response body becomes the reply,
/// and the last Ack's BITS-Reply-URL serves it until Close-Session.
#[tokio::test]
async fn upload_reply_posts_the_file_and_serves_the_reply() {
    let back_end = BackEnd::start(Arc::new(|n: &Notification| {
        (
            200,
            Vec::new(),
            format!("got {} bytes", n.body.len()).into_bytes(),
        )
    }))
    .await;
    let config = UploadConfig {
        notify: Some(Notify {
            url: back_end.url.clone(),
            kind: NotifyKind::File,
        }),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let data = content(70_000);
    let mut conn = server.connect().await;
    let id = conn.create_session("/sub/job.bin?account=42").await;
    let first = conn
        .fragment("/sub/job.bin?account=42", &id, 0, 70_000, &data[..30_000])
        .await;
    first.assert_ack(200);
    assert!(
        first.header("BITS-Reply-URL").is_none(),
        "only on the last Ack"
    );
    let last = conn
        .fragment(
            "/sub/job.bin?account=42",
            &id,
            30_000,
            70_000,
            &data[30_000..],
        )
        .await;
    last.assert_ack(200);
    assert_eq!(last.received(), 70_000);
    let reply_url = last.header("BITS-Reply-URL").expect("reply URL").to_owned();

    let seen = back_end.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, data);
    assert_eq!(seen[0].target, "/app/upload-done?account=42");
    let original = &seen[0].headers["bits-original-request-url"];
    assert!(original.ends_with("/sub/job.bin?account=42"), "{original}");
    assert!(!seen[0].headers.contains_key("bits-request-datafile-name"));
    // Without BITS-Copy-File-To-Destination the application keeps the file.
    assert!(!server.root.join("sub/job.bin").exists());

    let path = reply_url
        .strip_prefix("http://localhost")
        .unwrap_or(&reply_url)
        .to_owned();
    let reply = conn.get(&path).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    assert_eq!(reply.body, b"got 70000 bytes");
    // Resumable like any download.
    let partial = conn.send("GET", &path, &[("Range", "bytes=4-")], b"").await;
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, b"70000 bytes");
    // The last fragment again: the same reply URL, no second notification.
    let again = conn
        .fragment(
            "/sub/job.bin?account=42",
            &id,
            60_000,
            70_000,
            &data[60_000..],
        )
        .await;
    again.assert_ack(200);
    assert_eq!(again.header("BITS-Reply-URL"), Some(reply_url.as_str()));
    assert_eq!(back_end.seen().len(), 1);

    conn.close("/sub/job.bin?account=42", &id)
        .await
        .assert_ack(200);
    assert_eq!(conn.get(&path).await.status, 404);
    assert_eq!(server.sessions(), Vec::<String>::new());
    server.stop().await;
}

/// Upload-reply, by reference (notification type 1): the application gets
/// the paths of the upload and of the reply to write, asks for the file to
/// be stored too (BITS-Copy-File-To-Destination), and the client gets the
/// reply it wrote.
#[tokio::test]
async fn upload_reply_by_reference_can_keep_the_file() {
    let back_end = BackEnd::start(Arc::new(|n: &Notification| {
        let data = std::fs::read(&n.headers["bits-request-datafile-name"]).expect("upload");
        std::fs::write(
            &n.headers["bits-response-datafile-name"],
            format!("checked {} bytes", data.len()),
        )
        .expect("reply");
        (
            200,
            vec![("BITS-Copy-File-To-Destination".into(), "yes".into())],
            Vec::new(),
        )
    }))
    .await;
    let config = UploadConfig {
        notify: Some(Notify {
            url: back_end.url.clone(),
            kind: NotifyKind::Location,
        }),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/ref.bin").await;
    let last = conn.upload("/ref.bin", &id, &content(1000), 300).await;
    let reply_url = last.header("BITS-Reply-URL").expect("reply URL").to_owned();
    let seen = back_end.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.is_empty());
    assert_eq!(
        std::fs::read(server.root.join("ref.bin")).expect("copied"),
        content(1000)
    );
    let path = reply_url.trim_start_matches("http://localhost");
    let reply = conn.get(path).await;
    assert_eq!(reply.body, b"checked 1000 bytes");
    conn.close("/ref.bin", &id).await.assert_ack(200);
    server.stop().await;
}

/// A server application that fails is reported with context 0x7 and its
/// status; the upload stays complete on the server, so the client's retry of
/// the last fragment notifies again.
#[tokio::test]
async fn failing_server_application_is_remote_application_error() {
    let calls = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&calls);
    let back_end = BackEnd::start(Arc::new(move |_: &Notification| {
        let mut calls = counter.lock().expect("lock");
        *calls += 1;
        if *calls == 1 {
            (500, Vec::new(), b"boom".to_vec())
        } else {
            (200, Vec::new(), b"ok".to_vec())
        }
    }))
    .await;
    let config = UploadConfig {
        notify: Some(Notify {
            url: back_end.url.clone(),
            kind: NotifyKind::File,
        }),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    let id = conn.create_session("/app.bin").await;
    let reply = conn.fragment("/app.bin", &id, 0, 4, b"data").await;
    reply.assert_error(500, "0x801901f4", "0x7");
    let reply = conn.fragment("/app.bin", &id, 0, 4, b"data").await;
    reply.assert_ack(200);
    assert_eq!(reply.received(), 4);
    assert!(reply.header("BITS-Reply-URL").is_some());
    assert_eq!(back_end.seen().len(), 2);
    server.stop().await;
}

/// Plain PUT stores a whole file (201), refuses to overwrite (409), and
/// honours the size limit (413).
#[tokio::test]
async fn plain_put_uploads_whole_files() {
    let config = UploadConfig {
        max_upload_size: Some(100),
        ..UploadConfig::default()
    };
    let server = Server::start(config).await;
    let mut conn = server.connect().await;
    assert_eq!(
        conn.send("PUT", "/sub/put.txt", &[], b"hello").await.status,
        201
    );
    assert_eq!(
        std::fs::read(server.root.join("sub/put.txt")).expect("file"),
        b"hello"
    );
    assert_eq!(
        conn.send("PUT", "/sub/put.txt", &[], b"again").await.status,
        409
    );
    assert_eq!(
        conn.send("PUT", "/sub/big.txt", &[], &[0; 101])
            .await
            .status,
        413
    );
    assert!(!server.root.join("sub/big.txt").exists());
    assert_eq!(conn.send("PUT", "/../put.txt", &[], b"x").await.status, 403);
    assert_eq!(
        conn.send("PUT", "/nodir/put.txt", &[], b"x").await.status,
        404
    );
    let sessions = server.sessions();
    assert!(sessions.is_empty(), "{sessions:?}");
    server.stop().await;
}

/// Bad upload settings are reported by serve before anything is served.
#[tokio::test]
async fn bad_upload_settings_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [
        UploadConfig {
            max_sessions: 0,
            ..UploadConfig::default()
        },
        UploadConfig {
            notify: Some(Notify {
                url: "https://secure.example/app".into(),
                kind: NotifyKind::File,
            }),
            ..UploadConfig::default()
        },
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let err = serve(
            listener,
            ServeConfig {
                root: dir.path().to_path_buf(),
                upload: Some(config),
            },
            CancellationToken::new(),
        )
        .await
        .expect_err("must fail");
        assert!(
            matches!(err, ServeError::InvalidUploadConfig { .. }),
            "{err}"
        );
    }
}
