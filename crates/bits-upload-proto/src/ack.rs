//! The Ack: the one response packet, to every request.

use crate::error::excerpt;
use crate::hex::{format_hex, parse_decimal, parse_hresult};
use crate::{codes, header, FragmentRange, PacketError, PacketType, CONTEXT_REMOTE_FILE};

/// An Ack, as a server sends it and a client reads it.
///
/// Which fields are set depends on the request it answers (Ack for
/// Create-Session: `protocol`, `session_id`, `host_id`…; Ack for Fragment:
/// `session_id`, `received_content_range`, `reply_url` on the last one) and
/// on success (`error` only on failure). The HTTP status travels beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// `BITS-Session-Id`.
    pub session_id: Option<String>,
    /// `BITS-Protocol`: the protocol chosen (successful Create-Session only).
    pub protocol: Option<String>,
    /// `BITS-Host-Id`: the host to send every later packet to.
    pub host_id: Option<String>,
    /// `BITS-Host-Id-Fallback-Timeout`, seconds.
    pub host_id_fallback_timeout: Option<u64>,
    /// `BITS-Received-Content-Range`: the next offset the server expects.
    pub received_content_range: Option<u64>,
    /// `BITS-Reply-URL`: where the reply of an upload-reply is. May be
    /// relative to the upload URL (IIS sends `BITS-Sessions\Replies\…`
    /// with backslashes); clients resolve it against the URL they uploaded
    /// to.
    pub reply_url: Option<String>,
    /// `BITS-Error-Code` / `BITS-Error` and `BITS-Error-Context`.
    pub error: Option<AckError>,
}

/// The failure an Ack reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckError {
    /// The HRESULT (see [`codes`]).
    pub code: u32,
    /// [`crate::CONTEXT_REMOTE_FILE`] (5) or
    /// [`crate::CONTEXT_REMOTE_APPLICATION`] (7).
    pub context: u32,
}

impl AckError {
    /// An error reported by the BITS server itself (context 5).
    pub fn remote_file(code: u32) -> Self {
        Self {
            code,
            context: CONTEXT_REMOTE_FILE,
        }
    }

    /// An error reported by the server application (context 7).
    pub fn remote_application(code: u32) -> Self {
        Self {
            code,
            context: crate::CONTEXT_REMOTE_APPLICATION,
        }
    }

    /// Whether the server lost the session, in which case a client starts
    /// over with Create-Session (`[MC-BUP]` 3.1.5.1.7).
    pub fn is_session_not_found(&self) -> bool {
        self.code == codes::BG_E_SESSION_NOT_FOUND
    }
}

