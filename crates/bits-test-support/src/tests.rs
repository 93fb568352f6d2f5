//! Self-tests: a raw `std::net::TcpStream` client talks to the server, so the checks do not
//! depend on any HTTP client library's own tolerance or strictness. For a TLS server the same
//! client runs over a blocking rustls stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::{Fault, TestServer, LAST_MODIFIED_BASE_SECS};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Deterministic, non-repeating-looking content so slices are distinguishable.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }
}

/// What the client talks over: a `TcpStream` or a rustls stream over one.
trait Transport: Read + Write + Send {}

impl<T: Read + Write + Send> Transport for T {}

/// A minimal HTTP/1.1 client over one connection.
struct Client {
    reader: BufReader<Box<dyn Transport>>,
}

fn tcp_connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Root store holding the CAs in `pem`.
fn roots(pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// Connects over TLS, verifying the server as `name` against `roots`, and completes the
/// handshake (so a verification failure is this function's error).
fn tls_connect(server: &TestServer, roots: RootCertStore, name: &str) -> io::Result<Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut connection = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = tcp_connect(server);
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp)?;
    }
    Ok(Client {
        reader: BufReader::new(Box::new(StreamOwned::new(connection, tcp))),
    })
}

impl Client {
    /// Plain TCP, or TLS trusting the server's CA for a TLS server.
    fn connect(server: &TestServer) -> Client {
        if server.is_tls() {
            tls_connect(server, roots(&server.ca_pem()), "127.0.0.1").unwrap()
        } else {
            Client {
                reader: BufReader::new(Box::new(tcp_connect(server))),
            }
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.send_raw(request.as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads a status line and headers.
    fn read_head(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let mut parts = line.trim_end().splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Response {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads a complete response, the body by Content-Length (none for HEAD).
    fn read_response(&mut self, head_request: bool) -> Response {
        let mut response = self.read_head();
        if !head_request {
            let length: usize = response.header("content-length").unwrap().parse().unwrap();
            response.body = vec![0; length];
            self.reader.read_exact(&mut response.body).unwrap();
        }
        response
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(method, path, headers);
        self.read_response(method == "HEAD")
    }

    /// Everything until the server closes the connection.
    fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest
    }
}

fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Response {
    Client::connect(server).request("GET", path, headers)
}

#[test]
fn normal_get_and_head_serve_bytes_and_headers() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    assert!(server
        .url("/a.bin")
        .ends_with(&format!(":{}/a.bin", server.addr().port())));
    assert_eq!(server.url("a.bin"), server.url("/a.bin"));

    let mut client = Client::connect(&server);
    let response = client.request("GET", "/a.bin", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, data);
    assert_eq!(response.header("content-length"), Some("1000"));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    let etag = response.header("etag").unwrap();
    assert!(etag.starts_with("\"v") && etag.ends_with('"'), "{etag}");
    assert_eq!(Some(etag.to_owned()), server.etag("/a.bin"));
    let version: u64 = etag.trim_matches('"')[1..].parse().unwrap();
    let modified = httpdate::parse_http_date(response.header("last-modified").unwrap()).unwrap();
    assert_eq!(
        modified,
        UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_BASE_SECS + version)
    );
    assert!(response.header("content-range").is_none());

    // Same connection (keep-alive): HEAD has the GET's headers and no body.
    let head = client.request("HEAD", "/a.bin", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert_eq!(head.header("etag"), response.header("etag"));
    let again = client.request("GET", "/a.bin", &[]);
    assert_eq!(again.body, data);

    assert_eq!(get(&server, "/missing", &[]).status, 404);
    assert_eq!(server.body_bytes_sent("/a.bin"), 2000);
    assert_eq!(server.body_bytes_sent("/missing"), 0);
}

#[test]
fn ranged_gets() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    let cases = [
        ("bytes=100-199", 100, 199),
        ("bytes=900-", 900, 999),
        ("bytes=-50", 950, 999),
        ("bytes=990-5000", 990, 999),
        ("bytes=0-0", 0, 0),
    ];
    let mut client = Client::connect(&server);
    for (range, start, end) in cases {
        let response = client.request("GET", "/a.bin", &[("Range", range)]);
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes {start}-{end}/1000").as_str()),
            "{range}"
        );
        assert_eq!(response.body, data[start..=end], "{range}");
    }
    // A syntactically invalid range is ignored.
    let response = client.request("GET", "/a.bin", &[("Range", "bytes=5-3")]);
    assert_eq!((response.status, response.body.len()), (200, 1000));
}

#[test]
fn unsatisfiable_range_is_416() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000));
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let response = get(&server, "/a.bin", &[("Range", range)]);
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(response.header("content-range"), Some("bytes */1000"));
        assert!(response.body.is_empty());
    }
}

