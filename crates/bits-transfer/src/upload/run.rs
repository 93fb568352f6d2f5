//! One upload: the session (created, continued, or replaced when the
//! server lost it), the fragments in order from the server's resume point,
//! the local file checked for changes before every fragment, and the
//! resume points saved as they come.

use super::api::{UploadOutcome, UploadProgress, UploadTransfer};
use super::exchange::{header_text, is_ack, not_bits, Answer};
use super::fragment::Payload;
use super::session::{parse_upload_url, past_fallback, session_target, with_host};
use crate::auth::Authorizer;
use crate::engine::Engine;
use crate::error::{status_reason, TransferError};
use crate::identity::Identity;
use crate::net::shown;
use crate::pace::Pacer;
use crate::route::{Connection, Route};
use crate::temp_file::join_error;
use crate::version;
use bits_core::{Credential, FileValidator, UploadSession};
use bits_upload_proto::{self as proto, Ack, FragmentRange, Request};
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

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
        let auth = Authorizer::new(t.credential, &url);
        let route = Route::new(self, &t.connection, &url, t.identity)?;
        let mut run = Run {
            engine: self,
            shown: shown(&url),
            url,
            local: t.local,
            identity: t.identity,
            reply_to: t.reply_to,
            progress,
            cancel,
            credential: t.credential,
            connection: t.connection,
            auth,
            route,
            validator: FileValidator::default(),
            total: 0,
            gained: 0,
            unsaved: None,
            pace: t.pace.clone(),
        };
        // Round trips to the server are measured while the upload runs; our
        // own handshakes wait behind the bytes queued on the way out.
        let _probe = t
            .pace
            .as_ref()
            .map(|p| p.probe(run.route.probe_url(&run.url)));
        let result = run.run(&t).await;
        // Whatever ends the call (a cut, a cancellation, an error), the last
        // acknowledgement is saved, so the next call resumes exactly there.
        let result = match (result, run.unsaved.take()) {
            (Err(e), Some(offset)) => match run.save_acknowledged(offset).await {
                Ok(()) => Err(e),
                Err(not_saved) => Err(not_saved),
            },
            (r, _) => r,
        };
        match result {
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
        credential: Option<&Credential>,
        connection: Connection<'_>,
        session: &UploadSession,
        owner: &Identity,
    ) -> Result<(), TransferError> {
        let Some(id) = &session.id else {
            return Ok(());
        };
        let url = parse_upload_url(url)?;
        let target = session_target(&url, session);
        let auth = Authorizer::new(credential, &url);
        let route = Route::new(self, &connection, &url, owner)?;
        let packet = Request::CancelSession {
            session_id: id.clone(),
        };
        let never = CancellationToken::new();
        let answer = self
            .exchange(
                &route,
                &target,
                auth.as_ref(),
                &packet,
                None,
                self.config.read_timeout,
                &never,
            )
            .await?;
        debug!(url = %answer.shown, status = answer.status, "Cancel-Session answered");
        Ok(())
    }
}

/// The state of one `upload` call.
pub(super) struct Run<'a> {
    pub(super) engine: &'a Engine,
    /// The job's URL, and the same for messages.
    url: Url,
    pub(super) shown: String,
    local: &'a Path,
    /// Whose rights the local file is opened and looked at with.
    pub(super) identity: &'a Identity,
    reply_to: Option<&'a Path>,
    progress: &'a mut dyn UploadProgress,
    pub(super) cancel: &'a CancellationToken,
    /// The server's credentials, for the job URL's origin.
    credential: Option<&'a Credential>,
    /// How the job reaches its server (kept for the reply's download).
    connection: Connection<'a>,
    /// Answers that origin's challenges.
    auth: Option<Authorizer>,
    /// Proxies, TLS, custom headers.
    pub(super) route: Route,
    /// The local file's version being sent.
    validator: FileValidator,
    total: u64,
    /// Bytes the server acknowledged during this call.
    gained: u64,
    /// An acknowledged offset not saved yet (saved at the checkpoint
    /// cadence, and when the call ends).
    unsaved: Option<u64>,
    /// The background pace of the fragments, if any.
    pace: Option<Arc<Pacer>>,
}

