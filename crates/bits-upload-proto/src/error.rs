//! What can be wrong with a packet.

use crate::PacketType;

/// Why a packet (request or Ack) could not be understood. Each variant names
/// the part that is wrong, so a server can answer with the right status and
/// a client can say what the server did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// A header the packet type requires is absent (or empty).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value is not what the protocol allows.
    #[error("bad {name} header: {value:?}")]
    BadHeader {
        /// The header's name.
        name: &'static str,
        /// The value received (possibly cut short).
        value: String,
    },
    /// `BITS-Packet-Type` names no packet this protocol defines.
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(String),
    /// A known packet type where it cannot be: an Ack sent as a request, or
    /// a request type in a response.
    #[error("unexpected packet type {}", .0.as_str())]
    UnexpectedPacketType(PacketType),
    /// A Fragment's `Content-Range` is not `bytes first-last/total` with
    /// `first <= last < total`.
    #[error("bad range {value:?}: {reason}")]
    BadRange {
        /// The value received (possibly cut short).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A Fragment's `Content-Length` differs from the length of its range.
    #[error("Content-Length {content_length} does not match the range's {range_length} bytes")]
    LengthMismatch {
        /// The `Content-Length` sent.
        content_length: u64,
        /// `last - first + 1` of the `Content-Range`.
        range_length: u64,
    },
    /// A Fragment uses a `Content-Encoding` other than identity (BITS servers
    /// accept only identity).
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    /// `BITS-Supported-Protocols` lists nothing.
    #[error("BITS-Supported-Protocols lists no protocol")]
    NoProtocols,
    /// A response whose `BITS-Packet-Type` is not `Ack`.
    #[error("not an Ack: BITS-Packet-Type is {0:?}")]
    NotAnAck(String),
}

/// Cuts a received value down for an error message, so a megabyte of junk in
/// a header does not end up in a log line.
pub(crate) fn excerpt(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}