#[test]
fn if_range() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    let etag = server.etag("/a.bin").unwrap();
    let modified = server.last_modified("/a.bin").unwrap();

    let stale = get(
        &server,
        "/a.bin",
        &[("Range", "bytes=500-"), ("If-Range", "\"v0\"")],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, data);
    assert!(stale.header("content-range").is_none());

    for validator in [etag.as_str(), modified.as_str()] {
        let fresh = get(
            &server,
            "/a.bin",
            &[("Range", "bytes=500-"), ("If-Range", validator)],
        );
        assert_eq!(fresh.status, 206, "{validator}");
        assert_eq!(fresh.body, data[500..]);
    }
    // A weak version of the right ETag never matches.
    let weak = get(
        &server,
        "/a.bin",
        &[("Range", "bytes=500-"), ("If-Range", &format!("W/{etag}"))],
    );
    assert_eq!(weak.status, 200);
}

#[test]
fn without_validators() {
    let server = TestServer::start();
    server.put_file_without_validators("/n.bin", content(100));
    let response = get(&server, "/n.bin", &[("Range", "bytes=10-")]);
    assert_eq!(response.status, 206);
    assert!(response.header("etag").is_none());
    assert!(response.header("last-modified").is_none());
    // Nothing can match an If-Range.
    let response = get(
        &server,
        "/n.bin",
        &[("Range", "bytes=10-"), ("If-Range", "\"v1\"")],
    );
    assert_eq!(response.status, 200);
    // ReplaceWith keeps the path without validators.
    server.push_faults("/n.bin", [Fault::ReplaceWith(vec![1, 2, 3])]);
    let response = get(&server, "/n.bin", &[]);
    assert_eq!(response.body, [1, 2, 3]);
    assert!(response.header("etag").is_none());
}

#[test]
fn drop_after_closes_after_n_bytes() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    server.push_faults("/a.bin", [Fault::DropAfter(10), Fault::DropAfter(20)]);

    let mut client = Client::connect(&server);
    client.send("GET", "/a.bin", &[]);
    let head = client.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert_eq!(client.read_to_end(), data[..10]);

    // DropAfter honours Range: the bytes are those of the requested range.
    let mut client = Client::connect(&server);
    client.send("GET", "/a.bin", &[("Range", "bytes=100-")]);
    let head = client.read_head();
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-range"), Some("bytes 100-999/1000"));
    assert_eq!(client.read_to_end(), data[100..120]);

    // The queue is used up: normal again.
    assert_eq!(get(&server, "/a.bin", &[]).body, data);
    assert_eq!(server.body_bytes_sent("/a.bin"), 10 + 20 + 1000);
}

#[test]
fn status_with_retry_after() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(10));
    server.push_faults(
        "/a.bin",
        [
            Fault::Status {
                code: 503,
                retry_after: Some(7),
            },
            Fault::Status {
                code: 500,
                retry_after: None,
            },
        ],
    );
    let mut client = Client::connect(&server);
    let response = client.request("GET", "/a.bin", &[]);
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("7"));
    // The connection survives a status fault.
    let response = client.request("GET", "/a.bin", &[]);
    assert_eq!(response.status, 500);
    assert!(response.header("retry-after").is_none());
    assert_eq!(client.request("GET", "/a.bin", &[]).status, 200);
    // Status applies even to a path without content.
    server.push_faults(
        "/nothing",
        [Fault::Status {
            code: 429,
            retry_after: Some(1),
        }],
    );
    assert_eq!(client.request("GET", "/nothing", &[]).status, 429);
    assert_eq!(client.request("GET", "/nothing", &[]).status, 404);
    assert_eq!(server.body_bytes_sent("/a.bin"), 10);
}

