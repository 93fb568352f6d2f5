//! Transfer failures and their classification.
//!
//! Every variant names *what* failed (connecting, a status code, a bad
//! `Content-Range`, a cut body, the local disk…) so that the daemon's retry
//! policy can decide from [`TransferError::class`] alone whether to retry,
//! and the user gets a [`JobError`] from [`TransferError::job_error`] whose
//! description is a self-contained sentence naming the URL or path.
//!
//! URLs stored in errors are always redacted (no `user:password@`), and the
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
const E_ABORT: u32 = 0x8000_4004;
/// E_INVALIDARG: the remote name is not something we can download from.
const E_INVALIDARG: u32 = 0x8007_0057;
/// HRESULT_FROM_WIN32(ERROR_WINHTTP_REDIRECT_FAILED).
const E_REDIRECT_FAILED: u32 = 0x8007_2F7C;

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
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Something else at the transport level.
    Other,
}

impl NetFailure {
    /// Works out the kind of failure from a `reqwest` error by walking its
    /// source chain. `reqwest`/`hyper` do not expose these as types we can
    /// match without extra dependencies, so I/O error kinds are used where
    /// present and hyper-util's stable "dns error" label and TLS wording
    /// otherwise.
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
            if text.contains("certificate")
                || text.contains("tls")
                || text.contains("handshake")
                || text.contains("received fatal alert")
            {
                return NetFailure::Tls;
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

    fn code(self) -> u32 {
        match self {
            NetFailure::Refused | NetFailure::Other => codes::E_CANNOT_CONNECT,
            NetFailure::Reset => codes::E_CONNECTION_RESET,
            NetFailure::Timeout => codes::E_TIMEOUT,
            NetFailure::NameNotResolved => codes::E_NAME_NOT_RESOLVED,
            NetFailure::Tls => codes::E_SECURE_FAILURE,
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
    /// More than 10 redirects, or a redirect that could not be followed.
    #[error("too many redirects or an invalid redirect for {url}")]
    Redirect {
        /// The URL (credentials removed).
        url: String,
        /// The cause (URL stripped).
        #[source]
        source: reqwest::Error,
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
}

impl TransferError {
    /// How the daemon should react.
    pub fn class(&self) -> Class {
        use TransferError::*;
        let transient = Class::Transient { retry_after: None };
        match self {
            InvalidSource { .. } | Client { .. } | Redirect { .. } | SourceMissing { .. } => {
                Class::Fatal
            }
            Connect { .. }
            | NoResponse { .. }
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
        }
    }

    /// Whether this attempt made bytes durable before failing (the retry
    /// policy resets its no-progress clock when it did).
    pub fn made_progress(&self) -> bool {
        self.bytes_written() > 0
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
            | SourceRead { written, .. } => *written,
            _ => 0,
        }
    }

    /// The error as a job carries it: context, BITS code and a sentence that
    /// stands on its own (it includes the underlying cause).
    pub fn job_error(&self) -> JobError {
        use TransferError::*;
        let (context, code, description) = match self {
            InvalidSource { remote } => (
                ErrorContext::RemoteFile,
                E_INVALIDARG,
                format!(
                    "'{remote}' is not an http, https or file URL, nor an absolute path, \
                     so it cannot be downloaded."
                ),
            ),
            Client { source } => (
                ErrorContext::GeneralQueueManager,
                codes::E_FAIL,
                format!(
                    "The HTTP client could not be initialised: {}.",
                    root_cause(source)
                ),
            ),
            Connect { url, kind, source } => {
                let cause = root_cause(source);
                let text = match kind {
                    NetFailure::NameNotResolved => {
                        format!("The server name in {url} could not be resolved: {cause}.")
                    }
                    NetFailure::Timeout => {
                        format!("Connecting to the server for {url} timed out.")
                    }
                    NetFailure::Tls => {
                        format!("The secure (TLS) connection for {url} failed: {cause}.")
                    }
                    _ => format!("Could not connect to the server for {url}: {cause}."),
                };
                (ErrorContext::GeneralTransport, kind.code(), text)
            }
            NoResponse { url, kind, source } => {
                let text = match kind {
                    NetFailure::Timeout => {
                        format!("The server did not answer the request for {url} in time.")
                    }
                    NetFailure::Tls => {
                        format!(
                            "The secure (TLS) connection for {url} failed: {}.",
                            root_cause(source)
                        )
                    }
                    _ => format!(
                        "The connection to the server closed before it answered the request \
                         for {url}: {}.",
                        root_cause(source)
                    ),
                };
                (ErrorContext::GeneralTransport, kind.code(), text)
            }
            Redirect { url, source } => (
                ErrorContext::RemoteFile,
                E_REDIRECT_FAILED,
                format!(
                    "Following the redirects for {url} failed: {}.",
                    root_cause(source)
                ),
            ),
            HttpStatus { url, status, .. } => {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                (
                    ErrorContext::RemoteFile,
                    codes::http_status(*status),
                    format!("The server returned HTTP {status}{reason} for {url}."),
                )
            }
            InvalidContentRange { url, got, expected } => (
                ErrorContext::RemoteFile,
                codes::BG_E_INVALID_SERVER_RESPONSE,
                match got {
                    Some(got) => format!(
                        "The server answered the request for {url} with Content-Range \
                         \"{got}\" instead of \"{expected}\"; nothing was written."
                    ),
                    None => format!(
                        "The server answered the request for {url} with a partial response \
                         without a valid Content-Range (expected \"{expected}\"); nothing was \
                         written."
                    ),
                },
            ),
            Overrun { url, expected, .. } => (
                ErrorContext::RemoteFile,
                codes::BG_E_INVALID_SERVER_RESPONSE,
                format!("The server sent more than the {expected} bytes it announced for {url}."),
            ),
            BodyCut {
                url,
                received,
                expected,
                source,
                ..
            } => {
                let of = expected.map(|e| format!(" of {e}")).unwrap_or_default();
                let cause = source
                    .as_ref()
                    .map(|s| format!(": {}", root_cause(s)))
                    .unwrap_or_default();
                (
                    ErrorContext::GeneralTransport,
                    codes::E_CONNECTION_RESET,
                    format!(
                        "The download of {url} was interrupted after {received}{of} bytes{cause}."
                    ),
                )
            }
            Stalled { url, secs, .. } => (
                ErrorContext::GeneralTransport,
                codes::E_TIMEOUT,
                format!("The server sent no data for {secs} seconds while downloading {url}."),
            ),
            LocalFile {
                op, path, source, ..
            } => {
                let path = path.display();
                let errno = source.raw_os_error();
                let description = match errno {
                    Some(libc::ENOSPC) => format!("No space left on device writing {path}."),
                    Some(libc::EDQUOT) => format!("Disk quota exceeded writing {path}."),
                    _ => format!("Could not {op} {path}: {source}."),
                };
                let code = match errno {
                    Some(n) => codes::from_errno(n),
                    None => codes::E_FAIL,
                };
                (ErrorContext::LocalFile, code, description)
            }
            SourceMissing { path } => (
                ErrorContext::RemoteFile,
                codes::E_FILE_NOT_FOUND,
                format!("The source file {} does not exist.", path.display()),
            ),
            SourceRead { path, source, .. } => (
                ErrorContext::RemoteFile,
                source
                    .raw_os_error()
                    .map_or(codes::E_FAIL, codes::from_errno),
                format!(
                    "Could not read the source file {}: {source}.",
                    path.display()
                ),
            ),
            SourceChanged {
                source_name,
                restarts,
            } => (
                ErrorContext::RemoteFile,
                codes::BG_E_REMOTE_FILE_CHANGED,
                format!(
                    "{source_name} changed {restarts} times while it was being downloaded; \
                     the download will start over later."
                ),
            ),
            Cancelled => (
                ErrorContext::GeneralQueueManager,
                E_ABORT,
                "The transfer was cancelled.".to_string(),
            ),
        };
        JobError::new(context, code, description)
    }
}

/// 5xx, 408 Request Timeout and 429 Too Many Requests are worth retrying;
/// other statuses name a problem with the request or the file.
fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// Resource shortages that go away by themselves (space freed, descriptors
/// closed) are transient; permissions, missing directories, read-only or
/// failing disks need a person.
fn is_transient_io(err: &io::Error) -> bool {
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

/// The innermost error's text: the most specific description of the cause
/// ("Connection refused (os error 111)") without the wrappers' generic
/// labels ("error sending request"). reqwest errors are stored without
/// their URL, so no credentials can leak through here.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    text.trim_end_matches('.').to_string()
}

/// A URL for messages and logs: `user:password@` removed.
pub(crate) fn redact(url: &url::Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which then have none.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_userinfo() {
        let u = url::Url::parse("https://alice:s3cret@example.com/a.bin").unwrap();
        assert_eq!(redact(&u), "https://example.com/a.bin");
    }

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
}
