//! Transfer failures and their classification.
//!
//! Every variant names *what* failed (connecting, a status code, a bad
//! `Content-Range`, a cut body, the local disk…) so that the daemon's retry
//! policy can decide from [`TransferError::class`] alone whether to retry,
//! and the user gets a [`JobError`] from [`TransferError::job_error`] whose
//! description is a self-contained sentence naming the URL or path.
//!
//! URLs stored in errors are always shown without credentials or query
//! (see `net::shown`), and the
//! `reqwest` errors kept as sources have their URL stripped, so credentials
//! never reach logs, the store or a user's screen.

use bits_core::error::codes;
use bits_core::{ErrorContext, JobError};
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// E_ABORT: the operation was aborted (used for a cancelled transfer).
pub(crate) const E_ABORT: u32 = 0x8000_4004;
/// E_INVALIDARG: the remote name is not something we can download from.
pub(crate) const E_INVALIDARG: u32 = 0x8007_0057;
/// E_PENDING: the data is not yet available (an upload's reply).
pub(crate) const E_PENDING: u32 = 0x8000_000A;
/// HRESULT_FROM_WIN32(ERROR_WINHTTP_REDIRECT_FAILED).
pub(crate) const E_REDIRECT_FAILED: u32 = 0x8007_2F7C;

/// How the daemon should react to a failed transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Worth retrying later (network trouble, a busy server, a full disk).
    Transient {
        /// How long the server asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help without a human (404, permission denied…).
    Fatal,
    /// The transfer was stopped on request; not an error.
    Cancelled,
}

/// What went wrong on the network before any response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFailure {
    /// The server refused the connection.
    Refused,
    /// The connection was reset or closed early.
    Reset,
    /// Connecting (or waiting for the response) took too long.
    Timeout,
    /// The host name could not be resolved.
    NameNotResolved,
    /// The TLS handshake failed (protocol, alert).
    Tls,
    /// The server's certificate was refused: unknown authority, expired,
    /// another name… Still transient: the trust store is read again when
    /// it changes, so a job waiting to retry succeeds once the authority is
    /// installed.
    Certificate,
    /// Something else at the transport level.
    Other,
}

/// Whether `e` is a `rustls::Error`, or an `io::Error` wrapping one (the
/// connector nests them: io::Error(Other, io::Error(InvalidData, rustls)),
/// and `io::Error::source` skips the wrapped error, so look inside).
fn rustls_error<'e>(e: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    e.downcast_ref::<io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| rustls_error(inner))
}

impl NetFailure {
    /// Works out the kind of failure from a `reqwest` error by walking its
    /// source chain: a `rustls::Error` anywhere in it (tokio-rustls wraps
    /// it in an `io::Error`) is a TLS failure; I/O error kinds give the
    /// rest, with hyper-util's stable "dns error" label for name lookups.
    pub(crate) fn of(err: &reqwest::Error) -> NetFailure {
        if err.is_timeout() {
            return NetFailure::Timeout;
        }
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        let mut found = NetFailure::Other;
        while let Some(e) = cur {
            let text = e.to_string().to_ascii_lowercase();
            if text.starts_with("dns error") {
                return NetFailure::NameNotResolved;
            }
            if let Some(r) = rustls_error(e) {
                return match r {
                    rustls::Error::InvalidCertificate(_) => NetFailure::Certificate,
                    _ => NetFailure::Tls,
                };
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                found = match io.kind() {
                    io::ErrorKind::ConnectionRefused => NetFailure::Refused,
                    io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof => NetFailure::Reset,
                    io::ErrorKind::TimedOut => NetFailure::Timeout,
                    _ => found,
                };
            }
            if text.contains("connection closed before message completed")
                || text.contains("incomplete message")
            {
                found = NetFailure::Reset;
            }
            cur = e.source();
        }
        found
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            NetFailure::Refused | NetFailure::Other => codes::E_CANNOT_CONNECT,
            NetFailure::Reset => codes::E_CONNECTION_RESET,
            NetFailure::Timeout => codes::E_TIMEOUT,
            NetFailure::NameNotResolved => codes::E_NAME_NOT_RESOLVED,
            NetFailure::Tls | NetFailure::Certificate => codes::E_SECURE_FAILURE,
        }
    }
}