#[test]
fn replace_with_changes_etag_and_content() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000));
    let first = get(&server, "/a.bin", &[]);
    let old_etag = first.header("etag").unwrap().to_owned();

    server.push_faults("/a.bin", [Fault::Normal, Fault::ReplaceWith(vec![9; 300])]);
    let normal = get(&server, "/a.bin", &[]);
    assert_eq!(normal.header("etag"), Some(old_etag.as_str()));
    let replaced = get(
        &server,
        "/a.bin",
        &[("Range", "bytes=500-"), ("If-Range", &old_etag)],
    );
    // The replacement happens before serving, so the stale If-Range no longer matches.
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body, vec![9; 300]);
    let new_etag = replaced.header("etag").unwrap();
    assert_ne!(new_etag, old_etag);
    assert_ne!(
        replaced.header("last-modified"),
        first.header("last-modified")
    );
    assert_eq!(server.etag("/a.bin").as_deref(), Some(new_etag));

    // put_file also makes a new version.
    server.put_file("/a.bin", vec![9; 300]);
    assert_ne!(server.etag("/a.bin").as_deref(), Some(new_etag));
}

#[test]
fn ignore_range_and_default_fault() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    server.push_faults("/a.bin", [Fault::IgnoreRange]);
    let response = get(&server, "/a.bin", &[("Range", "bytes=100-")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, data);
    assert_eq!(
        get(&server, "/a.bin", &[("Range", "bytes=100-")]).status,
        206
    );

    server.set_default_fault("a.bin", Some(Fault::IgnoreRange));
    for _ in 0..2 {
        assert_eq!(
            get(&server, "/a.bin", &[("Range", "bytes=100-")]).status,
            200
        );
    }
    // A queued fault takes precedence over the default.
    server.push_faults("/a.bin", [Fault::Normal]);
    assert_eq!(
        get(&server, "/a.bin", &[("Range", "bytes=100-")]).status,
        206
    );
    assert_eq!(
        get(&server, "/a.bin", &[("Range", "bytes=100-")]).status,
        200
    );
    server.set_default_fault("/a.bin", None);
    assert_eq!(
        get(&server, "/a.bin", &[("Range", "bytes=100-")]).status,
        206
    );
}

#[test]
fn wrong_content_range() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    server.push_faults(
        "/a.bin",
        [
            Fault::WrongContentRange { delta: -10 },
            Fault::WrongContentRange { delta: 5 },
        ],
    );
    let response = get(&server, "/a.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range"), Some("bytes 90-189/1000"));
    assert_eq!(response.body, data[100..200]);
    let response = get(&server, "/a.bin", &[("Range", "bytes=100-")]);
    assert_eq!(
        response.header("content-range"),
        Some("bytes 105-1004/1000")
    );
    assert_eq!(response.body, data[100..]);
}

#[test]
fn requests_are_recorded_with_range_starts() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000));
    let before = Instant::now();
    let mut client = Client::connect(&server);
    client.request("GET", "/a.bin", &[("Range", "bytes=0-")]);
    client.request("GET", "/a.bin?x=1", &[("Range", "bytes=500-599")]);
    client.request("HEAD", "/a.bin", &[]);
    client.request("GET", "/other", &[]);
    client.request("GET", "/a.bin", &[("Range", "bytes=-5")]);
    client.request("GET", "/a.bin", &[("Range", "bytes=2000-")]);

    let all = server.requests();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|pair| pair[0].at <= pair[1].at));
    assert!(all[0].at >= before);
    let paths: Vec<_> = all.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/a.bin", "/a.bin", "/a.bin", "/other", "/a.bin", "/a.bin"]
    );
    assert_eq!(all[1].target, "/a.bin?x=1");

    let for_a = server.requests_for("/a.bin");
    let starts: Vec<_> = for_a.iter().map(|r| r.range_start()).collect();
    assert_eq!(starts, [Some(0), Some(500), None, None, Some(2000)]);
    let statuses: Vec<_> = for_a.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [206, 206, 200, 206, 416]);
    assert_eq!(for_a[2].method, "HEAD");
    assert_eq!(for_a[0].range.as_deref(), Some("bytes=0-"));
    assert_eq!(for_a[0].header("host"), Some("test"));
    assert!(for_a[0].if_range.is_none());
    assert_eq!(server.requests_for("/other")[0].status, 404);

    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[test]
