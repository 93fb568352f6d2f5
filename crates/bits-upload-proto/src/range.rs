//! The `Content-Range` of a Fragment: `bytes first-last/total`.

use crate::error::excerpt;
use crate::hex::parse_decimal;
use crate::PacketError;

/// `bytes a-b/total` of a Fragment (0-based, inclusive).
///
/// Invariant of every value returned by [`FragmentRange::parse`]:
/// `first <= last < total`. An empty file cannot be described by such a
/// range, so the BITS Upload Protocol cannot upload one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRange {
    /// Offset of the first byte of the fragment.
    pub first: u64,
    /// Offset of the last byte of the fragment (inclusive).
    pub last: u64,
    /// Size of the whole upload.
    pub total: u64,
}

impl FragmentRange {
    /// Parses `bytes first-last/total` (RFC 2616 §14.16 syntax).
    ///
    /// Tolerant of what real clients vary: the unit in any case (the Win32
    /// page writes `Bytes`), `=` instead of the blank after it, and blanks
    /// around the numbers. Strict about the numbers: decimal digits only,
    /// `first <= last < total`, no `*` (a Fragment always carries bytes and
    /// knows the total).
    pub fn parse(s: &str) -> Result<Self, PacketError> {
        let bad = |reason| PacketError::BadRange {
            value: excerpt(s),
            reason,
        };
        let trimmed = s.trim();
        let unit_len = "bytes".len();
        let (unit, rest) = match (trimmed.get(..unit_len), trimmed.get(unit_len..)) {
            (Some(unit), Some(rest)) => (unit, rest),
            _ => return Err(bad("does not start with \"bytes\"")),
        };
        if !unit.eq_ignore_ascii_case("bytes") {
            return Err(bad("does not start with \"bytes\""));
        }
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest);
        let (span, total) = rest.split_once('/').ok_or_else(|| bad("no \"/total\""))?;
        let (first, last) = span
            .split_once('-')
            .ok_or_else(|| bad("no \"first-last\""))?;
        let first = parse_decimal(first).ok_or_else(|| bad("first offset is not a number"))?;
        let last = parse_decimal(last).ok_or_else(|| bad("last offset is not a number"))?;
        let total = parse_decimal(total).ok_or_else(|| bad("total is not a number"))?;
        if first > last {
            return Err(bad("first offset after last"));
        }
        if last >= total {
            return Err(bad("last offset not below the total"));
        }
        Ok(Self { first, last, total })
    }

    /// Number of bytes in the fragment (`last - first + 1`; at least 1).
    #[allow(clippy::len_without_is_empty)] // a valid range is never empty
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Whether this fragment ends the upload (its last byte is the file's
    /// last byte).
    pub fn is_last(&self) -> bool {
        self.last + 1 == self.total
    }

    /// The header value: `bytes first-last/total`.
    pub fn to_header(&self) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, self.total)
    }
}
