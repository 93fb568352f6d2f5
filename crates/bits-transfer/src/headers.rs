//! Parsers for the response header values the engine acts on. Pure: they
//! take text and the time, bound what they accept, and never panic (the
//! property tests feed them arbitrary strings).

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured: a server may ask to be left alone,
/// not to park a job for ever. The retry policy also stops at the job's
/// NoProgressTimeout, whichever comes first.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Digits accepted in one number: `u64::MAX` has 20.
const MAX_DIGITS: usize = 20;

/// A parsed `Content-Range: bytes start-end/total` (`end` inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) total: u64,
}

impl ContentRange {
    /// Bytes the range holds.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// `1*DIGIT` as a `u64`: no sign, no spaces inside, at most 20 digits.
pub(crate) fn decimal(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `bytes start-end/total` with `start <= end < total`; anything else
/// (another unit, `*` for the total, a reversed range) is `None`.
pub(crate) fn content_range(s: &str) -> Option<ContentRange> {
    let (unit, rest) = s.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim().split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let r = ContentRange {
        start: decimal(start)?,
        end: decimal(end)?,
        total: decimal(total)?,
    };
    (r.start <= r.end && r.end < r.total).then_some(r)
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`,
/// capped at [`MAX_RETRY_AFTER`]. A date in the past is zero.
pub(crate) fn retry_after(s: &str, now: SystemTime) -> Option<Duration> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // Any run of digits is a delay, however long: it saturates.
        let secs = decimal(s).unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = http_date(s)?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// An HTTP date (any of the three formats RFC 9110 allows).
pub(crate) fn http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    // No date format is longer; a longer value is not worth parsing.
    if s.len() > 64 {
        return None;
    }
    httpdate::parse_http_date(s).ok()
}

/// The content codings of a `Content-Encoding` value other than `identity`,
/// lower-cased and comma-joined; `None` when the body is the resource itself.
pub(crate) fn coding(s: &str) -> Option<String> {
    let codings: Vec<String> = s
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    (!codings.is_empty()).then(|| codings.join(", "))
}

/// Whether an `Accept-Ranges` value names `bytes`.
pub(crate) fn accepts_byte_ranges(s: &str) -> bool {
    s.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_range_parses_and_rejects() {
        assert_eq!(
            content_range("bytes 10-99/100"),
            Some(ContentRange {
                start: 10,
                end: 99,
                total: 100
            })
        );
        for bad in [
            "bytes 10-99/*",
            "bytes 10-100/100",
            "bytes 20-10/100",
            "items 0-1/2",
            "bytes +1-5/9",
            "bytes 0-1/99999999999999999999999",
            "garbage",
            "",
        ] {
            assert_eq!(content_range(bad), None, "{bad}");
        }
    }

    /// Regression: `Retry-After: 18446744073709551615` overflowed when added
    /// to the time and panicked a runtime worker.
    #[test]
    fn huge_retry_after_saturates_at_the_cap() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after("18446744073709551615", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after("99999999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        let later = now + Duration::from_secs(120);
        let d = retry_after(&httpdate::fmt_http_date(later), now).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn codings_other_than_identity_are_named() {
        assert_eq!(coding("identity"), None);
        assert_eq!(coding(""), None);
        assert_eq!(coding("GZIP"), Some("gzip".into()));
        assert_eq!(coding("gzip, identity, br"), Some("gzip, br".into()));
    }

    proptest! {
        /// Whatever a server sends, the parsers answer without panicking,
        /// and what they accept is consistent.
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}", n in any::<u64>(), m in any::<u64>()) {
            let now = SystemTime::now();
            let _ = decimal(&s);
            let _ = http_date(&s);
            let _ = coding(&s);
            let _ = accepts_byte_ranges(&s);
            if let Some(d) = retry_after(&s, now) {
                prop_assert!(d <= MAX_RETRY_AFTER);
            }
            if let Some(r) = content_range(&s) {
                prop_assert!(r.start <= r.end && r.end < r.total);
            }
            let text = format!("bytes {n}-{m}/{}", m.saturating_add(1));
            match content_range(&text) {
                Some(r) => prop_assert!(n <= m && r.len() == m - n + 1),
                None => prop_assert!(n > m || m == u64::MAX),
            }
            prop_assert_eq!(retry_after(&n.to_string(), now), Some(Duration::from_secs(n).min(MAX_RETRY_AFTER)));
        }
    }
}