fn stall_keeps_connection_silent_then_closes() {
    let server = TestServer::start();
    let data = content(1000);
    server.put_file("/a.bin", data.clone());
    let stall = Duration::from_millis(300);
    server.push_faults("/a.bin", [Fault::Stall { after: 5, stall }]);
    let mut client = Client::connect(&server);
    let started = Instant::now();
    client.send("GET", "/a.bin", &[]);
    assert_eq!(client.read_head().header("content-length"), Some("1000"));
    assert_eq!(client.read_to_end(), data[..5]);
    assert!(started.elapsed() >= stall - Duration::from_millis(20));
}

#[test]
fn slow_does_not_block_other_connections() {
    let server = TestServer::start();
    let data = content(4000);
    server.put_file("/slow.bin", data.clone());
    server.put_file("/fast.bin", content(10));
    server.set_default_fault(
        "/slow.bin",
        Some(Fault::Slow {
            bytes_per_sec: 10_000,
        }),
    );
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let started = Instant::now();
            let response = get(&server, "/slow.bin", &[]);
            (response, started.elapsed())
        });
        // Wait until the slow transfer is under way, then check a fast request is not held up.
        while server.requests_for("/slow.bin").is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        assert_eq!(get(&server, "/fast.bin", &[]).status, 200);
        let fast_elapsed = started.elapsed();
        let (response, slow_elapsed) = slow.join().unwrap();
        assert_eq!(response.body, data);
        // 4000 bytes at 10 kB/s: ~0.35 s or more (the first chunk leaves at once).
        assert!(
            slow_elapsed >= Duration::from_millis(300),
            "{slow_elapsed:?}"
        );
        assert!(fast_elapsed < slow_elapsed / 2, "{fast_elapsed:?}");
    });
}

#[test]
fn keep_alive_pipelining_bodies_and_connection_close() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(100));
    let mut client = Client::connect(&server);
    // Two pipelined requests, the first with a body that must be skipped.
    client.send_raw(
        b"GET /a.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /a.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=90-\r\n\r\n",
    );
    assert_eq!(client.read_response(false).status, 200);
    assert_eq!(client.read_response(false).status, 206);
    // Connection: close is honoured and announced.
    let response = client.request("GET", "/a.bin", &[("Connection", "close")]);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.read_to_end().is_empty());
    // HTTP/1.0 without keep-alive closes too.
    let mut client = Client::connect(&server);
    client.send_raw(b"GET /a.bin HTTP/1.0\r\n\r\n");
    assert_eq!(client.read_response(false).status, 200);
    assert!(client.read_to_end().is_empty());
    // Garbage gets a 400; other methods a 405.
    let mut client = Client::connect(&server);
    client.send_raw(b"NOT HTTP\r\n\r\n");
    assert_eq!(client.read_response(false).status, 400);
    assert_eq!(get(&server, "/a.bin", &[]).status, 200);
    let response = Client::connect(&server).request("POST", "/a.bin", &[("Content-Length", "0")]);
    assert_eq!(response.status, 405);
}

#[test]
fn drop_stops_the_server() {
    let server = TestServer::start();
    let addr = server.addr();
    server.put_file("/a.bin", content(10));
    let mut idle = Client::connect(&server);
    assert_eq!(idle.request("GET", "/a.bin", &[]).status, 200);
    drop(server);
    assert!(TcpStream::connect(addr).is_err());
    // The open keep-alive connection was closed too.
    assert!(idle.read_to_end().is_empty());
}

#[test]
fn server_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TestServer>();
}

/// The server has its own runtime, so it can be used (and dropped) inside an async test.
#[tokio::test]
async fn works_from_async_tests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start();
    server.put_file("/a.bin", b"hello".to_vec());
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /a.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello"), "{text}");
}

