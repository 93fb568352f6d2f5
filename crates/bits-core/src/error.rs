//! The error a job carries when it is in `Error` or `TransientError`.
//!
//! Codes follow BITS: HTTP status `n` is `0x80190000 + n`; the `BG_E_*`
//! values are the ones from Windows' `bitsmsg.h`; system errors are the
//! `HRESULT_FROM_WIN32` values a Windows user would recognise, chosen from the
//! errno that caused them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an error happened, as BITS' `BG_ERROR_CONTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorContext {
    /// No error.
    None,
    /// The cause is not known.
    Unknown,
    /// The transfer service itself.
    GeneralQueueManager,
    /// A notification hook.
    QueueManagerNotification,
    /// The local file (destination or local source).
    LocalFile,
    /// The remote file or the server that holds it.
    RemoteFile,
    /// The network or the transport protocol.
    GeneralTransport,
    /// A server application (upload-reply back end).
    RemoteApplication,
}

impl ErrorContext {
    /// The name used in the JSON job object.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorContext::None => "None",
            ErrorContext::Unknown => "Unknown",
            ErrorContext::GeneralQueueManager => "GeneralQueueManager",
            ErrorContext::QueueManagerNotification => "QueueManagerNotification",
            ErrorContext::LocalFile => "LocalFile",
            ErrorContext::RemoteFile => "RemoteFile",
            ErrorContext::GeneralTransport => "GeneralTransport",
            ErrorContext::RemoteApplication => "RemoteApplication",
        }
    }

    /// Parses the name used in the JSON job object.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "None" => ErrorContext::None,
            "Unknown" => ErrorContext::Unknown,
            "GeneralQueueManager" => ErrorContext::GeneralQueueManager,
            "QueueManagerNotification" => ErrorContext::QueueManagerNotification,
            "LocalFile" => ErrorContext::LocalFile,
            "RemoteFile" => ErrorContext::RemoteFile,
            "GeneralTransport" => ErrorContext::GeneralTransport,
            "RemoteApplication" => ErrorContext::RemoteApplication,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// BITS error codes used by this implementation (values from `bitsmsg.h`).
