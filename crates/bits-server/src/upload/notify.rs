//! The back-end client: telling a server application about a completed
//! upload (upload-reply, `BITSServerNotificationType` 1 and 2; `[MC-BUP]`
//! 2.2.12, 2.2.13 and 3.3).
//!
//! One `POST` to the notification URL per completed upload, over a fresh
//! HTTP/1.1 connection (hyper's low-level client; the back end is usually on
//! the same host, and a connection pool would only keep sockets open between
//! rare uploads):
//!
//! * **by value** ([`NotifyKind::File`], type 2): the uploaded file is the
//!   request body; the reply is the response body, stored as the session's
//!   `reply` file;
//! * **by reference** ([`NotifyKind::Location`], type 1): an empty request
//!   whose `BITS-Request-DataFile-Name` and `BITS-Response-DataFile-Name`
//!   are the paths of the session's `data` and `reply` files; the
//!   application reads the one and writes the other.
//!
//! Both carry `BITS-Original-Request-URL` (the URL the client uploaded to).
//! The query string of the upload URL is appended to the notification URL,
//! as IIS does. The application may answer `BITS-Static-Response-URL` (the
//! reply is elsewhere; nothing is stored) and `BITS-Copy-File-To-Destination`
//! (also store the upload under its name; without it the upload is only
//! handed to the application, as IIS does).
//!
//! Failures are the application's (context `0x7`): its own error status is
//! passed on with `BG_E_HTTP_ERROR_nnn`; an application that cannot be
//! reached is 502 with WinHTTP's "cannot connect"; one that does not answer
//! within [`NOTIFY_TIMEOUT`] is 408 with WinHTTP's "timeout" (`[MC-BUP]`
//! 3.3.6 asks for 408).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bits_upload_proto::{codes, header};
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ack::Failure;
use super::store::sync_dir;
use super::{NotifyKind, MAX_URL_LEN};
use crate::body::{BufferPool, FileBody, ResponseBody};

/// How long the application may take to answer (and, for the reply, to
/// send each piece of its body): `[MC-BUP]`'s 5-minute timers, which BITS
/// 2.0 and later also use.
pub(crate) const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long connecting to the application may take before it counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated notification target.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    kind: NotifyKind,
    /// `host:port` as given (for `Host`).
    authority: String,
    /// Where to connect.
    host: String,
    port: u16,
    /// Path and query of the notification URL.
    path_and_query: String,
}

/// What the application answered.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `BITS-Static-Response-URL`: the reply is there, not in our `reply`
    /// file.
    pub(crate) static_url: Option<String>,
    /// `BITS-Copy-File-To-Destination` was present.
    pub(crate) copy: bool,
}

/// One notification's inputs.
#[derive(Debug)]
pub(crate) struct Notification<'a> {
    /// `BITS-Original-Request-URL`.
    pub(crate) original_url: &'a str,
    /// Query string of the upload URL, appended to the notification URL.
    pub(crate) upload_query: Option<&'a str>,
    /// The complete upload.
    pub(crate) data: &'a Path,
    /// Where the reply is to be stored.
    pub(crate) reply: &'a Path,
    /// Read buffers for streaming `data`.
    pub(crate) pool: &'a Arc<BufferPool>,
}