/// The TLS mode: https URLs, a certificate valid for both `127.0.0.1` (IP SAN) and `localhost`
/// under the server's own CA, and the same HTTP behaviour (ranges, HEAD, keep-alive) as plain.
#[test]
fn tls_serves_the_same_http_to_a_client_trusting_its_ca() {
    let server = TestServer::start_tls();
    assert!(server.is_tls());
    assert_eq!(
        server.url("/a.bin"),
        format!("https://127.0.0.1:{}/a.bin", server.addr().port())
    );
    let pem = server.ca_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(CertificateDer::pem_slice_iter(pem.as_bytes()).count(), 1);

    let data = content(200_000);
    server.put_file("/a.bin", data.clone());
    for name in ["127.0.0.1", "localhost"] {
        let mut client = tls_connect(&server, roots(&pem), name).unwrap();
        // Several requests on one connection: every response is flushed out of the TLS buffer
        // before the server waits for the next request.
        let response = client.request("GET", "/a.bin", &[]);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, data);
        let response = client.request("GET", "/a.bin", &[("Range", "bytes=150000-")]);
        assert_eq!(response.status, 206);
        assert_eq!(response.body, data[150_000..]);
        let response = client.request("HEAD", "/a.bin", &[]);
        assert_eq!(response.header("content-length"), Some("200000"));
        assert!(response.header("etag").is_some());
    }
    // The name must still match: the certificate is not for other names.
    let error = tls_connect(&server, roots(&pem), "example.com")
        .err()
        .expect("a certificate for another name must be rejected");
    assert!(error.to_string().contains("not valid for name"), "{error}");
    assert_eq!(server.body_bytes_sent("/a.bin"), 2 * (200_000 + 50_000));
}

/// Faults apply over TLS exactly as over plain HTTP, counted in plaintext body bytes.
#[test]
fn tls_faults_drop_after_stall_and_slow() {
    let server = TestServer::start_tls();
    let data = content(100_000);
    server.put_file("/a.bin", data.clone());
    let stall = Duration::from_millis(300);
    server.push_faults(
        "/a.bin",
        [
            Fault::DropAfter(40_000),
            Fault::Stall { after: 5, stall },
            Fault::Slow {
                bytes_per_sec: 200_000,
            },
        ],
    );

    let mut client = Client::connect(&server);
    client.send("GET", "/a.bin", &[("Range", "bytes=1000-")]);
    let head = client.read_head();
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-length"), Some("99000"));
    // Cut short after exactly 40 000 bytes (then close_notify and FIN: a clean TLS end).
    assert_eq!(client.read_to_end(), data[1000..41_000]);
    assert_eq!(server.body_bytes_sent("/a.bin"), 40_000);

    let mut client = Client::connect(&server);
    let started = Instant::now();
    client.send("GET", "/a.bin", &[]);
    assert_eq!(client.read_head().header("content-length"), Some("100000"));
    assert_eq!(client.read_to_end(), data[..5]);
    assert!(started.elapsed() >= stall - Duration::from_millis(20));

    // 100 kB at 200 kB/s: about half a second, not one burst.
    let started = Instant::now();
    assert_eq!(get(&server, "/a.bin", &[]).body, data);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert_eq!(server.body_bytes_sent("/a.bin"), 40_000 + 5 + 100_000);
}

/// A client that does not trust the server's CA fails the handshake with an unknown-issuer
/// error, whether it trusts nothing or another server's CA; the server records no request and
/// keeps serving trusting clients.
#[test]
fn tls_client_without_the_ca_fails_the_handshake() {
    let server = TestServer::start_tls();
    let other = TestServer::start_tls();
    assert_ne!(
        server.ca_pem(),
        other.ca_pem(),
        "each server has its own CA"
    );
    server.put_file("/a.bin", content(10));
    for untrusted in [RootCertStore::empty(), roots(&other.ca_pem())] {
        let error = tls_connect(&server, untrusted, "127.0.0.1")
            .err()
            .expect("an unknown CA must be rejected");
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    }
    assert!(server.requests().is_empty());
    assert_eq!(get(&server, "/a.bin", &[]).status, 200);
    // A plain-HTTP client gets nothing HTTP from a TLS server.
    let mut plain = tcp_connect(&server);
    plain
        .write_all(b"GET /a.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

#[test]
fn write_ca_pem_writes_the_ca_for_ssl_cert_file() {
    let server = TestServer::start_tls();
    let dir = std::env::temp_dir().join(format!(
        "bits-test-support-ca-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = server.write_ca_pem(&dir);
    assert_eq!(path.parent(), Some(dir.as_path()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), server.ca_pem());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[should_panic(expected = "plain HTTP server")]
fn ca_pem_of_a_plain_server_panics() {
    let server = TestServer::start();
    assert!(!server.is_tls());
    let _ = server.ca_pem();
}