pub mod codes {
    /// BG_E_NOT_FOUND: the requested item was not found.
    pub const BG_E_NOT_FOUND: u32 = 0x8020_0001;
    /// BG_E_INVALID_STATE: the operation is not allowed in the job's state.
    pub const BG_E_INVALID_STATE: u32 = 0x8020_0002;
    /// BG_E_EMPTY: the job has no files.
    pub const BG_E_EMPTY: u32 = 0x8020_0003;
    /// BG_E_NETWORK_DISCONNECTED: no network connection.
    pub const BG_E_NETWORK_DISCONNECTED: u32 = 0x8020_0010;
    /// BG_E_MISSING_FILE_SIZE: the server did not return the file size.
    pub const BG_E_MISSING_FILE_SIZE: u32 = 0x8020_0011;
    /// BG_E_INSUFFICIENT_RANGE_SUPPORT: the server does not support Range.
    pub const BG_E_INSUFFICIENT_RANGE_SUPPORT: u32 = 0x8020_0013;
    /// BG_E_INVALID_SERVER_RESPONSE: the server's answer made no sense.
    pub const BG_E_INVALID_SERVER_RESPONSE: u32 = 0x8020_001B;
    /// BG_E_TOO_MANY_FILES: upload jobs hold one file.
    pub const BG_E_TOO_MANY_FILES: u32 = 0x8020_001C;
    /// BG_E_TOO_MANY_JOBS_PER_USER: the user holds the most jobs the policy
    /// allows.
    pub const BG_E_TOO_MANY_JOBS_PER_USER: u32 = 0x8020_0049;
    /// BG_E_BLOCKED_BY_POLICY: the policy does not let background jobs
    /// transfer now.
    pub const BG_E_BLOCKED_BY_POLICY: u32 = 0x8020_003E;
    /// BG_E_TOO_MANY_FILES_IN_JOB: the job would hold more files than the
    /// policy allows.
    pub const BG_E_TOO_MANY_FILES_IN_JOB: u32 = 0x8020_0051;
    /// BG_E_LOCAL_FILE_CHANGED: a local file changed during the transfer.
    pub const BG_E_LOCAL_FILE_CHANGED: u32 = 0x8020_001D;
    /// BG_E_NO_PROGRESS: no progress within NoProgressTimeout.
    pub const BG_E_NO_PROGRESS: u32 = 0x8020_0024;
    /// BG_E_MAXDOWNLOAD_TIMEOUT: MaxDownloadTime elapsed.
    pub const BG_E_MAXDOWNLOAD_TIMEOUT: u32 = 0x8020_0054;
    /// BG_E_REMOTE_FILE_CHANGED: the remote file changed during the transfer.
    pub const BG_E_REMOTE_FILE_CHANGED: u32 = 0x8020_0073;
    /// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND).
    pub const E_FILE_NOT_FOUND: u32 = 0x8007_0002;
    /// HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND).
    pub const E_PATH_NOT_FOUND: u32 = 0x8007_0003;
    /// E_ACCESSDENIED.
    pub const E_ACCESSDENIED: u32 = 0x8007_0005;
    /// HRESULT_FROM_WIN32(ERROR_DISK_FULL).
    pub const E_DISK_FULL: u32 = 0x8007_0070;
    /// BG_S_PARTIAL_COMPLETE: Complete kept only the files that were fully
    /// transferred; the others were discarded.
    pub const BG_S_PARTIAL_COMPLETE: u32 = 0x0020_0017;
    /// E_UNEXPECTED: an internal error (a bug) stopped the operation.
    pub const E_UNEXPECTED: u32 = 0x8000_FFFF;
    /// E_FAIL: unspecified failure.
    pub const E_FAIL: u32 = 0x8000_4005;
    /// HRESULT_FROM_WIN32(ERROR_INTERNET_CANNOT_CONNECT) as WinHTTP reports it.
    pub const E_CANNOT_CONNECT: u32 = 0x8007_2EFD;
    /// HRESULT_FROM_WIN32(ERROR_INTERNET_TIMEOUT).
    pub const E_TIMEOUT: u32 = 0x8007_2EE2;
    /// HRESULT_FROM_WIN32(ERROR_INTERNET_NAME_NOT_RESOLVED).
    pub const E_NAME_NOT_RESOLVED: u32 = 0x8007_2EE7;
    /// HRESULT_FROM_WIN32(ERROR_INTERNET_CONNECTION_RESET).
    pub const E_CONNECTION_RESET: u32 = 0x8007_2EFF;
    /// HRESULT_FROM_WIN32(ERROR_INTERNET_SECURE_FAILURE): TLS failed.
    pub const E_SECURE_FAILURE: u32 = 0x8007_2F8F;

    /// The BITS code for an HTTP status (`BG_E_HTTP_ERROR_nnn`).
    pub fn http_status(status: u16) -> u32 {
        0x8019_0000 + u32::from(status)
    }

    /// The code for an operating-system error number, as BITS would report
    /// the matching Windows error.
    pub fn from_errno(errno: i32) -> u32 {
        match errno {
            2 => E_FILE_NOT_FOUND,         // ENOENT
            20 => E_PATH_NOT_FOUND,        // ENOTDIR
            1 | 13 | 30 => E_ACCESSDENIED, // EPERM, EACCES, EROFS
            28 | 122 => E_DISK_FULL,       // ENOSPC, EDQUOT
            _ => E_FAIL,
        }
    }
}

/// The error held by a job in `Error` or `TransientError`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Where it happened.
    pub context: ErrorContext,
    /// The BITS-style HRESULT.
    pub code: u32,
    /// A sentence a person understands, naming the file or URL at fault.
    pub description: String,
    /// Index of the file that failed, if a file did.
    pub file_index: Option<usize>,
}

impl JobError {
    /// Builds an error.
    pub fn new(context: ErrorContext, code: u32, description: impl Into<String>) -> Self {
        JobError {
            context,
            code,
            description: description.into(),
            file_index: None,
        }
    }

    /// The code as the JSON object shows it: `0x80190194`.
    pub fn code_hex(&self) -> String {
        format!("0x{:08X}", self.code)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.description,
            self.code_hex(),
            self.context
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_codes_follow_bits() {
        assert_eq!(codes::http_status(404), 0x8019_0194);
        assert_eq!(codes::http_status(500), 0x8019_01F4);
        let e = JobError::new(ErrorContext::RemoteFile, codes::http_status(404), "x");
        assert_eq!(e.code_hex(), "0x80190194");
    }
}
