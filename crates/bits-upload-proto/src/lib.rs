//! The BITS Upload Protocol (BITS 1.5 Upload Protocol), as data: the request
//! packets a client sends with the `BITS_POST` method, the Ack packets a
//! server answers with, their headers, and BITS' error codes for uploads.
//! Shared by the upload client (`bits-transfer`) and the upload server
//! (`bits-server`), so both speak exactly the same words.
//!
//! Architecture invariant: no I/O here. Parsing takes header lookups and
//! returns values; building returns header lists.
//!
//! # Sources and how they disagree
//!
//! The wire format follows Microsoft's Win32 "BITS Upload Protocol" pages
//! (request and response packets) and the Open Specification `[MC-BUP]`.
//! Where they differ, or where real peers differ from both, this crate is
//! strict in what it *sends* and tolerant in what it *reads*:
//!
//! * **Error header name.** The Win32 pages call the error header
//!   `BITS-Error-Code`; `[MC-BUP]` and the Windows client itself read
//!   `BITS-Error`. [`Ack::headers`] therefore sends both (same value), and
//!   [`Ack::parse`] reads either.
//! * **Header-name case.** HTTP header names are case-insensitive; the
//!   lookups given to [`parse_request`] and [`Ack::parse`] must be too (every
//!   HTTP library's header map is).
//! * **Packet-type spelling.** The Win32 pages and Windows write
//!   `Create-Session`; `[MC-BUP]` writes `CREATE-SESSION` and once
//!   `CLOSE_SESSION`. [`PacketType::parse`] ignores case and treats `_` like
//!   `-`; [`PacketType::as_str`] sends the Win32 spelling.
//! * **Protocol list.** `BITS-Supported-Protocols` is space-delimited in the
//!   Win32 pages and "space- or comma-delimited" in `[MC-BUP]`: both are read.
//!
//! # Layout
//!
//! * [`header`]: every header name the protocol uses;
//! * [`PacketType`], [`Request`], [`parse_request`]: the client's packets;
//! * [`FragmentRange`]: the `Content-Range` of a Fragment;
//! * [`Ack`], [`AckError`]: the server's answer to every packet;
//! * [`codes`]: the HRESULTs that travel in `BITS-Error-Code`.
#![deny(missing_docs)]

mod ack;
mod error;
mod hex;
mod range;
mod request;

pub use ack::{Ack, AckError};
pub use error::PacketError;
pub use range::FragmentRange;
pub use request::{choose_protocol, parse_request, PacketType, Request};

/// The HTTP method of every packet.
pub const METHOD: &str = "BITS_POST";

/// The protocol GUID of "BITS 1.5 Upload Protocol", the only one defined
/// (Create-Session page, `[MC-BUP]` 1.7.1).
pub const PROTOCOL_GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// `BG_ERROR_CONTEXT_REMOTE_FILE`: the BITS server itself reported the error.
pub const CONTEXT_REMOTE_FILE: u32 = 5;

/// `BG_ERROR_CONTEXT_REMOTE_APPLICATION`: the server application behind the
/// BITS server (upload-reply back end) reported the error.
pub const CONTEXT_REMOTE_APPLICATION: u32 = 7;

/// Longest session id a server may hand out ("any HTTP-legal string up to
/// 100 characters", Ack for Create-Session). Servers keep to it; clients
/// reading an Ack do not enforce it (tolerance towards odd servers).
pub const MAX_SESSION_ID_LEN: usize = 100;

