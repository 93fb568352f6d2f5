//! The upload engine: sends one local file to a BITS upload server with the
//! BITS Upload Protocol ("BITS 1.5 Upload Protocol", method `BITS_POST`),
//! and for upload-reply jobs fetches the server application's reply.
//!
//! One upload is one server *session*: Create-Session, then Fragments in
//! order, then Close-Session once every byte is acknowledged (Cancel-Session
//! when the job is removed, see [`Engine::cancel_upload`]). The packet
//! vocabulary comes from `bits-upload-proto`, shared with the server.
//!
//! The promises, in order of importance:
//!
//! 1. **Never send a mix of two versions of the file.** The local file's
//!    size and modification time (nanoseconds) are recorded before the first
//!    byte is sent ([`UploadProgress::session`]) and checked again after
//!    every fragment is read from disk and before it is sent; any difference
//!    is a fatal `BG_E_LOCAL_FILE_CHANGED` (BITS' BG_E_FILE_CHANGED), as in
//!    BITS: the server holds bytes of the old version, so the job cannot
//!    honestly continue.
//! 2. **Never resend what the server acknowledged.** The resume point is the
//!    server's own `BITS-Received-Content-Range`, reported through
//!    [`UploadProgress::acknowledged`] as soon as it arrives. After a cut
//!    connection or a daemon restart the same session continues from there;
//!    only a server that lost the session (BG_E_SESSION_NOT_FOUND) costs a
//!    new session from byte 0.
//! 3. **Always end.** A server that does not speak BITS, refuses the upload
//!    or breaks the protocol is a fatal error with a sentence that says so;
//!    only network trouble, 5xx/408/429 and a reply not produced yet are
//!    transient. Loops that could spin (a session lost on every packet, a
//!    416 that never moves) are bounded.
//!
//! Packets go over the engine's shared `reqwest` client, so consecutive
//! fragments reuse one kept-alive connection. A packet whose connection
//! closes before any answer is sent again at once, twice at most (see
//! [`Engine::exchange`]); a connection that stays broken ends the call with
//! a transient error, and the daemon's retry resumes from the last
//! acknowledgement. Fragment bodies are read with `pread` on tokio's
//! blocking pool, one fragment at a time: memory use is one fragment,
//! whatever the file's size. See [`DEFAULT_UPLOAD_FRAGMENT`] for the size.
//!
//! An empty file cannot be uploaded: a Fragment's `Content-Range` holds at
//! least one byte, so it is refused up front ([`TransferError::EmptyUpload`]).
//!
//! **Host affinity.** A server in a web farm may answer Create-Session with
//! `BITS-Host-Id` (the one machine holding the session) and
//! `BITS-Host-Id-Fallback-Timeout`. Every later packet of the session goes
//! to the job's URL with its host (and port, if given) replaced by that host.
//! `host_fallback_at` is Create-Session time plus the timeout. Until then a
//! failure to connect to the host is an ordinary transient error (the machine
//! may be rebooting and the session is still there); once it has passed, a
//! failure to connect means the machine is gone: the session is dropped and
//! a new one is created at the job's URL (its bytes are lost with the
//! machine). Without a fallback timeout the host is used for ever.

use crate::engine::{content_length, join_error, request_error, retry_after};
use crate::engine::{Engine, FileTransfer, Progress};
use crate::error::{is_transient_status, redact, status_reason, NetFailure, TransferError};
use crate::pace::{probe_target, Pacer};
use bits_core::{ByteRange, FileValidator, UploadSession};
use bits_upload_proto::{self as proto, Ack, FragmentRange, Request};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

/// Default bytes per Fragment packet: 4 MiB.
///
/// The protocol allows one outstanding packet at a time, so every fragment
/// costs one round trip of idle link on top of its transfer time, while a
/// connection cut mid-fragment costs resending the fragment (the server
/// acknowledges whole fragments). 4 MiB balances the two: at 100 Mbit/s it
/// takes ~0.34 s, so a 20 ms round trip wastes ~6%; at 1 Mbit/s a cut
/// resends at most ~34 s of work. It also stays far below common server
/// request-size limits (IIS allows 30,000,000 bytes by default) and keeps
/// one buffer per running upload cheap.
pub const DEFAULT_UPLOAD_FRAGMENT: u64 = 4 << 20;

/// How long to wait for the Ack of a *final* fragment once its bytes are
/// sent: the server may first hand the file to its application and wait for
/// the reply, and BITS gives applications five minutes to answer.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(300);

/// Sessions one `upload` call may create before giving up: a server that
/// loses every session it creates would otherwise be asked for ever.
const MAX_SESSIONS_PER_CALL: u32 = 3;

