//! The accept loop and per-connection request handling.
//!
//! Each connection is its own tokio task, so a throttled or stalled response never delays
//! another connection. Decisions (which fault applies, what to answer) are taken under the state
//! lock in one short critical section; all I/O happens after it is released.
//!
//! The request handling is generic over the connection ([`Conn`]): a plain `TcpStream` or a
//! server-side TLS stream over one, so every fault behaves the same over HTTP and HTTPS.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::http::{self, RangeOutcome, RequestHead};
use crate::{lock, Fault, FileEntry, RecordedRequest, Shared, State, Validators};

/// Body bytes handed to the socket per write at full speed; bounds how far `body_bytes_sent`
/// can run ahead of the bytes actually accepted (see `write_counted`).
const WRITE_CHUNK: usize = 64 * 1024;

/// A connection the server can talk HTTP over: plain TCP or TLS over TCP.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Accepts connections until `shutdown` fires (or its sender is dropped). With an `acceptor`
/// every connection is TLS.
pub(crate) async fn run(
    listener: std::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Shared,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("bits-test-support: register listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Small writes (headers, a DropAfter prefix) should leave immediately, not
                    // wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    match &acceptor {
                        None => {
                            tokio::spawn(handle_connection(stream, state));
                        }
                        Some(acceptor) => {
                            // The handshake runs in the connection's task, so a slow or failing
                            // client never holds up the accept loop. A failed handshake (e.g. the
                            // client does not trust our CA) just ends the connection.
                            let handshake = acceptor.accept(stream);
                            tokio::spawn(async move {
                                if let Ok(stream) = handshake.await {
                                    handle_connection(stream, state).await;
                                }
                            });
                        }
                    }
                }
                // Transient accept errors (e.g. EMFILE while a test opens many sockets) must not
                // kill the server; back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Why reading the next request failed.