/// Header names, spelt as in Microsoft's pages. Compare them
/// case-insensitively: HTTP header names are case-insensitive and real
/// servers send them lowercased (`Accept-encoding: identity`) or
/// title-cased.
pub mod header {
    /// Type of every packet (`Ping`, `Create-Session`, …, `Ack`).
    pub const PACKET_TYPE: &str = "BITS-Packet-Type";
    /// Create-Session: the protocol GUIDs the client speaks, most preferred
    /// first.
    pub const SUPPORTED_PROTOCOLS: &str = "BITS-Supported-Protocols";
    /// Ack for Create-Session: the protocol the server chose.
    pub const PROTOCOL: &str = "BITS-Protocol";
    /// The session, in every packet after Create-Session and in its Acks.
    pub const SESSION_ID: &str = "BITS-Session-Id";
    /// Ack for Create-Session: the host (web-farm member) to send every later
    /// packet to.
    pub const HOST_ID: &str = "BITS-Host-Id";
    /// Ack for Create-Session: seconds after which a client that cannot reach
    /// [`HOST_ID`] goes back to the original host (decimal).
    pub const HOST_ID_FALLBACK_TIMEOUT: &str = "BITS-Host-Id-Fallback-Timeout";
    /// Ack for Fragment: the next offset the server expects (decimal).
    pub const RECEIVED_CONTENT_RANGE: &str = "BITS-Received-Content-Range";
    /// Ack for the last Fragment of an upload-reply: where the reply is.
    pub const REPLY_URL: &str = "BITS-Reply-URL";
    /// The HRESULT of a failure, in hex (`0x80200020`), as the Win32 pages
    /// name it.
    pub const ERROR_CODE: &str = "BITS-Error-Code";
    /// The same HRESULT under the name `[MC-BUP]` uses and the Windows
    /// client reads. Servers send both; clients read either.
    pub const ERROR: &str = "BITS-Error";
    /// Where a failure happened, in hex: `0x5` or `0x7`.
    pub const ERROR_CONTEXT: &str = "BITS-Error-Context";
    /// Fragment (first, or every one for Windows): the local file name,
    /// without path.
    pub const CONTENT_NAME: &str = "Content-Name";
    /// Fragment: `bytes first-last/total`.
    pub const CONTENT_RANGE: &str = "Content-Range";
    /// Every packet: the body length (`0` except for Fragments).
    pub const CONTENT_LENGTH: &str = "Content-Length";
    /// Fragment: only `identity` (or absent) is allowed.
    pub const CONTENT_ENCODING: &str = "Content-Encoding";
    /// Ack for a successful Create-Session: always `Identity`.
    pub const ACCEPT_ENCODING: &str = "Accept-Encoding";
    /// Notification to a server application: the URL the client uploaded to.
    pub const ORIGINAL_REQUEST_URL: &str = "BITS-Original-Request-URL";
    /// Notification by reference (type 1): the path of the uploaded data.
    pub const REQUEST_DATAFILE_NAME: &str = "BITS-Request-DataFile-Name";
    /// Notification by reference (type 1): where the application writes its
    /// reply.
    pub const RESPONSE_DATAFILE_NAME: &str = "BITS-Response-DataFile-Name";
    /// Server application's answer: an absolute URL of a static reply.
    pub const STATIC_RESPONSE_URL: &str = "BITS-Static-Response-URL";
    /// Server application's answer: also store the upload under its
    /// destination name (any value).
    pub const COPY_FILE_TO_DESTINATION: &str = "BITS-Copy-File-To-Destination";
}

/// HRESULTs used by the upload protocol, with the values of Windows'
/// `bitsmsg.h` and `winerror.h` (`HRESULT_FROM_WIN32(e)` is
/// `0x80070000 | e`).
pub mod codes {
    /// The upload is larger than the server accepts (`BG_E_TOO_LARGE`).
    pub const BG_E_TOO_LARGE: u32 = 0x8020_0020;
    /// The server does not know the session; the client starts over with
    /// Create-Session (`BG_E_SESSION_NOT_FOUND`).
    pub const BG_E_SESSION_NOT_FOUND: u32 = 0x8020_001F;
    /// The request does not follow the protocol (`E_INVALIDARG`).
    pub const E_INVALIDARG: u32 = 0x8007_0057;
    /// Not allowed to upload there (`E_ACCESSDENIED`). With HTTP 501 it
    /// means uploads are not enabled at all (`[MC-BUP]` 3.1.5.2.1).
    pub const E_ACCESSDENIED: u32 = 0x8007_0005;
    /// The destination exists and may not be overwritten
    /// (`HRESULT_FROM_WIN32(ERROR_FILE_EXISTS)`).
    pub const ERROR_FILE_EXISTS: u32 = 0x8007_0050;
    /// The destination's directory does not exist
    /// (`HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)`).
    pub const ERROR_PATH_NOT_FOUND: u32 = 0x8007_0003;
    /// The server is out of disk space (`HRESULT_FROM_WIN32(ERROR_DISK_FULL)`,
    /// Win32 error 112). `[MC-BUP]` prints it as `x80070112`, which is the
    /// decimal error number pasted into hex; the real HRESULT is this one.
    pub const ERROR_DISK_FULL: u32 = 0x8007_0070;
    /// The server broke the protocol (`BG_E_INVALID_SERVER_RESPONSE`).
    pub const BG_E_INVALID_SERVER_RESPONSE: u32 = 0x8020_001B;
    /// Client and server share no protocol
    /// (`BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH`).
    pub const BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: u32 = 0x8020_0022;
    /// Unspecified failure (`E_FAIL`).
    pub const E_FAIL: u32 = 0x8000_4005;
    /// A request to a server application timed out
    /// (`HRESULT_FROM_WIN32(ERROR_WINHTTP_TIMEOUT)`, 12002).
    pub const ERROR_WINHTTP_TIMEOUT: u32 = 0x8007_2EE2;
    /// A server application could not be reached
    /// (`HRESULT_FROM_WIN32(ERROR_WINHTTP_CANNOT_CONNECT)`, 12029).
    pub const ERROR_WINHTTP_CANNOT_CONNECT: u32 = 0x8007_2EFD;
    /// First of the `BG_E_HTTP_ERROR_nnn` codes: HTTP status `n` is
    /// `BG_E_HTTP_ERROR_BASE + n`.
    pub const BG_E_HTTP_ERROR_BASE: u32 = 0x8019_0000;

    /// `BG_E_HTTP_ERROR_nnn` for an HTTP status (e.g. 503 → `0x801901F7`).
    pub const fn http_error(status: u16) -> u32 {
        BG_E_HTTP_ERROR_BASE + status as u32
    }
}

#[cfg(test)]
mod tests;