/// Answers in a row that do not move the resume point forward (a 416 naming
/// the same offset, an Ack for fewer bytes than before) before the server is
/// declared broken rather than asked the same question again.
const MAX_STUCK: u32 = 3;

/// Slice of a fragment handed to the HTTP connection at a time; the watchdog
/// sees progress whenever the connection asks for the next one.
const BODY_CHUNK: usize = 64 << 10;

/// Immediate resends of a packet whose connection closed before any answer
/// (see [`Engine::exchange`]); two, since every kept-alive connection to a
/// restarted server fails this way once.
const PACKET_RETRIES: u32 = 2;

/// Response bodies up to this size are read to the end so the connection can
/// be reused (Acks are empty); larger ones (an HTML error page) are dropped
/// with their connection.
const MAX_DRAIN: u64 = 64 << 10;

/// One upload to make.
#[derive(Debug, Clone)]
pub struct UploadTransfer<'a> {
    /// The local file to send.
    pub local: &'a Path,
    /// The job's remote URL (http or https).
    pub url: &'a str,
    /// Size and mtime of the local file when the upload began; default (all
    /// None) the first time: the engine fills it in through
    /// [`UploadProgress::session`] before sending any byte.
    pub validator: &'a FileValidator,
    /// The server session so far (default: none yet).
    pub session: &'a UploadSession,
    /// Bytes the server has acknowledged so far (resume point).
    pub acknowledged: u64,
    /// Upload-reply jobs: where to write the reply (the daemon gives a
    /// temporary path; the engine writes it whole).
    pub reply_to: Option<&'a Path>,
    /// For a background job: paces the fragments' bytes to the bandwidth
    /// nobody else uses (see [`Pacer`]). `None`: as fast as the path allows.
    pub pace: Option<Arc<Pacer>>,
}

/// Receives upload progress; the daemon persists what it is told. Called
/// from the transfer task; must be quick.
pub trait UploadProgress: Send {
    /// The session (new or changed), the local file's validator and total
    /// size: persist before fragments are sent. A new session is followed
    /// by `acknowledged(0)`.
    fn session(&mut self, session: &UploadSession, validator: &FileValidator, total: u64);
    /// The server has acknowledged `bytes` (durable on the server): persist
    /// as the resume point.
    fn acknowledged(&mut self, bytes: u64);
}

/// A finished upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The file's size (every byte is on the server).
    pub bytes: u64,
    /// Upload-reply jobs: the size of the reply written to `reply_to`.
    pub reply_bytes: Option<u64>,
}

impl Engine {
    /// Uploads `t.local` to `t.url`, continuing `t.session` from
    /// `t.acknowledged`; for upload-reply jobs then writes the reply to
    /// `t.reply_to`, and closes the session.
    ///
    /// Every change of session or validator is reported through
    /// [`UploadProgress::session`] before a byte depends on it, every
    /// acknowledgement through [`UploadProgress::acknowledged`], so a failed
    /// or cancelled call can be repeated with what was reported. Errors made
    /// after the server acknowledged bytes in this call say so through
    /// [`TransferError::made_progress`].
    pub async fn upload(
        &self,
        t: UploadTransfer<'_>,
        progress: &mut dyn UploadProgress,
        cancel: &CancellationToken,
    ) -> Result<UploadOutcome, TransferError> {
        let url = parse_upload_url(t.url)?;
        let mut run = Run {
            engine: self,
            shown: redact(&url),
            url,
            local: t.local,
            reply_to: t.reply_to,
            progress,
            cancel,
            validator: FileValidator::default(),
            total: 0,
            gained: 0,
            pace: t.pace.clone(),
        };
        // Round trips to the server are measured while the upload runs; our
        // own handshakes wait behind the bytes queued on the way out.
        let _probe = match &t.pace {
            Some(pacer) => probe_target(&run.url).await.map(|addr| pacer.probe(addr)),
            None => None,
        };
        match run.run(&t).await {
            Err(e) if run.gained > 0 && !matches!(e, TransferError::Cancelled) => {
                Err(TransferError::AfterProgress {
                    acknowledged: run.gained,
                    inner: Box::new(e),
                })
            }
            r => r,
        }
    }

