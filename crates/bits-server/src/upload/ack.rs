//! Ack responses, and the one place that maps failures to HTTP status +
//! `BITS-Error-Code` + `BITS-Error-Context`.
//!
//! Status codes, from `[MC-BUP]` 2.2.1.2 and 3.2.5.2 where it is precise and
//! from the Win32 Ack pages otherwise:
//!
//! | situation | status | code |
//! |---|---|---|
//! | malformed packet, unknown packet type, no common protocol, range syntax, length mismatch, total changed, target is a directory | 400 | `E_INVALIDARG` |
//! | no `Content-Length` on a Fragment | 411 | `E_INVALIDARG` |
//! | traversal, symlink out, session store, special file | 403 | `E_ACCESSDENIED` |
//! | the target's directory does not exist | 404 | `ERROR_PATH_NOT_FOUND` |
//! | the target exists and overwriting is off | 409 | `ERROR_FILE_EXISTS` |
//! | gap: fragment starts after the received bytes | 416 | `0x0` (as `[MC-BUP]`: not a failure, a resync), with `BITS-Received-Content-Range` |
//! | upload larger than `--max-upload-size` | 413 | `BG_E_TOO_LARGE` |
//! | unknown or expired session | 500 | `BG_E_SESSION_NOT_FOUND` |
//! | session limit reached | 503 + `Retry-After` | `BG_E_HTTP_ERROR_503` |
//! | disk full | 500 | `ERROR_DISK_FULL` |
//! | other server I/O errors | 500 | `E_FAIL` |
//! | the server application failed (upload-reply) | its status (502/408 if unreachable/slow) | `BG_E_HTTP_ERROR_nnn` / WinHTTP codes, context `0x7` |
//!
//! Two choices deserve a word. `BG_E_SESSION_NOT_FOUND` goes with 500
//! because `[MC-BUP]` says so; clients key on the code, not the status (the
//! Windows client restarts with Create-Session on the code and retries
//! Close/Cancel on 5xx *unless* the code is this one). `BG_E_TOO_LARGE`
//! goes with 413 as the issue asks ("413-style"); `[MC-BUP]`'s table lists
//! 500 for it, and a Windows client reacts to any 413 by retrying with
//! smaller fragments before it gives up, so this is [`TOO_LARGE_STATUS`],
//! one constant to change if that proves a problem with Windows clients.

use bits_upload_proto::{codes, header, Ack, AckError};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::body::ResponseBody;

/// Status of the "upload too large" answer; see the module doc.
pub(crate) const TOO_LARGE_STATUS: StatusCode = StatusCode::PAYLOAD_TOO_LARGE;

/// How long a client is asked to wait when the session limit is reached.
/// Sessions end when their uploads do, usually within minutes.
const RETRY_AFTER_SECS: u32 = 60;

/// A failed packet: everything its error Ack needs.
#[derive(Debug)]
pub(crate) struct Failure {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// `BITS-Error-Code` and context.
    pub(crate) error: AckError,
    /// `BITS-Received-Content-Range`, for Fragment failures where the
    /// server's offset is known.
    pub(crate) received: Option<u64>,
    /// Ask the client to come back later (503).
    retry_after: bool,
}

impl Failure {
    /// An error of the BITS server (context 5).
    pub(crate) fn server(status: StatusCode, code: u32) -> Self {
        Self {
            status,
            error: AckError::remote_file(code),
            received: None,
            retry_after: false,
        }
    }

    /// An error of the server application (context 7).
    pub(crate) fn application(status: StatusCode, code: u32) -> Self {
        Self {
            status,
            error: AckError::remote_application(code),
            received: None,
            retry_after: false,
        }
    }

    /// 400 `E_INVALIDARG`: the request breaks the protocol.
    pub(crate) fn invalid() -> Self {
        Self::server(StatusCode::BAD_REQUEST, codes::E_INVALIDARG)
    }

    /// 500 `BG_E_SESSION_NOT_FOUND`.
    pub(crate) fn session_not_found() -> Self {
        Self::server(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::BG_E_SESSION_NOT_FOUND,
        )
    }

    /// 413 `BG_E_TOO_LARGE`.
    pub(crate) fn too_large() -> Self {
        Self::server(TOO_LARGE_STATUS, codes::BG_E_TOO_LARGE)
    }

    /// 416 with the offset the client must continue from. The code is 0,
    /// as in `[MC-BUP]`'s table: the client is not failing, only out of
    /// step, and reads where to go on from `BITS-Received-Content-Range`.
    pub(crate) fn gap(received: u64) -> Self {
        Self {
            received: Some(received),
            ..Self::server(StatusCode::RANGE_NOT_SATISFIABLE, 0)
        }
    }

    /// 503: too many sessions; come back later.
    pub(crate) fn busy() -> Self {
        Self {
            retry_after: true,
            ..Self::server(StatusCode::SERVICE_UNAVAILABLE, codes::http_error(503))
        }
    }

    /// A server-side I/O error: disk full is said so, the rest is `E_FAIL`
    /// (and logged, since only the operator can fix it).
    pub(crate) fn io(what: &'static str, err: &std::io::Error) -> Self {
        if err.raw_os_error() == Some(libc::ENOSPC) || err.kind() == std::io::ErrorKind::StorageFull
        {
            tracing::warn!(error = %err, "{what}: disk full");
            return Self::server(StatusCode::INTERNAL_SERVER_ERROR, codes::ERROR_DISK_FULL);
        }
        tracing::error!(error = %err, "{what}");
        Self::server(StatusCode::INTERNAL_SERVER_ERROR, codes::E_FAIL)
    }

    /// The Ack response, echoing the session id when there is one.
    pub(crate) fn into_response(self, session_id: Option<String>) -> Response<ResponseBody> {
        let ack = Ack {
            session_id,
            received_content_range: self.received,
            error: Some(self.error),
            ..Ack::default()
        };
        let mut response = ack_response(self.status, &ack);
        if self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// An Ack with `status`: the Ack's headers and `Content-Length: 0` ("required
/// even if the body of the response does not include content"). A header
/// value that is not valid header text (it can only come from a server
/// application's reply URL, which is checked earlier) is left out.
pub(crate) fn ack_response(status: StatusCode, ack: &Ack) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in ack.headers() {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => tracing::warn!(header = %name, "not a valid header value; omitted"),
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    debug_assert!(headers.contains_key(header::PACKET_TYPE));
    response
}
