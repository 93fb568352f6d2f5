//! One BITS packet to the server and its answer: the `BITS_POST` request,
//! the stall watchdog while its body goes out, the bounded wait for the
//! Ack, and what an answer that is not an Ack means.

use super::fragment::{FragmentBody, Payload, Watch};
use crate::auth::{AuthProblem, Authorizer};
use crate::engine::Engine;
use crate::error::{is_transient_status, status_reason, NetFailure, TransferError};
use crate::fetch::MAX_CHALLENGES;
use crate::net::{self, shown};
use crate::route::Route;
use bits_upload_proto::{self as proto, Ack, Request};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use url::Url;

/// Immediate resends of a packet whose connection closed before any answer
/// (see [`Engine::exchange`]); two, since every kept-alive connection to a
/// restarted server fails this way once.
pub(super) const PACKET_RETRIES: u32 = 2;

/// Response bodies up to this size are read to the end so the connection can
/// be reused (Acks are empty); larger ones (an HTML error page) are dropped
/// with their connection.
const MAX_DRAIN: u64 = 64 << 10;

impl Engine {
    /// Sends one packet (with `body` for a Fragment) and returns the answer's
    /// status and headers, retrying at once (up to [`PACKET_RETRIES`] times)
    /// when the connection closed before any answer.
    ///
    /// Why retry here when downloads leave retries to the daemon: such a
    /// failure is most often a kept-alive connection the server closed while
    /// it sat idle in the pool (servers time idle connections out, and a
    /// restarted server closes them all); the request never reached anyone,
    /// and without a retry the job would wait a whole retry delay for
    /// nothing. Repeating a packet is safe in this protocol: a repeated
    /// Fragment only overlaps bytes the server has (it writes only new ones),
    /// a repeated Close or Cancel is answered as the first was, and a
    /// Create-Session whose Ack was lost leaves a session the server's
    /// clean-up removes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn exchange(
        &self,
        route: &Route,
        target: &Url,
        auth: Option<&Authorizer>,
        packet: &Request,
        body: Option<Payload>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Answer, TransferError> {
        let mut retries = 0;
        let mut challenges = 0;
        let mut proxy = 0;
        let auth = auth.filter(|a| a.covers(target));
        loop {
            let sent = auth.and_then(|a| a.header(&bits_post(), target));
            let Some((client, hop)) = route.client(target, proxy).await? else {
                unreachable!(
                    "a route always has a first way, and only moves on while more are left"
                );
            };
            let mut headers = route.headers_for(target);
            if let Some(h) = &sent {
                headers.insert(AUTHORIZATION, h.value.clone());
            }
            let answer = self
                .exchange_once(&client, target, headers, packet, body.clone(), wait, cancel)
                .await;
            if answer.is_ok() {
                route.worked(&hop);
            }
            match answer {
                Err(e) if route.try_next(&hop, target, proxy, &e) => proxy += 1,
                Ok(answer) if answer.status == 407 => {
                    return Err(TransferError::Unauthorized {
                        url: answer.shown,
                        status: 407,
                        problem: AuthProblem::ProxyRefused,
                    })
                }
                Err(TransferError::NoResponse {
                    url,
                    kind: NetFailure::Reset,
                    source,
                }) if retries < PACKET_RETRIES => {
                    retries += 1;
                    debug!(url = %url, error = %source, retries, "the connection closed before the answer; sending the packet again");
                }
                // A challenge from the server the credential is for: answer
                // it and send the packet again (see `auth`).
                Ok(answer) if answer.status == 401 && auth.is_some() => {
                    let auth = auth.expect("checked above");
                    challenges += 1;
                    let problem = match auth.challenged(&answer.headers, sent.as_ref()) {
                        Ok(()) if challenges <= MAX_CHALLENGES => continue,
                        Ok(()) => AuthProblem::Rejected {
                            scheme: auth.scheme_in_use(),
                        },
                        Err(problem) => problem,
                    };
                    return Err(TransferError::Unauthorized {
                        url: answer.shown,
                        status: 401,
                        problem,
                    });
                }
                r => return r,
            }
        }
    }