    /// Best effort Cancel-Session for a removed job, sent where the session
    /// lives (its host id, if any). Any answer from the server counts as
    /// done; only failing to get one is returned (the daemon just logs it).
    pub async fn cancel_upload(
        &self,
        url: &str,
        session: &UploadSession,
    ) -> Result<(), TransferError> {
        let Some(id) = &session.id else {
            return Ok(());
        };
        let url = parse_upload_url(url)?;
        let target = session_target(&url, session);
        let packet = Request::CancelSession {
            session_id: id.clone(),
        };
        let never = CancellationToken::new();
        let answer = self
            .exchange(&target, &packet, None, self.config.read_timeout, &never)
            .await?;
        debug!(url = %answer.shown, status = answer.status, "Cancel-Session answered");
        Ok(())
    }

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
    async fn exchange(
        &self,
        target: &Url,
        packet: &Request,
        body: Option<Payload>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Answer, TransferError> {
        let mut retries = 0;
        loop {
            match self
                .exchange_once(target, packet, body.clone(), wait, cancel)
                .await
            {
                Err(TransferError::NoResponse {
                    url,
                    kind: NetFailure::Reset,
                    source,
                }) if retries < PACKET_RETRIES => {
                    retries += 1;
                    debug!(url = %url, error = %source, retries, "the connection closed before the answer; sending the packet again");
                }
                r => return r,
            }
        }
    }

    /// One attempt of [`Engine::exchange`]. Fails with
    /// [`TransferError::UploadStalled`] when the connection takes none of
    /// the body for the read timeout, or no answer comes within `wait` after
    /// the body is sent.
    async fn exchange_once(
        &self,
        target: &Url,
        packet: &Request,
        body: Option<Payload>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Answer, TransferError> {
        let shown = redact(target);
        let method = reqwest::Method::from_bytes(proto::METHOD.as_bytes())
            .expect("BITS_POST is a valid method token");
        let mut headers = HeaderMap::new();
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
        let mut request = self.client.request(method, target.clone()).headers(headers);
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
                r = &mut send => break r.map_err(|e| request_error(&shown, e))?,
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

/// The state of one `upload` call.
struct Run<'a> {
    engine: &'a Engine,
    /// The job's URL, and the same for messages.
    url: Url,
    shown: String,
    local: &'a Path,
    reply_to: Option<&'a Path>,
    progress: &'a mut dyn UploadProgress,
    cancel: &'a CancellationToken,
    /// The local file's version being sent.
    validator: FileValidator,
    total: u64,
    /// Bytes the server acknowledged during this call.
    gained: u64,
    /// The background pace of the fragments, if any.
    pace: Option<Arc<Pacer>>,
}

/// What a Fragment's answer means for the loop.
enum Next {
    /// Continue from this offset (the server's BITS-Received-Content-Range).
    At(u64),
    /// The server no longer knows the session: start a new one.
    SessionLost(TransferError),
}

// The async methods take `&mut self` even when they only read: `Run` holds a
// `&mut dyn UploadProgress`, which is `Send` but not `Sync`, so only a unique
// borrow of `Run` may live across an await in a `Send` future.
impl Run<'_> {
    async fn run(&mut self, t: &UploadTransfer<'_>) -> Result<UploadOutcome, TransferError> {
        let (file, meta) = open_local(self.local).await?;
        let file = Arc::new(file);
        let current = validator_of(&meta);
        self.total = meta.len();
        let mut session = t.session.clone();
        let mut offset = t.acknowledged;
        let known = t.validator.size.is_some()
            || t.validator.last_modified.is_some()
            || t.validator.etag.is_some();
        // Whether `progress.session` must hear of the session or validator.
        let mut report = !known;
        if known {
            if *t.validator != current {
                return Err(self.changed());
            }
        } else if session.id.is_some() || offset > 0 {
            // Bytes on the server without a record of which version they
            // came from cannot be vouched for: start over.
            info!(path = %self.local.display(), "upload session without a file validator; starting a new session");
            session = UploadSession::default();
            offset = 0;
        }
        self.validator = current;
        if offset > self.total {
            warn!(path = %self.local.display(), offset, total = self.total,
                "resume point past the end of the file; starting a new session");
            session = UploadSession::default();
            offset = 0;
        }
        if self.total == 0 {
            // A Fragment's Content-Range cannot describe zero bytes.
            return Err(TransferError::EmptyUpload {
                path: self.local.to_path_buf(),
            });
        }

        let fragment = self.engine.config.upload_fragment.max(1);
        let mut sessions = 0u32;
        // Why the previous session was abandoned in this call.
        let mut abandoned: Option<TransferError> = None;
        let mut stuck = 0u32;
        // Whether the session came from an earlier call and no answer to a
        // fragment has been seen yet (see `fragment_answer`).
        let mut inherited = session.id.is_some();
        loop {
            if self.cancel.is_cancelled() {
                return Err(TransferError::Cancelled);
            }
            if session.id.is_none() {
                if let Some(why) = abandoned
                    .take()
                    .filter(|_| sessions >= MAX_SESSIONS_PER_CALL)
                {
                    return Err(why);
                }
                sessions += 1;
                session = self.create_session().await?;
                // Persist the new session, then its resume point, so that a
                // crash now resumes the new session from 0 rather than
                // from the old session's offset.
                self.progress.session(&session, &self.validator, self.total);
                self.progress.acknowledged(0);
                offset = 0;
                report = false;
                inherited = false;
            }
            if report {
                self.progress.session(&session, &self.validator, self.total);
                report = false;
            }
            let (first, len) = if offset < self.total {
                (offset, fragment.min(self.total - offset))
            } else if self.reply_to.is_some() && session.reply_url.is_none() {
                // Every byte is on the server but its reply URL was not seen
                // (not produced yet, or lost with a crash before it was
                // persisted). The last byte again is a complete final
                // Fragment, which the server answers with the reply URL; it
                // costs one byte, since an overlapping range only writes new
                // bytes.
                (self.total - 1, 1)
            } else {
                break;
            };
            let data = self.read_fragment(&file, first, len).await?;
            let target = session_target(&self.url, &session);
            let last = first + len == self.total;
            let packet = Request::Fragment {
                session_id: session.id.clone().expect("a session exists by now"),
                range: FragmentRange {
                    first,
                    last: first + len - 1,
                    total: self.total,
                },
                // Informational (the URL names the remote file); BITS
                // sends it with the first fragment only.
                content_name: (first == 0).then(|| file_name(self.local)),
                content_length: len,
            };
            let wait = if last {
                FINAL_ACK_WAIT
            } else {
                self.engine.config.read_timeout
            };
            debug!(url = %self.shown, first, len, total = self.total, "sending a fragment");
            let answer = match self
                .engine
                .exchange(
                    &target,
                    &packet,
                    Some(Payload {
                        data,
                        pace: self.pace.clone(),
                    }),
                    wait,
                    self.cancel,
                )
                .await
            {
                Ok(a) => a,
                Err(e @ TransferError::Connect { .. }) if past_fallback(&session) => {
                    info!(host = ?session.host_id, job_url = %self.shown,
                        "the session's host is unreachable past its fallback timeout; starting a new session at the job's URL");
                    abandoned = Some(e);
                    session = UploadSession::default();
                    continue;
                }
                Err(e) => return Err(e),
            };
            let next = match self.fragment_answer(&answer, first, len, inherited)? {
                Next::At(n) => {
                    inherited = false;
                    n
                }
                Next::SessionLost(err) => {
                    info!(url = %self.shown, "the server lost the upload session; starting a new one");
                    abandoned = Some(err);
                    session = UploadSession::default();
                    continue;
                }
            };
            if next > offset {
                self.gained += next - offset;
                stuck = 0;
            } else if offset < self.total {
                stuck += 1;
                if stuck >= MAX_STUCK {
                    return Err(TransferError::UploadProtocol {
                        url: answer.shown,
                        detail: format!(
                            "it keeps answering that it expects byte {next} without accepting more"
                        ),
                    });
                }
            }
            if next != offset {
                offset = next;
                self.progress.acknowledged(offset);
            }
            if offset == self.total && last && self.reply_to.is_some() {
                match Ack::parse(header_text(&answer.headers)) {
                    Ok(Ack {
                        reply_url: Some(reply),
                        ..
                    }) => {
                        session.reply_url = Some(self.reply_url(&target, &reply)?);
                        self.progress.session(&session, &self.validator, self.total);
                    }
                    _ => {
                        return Err(TransferError::ReplyPending {
                            url: self.shown.clone(),
                        })
                    }
                }
            }
        }

        let mut reply_bytes = None;
        if let (Some(to), Some(reply)) = (self.reply_to, &session.reply_url) {
            reply_bytes = Some(self.fetch_reply(reply, to).await?);
        }
        self.close_session(&session).await;
        Ok(UploadOutcome {
            bytes: self.total,
            reply_bytes,
        })
    }

    /// Create-Session at the job's URL; returns the new session.
    async fn create_session(&mut self) -> Result<UploadSession, TransferError> {
        let packet = Request::CreateSession {
            protocols: vec![proto::PROTOCOL_GUID.to_string()],
        };
        let answer = self
            .engine
            .exchange(
                &self.url,
                &packet,
                None,
                self.engine.config.read_timeout,
                self.cancel,
            )
            .await?;
        let ack = match Ack::parse(header_text(&answer.headers)) {
            Ok(ack) => ack,
            Err(_) if !is_ack(&answer.headers) => return Err(not_bits(&answer)),
            Err(e) => return Err(answer.protocol_error(format!("unreadable Ack: {e}"))),
        };
        if !answer.ok() {
            // An error page without BITS-Error-Code, even with the packet
            // type, says nothing BITS-specific: judge it by its status.
            return Err(match ack.error {
                Some(_) => answer.failure(&ack),
                None => not_bits(&answer),
            });
        }
        // Success must be a real Ack (as Windows insists): a static server
        // or a CMS page may answer any method with 200.
        if !is_ack(&answer.headers) {
            return Err(not_bits(&answer));
        }
        let chosen = ack.protocol.as_deref().unwrap_or("");
        // The one we offered (GUIDs compare case-insensitively, braces
        // optional).
        if proto::choose_protocol(&[chosen]).is_none() {
            return Err(answer.protocol_error(if chosen.is_empty() {
                "its Create-Session Ack names no BITS-Protocol".to_string()
            } else {
                format!(
                    "it chose protocol {chosen}, not BITS 1.5 ({})",
                    proto::PROTOCOL_GUID
                )
            }));
        }
        let Some(id) = ack.session_id.clone().filter(|s| !s.trim().is_empty()) else {
            return Err(answer
                .protocol_error("its Create-Session Ack carries no BITS-Session-Id".to_string()));
        };
        let host_id = ack.host_id.clone().filter(|h| {
            let usable = with_host(&self.url, h).is_some();
            if !usable {
                warn!(host_id = %h, "ignoring a BITS-Host-Id that is not a host name");
            }
            usable
        });
        let host_fallback_at = host_id.as_ref().and_then(|_| {
            ack.host_id_fallback_timeout
                .and_then(|secs| SystemTime::now().checked_add(Duration::from_secs(secs)))
        });
        info!(url = %self.shown, session = %id, host_id = ?host_id, "upload session created");
        Ok(UploadSession {
            id: Some(id),
            host_id,
            host_fallback_at,
            reply_url: None,
        })
    }

    /// Interprets the answer to the Fragment `[first, first + len)`.
    ///
    /// An Ack for more than was sent is refused, except (`inherited`) for
    /// the first answer in a session carried over from an earlier call: the
    /// server may then truly hold more than the persisted resume point (an
    /// Ack lost to a cut, or received but not yet persisted before a crash),
    /// and everything in the session came from this client and the same
    /// version of the file, which was checked on entry.
    fn fragment_answer(
        &self,
        answer: &Answer,
        first: u64,
        len: u64,
        inherited: bool,
    ) -> Result<Next, TransferError> {
        let ack = match Ack::parse(header_text(&answer.headers)) {
            Ok(_) if answer.ok() && !is_ack(&answer.headers) => {
                return Err(answer.protocol_error(format!(
                    "it answered a Fragment with HTTP {}{} but no BITS Ack",
                    answer.status,
                    status_reason(answer.status)
                )))
            }
            Ok(ack) => ack,
            Err(e) if is_ack(&answer.headers) || answer.ok() => {
                return Err(answer.protocol_error(format!("unreadable Ack: {e}")))
            }
            // Not an Ack (a proxy's error page): judge it by its status.
            Err(_) => return Err(answer.http_error()),
        };
        let session_lost = ack.error.as_ref().is_some_and(|e| e.is_session_not_found());
        if session_lost && !answer.ok() {
            return Ok(Next::SessionLost(answer.failure(&ack)));
        }
        let received = |what: &str| {
            let n = ack.received_content_range.ok_or_else(|| {
                answer.protocol_error(format!("its {what} carries no BITS-Received-Content-Range"))
            })?;
            if n > self.total {
                return Err(answer.protocol_error(format!(
                    "it acknowledged {n} bytes of a {}-byte file",
                    self.total
                )));
            }
            Ok(n)
        };
        match answer.status {
            // Not contiguous with what the server holds: it says where to go.
            416 => Ok(Next::At(received("416 Ack")?)),
            _ if answer.ok() => {
                let n = received("Fragment Ack")?;
                if n > first + len && !inherited {
                    return Err(answer.protocol_error(format!(
                        "it acknowledged {n} bytes, but only {} were sent",
                        first + len
                    )));
                }
                // Fewer than sent: the server kept less; resend from there.
                Ok(Next::At(n))
            }
            _ => Err(answer.failure(&ack)),
        }
    }

    /// Reads `[at, at + len)` of the local file on the blocking pool, then
    /// checks (by path, so a replaced file counts too) that the file is still
    /// the version being sent: a write before or during the read changes its
    /// mtime or size.
    async fn read_fragment(
        &mut self,
        file: &Arc<File>,
        at: u64,
        len: u64,
    ) -> Result<Bytes, TransferError> {
        let f = Arc::clone(file);
        let path = self.local.to_path_buf();
        let len = usize::try_from(len).expect("a fragment fits in memory");
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, at)?;
            let meta = std::fs::metadata(&path)?;
            Ok::<_, io::Error>((buf, meta))
        });
        let result = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(TransferError::Cancelled),
            r = read => r.unwrap_or_else(|e| Err(join_error(e))),
        };
        match result {
            Ok((buf, meta)) if validator_of(&meta) == self.validator => Ok(Bytes::from(buf)),
            Ok(_) => Err(self.changed()),
            // Shorter than when the upload began.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.changed()),
            Err(source) => Err(TransferError::UploadRead {
                path: self.local.to_path_buf(),
                source,
            }),
        }
    }

    fn changed(&self) -> TransferError {
        TransferError::LocalFileChanged {
            path: self.local.to_path_buf(),
        }
    }

    /// The reply URL of a final Ack, absolute (resolved against the URL the
    /// fragment went to) and without credentials (it is persisted; they are
    /// put back when it is fetched). Only http(s): a server must not make
    /// the daemon copy a local file (`file:`) into the reply.
    fn reply_url(&self, target: &Url, reply: &str) -> Result<String, TransferError> {
        let resolved = target
            .join(reply.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        match resolved {
            Some(u) => Ok(redact(&u)),
            None => Err(TransferError::UploadProtocol {
                url: self.shown.clone(),
                detail: format!("its reply URL {reply:?} is not an http or https URL"),
            }),
        }
    }

    /// Downloads the reply whole into `to` with the download engine (a
    /// validated GET from byte 0; checkpoints are not needed since the reply
    /// is fetched again if this fails).
    async fn fetch_reply(&mut self, reply: &str, to: &Path) -> Result<u64, TransferError> {
        let mut url = Url::parse(reply).map_err(|_| TransferError::UploadProtocol {
            url: self.shown.clone(),
            detail: format!("its reply URL {reply:?} is not a URL"),
        })?;
        // The job's credentials apply to the reply when it lives on the same
        // server (as a relative reply URL does).
        if url.origin() == self.url.origin() && url.username().is_empty() {
            let _ = url.set_username(self.url.username());
            let _ = url.set_password(self.url.password());
        }
        let none = FileValidator::default();
        let file = FileTransfer {
            remote: url.as_str(),
            temp: to,
            offset: 0,
            validator: &none,
            sync_on_finish: true,
            missing: &[],
            connections: 1,
            pace: None,
        };
        let out = self.engine.download(file, &mut Quiet, self.cancel).await?;
        info!(url = %self.shown, bytes = out.bytes, "upload reply received");
        Ok(out.bytes)
    }

    /// Close-Session after a complete upload. The server already has every
    /// byte (and has stored or handed on the file at the last fragment), so a
    /// failure here only leaves the session to the server's clean-up: it is
    /// logged, not returned.
    async fn close_session(&mut self, session: &UploadSession) {
        let Some(id) = &session.id else { return };
        let packet = Request::CloseSession {
            session_id: id.clone(),
        };
        let target = session_target(&self.url, session);
        let read_timeout = self.engine.config.read_timeout;
        match self
            .engine
            .exchange(&target, &packet, None, read_timeout, self.cancel)
            .await
        {
            Ok(a) if a.ok() => debug!(url = %a.shown, "upload session closed"),
            Ok(a) => {
                warn!(url = %a.shown, status = a.status, "Close-Session was refused; the server will clean up the session")
            }
            Err(e) => {
                warn!(url = %self.shown, error = %e, "Close-Session failed; the server will clean up the session")
            }
        }
    }
}

