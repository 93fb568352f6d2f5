//! End-to-end tests of `bits_server::serve` over loopback HTTP.
//!
//! Each test starts a server on 127.0.0.1:0 publishing a fresh temporary
//! directory and talks to it with reqwest, or with a raw TCP socket where
//! reqwest would be too polite (it normalizes `..` out of URLs) or where the
//! test needs to see the connection itself (keep-alive).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bits_server::{serve, ServeConfig, ServeError};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Size of `data.bin`: several server read chunks plus an odd tail.
const DATA_LEN: usize = 3 * 256 * 1024 + 1234;

fn data_content() -> Vec<u8> {
    (0..DATA_LEN).map(|i| (i * 31 % 251) as u8).collect()
}

struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Layout:
    /// ```text
    /// secret.txt                 (outside the root)
    /// root/data.bin
    /// root/hello.txt
    /// root/dir/inner.txt
    /// root/escape -> ../secret.txt
    /// root/inside-link -> hello.txt
    /// ```
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("dir")).expect("mkdir");
        std::fs::write(dir.path().join("secret.txt"), b"top secret\n").expect("write");
        std::fs::write(root.join("data.bin"), data_content()).expect("write");
        std::fs::write(root.join("hello.txt"), b"hello, world\n").expect("write");
        std::fs::write(root.join("dir/inner.txt"), b"inner\n").expect("write");
        std::os::unix::fs::symlink("../secret.txt", root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("hello.txt", root.join("inside-link")).expect("symlink");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            ServeConfig::new(root.clone()),
            shutdown.clone(),
        ));
        Self {
            addr,
            root,
            shutdown,
            task,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .expect("ascii header")
}

/// A response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` on `stream` and reads one response (which must carry
/// a Content-Length), leaving the connection usable for the next request.
async fn raw_get(stream: &mut BufReader<TcpStream>, target: &str) -> RawResponse {
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("send");
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.expect("header line");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').expect("header syntax");
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = response
        .header("content-length")
        .expect("content-length")
        .parse()
        .expect("length");
    response.body = vec![0; len];
    stream
        .read_exact(&mut response.body)
        .await
        .expect("read body");
    response
}

async fn raw_connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.expect("connect"))
}