impl Notifier {
    /// Checks a notification URL: absolute `http://host[:port]/path`, at
    /// most 2,200 characters (IIS' limit; HTTPS is not supported there
    /// either).
    pub(crate) fn new(url: &str, kind: NotifyKind) -> Result<Self, &'static str> {
        if url.len() > MAX_URL_LEN {
            return Err("longer than 2200 characters");
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or("must be an absolute http:// URL")?;
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("must name a host (and no user)");
        }
        if path_and_query.contains('#') || !path_and_query.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("path must be plain ASCII without blanks or fragment");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => (
                host,
                port.parse::<u16>().map_err(|_| "port is not a number")?,
            ),
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        {
            return Err("host is not a host name or address");
        }
        Ok(Self {
            kind,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    /// Posts one completed upload and stores the reply.
    pub(crate) async fn notify(&self, n: Notification<'_>) -> Result<Outcome, Failure> {
        let stream = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(app = %self.authority, error = %e, "cannot reach the server application");
                return Err(unreachable());
            }
            Err(_) => {
                tracing::warn!(app = %self.authority, "connecting to the server application timed out");
                return Err(timed_out());
            }
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                tracing::warn!(app = %self.authority, error = %e, "HTTP handshake with the server application failed");
                unreachable()
            })?;
        // Drives the connection; ends with the exchange (or when dropped).
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "server application connection ended with an error");
            }
        });
        let result = self.exchange(&mut sender, n).await;
        drop(sender);
        driver.abort();
        result
    }

    /// Sends the request and handles the answer, on an open connection.
    async fn exchange(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<ResponseBody>,
        n: Notification<'_>,
    ) -> Result<Outcome, Failure> {
        let (body, length) = match self.kind {
            NotifyKind::File => {
                let data = n.data.to_path_buf();
                let pool = Arc::clone(n.pool);
                let opened = tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&data)?;
                    let len = file.metadata()?.len();
                    Ok::<_, std::io::Error>((file, len))
                })
                .await
                .map_err(|e| {
                    Failure::io(
                        "reading the upload for the application",
                        &std::io::Error::other(e),
                    )
                })?
                .map_err(|e| Failure::io("reading the upload for the application", &e))?;
                let (file, len) = opened;
                (ResponseBody::File(FileBody::new(file, 0, len, pool)), len)
            }
            NotifyKind::Location => (ResponseBody::Empty, 0),
        };
        let uri = match n.upload_query {
            Some(query) if !query.is_empty() => {
                let sep = if self.path_and_query.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}{query}", self.path_and_query)
            }
            _ => self.path_and_query.clone(),
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(HOST, &self.authority)
            .header(
                USER_AGENT,
                concat!("bits-server/", env!("CARGO_PKG_VERSION")),
            )
            .header(CONTENT_LENGTH, length)
            .body(body)
            .map_err(|e| Failure::io("building the notification", &std::io::Error::other(e)))?;
        let headers = request.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            // `HeaderName::from_bytes` lower-cases; inserting the `&str`
            // directly would panic on the upper-case protocol spellings.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        };
        set(header::ORIGINAL_REQUEST_URL, n.original_url);
        if self.kind == NotifyKind::Location {
            set(header::REQUEST_DATAFILE_NAME, &n.data.to_string_lossy());
            set(header::RESPONSE_DATAFILE_NAME, &n.reply.to_string_lossy());
        }

        let response = match tokio::time::timeout(NOTIFY_TIMEOUT, sender.send_request(request))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tracing::warn!(app = %self.authority, error = %e, "the server application did not answer");
                return Err(unreachable());
            }
            Err(_) => return Err(timed_out()),
        };
        let status = response.status();
        if !status.is_success() {
            tracing::info!(app = %self.authority, %status, "the server application refused the upload");
            return Err(Failure::application(
                status,
                codes::http_error(status.as_u16()),
            ));
        }
        let text = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        };
        let static_url = text(header::STATIC_RESPONSE_URL).filter(|u| !u.is_empty());
        let copy = response
            .headers()
            .contains_key(header::COPY_FILE_TO_DESTINATION);
        if let Some(url) = &static_url {
            if url.len() > MAX_URL_LEN || HeaderValue::from_str(url).is_err() {
                // [MC-BUP] 2.2.1.2: a reply URL over 2,200 characters is 400.
                return Err(Failure::application(
                    StatusCode::BAD_REQUEST,
                    codes::E_INVALIDARG,
                ));
            }
        }
        match (self.kind, &static_url) {
            (NotifyKind::File, None) => store_reply(response.into_body(), n.reply).await?,
            (NotifyKind::Location, None) => ensure_reply(n.reply).await?,
            (_, Some(_)) => {}
        }
        Ok(Outcome { static_url, copy })
    }
}

/// 502, context 7: the application cannot be reached.
fn unreachable() -> Failure {
    Failure::application(StatusCode::BAD_GATEWAY, codes::ERROR_WINHTTP_CANNOT_CONNECT)
}

/// 408, context 7: the application is too slow.
fn timed_out() -> Failure {
    Failure::application(StatusCode::REQUEST_TIMEOUT, codes::ERROR_WINHTTP_TIMEOUT)
}

/// Streams a by-value reply into `reply` (via `reply.tmp`, fsynced, renamed:
/// a half-received reply is never served).
async fn store_reply(mut body: hyper::body::Incoming, reply: &Path) -> Result<(), Failure> {
    let tmp = reply.with_extension("tmp");
    let storing = |e: &std::io::Error| Failure::io("storing the application's reply", e);
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| storing(&e))?;
    loop {
        let frame = match tokio::time::timeout(NOTIFY_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "reading the server application's reply failed");
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(unreachable());
            }
            Err(_) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(timed_out());
            }
        };
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(|e| storing(&e))?;
        }
    }
    file.sync_all().await.map_err(|e| storing(&e))?;
    drop(file);
    tokio::fs::rename(&tmp, reply)
        .await
        .map_err(|e| storing(&e))?;
    let dir = reply.parent().unwrap_or(Path::new("/")).to_path_buf();
    tokio::task::spawn_blocking(move || sync_dir(&dir))
        .await
        .map_err(|e| storing(&std::io::Error::other(e)))?
        .map_err(|e| storing(&e))
}

/// By reference, the application writes the reply itself; if it wrote
/// nothing, the reply is empty (and still downloadable).
async fn ensure_reply(reply: &Path) -> Result<(), Failure> {
    match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(reply)
        .await
    {
        Ok(file) => file
            .sync_all()
            .await
            .map_err(|e| Failure::io("creating an empty reply", &e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Failure::io("creating an empty reply", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_http_urls_only() {
        let n = Notifier::new("http://127.0.0.1:8081/app/reply?x=1", NotifyKind::File).expect("ok");
        assert_eq!((n.host.as_str(), n.port), ("127.0.0.1", 8081));
        assert_eq!(n.path_and_query, "/app/reply?x=1");
        assert_eq!(n.authority, "127.0.0.1:8081");
        let n = Notifier::new("http://backend", NotifyKind::Location).expect("ok");
        assert_eq!(
            (n.host.as_str(), n.port, n.path_and_query.as_str()),
            ("backend", 80, "/")
        );
        let n = Notifier::new("http://[::1]:9/x", NotifyKind::File).expect("ipv6");
        assert_eq!((n.host.as_str(), n.port), ("::1", 9));
        for bad in [
            "https://backend/x",
            "/relative",
            "http://",
            "http://user@host/",
            "http://host:port/",
            "http://host/a b",
            "http://host/#frag",
        ] {
            assert!(Notifier::new(bad, NotifyKind::File).is_err(), "{bad}");
        }
        let long = format!("http://h/{}", "a".repeat(2200));
        assert!(Notifier::new(&long, NotifyKind::File).is_err());
    }
}