/// A response to a packet: status and headers (the body was drained).
struct Answer {
    status: u16,
    headers: HeaderMap,
    /// The URL it came from, credentials removed.
    shown: String,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn protocol_error(&self, detail: String) -> TransferError {
        TransferError::UploadProtocol {
            url: self.shown.clone(),
            detail,
        }
    }

    fn http_error(&self) -> TransferError {
        TransferError::HttpStatus {
            url: self.shown.clone(),
            status: self.status,
            retry_after: retry_after(&self.headers),
        }
    }

    /// A failed Ack: its BITS-Error-Code if it has one, else its status.
    fn failure(&self, ack: &Ack) -> TransferError {
        match &ack.error {
            Some(e) => TransferError::UploadRefused {
                url: self.shown.clone(),
                status: self.status,
                code: e.code,
                context: e.context,
                retry_after: retry_after(&self.headers),
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
fn header_text(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Whether a response says it is an Ack (`BITS-Packet-Type: Ack`).
/// [`Ack::parse`] tolerates its absence; success answers must have it.
fn is_ack(headers: &HeaderMap) -> bool {
    header_text(headers)(proto::header::PACKET_TYPE)
        .and_then(|t| proto::PacketType::parse(&t))
        .is_some_and(|t| t == proto::PacketType::Ack)
}

/// The error for an answer to Create-Session that is not an Ack: a server
/// (or a proxy in front of it) without BITS upload support. Only statuses
/// that may pass (5xx other than 501, 408, 429) stay transient.
fn not_bits(answer: &Answer) -> TransferError {
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
    if content_length(response.headers()).is_some_and(|n| n > MAX_DRAIN) {
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

/// Where the session's packets go: the job's URL, with the host replaced by
/// the session's BITS-Host-Id if it has one.
fn session_target(url: &Url, session: &UploadSession) -> Url {
    session
        .host_id
        .as_deref()
        .and_then(|h| with_host(url, h))
        .unwrap_or_else(|| url.clone())
}

/// Whether the session's host affinity has passed its fallback time.
fn past_fallback(session: &UploadSession) -> bool {
    session.host_id.is_some()
        && session
            .host_fallback_at
            .is_some_and(|at| SystemTime::now() >= at)
}

/// `url` with its host replaced by `host_id` (`host`, `host:port`,
/// `[v6]:port`, with or without an `http://` prefix). Without a port in
/// `host_id` the URL's port is kept (a farm's machines listen where the
/// farm does). `None` if `host_id` is not a plain host.
fn with_host(url: &Url, host_id: &str) -> Option<Url> {
    let mut h = host_id.trim();
    for prefix in ["http://", "https://"] {
        if h.len() >= prefix.len() && h[..prefix.len()].eq_ignore_ascii_case(prefix) {
            h = &h[prefix.len()..];
        }
    }
    let h = h.trim_end_matches('/');
    if h.is_empty() || h.contains(['/', '@', '?', '#']) {
        return None;
    }
    // A scheme without a default port, so an explicit ":80" is kept.
    let probe = Url::parse(&format!("bits-host://{h}/")).ok()?;
    let mut out = url.clone();
    out.set_host(Some(probe.host_str()?)).ok()?;
    if let Some(port) = probe.port() {
        out.set_port(Some(port)).ok()?;
    }
    Some(out)
}

fn parse_upload_url(url: &str) -> Result<Url, TransferError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        Ok(u) => Err(TransferError::InvalidUploadUrl { url: redact(&u) }),
        Err(_) => Err(TransferError::InvalidUploadUrl {
            // Not a URL, so it cannot be redacted by parts: hide anything
            // that may be user info.
            url: match url.rsplit_once('@') {
                Some((_, rest)) => format!("…@{rest}"),
                None => url.to_string(),
            },
        }),
    }
}

/// The local file's name for Content-Name (no directories).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Opens the file to upload and examines it (on the blocking pool).
async fn open_local(path: &Path) -> Result<(File, std::fs::Metadata), TransferError> {
    let p = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let f = File::open(&p)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok((f, meta))
    })
    .await
    .unwrap_or_else(|e| Err(join_error(e)));
    opened.map_err(|source| TransferError::UploadRead {
        path: PathBuf::from(path),
        source,
    })
}

/// The version of a local file: its size and modification time. The time
/// is kept as `seconds.nanoseconds` since the Unix epoch rather than as an
/// HTTP date, whose one-second resolution would miss a rewrite of the same
/// size within the same second.
fn validator_of(meta: &std::fs::Metadata) -> FileValidator {
    let mtime = meta
        .modified()
        .ok()
        .map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
            Err(before) => {
                let d = before.duration();
                format!("-{}.{:09}", d.as_secs(), d.subsec_nanos())
            }
        });
    FileValidator {
        etag: None,
        last_modified: mtime,
        size: Some(meta.len()),
    }
}

/// Ignores the download engine's progress while fetching a reply: the reply
/// is small and fetched whole again if interrupted.
struct Quiet;

impl Progress for Quiet {
    fn connected(&mut self, _: Option<u64>, _: &FileValidator, _: u64, _: &[ByteRange]) {}
    fn progress(&mut self, _: u64) {}
    fn checkpoint(&mut self, _: u64) {}
    fn checkpoint_ranges(&mut self, _: u64, _: &[ByteRange]) {}
}

/// When the connection last took part of a fragment body, and whether it
/// has taken all of it: the stall watchdog of [`Engine::exchange`].
struct Watch(Mutex<(Instant, bool)>);

impl Watch {
    fn new(sent: bool) -> Watch {
        Watch(Mutex::new((Instant::now(), sent)))
    }

