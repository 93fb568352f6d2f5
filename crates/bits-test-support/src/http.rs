//! Hand-written HTTP/1.1 request-head parsing and `Range` evaluation.
//!
//! Deliberately small: the server only needs what a download client sends (GET/HEAD with a few
//! headers). Being hand-written is what lets the rest of the crate misbehave freely.

use std::time::Instant;

/// Upper bound for a request head; anything larger is answered 400 and the connection closed,
/// so a confused client cannot make a test allocate without bound.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A parsed request line plus headers.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// Raw request-target.
    pub(crate) target: String,
    /// Path of the target without query/fragment, always starting with `/` for origin and
    /// absolute forms.
    pub(crate) path: String,
    /// `HTTP/1.x` minor version (0 or 1).
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) received_at: Instant,
}

impl RequestHead {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the connection must be closed after this exchange: `Connection: close`, or
    /// HTTP/1.0 without `Connection: keep-alive` (1.0 connections are not persistent by default).
    pub(crate) fn wants_close(&self) -> bool {
        let has_token = |token: &str| {
            self.headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, value)| value.split(','))
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        };
        if has_token("close") {
            return true;
        }
        self.minor_version == 0 && !has_token("keep-alive")
    }

    /// Whether the request has a `Transfer-Encoding` body. We do not decode chunked request
    /// bodies (GET/HEAD never have one in practice); the caller closes the connection instead
    /// of trying to find the next request.
    pub(crate) fn has_transfer_encoding(&self) -> bool {
        self.header("transfer-encoding").is_some()
    }

    /// Declared request body length (0 if none). Conflicting or invalid values are errors, as
    /// the connection could not be kept in sync.
    pub(crate) fn content_length(&self) -> Result<u64, &'static str> {
        let mut length: Option<u64> = None;
        for (_, value) in self
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        {
            let parsed = parse_decimal(value.trim()).ok_or("invalid Content-Length")?;
            if length.is_some_and(|previous| previous != parsed) {
                return Err("conflicting Content-Length");
            }
            length = Some(parsed);
        }
        Ok(length.unwrap_or(0))
    }
}

/// First header value with this name (ASCII case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Index just past the blank line ending the head, if the buffer holds a whole head. Bare `\n`
/// line endings are tolerated (as most servers do) so odd hand-written test clients still work.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (index, byte) in buf.iter().enumerate() {
        if *byte == b'\n' {
            let line = &buf[line_start..index];
            if line.is_empty() || line == b"\r" {
                return Some(index + 1);
            }
            line_start = index + 1;
        }
    }
    None
}

/// Number of leading CR/LF bytes: RFC 9112 §2.2 asks servers to ignore empty lines received
/// before a request line (some clients send an extra CRLF after a body).
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|byte| **byte == b'\r' || **byte == b'\n')
        .count()
}

/// Parses a complete head (as delimited by [`find_head_end`]).
pub(crate) fn parse_head(raw: &[u8], received_at: Instant) -> Result<RequestHead, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));

    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    // RFC 9110 token characters: BITS_POST has an underscore.
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err("malformed method");
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err("unsupported HTTP version"),
    };
    if target.is_empty() {
        return Err("empty request target");
    }

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: rejected, as RFC 9112 §5.2 allows.
            return Err("obsolete header line folding");
        }
        let (name, value) = line.split_once(':').ok_or("header line without colon")?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err("malformed header name");
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }

    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path: target_path(target),
        minor_version,
        headers,
        received_at,
    })
}

