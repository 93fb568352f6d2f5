//! What a failed transfer tells the user: the BITS error context, code and
//! a sentence that stands on its own (it names the URL or path and the
//! underlying cause).

use super::*;

/// A refused server certificate, with what would make it acceptable.
fn certificate_refused(url: &str, cause: &str) -> String {
    format!(
        "The secure (TLS) connection for {url} failed: the server's certificate was refused \
         ({cause}). The job tries again after its retry delay. An authority the system does \
         not trust can be installed (no restart needed) or given to the job with \
         --ca-cert FILE; --security-flags loosens one check."
    )
}

impl TransferError {
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
                    NetFailure::Certificate => certificate_refused(url, &cause),
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
                    NetFailure::Certificate => certificate_refused(url, &root_cause(source)),
                    _ => format!(
                        "The connection to the server closed before it answered the request \
                         for {url}: {}.",
                        root_cause(source)
                    ),
                };
                (ErrorContext::GeneralTransport, kind.code(), text)
            }
            NoHeaders { url, secs } => (
                ErrorContext::GeneralTransport,
                codes::E_TIMEOUT,
                format!(
                    "The server for {url} did not send a complete response within {secs} seconds."
                ),
            ),
            Coded { url, coding } => (
                ErrorContext::RemoteFile,
                codes::BG_E_INVALID_SERVER_RESPONSE,
                format!(
                    "The server sent {url} with Content-Encoding \"{coding}\" although bits asked \
                     for the file itself (Accept-Encoding: identity); a coded body is not the \
                     file, so nothing of it was kept."
                ),
            ),
            NotSaved { source, .. } => (
                ErrorContext::GeneralQueueManager,
                codes::E_FAIL,
                format!(
                    "The transfer's progress could not be saved ({source}); it stopped and \
                     resumes from the last saved checkpoint."
                ),
            ),
            RedirectRefused {
                url,
                to,
                status,
                why,
            } => {
                let to = to.as_ref().map(|t| format!(" to {t}")).unwrap_or_default();
                // BITS reports a forbidden redirect as the redirect's own
                // status; the other refusals as a failed redirect.
                let code = match why {
                    crate::fetch::RedirectRefusal::Disallowed => codes::http_status(*status),
                    _ => E_REDIRECT_FAILED,
                };
                (
                    ErrorContext::RemoteFile,
                    code,
                    format!(
                        "The server redirected {url}{to} (HTTP {status}) and bits did not follow: \
                         {}.",
                        why.describe()
                    ),
                )
            }
            CaCert { problem } => (
                ErrorContext::LocalFile,
                codes::E_FAIL,
                format!("The job's certificate authority (--ca-cert) cannot be used: {problem}."),
            ),
            BadHeader { name, why } => (
                ErrorContext::GeneralQueueManager,
                E_INVALIDARG,
                format!("The job's custom header {name:?} cannot be sent: {why}."),
            ),
            Unauthorized {
                url,
                status,
                problem,
            } => {
                let who = if *status == 407 { "proxy" } else { "server" };
                (
                    ErrorContext::RemoteFile,
                    codes::http_status(*status),
                    format!(
                        "The {who} asked for credentials for {url} (HTTP {status}): {problem}."
                    ),
                )
            }
            HttpStatus { url, status, .. } => (
                ErrorContext::RemoteFile,
                codes::http_status(*status),
                format!(
                    "The server returned HTTP {status}{} for {url}.",
                    status_reason(*status)
                ),
            ),
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
            InvalidUploadUrl { url } => (
                ErrorContext::RemoteFile,
                E_INVALIDARG,
                format!("'{url}' is not an http or https URL, so nothing can be uploaded to it."),
            ),
            UploadRead { path, source } => {
                let path = path.display();
                let description = if source.kind() == io::ErrorKind::NotFound {
                    format!("The file to upload, {path}, does not exist.")
                } else {
                    format!("Could not read the file to upload, {path}: {source}.")
                };
                let code = source
                    .raw_os_error()
                    .map_or(codes::E_FAIL, codes::from_errno);
                (ErrorContext::LocalFile, code, description)
            }
            EmptyUpload { path } => (
                ErrorContext::LocalFile,
                E_INVALIDARG,
                format!(
                    "The file to upload, {}, is empty; the BITS Upload Protocol cannot \
                     upload an empty file.",
                    path.display()
                ),
            ),
            LocalFileChanged { path } => (
                ErrorContext::LocalFile,
                codes::BG_E_LOCAL_FILE_CHANGED,
                format!(
                    "{} changed (size or modification time) after its upload began; \
                     the upload cannot continue.",
                    path.display()
                ),
            ),
            NotBitsServer {
                url,
                status,
                detail,
            } => (
                ErrorContext::RemoteFile,
                if *status >= 400 {
                    codes::http_status(*status)
                } else {
                    codes::BG_E_INVALID_SERVER_RESPONSE
                },
                format!("The server at {url} does not accept BITS uploads ({detail})."),
            ),
            UploadRefused {
                url,
                status,
                code,
                context,
                ..
            } => {
                let context = if *context == bits_upload_proto::CONTEXT_REMOTE_APPLICATION {
                    ErrorContext::RemoteApplication
                } else {
                    ErrorContext::RemoteFile
                };
                let who = if context == ErrorContext::RemoteApplication {
                    "The server application"
                } else {
                    "The server"
                };
                let name = upload_code_name(*code)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                (
                    context,
                    *code,
                    format!(
                        "{who} refused the upload to {url}: HTTP {status}{}, \
                         BITS error {code:#010X}{name}.",
                        status_reason(*status)
                    ),
                )
            }
            UploadProtocol { url, detail } => (
                ErrorContext::RemoteFile,
                codes::BG_E_INVALID_SERVER_RESPONSE,
                format!("The server at {url} broke the BITS Upload Protocol: {detail}."),
            ),
            UploadStalled { url, secs } => (
                ErrorContext::GeneralTransport,
                codes::E_TIMEOUT,
                format!(
                    "The server at {url} neither took nor answered upload data for {secs} seconds."
                ),
            ),
            ReplyPending { url } => (
                ErrorContext::RemoteApplication,
                E_PENDING,
                format!(
                    "Every byte of the upload to {url} arrived, but the server application has \
                     not replied yet; the reply will be fetched later."
                ),
            ),
            AfterProgress { inner, .. } => return inner.job_error(),
        };
        JobError::new(context, code, description)
    }
}

/// " Not Found" for 404: the status' reason phrase with a leading space, or
/// nothing for an unknown status.
pub(crate) fn status_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

/// The bitsmsg.h name of a BITS-Error-Code an upload server may send, so the
/// description says more than a number.
fn upload_code_name(code: u32) -> Option<&'static str> {
    use bits_upload_proto::codes as up;
    Some(match code {
        up::BG_E_TOO_LARGE => "the file is larger than the server accepts",
        up::BG_E_SESSION_NOT_FOUND => "the server does not know the upload session",
        up::ERROR_FILE_EXISTS => "the remote file exists and may not be overwritten",
        up::ERROR_PATH_NOT_FOUND => "the remote directory does not exist",
        up::ERROR_DISK_FULL => "the server is out of disk space",
        up::E_ACCESSDENIED => "access denied",
        up::E_INVALIDARG => "the server found the request invalid",
        up::BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH => "no common upload protocol",
        up::ERROR_WINHTTP_TIMEOUT => "the server application did not answer in time",
        up::ERROR_WINHTTP_CANNOT_CONNECT => "the server application could not be reached",
        _ => return None,
    })
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