    fn get(&self) -> (Instant, bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self, sent: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), sent);
    }
}

/// A fragment's bytes as an HTTP body, handed over in [`BODY_CHUNK`]
/// slices. Each request for the next slice means the connection has taken
/// the previous one (hyper asks only when it can write), which is what the
/// stall watchdog needs and `Vec<u8>` bodies cannot tell.
struct FragmentBody {
    data: Bytes,
    watch: Arc<Watch>,
    /// A background upload's pace, and the pause that pays for the next
    /// slice.
    pace: Option<Arc<Pacer>>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A fragment's bytes and the pace to send them at.
#[derive(Clone)]
struct Payload {
    data: Bytes,
    pace: Option<Arc<Pacer>>,
}

impl http_body::Body for FragmentBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            this.watch.touch(true);
            return Poll::Ready(None);
        }
        let n = this.data.len().min(BODY_CHUNK);
        // A background upload pays for each slice before handing it over:
        // the server has the whole length announced, so nothing may be
        // held back after the last byte.
        if let Some(pacer) = &this.pace {
            if this.pause.is_none() {
                let wait = pacer.take(n);
                if !wait.is_zero() {
                    this.pause = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
            if let Some(pause) = &mut this.pause {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Waiting for the pace is not the connection stalling.
                this.watch.touch(false);
            }
            this.pause = None;
        }
        let chunk = this.data.split_to(n);
        this.watch.touch(this.data.is_empty());
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_replaces_host_and_maybe_port() {
        let url = Url::parse("https://u:p@farm.example:8443/up/a.bin?x=1").unwrap();
        let t = |h: &str| with_host(&url, h).map(|u| u.to_string());
        assert_eq!(
            t("node7").as_deref(),
            Some("https://u:p@node7:8443/up/a.bin?x=1")
        );
        assert_eq!(
            t("node7:9000").as_deref(),
            Some("https://u:p@node7:9000/up/a.bin?x=1")
        );
        assert_eq!(
            t("http://10.0.0.7:80/").as_deref(),
            Some("https://u:p@10.0.0.7:80/up/a.bin?x=1")
        );
        assert_eq!(
            t("[::1]:81").as_deref(),
            Some("https://u:p@[::1]:81/up/a.bin?x=1")
        );
        assert_eq!(t(""), None);
        assert_eq!(t("a/b"), None);
        assert_eq!(t("evil@host"), None);
    }

    #[test]
    fn fallback_only_with_host_and_past_time() {
        let mut s = UploadSession {
            id: Some("s".into()),
            host_id: Some("h".into()),
            host_fallback_at: None,
            reply_url: None,
        };
        assert!(!past_fallback(&s));
        s.host_fallback_at = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(past_fallback(&s));
        s.host_fallback_at = Some(SystemTime::now() + Duration::from_secs(60));
        assert!(!past_fallback(&s));
        s.host_id = None;
        s.host_fallback_at = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(!past_fallback(&s));
    }

    #[test]
    fn upload_urls_must_be_http() {
        assert!(parse_upload_url("http://h/a").is_ok());
        assert!(parse_upload_url("https://h/a").is_ok());
        for bad in ["file:///etc/passwd", "/tmp/a", "ftp://u:pw@h/a", "nonsense"] {
            let e = parse_upload_url(bad).unwrap_err();
            assert!(matches!(e, TransferError::InvalidUploadUrl { .. }), "{bad}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn validator_has_nanosecond_mtime_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"abc").unwrap();
        let v = validator_of(&std::fs::metadata(&p).unwrap());
        assert_eq!(v.size, Some(3));
        let lm = v.last_modified.unwrap();
        let (secs, nanos) = lm.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(nanos.len(), 9);
    }

    #[test]
    fn upload_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        struct P;
        impl UploadProgress for P {
            fn session(&mut self, _: &UploadSession, _: &FileValidator, _: u64) {}
            fn acknowledged(&mut self, _: u64) {}
        }
        let engine = Engine::new(crate::EngineConfig::default()).unwrap();
        let v = FileValidator::default();
        let s = UploadSession::default();
        let mut p = P;
        let cancel = CancellationToken::new();
        let t = UploadTransfer {
            local: Path::new("/nonexistent"),
            url: "http://127.0.0.1:9/",
            validator: &v,
            session: &s,
            acknowledged: 0,
            reply_to: None,
            pace: None,
        };
        let fut = engine.upload(t, &mut p, &cancel);
        assert_send(&fut);
        let fut = engine.cancel_upload("http://127.0.0.1:9/", &s);
        assert_send(&fut);
    }
}