/// The path part of a request-target: strips `http://host` from absolute form (as sent to
/// proxies) and any query or fragment.
fn target_path(target: &str) -> String {
    let mut rest = target;
    if let Some(scheme_end) = rest.find("://") {
        let after_scheme = &rest[scheme_end + 3..];
        rest = after_scheme
            .find('/')
            .map_or("/", |slash| &after_scheme[slash..]);
    }
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Strict unsigned decimal: only ASCII digits (Rust's `parse` would also accept a `+`).
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The range-set of a `Range` value whose unit is `bytes` (case-insensitive).
pub(crate) fn strip_bytes_unit(value: &str) -> Option<&str> {
    let (unit, spec) = value.trim().split_once('=')?;
    unit.trim()
        .eq_ignore_ascii_case("bytes")
        .then_some(spec.trim())
}

/// How a `Range` header applies to a representation of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// Invalid syntax, another unit, or several ranges: ignore the header and send 200 (RFC 9110
    /// §14.2 lets a server ignore Range; we do not implement multipart/byteranges).
    Ignore,
    /// Valid but no byte of it exists: 416.
    Unsatisfiable,
    /// Serve bytes `start..=end` (inclusive, already clamped to the size) with 206.
    Satisfiable { start: u64, end: u64 },
}

/// Evaluates a single-range `Range` value (RFC 9110 §14.1.2) against `size`.
pub(crate) fn evaluate_range(value: &str, size: u64) -> RangeOutcome {
    let Some(spec) = strip_bytes_unit(value) else {
        return RangeOutcome::Ignore;
    };
    if spec.contains(',') {
        return RangeOutcome::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range "-n": the last n bytes.
        let Some(suffix) = parse_decimal(last) else {
            return RangeOutcome::Ignore;
        };
        if suffix == 0 || size == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Satisfiable {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }
    let Some(start) = parse_decimal(first) else {
        return RangeOutcome::Ignore;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_decimal(last) {
            Some(end) if end >= start => end,
            // "bytes=5-3" is syntactically invalid, hence ignored rather than 416.
            _ => return RangeOutcome::Ignore,
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Satisfiable {
        start,
        end: end.min(size - 1),
    }
}

/// Standard reason phrase (only cosmetic: clients must not rely on it).
pub(crate) fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Statuses whose responses never carry a body (RFC 9110 §6.4.1).
pub(crate) fn status_has_no_body(code: u16) -> bool {
    (100..200).contains(&code) || code == 204 || code == 304
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        assert_eq!(
            evaluate_range("bytes=0-9", 100),
            Satisfiable { start: 0, end: 9 }
        );
        assert_eq!(
            evaluate_range("bytes=90-", 100),
            Satisfiable { start: 90, end: 99 }
        );
        assert_eq!(
            evaluate_range("bytes=90-1000", 100),
            Satisfiable { start: 90, end: 99 }
        );
        assert_eq!(
            evaluate_range("bytes=-10", 100),
            Satisfiable { start: 90, end: 99 }
        );
        assert_eq!(
            evaluate_range("bytes=-1000", 100),
            Satisfiable { start: 0, end: 99 }
        );
        assert_eq!(
            evaluate_range("Bytes = 5-5", 100),
            Satisfiable { start: 5, end: 5 }
        );
        assert_eq!(evaluate_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(evaluate_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(evaluate_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(evaluate_range("bytes=5-3", 100), Ignore);
        assert_eq!(evaluate_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(evaluate_range("items=0-1", 100), Ignore);
        assert_eq!(evaluate_range("bytes=+1-", 100), Ignore);
        assert_eq!(evaluate_range("bytes=x", 100), Ignore);
    }

    #[test]
    fn heads() {
        let raw = b"GET http://example/a.bin?x=1 HTTP/1.0\r\nRange:  bytes=1- \r\nConnection: Keep-Alive\r\n\r\n";
        assert_eq!(find_head_end(raw), Some(raw.len()));
        let head = parse_head(raw, Instant::now()).unwrap();
        assert_eq!(head.path, "/a.bin");
        assert_eq!(head.header("range"), Some("bytes=1-"));
        assert!(!head.wants_close());
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: x\n\n"), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert!(parse_head(b"GET /\r\n\r\n", Instant::now()).is_err());
        assert!(parse_head(b"GET / HTTP/2\r\n\r\n", Instant::now()).is_err());
    }
}