/// What was being done to a local file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOp {
    /// Opening (or creating) the temporary file.
    Open,
    /// Truncating it to the resume point.
    Truncate,
    /// Writing bytes.
    Write,
    /// Making bytes durable (`fdatasync`).
    Sync,
    /// Setting its modification time.
    SetTime,
}

impl LocalOp {
    fn verb(self) -> &'static str {
        match self {
            LocalOp::Open => "open",
            LocalOp::Truncate => "truncate",
            LocalOp::Write => "write to",
            LocalOp::Sync => "flush to disk",
            LocalOp::SetTime => "set the modification time of",
        }
    }
}

impl fmt::Display for LocalOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// Why a transfer attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The remote name is neither an http(s) URL, a file URL nor an absolute
    /// path.
    #[error("'{remote}' is not an http, https or file URL, nor an absolute path")]
    InvalidSource {
        /// The remote name (credentials removed).
        remote: String,
    },
    /// The HTTP client could not be built (TLS roots, configuration).
    #[error("could not build the HTTP client")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// No connection to the server could be made.
    #[error("could not connect to {url}")]
    Connect {
        /// The URL (credentials removed).
        url: String,
        /// What kind of failure.
        kind: NetFailure,
        /// The cause (URL stripped).
        #[source]
        source: reqwest::Error,
    },
    /// Connected (or connecting), but no complete response head arrived in
    /// time: a server that accepts and never answers, or trickles its
    /// headers a byte at a time.
    #[error("no response from {url} within {secs} s")]
    NoHeaders {
        /// The URL (credentials and query removed).
        url: String,
        /// The bound, in seconds.
        secs: u64,
    },
    /// The server coded the body (`Content-Encoding`) although bits asked
    /// for the file itself; a coded body is not the file, so nothing of it
    /// was written.
    #[error("{url} was sent with Content-Encoding {coding}")]
    Coded {
        /// The URL (credentials and query removed).
        url: String,
        /// The codings.
        coding: String,
    },
    /// The caller could not save the resume point (its store failed): the
    /// transfer stopped, since bytes it cannot account for must not be
    /// written.
    #[error("the transfer's progress could not be saved")]
    NotSaved {
        /// Bytes of this attempt made durable (and saved) before.
        written: u64,
        /// Why.
        #[source]
        source: crate::progress::SaveError,
    },
    /// Connected, but no response headers arrived (closed, reset, timeout).
    #[error("no response from {url}")]
    NoResponse {
        /// The URL (credentials removed).
        url: String,
        /// What kind of failure.
        kind: NetFailure,
        /// The cause (URL stripped).
        #[source]
        source: reqwest::Error,
    },
    /// A redirect the job's policy (or sense) does not allow following.
    #[error("redirect from {url} not followed: {}", why.describe())]
    RedirectRefused {
        /// The URL that redirected (credentials removed).
        url: String,
        /// Where it pointed, if that was a URL (credentials removed).
        to: Option<String>,
        /// The redirect's status.
        status: u16,
        /// Why it was not followed.
        why: crate::fetch::RedirectRefusal,
    },
    /// The job's certificate authority file cannot be used (or an HTTP
    /// client could not be made with it).
    #[error("{problem}")]
    CaCert {
        /// What is wrong, naming the file.
        problem: String,
    },
    /// A custom header that cannot be sent.
    #[error("the custom header {name:?} cannot be sent: {why}")]
    BadHeader {
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
    /// A server's (401) or proxy's (407) demand for credentials that the
    /// job's could not satisfy.
    #[error("HTTP {status} for {url}: {problem}")]
    Unauthorized {
        /// The URL (credentials removed).
        url: String,
        /// 401 or 407.
        status: u16,
        /// What went wrong.
        problem: crate::auth::AuthProblem,
    },
    /// The server answered with an error status.
    #[error("HTTP {status} for {url}")]
    HttpStatus {
        /// The URL (credentials removed).
        url: String,
        /// The status code.
        status: u16,
        /// `Retry-After`, relative to when the answer arrived.
        retry_after: Option<Duration>,
    },
    /// A 206 answer whose `Content-Range` is not the range we asked for, or
    /// names another file size: writing it could corrupt the file, so
    /// nothing was written.
    #[error("unexpected Content-Range {got:?} from {url}, expected {expected}")]
    InvalidContentRange {
        /// The URL (credentials removed).
        url: String,
        /// The header as received (`None`: missing or not text).
        got: Option<String>,
        /// What we expected, e.g. `bytes 1000-*/5000`.
        expected: String,
    },
    /// The server sent more bytes than it announced.
    #[error("{url} sent more than the {expected} bytes it announced")]
    Overrun {
        /// The URL (credentials removed).
        url: String,
        /// The announced size of the file.
        expected: u64,
        /// Bytes of this attempt made durable before the failure.
        written: u64,
    },
    /// The body ended (or the connection broke) before every byte arrived.
    #[error("the body from {url} ended after {received} bytes")]
    BodyCut {
        /// The URL (credentials removed).
        url: String,
        /// The file's size on disk when it ended.
        received: u64,
        /// The size the file should have had, if known.
        expected: Option<u64>,
        /// Bytes of this attempt made durable before the failure.
        written: u64,
        /// The transport error, if the connection failed (rather than ended
        /// cleanly but early).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The server sent nothing for longer than the read timeout.
    #[error("{url} sent nothing for {secs} s")]
    Stalled {
        /// The URL (credentials removed).
        url: String,
        /// The read timeout, in seconds.
        secs: u64,
        /// Bytes of this attempt made durable before the failure.
        written: u64,
    },
    /// The local (temporary) file could not be opened, written or synced.
    #[error("could not {op} {}", path.display())]
    LocalFile {
        /// What was being done.
        op: LocalOp,
        /// The file.
        path: PathBuf,
        /// Bytes of this attempt made durable before the failure.
        written: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A local source file does not exist.
    #[error("the source file {} does not exist", path.display())]
    SourceMissing {
        /// The source path.
        path: PathBuf,
    },
    /// A local source file could not be opened or read.
    #[error("could not read the source file {}", path.display())]
    SourceRead {
        /// The source path.
        path: PathBuf,
        /// Bytes of this attempt made durable before the failure.
        written: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The source kept changing (new versions on every attempt to resume or
    /// restart), so no consistent copy could be made in this attempt.
    #[error("{source_name} changed {restarts} times during the transfer")]
    SourceChanged {
        /// The URL (credentials removed) or path.
        source_name: String,
        /// How many restarts were attempted.
        restarts: u32,
    },
    /// The cancellation token fired; what was received is checkpointed.
    #[error("the transfer was cancelled")]
    Cancelled,
    /// Upload: the job's URL is not an http or https URL.
    #[error("'{url}' is not an http or https URL")]
    InvalidUploadUrl {
        /// The URL (credentials removed).
        url: String,
    },
    /// Upload: the local file could not be opened, examined or read.
    #[error("could not read the file to upload {}", path.display())]
    UploadRead {
        /// The local file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Upload: the local file is empty, and the BITS Upload Protocol cannot
    /// send zero bytes (a Fragment's range holds at least one).
    #[error("{} is empty", path.display())]
    EmptyUpload {
        /// The local file.
        path: PathBuf,
    },
    /// Upload: the local file's size or modification time is no longer
    /// what it was when the upload began (BITS' BG_E_FILE_CHANGED).
    #[error("{} changed after its upload began", path.display())]
    LocalFileChanged {
        /// The local file.
        path: PathBuf,
    },
    /// Upload: the server does not speak the BITS Upload Protocol (it
    /// refused `BITS_POST`, or answered it without an Ack).
    #[error("the server at {url} does not accept BITS uploads ({detail})")]
    NotBitsServer {
        /// The URL (credentials removed).
        url: String,
        /// The HTTP status of the answer.
        status: u16,
        /// What the server did, e.g. `HTTP 405 Method Not Allowed`.
        detail: String,
    },
    /// Upload: the server answered a packet with an Ack carrying
    /// `BITS-Error-Code`.
    #[error("the server refused the upload to {url} (HTTP {status}, BITS error {code:#010X})")]
    UploadRefused {
        /// The URL (credentials removed).
        url: String,
        /// The HTTP status of the Ack.
        status: u16,
        /// BITS-Error-Code (an HRESULT).
        code: u32,
        /// BITS-Error-Context (5: the server, 7: the server application).
        context: u32,
        /// `Retry-After`, if the server sent one.
        retry_after: Option<Duration>,
    },
    /// Upload: a BITS server answered something the protocol does not allow
    /// (an Ack for bytes never sent, another protocol, no session id…).
    #[error("invalid BITS upload answer from {url}: {detail}")]
    UploadProtocol {
        /// The URL (credentials removed).
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// Upload: the server neither took the packet's bytes nor answered it
    /// within the read timeout.
    #[error("{url} did not take or answer an upload packet for {secs} s")]
    UploadStalled {
        /// The URL (credentials removed).
        url: String,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// Upload-reply: every byte is on the server but its application has not
    /// produced the reply yet (BITS allows the reply to be delayed).
    #[error("the server at {url} has not replied to the upload yet")]
    ReplyPending {
        /// The URL (credentials removed).
        url: String,
    },
    /// Any failure of an upload after the server acknowledged bytes in this
    /// attempt. Classified and described as `inner`; only
    /// [`TransferError::made_progress`] differs.
    #[error("{inner}")]
    AfterProgress {
        /// Bytes the server acknowledged in this attempt.
        acknowledged: u64,
        /// The failure.
        inner: Box<TransferError>,
    },
}

impl TransferError {
    /// How the daemon should react.
    pub fn class(&self) -> Class {
        use TransferError::*;
        let transient = Class::Transient { retry_after: None };
        match self {
            InvalidSource { .. }
            | Client { .. }
            | RedirectRefused { .. }
            | Unauthorized { .. }
            | CaCert { .. }
            | BadHeader { .. }
            | SourceMissing { .. } => Class::Fatal,
            Coded { .. } => Class::Fatal,
            Connect { .. }
            | NoResponse { .. }
            | NoHeaders { .. }
            | NotSaved { .. }
            | InvalidContentRange { .. }
            | Overrun { .. }
            | BodyCut { .. }
            | Stalled { .. }
            | SourceChanged { .. } => transient,
            HttpStatus {
                status,
                retry_after,
                ..
            } => {
                if is_transient_status(*status) {
                    Class::Transient {
                        retry_after: *retry_after,
                    }
                } else {
                    Class::Fatal
                }
            }
            LocalFile { source, .. } | SourceRead { source, .. } => {
                if is_transient_io(source) {
                    transient
                } else {
                    Class::Fatal
                }
            }
            Cancelled => Class::Cancelled,
            InvalidUploadUrl { .. }
            | EmptyUpload { .. }
            | LocalFileChanged { .. }
            | NotBitsServer { .. }
            | UploadProtocol { .. } => Class::Fatal,
            UploadRead { source, .. } => {
                if is_transient_io(source) {
                    transient
                } else {
                    Class::Fatal
                }
            }
            UploadRefused {
                status,
                retry_after,
                ..
            } => {
                if is_transient_status(*status) {
                    Class::Transient {
                        retry_after: *retry_after,
                    }
                } else {
                    Class::Fatal
                }
            }
            UploadStalled { .. } | ReplyPending { .. } => transient,
            AfterProgress { inner, .. } => inner.class(),
        }
    }

    /// Whether this attempt made bytes durable before failing (the retry
    /// policy resets its no-progress clock when it did).
    pub fn made_progress(&self) -> bool {
        self.bytes_written() > 0
    }

    /// The same error, saying that this attempt made `bytes` durable (for
    /// errors that carry the figure; others are returned unchanged).
    pub(crate) fn with_written(mut self, bytes: u64) -> Self {
        use TransferError::*;
        match &mut self {
            Overrun { written, .. }
            | BodyCut { written, .. }
            | Stalled { written, .. }
            | LocalFile { written, .. }
            | NotSaved { written, .. }
            | SourceRead { written, .. } => *written = bytes,
            _ => {}
        }
        self
    }

    /// How many bytes this attempt wrote and made durable (checkpointed)
    /// before failing. Bytes of a restarted download count from the restart.
    pub fn bytes_written(&self) -> u64 {
        use TransferError::*;
        match self {
            Overrun { written, .. }
            | BodyCut { written, .. }
            | Stalled { written, .. }
            | LocalFile { written, .. }
            | NotSaved { written, .. }
            | SourceRead { written, .. } => *written,
            AfterProgress { acknowledged, .. } => *acknowledged,
            _ => 0,
        }
    }
}

impl TransferError {
    /// The error for a response nothing of which may be written.
    pub(crate) fn refused(refusal: crate::version::Refusal, shown: &str) -> TransferError {
        use crate::version::Refusal;
        let url = shown.to_string();
        match refusal {
            Refusal::Coded(coding) => TransferError::Coded { url, coding },
            Refusal::ContentRange { got, expected } => {
                TransferError::InvalidContentRange { url, got, expected }
            }
            Refusal::Status {
                status,
                retry_after,
            } => TransferError::HttpStatus {
                url,
                status,
                retry_after,
            },
        }
    }
}

/// 5xx, 408 Request Timeout and 429 Too Many Requests are worth retrying;
/// other statuses name a problem with the request or the file.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// Resource shortages that go away by themselves (space freed, descriptors
/// closed) are transient; permissions, missing directories, read-only or
/// failing disks need a person.
pub(crate) fn is_transient_io(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EAGAIN
                | libc::EINTR
                | libc::ENOMEM
                | libc::EMFILE
                | libc::ENFILE
                | libc::EBUSY
                | libc::ETXTBSY
        )
    )
}

mod describe;
pub(crate) use describe::status_reason;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_like_bits() {
        let e = |status| TransferError::HttpStatus {
            url: "http://h/a".into(),
            status,
            retry_after: None,
        };
        assert_eq!(e(404).class(), Class::Fatal);
        assert_eq!(e(503).class(), Class::Transient { retry_after: None });
        assert_eq!(e(429).class(), Class::Transient { retry_after: None });
        assert_eq!(e(408).class(), Class::Transient { retry_after: None });
        let j = e(404).job_error();
        assert_eq!(j.code, 0x8019_0194);
        assert_eq!(
            j.description,
            "The server returned HTTP 404 Not Found for http://h/a."
        );
    }

    #[test]
    fn disk_full_is_transient_and_says_so() {
        let e = TransferError::LocalFile {
            op: LocalOp::Write,
            path: "/data/x.tmp".into(),
            written: 0,
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(e.class(), Class::Transient { retry_after: None });
        let j = e.job_error();
        assert_eq!(j.code, codes::E_DISK_FULL);
        assert_eq!(j.context, ErrorContext::LocalFile);
        assert_eq!(
            j.description,
            "No space left on device writing /data/x.tmp."
        );
        let denied = TransferError::LocalFile {
            op: LocalOp::Open,
            path: "/data/x.tmp".into(),
            written: 0,
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(denied.class(), Class::Fatal);
        assert_eq!(denied.job_error().code, codes::E_ACCESSDENIED);
        assert!(denied.job_error().description.contains("Permission denied"));
    }

    #[test]
    fn upload_errors_classify_and_describe() {
        let refused = |status, context| TransferError::UploadRefused {
            url: "http://h/up".into(),
            status,
            code: 0x8020_0020,
            context,
            retry_after: None,
        };
        let j = refused(413, 5).job_error();
        assert_eq!(j.code, 0x8020_0020);
        assert_eq!(j.context, ErrorContext::RemoteFile);
        assert_eq!(
            j.description,
            "The server refused the upload to http://h/up: HTTP 413 Payload Too Large, \
             BITS error 0x80200020 (the file is larger than the server accepts)."
        );
        assert_eq!(refused(413, 5).class(), Class::Fatal);
        assert_eq!(
            refused(500, 7).job_error().context,
            ErrorContext::RemoteApplication
        );
        assert_eq!(
            refused(503, 5).class(),
            Class::Transient { retry_after: None }
        );

        let not_bits = |status| TransferError::NotBitsServer {
            url: "http://h/up".into(),
            status,
            detail: "x".into(),
        };
        assert_eq!(not_bits(405).job_error().code, 0x8019_0195);
        assert_eq!(
            not_bits(200).job_error().code,
            codes::BG_E_INVALID_SERVER_RESPONSE
        );
        assert_eq!(not_bits(200).class(), Class::Fatal);

        // Progress changes only made_progress.
        let inner = TransferError::UploadStalled {
            url: "http://h/up".into(),
            secs: 60,
        };
        let wrapped = TransferError::AfterProgress {
            acknowledged: 10,
            inner: Box::new(TransferError::UploadStalled {
                url: "http://h/up".into(),
                secs: 60,
            }),
        };
        assert!(!inner.made_progress());
        assert!(wrapped.made_progress());
        assert_eq!(wrapped.class(), inner.class());
        assert_eq!(wrapped.job_error(), inner.job_error());
        assert_eq!(wrapped.to_string(), inner.to_string());
    }
}
