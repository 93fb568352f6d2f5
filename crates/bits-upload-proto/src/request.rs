//! The client's packets: Ping, Create-Session, Fragment, Close-Session and
//! Cancel-Session, all sent with `BITS_POST`.

use crate::error::excerpt;
use crate::hex::parse_decimal;
use crate::{header, FragmentRange, PacketError, PROTOCOL_GUID};

/// The value of `BITS-Packet-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Opens a connection (and its authentication) cheaply; optional.
    Ping,
    /// Asks for an upload session for the request URL.
    CreateSession,
    /// Carries a range of the file.
    Fragment,
    /// Ends a session after the last fragment (or abandons a partial one).
    CloseSession,
    /// Abandons a session.
    CancelSession,
    /// Every response.
    Ack,
}

impl PacketType {
    /// Every packet type, in protocol order.
    pub const ALL: [PacketType; 6] = [
        Self::Ping,
        Self::CreateSession,
        Self::Fragment,
        Self::CloseSession,
        Self::CancelSession,
        Self::Ack,
    ];

    /// Parses a `BITS-Packet-Type` value. Case-insensitive, surrounding
    /// blanks ignored, and `_` read as `-`: Windows sends `Create-Session`,
    /// `[MC-BUP]` writes `CREATE-SESSION` and once `CLOSE_SESSION`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|t| {
            let spec = t.as_str();
            s.len() == spec.len()
                && s.bytes().zip(spec.bytes()).all(|(got, want)| {
                    let got = if got == b'_' { b'-' } else { got };
                    got.eq_ignore_ascii_case(&want)
                })
        })
    }

    /// The spelling of Microsoft's Win32 pages, which Windows sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "Ping",
            Self::CreateSession => "Create-Session",
            Self::Fragment => "Fragment",
            Self::CloseSession => "Close-Session",
            Self::CancelSession => "Cancel-Session",
            Self::Ack => "Ack",
        }
    }
}

/// A request packet, as a server receives it and a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `Ping`: no headers besides the packet type.
    Ping,
    /// `Create-Session` with the client's protocol GUIDs, most preferred
    /// first.
    CreateSession {
        /// GUIDs as sent (with their braces), in order.
        protocols: Vec<String>,
    },
    /// `Fragment`: `content_length` bytes of the file, at `range`.
    Fragment {
        /// The session the server handed out.
        session_id: String,
        /// Where the bytes go, and the file's size.
        range: FragmentRange,
        /// The client's local file name (informational; first fragment, or
        /// every fragment for Windows).
        content_name: Option<String>,
        /// Length of the body; always equal to `range.len()`.
        content_length: u64,
    },
    /// `Close-Session`.
    CloseSession {
        /// The session to close.
        session_id: String,
    },
    /// `Cancel-Session`.
    CancelSession {
        /// The session to cancel.
        session_id: String,
    },
}

impl Request {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Ping => PacketType::Ping,
            Self::CreateSession { .. } => PacketType::CreateSession,
            Self::Fragment { .. } => PacketType::Fragment,
            Self::CloseSession { .. } => PacketType::CloseSession,
            Self::CancelSession { .. } => PacketType::CancelSession,
        }
    }

    /// The session a packet belongs to (none for Ping and Create-Session).
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Self::Ping | Self::CreateSession { .. } => None,
            Self::Fragment { session_id, .. }
            | Self::CloseSession { session_id }
            | Self::CancelSession { session_id } => Some(session_id),
        }
    }

    /// Headers for the client to send (besides Content-Length, which the
    /// HTTP layer sets from the body: 0 for every packet but Fragment).
    /// No `Content-Encoding`: identity is the only encoding and is sent by
    /// leaving the header out.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(header::PACKET_TYPE, self.packet_type().as_str().to_owned())];
        match self {
            Self::Ping => {}
            Self::CreateSession { protocols } => {
                headers.push((header::SUPPORTED_PROTOCOLS, protocols.join(" ")));
            }
            Self::Fragment {
                session_id,
                range,
                content_name,
                content_length: _,
            } => {
                headers.push((header::SESSION_ID, session_id.clone()));
                headers.push((header::CONTENT_RANGE, range.to_header()));
                if let Some(name) = content_name {
                    headers.push((header::CONTENT_NAME, name.clone()));
                }
            }
            Self::CloseSession { session_id } | Self::CancelSession { session_id } => {
                headers.push((header::SESSION_ID, session_id.clone()));
            }
        }
        headers
    }
}