    /// One attempt of [`Engine::exchange`]. Fails with
    /// [`TransferError::UploadStalled`] when the connection takes none of
    /// the body for the read timeout, or no answer comes within `wait` after
    /// the body is sent.
    #[allow(clippy::too_many_arguments)]
    async fn exchange_once(
        &self,
        client: &reqwest::Client,
        target: &Url,
        mut headers: HeaderMap,
        packet: &Request,
        body: Option<Payload>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Answer, TransferError> {
        let shown = shown(target);
        let method = bits_post();
        for (name, value) in packet.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .expect("the protocol crate names valid headers");
            match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(v) => {
                    headers.insert(name, v);
                }
                // Content-Name is informative; a file name with control
                // characters is simply not announced.
                Err(_)
                    if name
                        .as_str()
                        .eq_ignore_ascii_case(proto::header::CONTENT_NAME) => {}
                Err(_) => {
                    return Err(TransferError::UploadProtocol {
                        url: shown,
                        detail: format!("cannot send header {name} with value {value:?}"),
                    })
                }
            }
        }
        // Servers (IIS among them) want a Content-Length on every BITS_POST,
        // and hyper sends none for an empty body.
        let len = body.as_ref().map_or(0, |b| b.data.len() as u64);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));

        let watch = Arc::new(Watch::new(body.is_none()));
        let mut request = client.request(method, target.clone()).headers(headers);
        if let Some(Payload { data, pace }) = body {
            request = request.body(reqwest::Body::wrap(FragmentBody {
                data,
                watch: watch.clone(),
                pace,
                pause: None,
            }));
        }
        let read_timeout = self.config.read_timeout;
        let send = request.send();
        tokio::pin!(send);
        let response = loop {
            let (at, sent) = watch.get();
            let deadline = at
                + if sent {
                    wait.max(read_timeout)
                } else {
                    read_timeout
                };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(TransferError::Cancelled),
                r = &mut send => break r.map_err(|e| net::request_error(&shown, e))?,
                () = sleep_until(deadline) => {
                    if watch.get() == (at, sent) {
                        let secs = (deadline - at).as_secs_f64().ceil() as u64;
                        return Err(TransferError::UploadStalled { url: shown, secs });
                    }
                }
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        drain(response, read_timeout, cancel).await;
        Ok(Answer {
            status,
            headers,
            shown,
        })
    }
}

/// The protocol's method.
fn bits_post() -> reqwest::Method {
    reqwest::Method::from_bytes(proto::METHOD.as_bytes())
        .expect("BITS_POST is a valid method token")
}

/// A response to a packet: status and headers (the body was drained).
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    /// The URL it came from, credentials removed.
    pub(super) shown: String,
}

impl Answer {
    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(super) fn protocol_error(&self, detail: String) -> TransferError {
        TransferError::UploadProtocol {
            url: self.shown.clone(),
            detail,
        }
    }

    pub(super) fn http_error(&self) -> TransferError {
        TransferError::HttpStatus {
            url: self.shown.clone(),
            status: self.status,
            retry_after: retry_after_of(&self.headers),
        }
    }

    /// A failed Ack: its BITS-Error-Code if it has one, else its status.
    pub(super) fn failure(&self, ack: &Ack) -> TransferError {
        match &ack.error {
            Some(e) => TransferError::UploadRefused {
                url: self.shown.clone(),
                status: self.status,
                code: e.code,
                context: e.context,
                retry_after: retry_after_of(&self.headers),
            },
            None if self.ok() => self.protocol_error(format!(
                "it answered HTTP {} where an error was expected",
                self.status
            )),
            None => self.http_error(),
        }
    }
}

/// A case-insensitive header lookup for [`Ack::parse`].
pub(super) fn header_text(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Whether a response says it is an Ack (`BITS-Packet-Type: Ack`).
/// [`Ack::parse`] tolerates its absence; success answers must have it.
pub(super) fn is_ack(headers: &HeaderMap) -> bool {
    header_text(headers)(proto::header::PACKET_TYPE)
        .and_then(|t| proto::PacketType::parse(&t))
        .is_some_and(|t| t == proto::PacketType::Ack)
}

/// The error for an answer to Create-Session that is not an Ack: a server
/// (or a proxy in front of it) without BITS upload support. Only statuses
/// that may pass (5xx other than 501, 408, 429) stay transient.
pub(super) fn not_bits(answer: &Answer) -> TransferError {
    let status = answer.status;
    let html = answer
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("html"));
    let page = if html { " (an HTML page)" } else { "" };
    let reason = status_reason(status);
    match status {
        400 | 404 | 405 | 501 => TransferError::NotBitsServer {
            url: answer.shown.clone(),
            status,
            detail: format!("HTTP {status}{reason}"),
        },
        s if is_transient_status(s) => answer.http_error(),
        s if s < 400 => TransferError::NotBitsServer {
            url: answer.shown.clone(),
            status,
            detail: format!(
                "it answered BITS_POST with HTTP {status}{reason}{page}, not a BITS Ack"
            ),
        },
        _ => answer.http_error(),
    }
}

/// Reads (and drops) a small response body so its connection goes back to
/// the pool; gives up quietly on anything large, slow or broken.
async fn drain(mut response: reqwest::Response, timeout: Duration, cancel: &CancellationToken) {
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::headers::decimal);
    if length.is_some_and(|n| n > MAX_DRAIN) {
        return;
    }
    let mut read = 0u64;
    let deadline = Instant::now() + timeout;
    while read <= MAX_DRAIN {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            () = sleep_until(deadline) => return,
            chunk = response.chunk() => match chunk {
                Ok(Some(c)) => read += c.len() as u64,
                _ => return,
            },
        }
    }
}

/// An answer's `Retry-After`, relative to now.
fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::headers::retry_after(v, SystemTime::now()))
}