enum ReadError {
    /// Socket error or EOF in the middle of a head: just drop the connection.
    Io,
    /// Unparseable head: answer 400 and close.
    Malformed(&'static str),
}

async fn handle_connection(mut stream: impl Conn, state: Shared) {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let head = match read_head(&mut stream, &mut buf).await {
            Ok(Some(head)) => head,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Malformed(why)) => {
                let _ = write_simple(&mut stream, 400, why).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        // Skip any request body so the next head starts where we expect (GET/HEAD bodies are
        // meaningless, but a client may still send one).
        let body_len = match head.content_length() {
            Ok(length) => length,
            Err(why) => {
                let _ = write_simple(&mut stream, 400, why).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        if discard(&mut stream, &mut buf, body_len).await.is_err() {
            return;
        }
        let keep_alive = match serve(&mut stream, &state, &head).await {
            Ok(keep_alive) => keep_alive,
            Err(_) => return,
        };
        if !keep_alive {
            // FIN after everything written so far; see `Fault::DropAfter` for why not RST. Over
            // TLS, `shutdown` first flushes buffered records and sends close_notify.
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads the next request head. `Ok(None)` means the client closed the connection cleanly
/// between requests.
async fn read_head(
    stream: &mut impl Conn,
    buf: &mut BytesMut,
) -> Result<Option<RequestHead>, ReadError> {
    loop {
        let empty_lines = http::leading_empty_lines(buf);
        buf.advance(empty_lines);
        if let Some(end) = http::find_head_end(buf) {
            let received_at = std::time::Instant::now();
            let raw = buf.split_to(end);
            return http::parse_head(&raw, received_at)
                .map(Some)
                .map_err(ReadError::Malformed);
        }
        if buf.len() > http::MAX_HEAD_BYTES {
            return Err(ReadError::Malformed("request head too large"));
        }
        match stream.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(ReadError::Io),
            Ok(_) => {}
        }
    }
}

/// Reads and drops `remaining` request-body bytes, starting with what is already buffered.
async fn discard(stream: &mut impl Conn, buf: &mut BytesMut, mut remaining: u64) -> io::Result<()> {
    while remaining > 0 {
        if buf.is_empty() && stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = remaining.min(buf.len() as u64) as usize;
        buf.advance(take);
        remaining -= take as u64;
    }
    Ok(())
}

/// How the body of a response is delivered.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    Full,
    NoAnswer,
    TrickleHeaders { every: Duration },
    DropAfter(u64),
    Stall { after: u64, stall: Duration },
    Slow { bytes_per_sec: u64 },
}

/// A fully decided response.
struct Plan {
    status: u16,
    /// Headers other than Server/Content-Length/Connection, which `write_head` adds (and Date,
    /// unless given here).
    headers: Vec<(&'static str, String)>,
    /// The complete body a correct client should receive (its length is the Content-Length).
    body: Bytes,
    /// Whether body bytes are file content, counted in `body_bytes_sent`.
    counts: bool,
    delivery: Delivery,
}

impl Plan {
    fn text(status: u16, text: String) -> Plan {
        let body = if http::status_has_no_body(status) {
            Bytes::new()
        } else {
            Bytes::from(text)
        };
        Plan {
            status,
            headers: vec![("Content-Type", "text/plain".to_owned())],
            body,
            counts: false,
            delivery: Delivery::Full,
        }
    }
}

/// Handles one request; returns whether the connection may be reused.
async fn serve(stream: &mut impl Conn, state: &Shared, head: &RequestHead) -> io::Result<bool> {
    let is_head = head.method == "HEAD";
    let plan = {
        let mut state = lock(state);
        let challenge = (is_head || head.method == "GET")
            .then(|| state.challenge(head))
            .flatten();
        let plan = if let Some(plan) = challenge {
            plan
        } else if is_head || head.method == "GET" {
            let fault = state.next_fault(&head.path);
            if let Fault::ReplaceWith(content) = &fault {
                // Keep the path's validator mode; a path that never existed gets validators.
                let validators = state
                    .files
                    .get(&head.path)
                    .map_or(Validators::Strong, |file| file.validators);
                state.put(head.path.clone(), content.clone(), validators);
            }
            let file = serving(&state, head);
            plan_response(head, file, &fault)
        } else {
            let mut plan = Plan::text(405, "only GET and HEAD are supported\n".to_owned());
            plan.headers.push(("Allow", "GET, HEAD".to_owned()));
            plan
        };
        // Recorded together with the decision so `requests()` order matches fault consumption.
        state.requests.push(RecordedRequest {
            method: head.method.clone(),
            path: head.path.clone(),
            range: head.header("range").map(str::to_owned),
            if_range: head.header("if-range").map(str::to_owned),
            headers: head.headers.clone(),
            at: head.received_at,
            status: plan.status,
            target: head.target.clone(),
        });
        plan
    };

    // We cannot find the next request after a chunked body we did not decode.
    let close_requested = head.wants_close() || head.has_transfer_encoding();
    match &plan.delivery {
        Delivery::NoAnswer => {
            // Silent until the server stops (its runtime drop closes the connection).
            std::future::pending::<()>().await;
            return Ok(false);
        }
        Delivery::TrickleHeaders { every } => {
            let mut head_bytes = Vec::new();
            head_text(&plan, close_requested, &mut head_bytes);
            for b in head_bytes {
                stream.write_all(&[b]).await?;
                stream.flush().await?;
                tokio::time::sleep(*every).await;
            }
        }
        _ => write_head(stream, &plan, close_requested).await?,
    }

    let body: &[u8] = if is_head { &[] } else { &plan.body };
    let counter = plan.counts.then_some((state, head.path.as_str()));
    let keep_alive = match plan.delivery {
        Delivery::Full | Delivery::NoAnswer | Delivery::TrickleHeaders { .. } => {
            send(stream, body, counter).await?;
            !close_requested
        }
        Delivery::Slow { bytes_per_sec } => {
            send_slowly(stream, body, bytes_per_sec.max(1), counter).await?;
            !close_requested
        }
        Delivery::DropAfter(n) => {
            send(stream, prefix(body, n), counter).await?;
            false
        }
        Delivery::Stall { after, stall } => {
            send(stream, prefix(body, after), counter).await?;
            stream.flush().await?;
            tokio::time::sleep(stall).await;
            false
        }
    };
    // A TLS stream may still hold the end of the response in its record buffer (a plain socket
    // holds nothing; this is a no-op there). It must leave before we wait for the next request.
    stream.flush().await?;
    Ok(keep_alive)
}

impl State {
    /// The 401 for a request without valid credentials on a server that demands them; `None`
    /// lets the request through.
    fn challenge(&mut self, head: &RequestHead) -> Option<Plan> {
        let auth = self.auth.clone()?;
        let given = head.header("authorization");
        if given.is_some_and(|a| auth.accepts(a, &head.method, &head.target, &self.nonces)) {
            return None;
        }
        // A Digest answer with a nonce we retired: tell the client it is only stale.
        let stale = given.is_some_and(|a| {
            self.expired_nonces
                .iter()
                .any(|n| a.contains(&format!("nonce=\"{n}\"")))
        });
        self.nonce_counter += 1;
        let nonce = format!("n{}x{}", self.nonce_counter, self.requests.len());
        self.nonces.push(nonce.clone());
        let mut plan = Plan::text(401, "401 Unauthorized\n".to_owned());
        for mut value in auth.challenges(&nonce) {
            if stale && value.starts_with("Digest") {
                value.push_str(", stale=true");
            }
            plan.headers.push(("WWW-Authenticate", value));
        }
        Some(plan)
    }
}

/// The version a request is served from: the current one, or, on a path served with stale
/// mirrors, the old version its `If-Range` names.
fn serving<'s>(state: &'s State, head: &RequestHead) -> Option<&'s FileEntry> {
    let current = state.files.get(&head.path);
    if !state.stale.contains(&head.path) {
        return current;
    }
    let (Some(_), Some(if_range)) = (head.header("range"), head.header("if-range")) else {
        return current;
    };
    if current.is_some_and(|f| f.if_range_matches(if_range)) {
        return current;
    }
    state
        .history
        .get(&head.path)
        .and_then(|old| old.iter().rev().find(|f| f.if_range_matches(if_range)))
        .or(current)
}

/// Decides status, headers and body for a GET/HEAD under the given fault.
fn plan_response(head: &RequestHead, file: Option<&FileEntry>, fault: &Fault) -> Plan {
    if let Fault::Status { code, retry_after } = fault {
        let mut plan = Plan::text(*code, format!("{code} {}\n", http::reason_phrase(*code)));
        if let Some(seconds) = retry_after {
            plan.headers.push(("Retry-After", seconds.to_string()));
        }
        return plan;
    }
    if let Fault::Redirect { status, location } = fault {
        let mut plan = Plan::text(*status, format!("see {location}\n"));
        plan.headers.push(("Location", location.clone()));
        return plan;
    }
    let Some(file) = file else {
        return Plan::text(404, format!("no such file: {}\n", head.path));
    };

    let delivery = match fault {
        Fault::DropAfter(n) => Delivery::DropAfter(*n),
        Fault::Stall { after, stall } => Delivery::Stall {
            after: *after,
            stall: *stall,
        },
        Fault::Slow { bytes_per_sec } => Delivery::Slow {
            bytes_per_sec: *bytes_per_sec,
        },
        Fault::NoAnswer => Delivery::NoAnswer,
        Fault::TrickleHeaders { every } => Delivery::TrickleHeaders { every: *every },
        _ => Delivery::Full,
    };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
    ];
    if let Some(etag) = &file.etag {
        headers.push(("ETag", etag.clone()));
    }
    if let Some(last_modified) = &file.last_modified {
        headers.push(("Last-Modified", last_modified.clone()));
        if file.validators == crate::Validators::RecentDate {
            // Served "in the same second" as the change, however long after the put the
            // request comes (a loaded machine took more than a second and made it proof).
            headers.push(("Date", last_modified.clone()));
        }
    }
    if let Fault::Coded(coding) = fault {
        headers.push(("Content-Encoding", coding.clone()));
    }

    let size = file.content.len() as u64;
    // RFC 9110 §13.1.5: a failed If-Range means "ignore Range"; it is evaluated before Range,
    // so a stale client gets 200 even when its range would be unsatisfiable.
    let range = match (fault, head.header("range")) {
        (Fault::IgnoreRange, _) | (_, None) => None,
        (_, Some(range)) => match head.header("if-range") {
            Some(validator) if !file.if_range_matches(validator) => None,
            _ => Some(http::evaluate_range(range, size)),
        },
    };
    match range {
        None | Some(RangeOutcome::Ignore) => Plan {
            status: 200,
            headers,
            body: file.content.clone(),
            counts: true,
            delivery,
        },
        Some(RangeOutcome::Unsatisfiable) => {
            headers.push(("Content-Range", format!("bytes */{size}")));
            Plan {
                status: 416,
                headers,
                body: Bytes::new(),
                counts: false,
                delivery: Delivery::Full,
            }
        }
        Some(RangeOutcome::Satisfiable { start, end }) => {
            let (shown_start, shown_end) = match fault {
                Fault::WrongContentRange { delta } => (shift(start, *delta), shift(end, *delta)),
                _ => (start, end),
            };
            headers.push((
                "Content-Range",
                format!("bytes {shown_start}-{shown_end}/{size}"),
            ));
            Plan {
                status: 206,
                headers,
                body: file.content.slice(start as usize..=end as usize),
                counts: true,
                delivery,
            }
        }
    }
}

fn shift(value: u64, delta: i64) -> u64 {
    (i128::from(value) + i128::from(delta)).clamp(0, i128::from(u64::MAX)) as u64
}

fn prefix(body: &[u8], n: u64) -> &[u8] {
    &body[..body.len().min(usize::try_from(n).unwrap_or(usize::MAX))]
}

async fn write_head(stream: &mut impl Conn, plan: &Plan, close: bool) -> io::Result<()> {
    let mut head = Vec::new();
    head_text(plan, close, &mut head);
    stream.write_all(&head).await
}

/// The response head's bytes.
fn head_text(plan: &Plan, close: bool, out: &mut Vec<u8>) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nServer: bits-test-support\r\n",
        plan.status,
        http::reason_phrase(plan.status),
    );
    if !plan.headers.iter().any(|(name, _)| *name == "Date") {
        head.push_str(&format!("Date: {}\r\n", crate::http_date_now()));
    }
    for (name, value) in &plan.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // RFC 9110 §8.6: no Content-Length on 1xx/204. For HEAD it is the length a GET would have.
    if !(100..200).contains(&plan.status) && plan.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", plan.body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// A complete response outside the normal flow (malformed requests); always closes.
async fn write_simple(stream: &mut impl Conn, status: u16, text: &str) -> io::Result<()> {
    let plan = Plan::text(status, format!("{text}\n"));
    write_head(stream, &plan, true).await?;
    stream.write_all(&plan.body).await
}

/// Adjusts the per-path content counter by `delta` bytes.
fn count(counter: Option<(&Shared, &str)>, delta: i64) {
    if let Some((state, path)) = counter {
        let mut state = lock(state);
        let total = state.body_bytes.entry(path.to_owned()).or_default();
        *total = total.saturating_add_signed(delta);
    }
}

/// Writes `bytes` completely, keeping the content counter exact from the client's viewpoint.
///
/// Bytes are counted *before* each write and the unaccepted part is uncounted afterwards: a
/// client that has received a byte must already see it in `body_bytes_sent` (counting after
/// the write raced with fast test clients). The price is that, while a write is blocked on a
/// full socket buffer, the counter may be ahead by at most that one pending write.
async fn write_counted(
    stream: &mut impl Conn,
    mut bytes: &[u8],
    counter: Option<(&Shared, &str)>,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let pending = bytes.len() as i64;
        count(counter, pending);
        match stream.write(bytes).await {
            Ok(0) => {
                count(counter, -pending);
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(written) => {
                count(counter, -((bytes.len() - written) as i64));
                bytes = &bytes[written..];
            }
            Err(error) => {
                count(counter, -pending);
                return Err(error);
            }
        }
    }
    Ok(())
}

async fn send(
    stream: &mut impl Conn,
    body: &[u8],
    counter: Option<(&Shared, &str)>,
) -> io::Result<()> {
    for chunk in body.chunks(WRITE_CHUNK) {
        write_counted(stream, chunk, counter).await?;
    }
    Ok(())
}

/// Sends `body` at about `bytes_per_sec`, in chunks of ~1/20 s worth of data. Sleeping until
/// each chunk's scheduled time (instead of a fixed sleep per chunk) keeps the average rate
/// right even when writes themselves take time.
async fn send_slowly(
    stream: &mut impl Conn,
    body: &[u8],
    bytes_per_sec: u64,
    counter: Option<(&Shared, &str)>,
) -> io::Result<()> {
    let chunk_len = usize::try_from(bytes_per_sec / 20)
        .unwrap_or(usize::MAX)
        .clamp(1, 16 * 1024);
    let started = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    for chunk in body.chunks(chunk_len) {
        write_counted(stream, chunk, counter).await?;
        // Over TLS the chunk could otherwise wait in the record buffer, bunching the output.
        stream.flush().await?;
        sent += chunk.len() as u64;
        if sent < body.len() as u64 {
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_sec as f64);
            tokio::time::sleep_until(started + due).await;
        }
    }
    Ok(())
}