/// Parses a request packet from a header lookup (case-insensitive names; the
/// caller supplies a closure).
///
/// What is checked here is what the headers alone can tell ("the request
/// message satisfies the requirements in section 2.2", `[MC-BUP]`
/// 3.2.5.2.3): the packet type, the headers each type requires, the range
/// syntax, that a Fragment's `Content-Length` matches its range, and that its
/// encoding is identity. Whether the session exists, whether the range fits
/// what the server already has, and whether the body really is that long
/// are the server's business.
///
/// Tolerated: `Content-Length` missing on packets without a body (it must
/// be 0; the HTTP layer sees the body anyway), an explicit
/// `Content-Encoding: identity`, a `BITS-Session-Id` on packets that do not
/// need one.
pub fn parse_request(get: impl Fn(&str) -> Option<String>) -> Result<Request, PacketError> {
    let packet_type = required(&get, header::PACKET_TYPE)?;
    let packet_type = PacketType::parse(&packet_type)
        .ok_or_else(|| PacketError::UnknownPacketType(excerpt(packet_type.trim())))?;
    match packet_type {
        PacketType::Ping => Ok(Request::Ping),
        PacketType::CreateSession => {
            let list = required(&get, header::SUPPORTED_PROTOCOLS)?;
            let protocols: Vec<String> = list
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            if protocols.is_empty() {
                return Err(PacketError::NoProtocols);
            }
            Ok(Request::CreateSession { protocols })
        }
        PacketType::Fragment => {
            let session_id = required(&get, header::SESSION_ID)?;
            let range = FragmentRange::parse(&required(&get, header::CONTENT_RANGE)?)?;
            let length = required(&get, header::CONTENT_LENGTH)?;
            let content_length = parse_decimal(&length).ok_or_else(|| PacketError::BadHeader {
                name: header::CONTENT_LENGTH,
                value: excerpt(&length),
            })?;
            if content_length != range.len() {
                return Err(PacketError::LengthMismatch {
                    content_length,
                    range_length: range.len(),
                });
            }
            if let Some(encoding) = get(header::CONTENT_ENCODING) {
                let encoding = encoding.trim();
                if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
                    return Err(PacketError::UnsupportedEncoding(excerpt(encoding)));
                }
            }
            let content_name = get(header::CONTENT_NAME)
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty());
            Ok(Request::Fragment {
                session_id,
                range,
                content_name,
                content_length,
            })
        }
        PacketType::CloseSession => Ok(Request::CloseSession {
            session_id: required(&get, header::SESSION_ID)?,
        }),
        PacketType::CancelSession => Ok(Request::CancelSession {
            session_id: required(&get, header::SESSION_ID)?,
        }),
        PacketType::Ack => Err(PacketError::UnexpectedPacketType(PacketType::Ack)),
    }
}

/// A header's trimmed value; absent and blank are both "missing".
fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, PacketError> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(PacketError::MissingHeader(name))
}

/// The protocol a server speaking only [`PROTOCOL_GUID`] picks from a
/// client's list: ours if offered, else `None` (the server then answers 400
/// with `E_INVALIDARG`, `[MC-BUP]` 3.2.5.2.4).
///
/// GUIDs compare case-insensitively (Windows parses them with
/// `IIDFromString`); braces are optional, so `7DF0354D-…` matches too.
pub fn choose_protocol<S: AsRef<str>>(offered: &[S]) -> Option<&'static str> {
    let ours = PROTOCOL_GUID.trim_start_matches('{').trim_end_matches('}');
    offered
        .iter()
        .map(|p| p.as_ref().trim())
        .map(|p| p.strip_prefix('{').unwrap_or(p))
        .map(|p| p.strip_suffix('}').unwrap_or(p))
        .any(|p| p.eq_ignore_ascii_case(ours))
        .then_some(PROTOCOL_GUID)
}
