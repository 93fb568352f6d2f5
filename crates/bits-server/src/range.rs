//! Parsing of the `Range` request header (RFC 9110 §14.2).
//!
//! Only what a download client needs is implemented: one byte range per
//! request. Following the RFC, anything the server does not understand is
//! ignored rather than rejected — a malformed header, another range unit, or
//! several ranges all yield [`RangeRequest::Full`] and thus a plain `200` with
//! the whole file, which every client can cope with. Only a well-formed range
//! that lies entirely beyond the end of the file is
//! [`RangeRequest::Unsatisfiable`] (`416`).

/// What to send in answer to a `Range` header, for a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Send the whole file with `200`.
    Full,
    /// Send bytes `start..=end` (both inclusive, `end < size`) with `206`.
    Partial {
        /// First byte to send.
        start: u64,
        /// Last byte to send.
        end: u64,
    },
    /// Nothing of the file is in the requested range: `416`.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a representation of `size` bytes.
pub(crate) fn parse(value: &str, size: u64) -> RangeRequest {
    let value = value.trim();
    // The range unit is case-insensitive; anything but `bytes` is ignored.
    let Some((unit, set)) = value.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    // Empty list elements (`bytes=0-1,,`) are allowed by the list syntax.
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        // No range at all (malformed) or several (we don't do multipart).
        return RangeRequest::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());

    if first.is_empty() {
        // Suffix range `-n`: the last n bytes.
        let Some(suffix) = parse_digits(last) else {
            return RangeRequest::Full;
        };
        if suffix == 0 {
            return RangeRequest::Unsatisfiable;
        }
        if size == 0 {
            // RFC 9110 counts a non-zero suffix of an empty representation as
            // satisfiable, but there is no byte range to express it; sending
            // the (empty) whole representation is the sensible answer.
            return RangeRequest::Full;
        }
        return RangeRequest::Partial {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }

    let Some(start) = parse_digits(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end,
            // `last < first` makes the range syntactically invalid.
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Parses a non-empty run of ASCII digits. Values too large for `u64`
/// saturate: they are far beyond any file's end, which is what they mean.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::{Full, Partial, Unsatisfiable};
    use super::*;

    #[test]
    fn closed_range() {
        assert_eq!(parse("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(parse("bytes=10-10", 100), Partial { start: 10, end: 10 });
        assert_eq!(parse("bytes=90-200", 100), Partial { start: 90, end: 99 });
        assert_eq!(parse(" Bytes = 1 - 2 ", 100), Partial { start: 1, end: 2 });
    }

    #[test]
    fn open_ended_range() {
        assert_eq!(parse("bytes=10-", 100), Partial { start: 10, end: 99 });
        assert_eq!(parse("bytes=99-", 100), Partial { start: 99, end: 99 });
    }

    #[test]
    fn suffix_range() {
        assert_eq!(parse("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(parse("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(parse("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse("bytes=-5", 0), Full);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=99999999999999999999999-", 100), Unsatisfiable);
    }

    #[test]
    fn huge_last_position_is_clamped() {
        assert_eq!(
            parse("bytes=5-99999999999999999999999", 100),
            Partial { start: 5, end: 99 }
        );
    }

    #[test]
    fn malformed_or_unsupported_is_ignored() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=0-1, -5",
        ] {
            assert_eq!(parse(value, 100), Full, "{value:?}");
        }
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        assert_eq!(parse("bytes=,0-1,", 100), Partial { start: 0, end: 1 });
    }

    proptest::proptest! {
        /// Whatever a client sends, the answer is a range inside the file,
        /// unsatisfiable, or the whole file; never a panic.
        #[test]
        fn any_range_header_gives_a_range_inside_the_file(
            value in "(bytes|Bytes|items| |=|-|,|[0-9]{1,25}){0,12}",
            size in proptest::prelude::any::<u64>(),
        ) {
            match parse(&value, size) {
                Partial { start, end } => proptest::prop_assert!(start <= end && end < size),
                Unsatisfiable | Full => {}
            }
        }
    }
}