impl Ack {
    /// The headers of this Ack, `BITS-Packet-Type: Ack` first. Content-Length
    /// (always 0 for an Ack) is left to the HTTP layer.
    ///
    /// The error code goes out twice, as `BITS-Error-Code` (Win32 pages) and
    /// `BITS-Error` (`[MC-BUP]`, read by the Windows client), so clients
    /// written from either source find it. `Accept-Encoding: Identity` is
    /// added when the Ack carries `BITS-Protocol` and no error: that is a
    /// successful Ack for Create-Session, the only place it belongs.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(header::PACKET_TYPE, PacketType::Ack.as_str().to_owned())];
        if let Some(protocol) = &self.protocol {
            headers.push((header::PROTOCOL, protocol.clone()));
        }
        if let Some(id) = &self.session_id {
            headers.push((header::SESSION_ID, id.clone()));
        }
        if let Some(host) = &self.host_id {
            headers.push((header::HOST_ID, host.clone()));
            if let Some(timeout) = self.host_id_fallback_timeout {
                headers.push((header::HOST_ID_FALLBACK_TIMEOUT, timeout.to_string()));
            }
        }
        if let Some(received) = self.received_content_range {
            headers.push((header::RECEIVED_CONTENT_RANGE, received.to_string()));
        }
        if let Some(url) = &self.reply_url {
            headers.push((header::REPLY_URL, url.clone()));
        }
        match self.error {
            Some(error) => {
                headers.push((header::ERROR_CODE, format_hex(error.code)));
                headers.push((header::ERROR, format_hex(error.code)));
                headers.push((header::ERROR_CONTEXT, format_hex(error.context)));
            }
            None if self.protocol.is_some() => {
                headers.push((header::ACCEPT_ENCODING, "Identity".to_owned()));
            }
            None => {}
        }
        headers
    }

    /// Reads an Ack from a response's headers (case-insensitive lookup).
    ///
    /// Tolerance, decided from what peers do:
    ///
    /// * a **missing `BITS-Packet-Type` is accepted**: error pages of weak
    ///   servers and proxies in front of real ones often lack it, and the
    ///   HTTP status and error headers still say what happened. A present
    ///   `BITS-Packet-Type` other than `Ack` (any case) is refused with
    ///   [`PacketError::NotAnAck`]. A client that must know it is talking to
    ///   a BITS server (Windows insists on the header for 200/201 answers)
    ///   checks `get(header::PACKET_TYPE)` itself;
    /// * the error code is read from `BITS-Error-Code`, else `BITS-Error`; in
    ///   hex with or without `0x`, or as a signed decimal; a missing context
    ///   next to a code means the server ([`CONTEXT_REMOTE_FILE`]); a context
    ///   without a code is ignored;
    /// * `BITS-Received-Content-Range` is the next offset as a decimal; the
    ///   range forms `first-last` and `bytes first-last/total` that some
    ///   servers send are read as `last + 1`;
    /// * blank values count as absent.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Ack, PacketError> {
        let text = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(packet_type) = text(header::PACKET_TYPE) {
            if PacketType::parse(&packet_type) != Some(PacketType::Ack) {
                return Err(PacketError::NotAnAck(excerpt(&packet_type)));
            }
        }
        let host_id_fallback_timeout = match text(header::HOST_ID_FALLBACK_TIMEOUT) {
            None => None,
            Some(v) => Some(parse_timeout(&v).ok_or_else(|| PacketError::BadHeader {
                name: header::HOST_ID_FALLBACK_TIMEOUT,
                value: excerpt(&v),
            })?),
        };
        let received_content_range = match text(header::RECEIVED_CONTENT_RANGE) {
            None => None,
            Some(v) => Some(parse_received(&v).ok_or_else(|| PacketError::BadHeader {
                name: header::RECEIVED_CONTENT_RANGE,
                value: excerpt(&v),
            })?),
        };
        let code = match (text(header::ERROR_CODE), text(header::ERROR)) {
            (Some(v), _) => Some((header::ERROR_CODE, v)),
            (None, Some(v)) => Some((header::ERROR, v)),
            (None, None) => None,
        };
        let error = match code {
            None => None,
            Some((name, v)) => {
                let code = parse_hresult(&v).ok_or_else(|| PacketError::BadHeader {
                    name,
                    value: excerpt(&v),
                })?;
                let context = match text(header::ERROR_CONTEXT) {
                    None => CONTEXT_REMOTE_FILE,
                    Some(c) => parse_hresult(&c).ok_or_else(|| PacketError::BadHeader {
                        name: header::ERROR_CONTEXT,
                        value: excerpt(&c),
                    })?,
                };
                Some(AckError { code, context })
            }
        };
        Ok(Ack {
            session_id: text(header::SESSION_ID),
            protocol: text(header::PROTOCOL),
            host_id: text(header::HOST_ID),
            host_id_fallback_timeout,
            received_content_range,
            reply_url: text(header::REPLY_URL),
            error,
        })
    }
}

/// Seconds, decimal as Windows reads it (`%u`); `0x…` tolerated.
fn parse_timeout(value: &str) -> Option<u64> {
    parse_decimal(value).or_else(|| {
        let v = value.trim();
        (v.starts_with("0x") || v.starts_with("0X"))
            .then(|| parse_hresult(v).map(u64::from))
            .flatten()
    })
}

/// The next expected offset: a decimal, or `last + 1` of a range form.
fn parse_received(value: &str) -> Option<u64> {
    if let Some(next) = parse_decimal(value) {
        return Some(next);
    }
    if let Ok(range) = FragmentRange::parse(value) {
        return range.last.checked_add(1);
    }
    let (first, last) = value.trim().split_once('-')?;
    let (first, last) = (parse_decimal(first)?, parse_decimal(last)?);
    (first <= last).then(|| last.checked_add(1)).flatten()
}