/// A fragment being read ahead.
struct ReadAhead {
    at: u64,
    len: u64,
    read: tokio::task::JoinHandle<io::Result<(Vec<u8>, std::fs::Metadata)>>,
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
        let (file, meta) = open_local(self.local, self.identity).await?;
        let file = Arc::new(file);
        let current = version::of_local_file(&meta);
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
        // The resume point last saved, and when.
        let mut saved = (offset, std::time::Instant::now());
        // The next fragment, read while the current one is sent.
        let mut prefetched: Option<ReadAhead> = None;
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
                self.save_session(&session).await?;
                self.save_acknowledged(0).await?;
                offset = 0;
                saved = (0, std::time::Instant::now());
                self.unsaved = None;
                report = false;
                inherited = false;
            }
            if report {
                self.save_session(&session).await?;
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
            // The fragment read ahead while the previous one was on the
            // wire, if it is the one wanted; otherwise read now.
            let data = match prefetched.take() {
                Some(ahead) if ahead.at == first && ahead.len == len => {
                    self.finish_read(ahead.read).await?
                }
                other => {
                    if let Some(ahead) = other {
                        ahead.read.abort();
                    }
                    let read = self.start_read(&file, first, len);
                    self.finish_read(read).await?
                }
            };
            if first + len < self.total {
                let at = first + len;
                let len = fragment.min(self.total - at);
                prefetched = Some(ReadAhead {
                    at,
                    len,
                    read: self.start_read(&file, at, len),
                });
            }
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
                    &self.route,
                    &target,
                    self.auth.as_ref(),
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
                // The resume point is saved at the checkpoint cadence, not
                // per fragment (a database commit each). After a crash the
                // first fragment from an older saved point is answered with
                // what the server holds, so at most one fragment goes again.
                let policy = self.engine.config.checkpoint;
                let due = offset == self.total
                    || offset < saved.0
                    || offset - saved.0 >= policy.bytes
                    || saved.1.elapsed() >= policy.interval;
                if due {
                    self.save_acknowledged(offset).await?;
                    saved = (offset, std::time::Instant::now());
                    self.unsaved = None;
                } else {
                    self.progress.moved(offset);
                    self.unsaved = Some(offset);
                }
            }
            if offset == self.total && last && self.reply_to.is_some() {
                match Ack::parse(header_text(&answer.headers)) {
                    Ok(Ack {
                        reply_url: Some(reply),
                        ..
                    }) => {
                        session.reply_url = Some(self.reply_url(&target, &reply)?);
                        self.save_session(&session).await?;
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
            via: self.route.via(),
        })
    }

    /// Saves the session (and the file's validator) before a byte of it
    /// depends on it.
    async fn save_session(&mut self, session: &UploadSession) -> Result<(), TransferError> {
        let gained = self.gained;
        self.progress
            .session(session, &self.validator, self.total)
            .await
            .map_err(|source| TransferError::NotSaved {
                written: gained,
                source,
            })
    }

    /// Saves the server's acknowledgement as the resume point.
    async fn save_acknowledged(&mut self, bytes: u64) -> Result<(), TransferError> {
        let gained = self.gained;
        self.progress
            .acknowledged(bytes)
            .await
            .map_err(|source| TransferError::NotSaved {
                written: gained,
                source,
            })
    }

    /// How the job reaches its server.
    pub(super) fn connection(&self) -> Connection<'_> {
        self.connection
    }

    /// The credential for a packet to `target`: only the job URL's origin
    /// gets it.
    pub(super) fn credential_for(&self, target: &Url) -> Option<&Credential> {
        self.credential
            .filter(|_| target.origin() == self.url.origin())
    }

    /// Create-Session at the job's URL; returns the new session.
    async fn create_session(&mut self) -> Result<UploadSession, TransferError> {
        let packet = Request::CreateSession {
            protocols: vec![proto::PROTOCOL_GUID.to_string()],
        };
        let answer = self
            .engine
            .exchange(
                &self.route,
                &self.url,
                self.auth.as_ref(),
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

    /// Starts reading `[at, at + len)` of the local file on the blocking
    /// pool, with the file's metadata right after (by path, so a replaced
    /// file counts too); [`Run::finish_read`] checks them.
    fn start_read(
        &self,
        file: &Arc<File>,
        at: u64,
        len: u64,
    ) -> tokio::task::JoinHandle<io::Result<(Vec<u8>, std::fs::Metadata)>> {
        let f = Arc::clone(file);
        let path = self.local.to_path_buf();
        let owner = self.identity.clone();
        let len = usize::try_from(len).expect("a fragment fits in memory");
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, at)?;
            let meta = owner.run(|| std::fs::metadata(&path))?;
            Ok::<_, io::Error>((buf, meta))
        })
    }

    /// The bytes of a read, once checked to be of the version being sent:
    /// a write before or during the read changes the file's mtime or size.
    /// The check comes after the read and before the bytes are sent.
    async fn finish_read(
        &mut self,
        read: tokio::task::JoinHandle<io::Result<(Vec<u8>, std::fs::Metadata)>>,
    ) -> Result<Bytes, TransferError> {
        let abort = read.abort_handle();
        let result = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => {
                abort.abort();
                return Err(TransferError::Cancelled);
            }
            r = read => r.unwrap_or_else(|e| Err(join_error(e))),
        };
        match result {
            Ok((buf, meta)) if version::of_local_file(&meta) == self.validator => {
                Ok(Bytes::from(buf))
            }
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
            .exchange(
                &self.route,
                &target,
                self.auth.as_ref(),
                &packet,
                None,
                read_timeout,
                self.cancel,
            )
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

/// The local file's name for Content-Name (no directories).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Opens the file to upload and examines it (on the blocking pool).
async fn open_local(
    path: &Path,
    owner: &Identity,
) -> Result<(File, std::fs::Metadata), TransferError> {
    crate::local_source::open(path, owner)
        .await
        .map_err(|source| TransferError::UploadRead {
            path: PathBuf::from(path),
            source,
        })
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
        let v = version::of_local_file(&std::fs::metadata(&p).unwrap());
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
            fn session<'a>(
                &'a mut self,
                _: &'a UploadSession,
                _: &'a FileValidator,
                _: u64,
            ) -> crate::progress::Saved<'a> {
                Box::pin(std::future::ready(Ok(())))
            }
            fn acknowledged(&mut self, _: u64) -> crate::progress::Saved<'_> {
                Box::pin(std::future::ready(Ok(())))
            }
        }
        let engine = Engine::new(crate::EngineConfig::default()).unwrap();
        let v = FileValidator::default();
        let s = UploadSession::default();
        let mut p = P;
        let cancel = CancellationToken::new();
        let t = UploadTransfer {
            identity: &crate::Identity::own(),
            local: Path::new("/nonexistent"),
            url: "http://127.0.0.1:9/",
            credential: None,
            connection: Default::default(),
            validator: &v,
            session: &s,
            acknowledged: 0,
            reply_to: None,
            pace: None,
        };
        let fut = engine.upload(t, &mut p, &cancel);
        assert_send(&fut);
        let own = crate::Identity::own();
        let fut = engine.cancel_upload("http://127.0.0.1:9/", None, Default::default(), &s, &own);
        assert_send(&fut);
    }
}