#[tokio::test]
async fn full_get_returns_exact_bytes() {
    let server = TestServer::start().await;
    let response = client()
        .get(server.url("/data.bin"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(
        header_str(&headers, &header::CONTENT_LENGTH),
        DATA_LEN.to_string()
    );
    assert_eq!(header_str(&headers, &header::ACCEPT_RANGES), "bytes");
    assert_eq!(
        header_str(&headers, &header::CONTENT_TYPE),
        "application/octet-stream"
    );
    let etag = header_str(&headers, &header::ETAG);
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    httpdate::parse_http_date(header_str(&headers, &header::LAST_MODIFIED))
        .expect("Last-Modified is an HTTP date");
    let body = response.bytes().await.expect("body");
    assert!(body[..] == data_content()[..], "body differs");
    server.stop().await;
}

#[tokio::test]
async fn head_returns_get_headers_without_body() {
    let server = TestServer::start().await;
    let client = client();
    let get = client
        .get(server.url("/data.bin"))
        .send()
        .await
        .expect("get");
    let get_headers = get.headers().clone();
    drop(get);
    // Range is only defined for GET; HEAD describes the whole file anyway.
    let head = client
        .head(server.url("/data.bin"))
        .header(header::RANGE, "bytes=0-9")
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    for name in [
        header::CONTENT_LENGTH,
        header::ACCEPT_RANGES,
        header::ETAG,
        header::LAST_MODIFIED,
        header::CONTENT_TYPE,
    ] {
        assert_eq!(
            head.headers().get(&name),
            get_headers.get(&name),
            "header {name}"
        );
    }
    assert_eq!(
        header_str(head.headers(), &header::CONTENT_LENGTH),
        DATA_LEN.to_string()
    );
    assert!(head.bytes().await.expect("body").is_empty());
    server.stop().await;
}

async fn get_range(server: &TestServer, range: &str) -> reqwest::Response {
    client()
        .get(server.url("/data.bin"))
        .header(header::RANGE, range)
        .send()
        .await
        .expect("request")
}

async fn assert_partial(server: &TestServer, range: &str, start: usize, end: usize) {
    let response = get_range(server, range).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
    assert_eq!(
        header_str(response.headers(), &header::CONTENT_RANGE),
        format!("bytes {start}-{end}/{DATA_LEN}"),
    );
    assert_eq!(
        header_str(response.headers(), &header::CONTENT_LENGTH),
        (end - start + 1).to_string()
    );
    let body = response.bytes().await.expect("body");
    assert!(
        body[..] == data_content()[start..=end],
        "{range}: body differs"
    );
}

#[tokio::test]
async fn range_first_last_returns_206() {
    let server = TestServer::start().await;
    assert_partial(&server, "bytes=100-199", 100, 199).await;
    assert_partial(&server, "bytes=0-0", 0, 0).await;
    // Spanning a server read-chunk boundary.
    assert_partial(&server, "bytes=262000-300000", 262_000, 300_000).await;
    // A last position beyond the end is clamped.
    assert_partial(&server, "bytes=10-99999999999", 10, DATA_LEN - 1).await;
    server.stop().await;
}

#[tokio::test]
async fn range_open_ended_returns_206() {
    let server = TestServer::start().await;
    assert_partial(&server, "bytes=5000-", 5000, DATA_LEN - 1).await;
    assert_partial(
        &server,
        &format!("bytes={}-", DATA_LEN - 1),
        DATA_LEN - 1,
        DATA_LEN - 1,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn range_suffix_returns_206() {
    let server = TestServer::start().await;
    assert_partial(&server, "bytes=-500", DATA_LEN - 500, DATA_LEN - 1).await;
    assert_partial(&server, "bytes=-99999999", 0, DATA_LEN - 1).await;
    server.stop().await;
}

#[tokio::test]
async fn unsatisfiable_range_returns_416() {
    let server = TestServer::start().await;
    for range in [format!("bytes={DATA_LEN}-"), "bytes=-0".to_owned()] {
        let response = get_range(&server, &range).await;
        assert_eq!(
            response.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}"
        );
        assert_eq!(
            header_str(response.headers(), &header::CONTENT_RANGE),
            format!("bytes */{DATA_LEN}")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn malformed_or_multi_range_returns_whole_file() {
    let server = TestServer::start().await;
    for range in ["bytes=abc", "bytes=10-5", "lines=1-2", "bytes=0-1,5-9"] {
        let response = get_range(&server, range).await;
        assert_eq!(response.status(), StatusCode::OK, "{range}");
        assert!(response.headers().get(header::CONTENT_RANGE).is_none());
        assert_eq!(response.bytes().await.expect("body").len(), DATA_LEN);
    }
    server.stop().await;
}

async fn etag_of(server: &TestServer, path: &str) -> String {
    let response = client().head(server.url(path)).send().await.expect("head");
    assert_eq!(response.status(), StatusCode::OK);
    header_str(response.headers(), &header::ETAG).to_owned()
}

#[tokio::test]
async fn if_range_with_current_etag_returns_206() {
    let server = TestServer::start().await;
    let etag = etag_of(&server, "/data.bin").await;
    let response = client()
        .get(server.url("/data.bin"))
        .header(header::RANGE, "bytes=10-19")
        .header(header::IF_RANGE, &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert!(response.bytes().await.expect("body")[..] == data_content()[10..20]);
    server.stop().await;
}

#[tokio::test]
async fn if_range_with_stale_validator_returns_whole_file() {
    let server = TestServer::start().await;
    let etag = etag_of(&server, "/data.bin").await;
    for stale in [
        "\"0-0-0\"".to_owned(),
        format!("W/{etag}"),
        "Thu, 01 Jan 1998 00:00:00 GMT".to_owned(),
    ] {
        let response = client()
            .get(server.url("/data.bin"))
            .header(header::RANGE, "bytes=10-19")
            .header(header::IF_RANGE, &stale)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "If-Range: {stale}");
        assert_eq!(response.bytes().await.expect("body").len(), DATA_LEN);
    }
    server.stop().await;
}

#[tokio::test]
async fn if_range_with_last_modified_date_returns_206() {
    let server = TestServer::start().await;
    // Dates are only strong validators for files not modified within the
    // last second, so back-date the file.
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(server.root.join("data.bin"))
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
    let response = client()
        .get(server.url("/data.bin"))
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, httpdate::fmt_http_date(mtime))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    server.stop().await;
}

#[tokio::test]
async fn etag_changes_after_file_is_rewritten() {
    let server = TestServer::start().await;
    let path = server.root.join("hello.txt");
    let original = etag_of(&server, "/hello.txt").await;

    // Modified in place.
    std::fs::write(&path, b"hello, changed world\n").expect("rewrite");
    let rewritten = etag_of(&server, "/hello.txt").await;
    assert_ne!(original, rewritten);

    // Replaced by another file of the same size (the usual atomic update).
    let staging = server.root.join("hello.txt.tmp");
    std::fs::write(&staging, b"HELLO, CHANGED WORLD\n").expect("write");
    std::fs::rename(&staging, &path).expect("rename");
    let replaced = etag_of(&server, "/hello.txt").await;
    assert_ne!(rewritten, replaced);

    // And a stale ETag in If-Range now yields the whole new file.
    let response = client()
        .get(server.url("/hello.txt"))
        .header(header::RANGE, "bytes=0-4")
        .header(header::IF_RANGE, &original)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        &response.bytes().await.expect("body")[..],
        b"HELLO, CHANGED WORLD\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn dotdot_traversal_is_forbidden() {
    let server = TestServer::start().await;
    let mut conn = raw_connect(server.addr).await;
    for target in [
        "/../secret.txt",
        "/dir/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/dir/..%2F..%2Fsecret.txt",
        "/dir/../hello.txt",
        "/hello.txt%00",
    ] {
        let response = raw_get(&mut conn, target).await;
        assert_eq!(response.status, 403, "{target}");
        assert!(!String::from_utf8_lossy(&response.body).contains("secret"));
    }
    server.stop().await;
}

#[tokio::test]
async fn symlink_out_of_root_is_forbidden() {
    let server = TestServer::start().await;
    let client = client();
    let response = client
        .get(server.url("/escape"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header_str(response.headers(), &header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    // Symlinks that stay inside the root are fine.
    let response = client
        .get(server.url("/inside-link"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        &response.bytes().await.expect("body")[..],
        b"hello, world\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn missing_file_returns_404() {
    let server = TestServer::start().await;
    let client = client();
    for path in ["/nope.bin", "/dir/nope", "/hello.txt/more", "/hello.txt/"] {
        let response = client.get(server.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn query_string_is_ignored_and_names_are_percent_decoded() {
    let server = TestServer::start().await;
    std::fs::write(server.root.join("with space.txt"), b"spaced\n").expect("write");
    let response = client()
        .get(server.url("/with%20space.txt?x=1&y=../../etc"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.expect("body")[..], b"spaced\n");
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_per_connection() {
    let server = TestServer::start().await;

    // A client with a connection pool: both requests succeed.
    let client = client();
    for _ in 0..2 {
        let response = client
            .get(server.url("/hello.txt"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            &response.bytes().await.expect("body")[..],
            b"hello, world\n"
        );
    }

    // And on one raw TCP connection, so reuse is certain.
    let mut conn = raw_connect(server.addr).await;
    let first = raw_get(&mut conn, "/hello.txt").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"hello, world\n");
    let second = raw_get(&mut conn, "/data.bin").await;
    assert_eq!(second.status, 200);
    assert!(second.body == data_content());
    let third = raw_get(&mut conn, "/nope").await;
    assert_eq!(third.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn conditional_get_returns_304() {
    let server = TestServer::start().await;
    let client = client();
    let first = client
        .get(server.url("/hello.txt"))
        .send()
        .await
        .expect("request");
    let etag = header_str(first.headers(), &header::ETAG).to_owned();
    let last_modified = header_str(first.headers(), &header::LAST_MODIFIED).to_owned();
    drop(first);

    let response = client
        .get(server.url("/hello.txt"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_str(response.headers(), &header::ETAG), etag);

    let response = client
        .get(server.url("/hello.txt"))
        .header(header::IF_MODIFIED_SINCE, &last_modified)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    let response = client
        .get(server.url("/hello.txt"))
        .header(header::IF_MATCH, "\"something-else\"")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    server.stop().await;
}

#[tokio::test]
async fn unknown_method_returns_405_with_allow() {
    let server = TestServer::start().await;
    for method in ["POST", "PUT", "DELETE", "BITS_POST"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client()
            .request(method.clone(), server.url("/hello.txt"))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(header_str(response.headers(), &header::ALLOW), "GET, HEAD");
    }
    server.stop().await;
}

#[tokio::test]
async fn directory_is_listed_and_redirected_to_slash() {
    let server = TestServer::start().await;
    let client = client();
    let response = client
        .get(server.url("/dir"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header_str(response.headers(), &header::LOCATION), "/dir/");

    let response = client
        .get(server.url("/dir/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_str(response.headers(), &header::CONTENT_TYPE).starts_with("text/html"));
    let html = response.text().await.expect("body");
    assert!(
        html.contains("<a href=\"inner.txt\">inner.txt</a>"),
        "{html}"
    );

    let html = client
        .get(server.url("/"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(html.contains("<a href=\"dir/\">dir/</a>"), "{html}");
    assert!(html.contains("<a href=\"data.bin\">"), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = TestServer::start().await;
    let addr = server.addr;
    // An idle kept-alive connection must not hold up shutdown.
    let mut idle = raw_connect(addr).await;
    assert_eq!(raw_get(&mut idle, "/hello.txt").await.status, 200);
    server.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
    let mut rest = Vec::new();
    let read = idle.read_to_end(&mut rest).await;
    assert!(matches!(read, Ok(0)) || read.is_err());
}

#[tokio::test]
async fn bad_root_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    for (root, expect_missing) in [(dir.path().join("missing"), true), (file, false)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let err = serve(
            listener,
            ServeConfig::new(root.clone()),
            CancellationToken::new(),
        )
        .await
        .expect_err("must fail");
        match err {
            ServeError::RootUnavailable { .. } => assert!(expect_missing),
            ServeError::RootNotADirectory { .. } => assert!(!expect_missing),
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains(&root.display().to_string()));
    }
}
