//! Validators (`ETag`, `Last-Modified`) and conditional requests.
//!
//! A resuming download client relies on these to make sure the bytes it
//! already has and the bytes it is about to get belong to the same version of
//! the file: it sends `If-Range` with the `ETag` (or date) it saw first, and
//! if the file has changed since, it gets the whole new file instead of a
//! range that would splice two versions together. So the `ETag` must change
//! whenever the file is replaced or modified. It is built from the inode
//! number (a replaced file is a new inode), the size and the modification
//! time in nanoseconds (an in-place rewrite bumps it).
//!
//! The evaluation order of the precondition headers follows RFC 9110 §13.2.2.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderMap};

/// One second past the last instant an HTTP-date can express (9999-12-31);
/// `httpdate` panics on later times, which a file's mtime may well be.
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_800;

/// The validators of one version of a file.
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    /// Strong entity tag, including the surrounding quotes.
    pub(crate) etag: String,
    /// Modification time truncated to whole seconds, as sent in
    /// `Last-Modified`; `None` when it cannot be expressed as an HTTP-date.
    pub(crate) last_modified: Option<SystemTime>,
    /// Whether `last_modified` may be used as a strong validator (for
    /// `If-Range`): only if the file was last modified at least a second ago,
    /// since another change within the same second would leave the date as
    /// it is (RFC 9110 §8.8.2.2).
    last_modified_is_strong: bool,
}

impl Validators {
    /// Validators of the file described by `meta`, as seen at time `now`.
    pub(crate) fn new(meta: &Metadata, now: SystemTime) -> Self {
        let mtime_nanos = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let etag = format!("\"{:x}-{:x}-{:x}\"", meta.ino(), meta.len(), mtime_nanos);
        let modified = meta.modified().ok();
        let last_modified = modified.and_then(truncate_to_http_date);
        let last_modified_is_strong = modified.is_some_and(|m| {
            now.duration_since(m)
                .is_ok_and(|age| age >= Duration::from_secs(1))
        });
        Self {
            etag,
            last_modified,
            last_modified_is_strong,
        }
    }

    /// The `Last-Modified` header value, if there is one.
    pub(crate) fn last_modified_header(&self) -> Option<String> {
        self.last_modified.map(httpdate::fmt_http_date)
    }
}

/// Truncates to whole seconds, or `None` if the time is outside what an
/// HTTP-date can express.
fn truncate_to_http_date(time: SystemTime) -> Option<SystemTime> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs < MAX_HTTP_DATE_SECS).then(|| UNIX_EPOCH + Duration::from_secs(secs))
}

/// Outcome of the precondition headers of a `GET`/`HEAD` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on and send the representation.
    Proceed,
    /// `304 Not Modified`: the client's cached copy is current.
    NotModified,
    /// `412 Precondition Failed` (`If-Match` / `If-Unmodified-Since`).
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since`, in the order RFC 9110 §13.2.2 prescribes for
/// `GET`/`HEAD`. (`If-Range` is separate: see [`if_range_allows_range`].)
pub(crate) fn evaluate(headers: &HeaderMap, v: &Validators) -> Precondition {
    if let Some(if_match) = header_str(headers, &header::IF_MATCH) {
        if !list_matches(if_match, &v.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = header_date(headers, &header::IF_UNMODIFIED_SINCE) {
        // Without a modification date the condition cannot be true.
        if v.last_modified.is_none_or(|lm| lm > date) {
            return Precondition::Failed;
        }
    }

    if let Some(if_none_match) = header_str(headers, &header::IF_NONE_MATCH) {
        if list_matches(if_none_match, &v.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = header_date(headers, &header::IF_MODIFIED_SINCE) {
        if v.last_modified.is_some_and(|lm| lm <= date) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` header may be honoured: true without `If-Range`, or when
/// `If-Range` names the current version — the exact `ETag` (strong
/// comparison), or exactly the `Last-Modified` date if that is a strong
/// validator. Otherwise the client's partial copy is stale and it must get
/// the whole file.
pub(crate) fn if_range_allows_range(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        // A weak tag never matches strongly, and ours are always strong.
        return value == v.etag;
    }
    match (httpdate::parse_http_date(value), v.last_modified) {
        (Ok(date), Some(lm)) => v.last_modified_is_strong && date == lm,
        _ => false,
    }
}

/// The value of a header as text, if present and valid.
fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of a header as an HTTP-date; an invalid date counts as absent,
/// as RFC 9110 requires.
fn header_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    header_str(headers, name).and_then(|v| httpdate::parse_http_date(v.trim()).ok())
}

/// Entity-tag comparison function (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and identical.
    Strong,
    /// Identical opaque parts, weakness ignored.
    Weak,
}

/// Whether an `If-Match` / `If-None-Match` value (`*` or a list of entity
/// tags) matches our strong `etag`.
fn list_matches(list: &str, etag: &str, comparison: Comparison) -> bool {
    let list = list.trim();
    if list == "*" {
        // The file exists, so "any current representation" matches.
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            return false;
        }
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(tagged) => (true, tagged),
            None => (false, rest),
        };
        // An entity tag is an opaque string in double quotes.
        let Some(after_quote) = tagged.strip_prefix('"') else {
            return false; // malformed list: stop, nothing further can match
        };
        let Some(close) = after_quote.find('"') else {
            return false;
        };
        let tag = &tagged[..close + 2];
        let matches = match comparison {
            Comparison::Strong => !weak && tag == etag,
            Comparison::Weak => tag == etag,
        };
        if matches {
            return true;
        }
        rest = &after_quote[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn validators(age_secs: u64) -> Validators {
        Validators {
            etag: "\"a-b-c\"".to_owned(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_000_000)),
            last_modified_is_strong: age_secs >= 1,
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    const LM: &str = "Mon, 12 Jan 1970 13:46:40 GMT"; // 1_000_000 s after the epoch

    #[test]
    fn entity_tag_lists() {
        let etag = "\"a-b-c\"";
        assert!(list_matches("\"a-b-c\"", etag, Comparison::Strong));
        assert!(list_matches("\"x\", \"a-b-c\"", etag, Comparison::Strong));
        assert!(!list_matches("W/\"a-b-c\"", etag, Comparison::Strong));
        assert!(list_matches("W/\"a-b-c\"", etag, Comparison::Weak));
        assert!(list_matches("*", etag, Comparison::Strong));
        assert!(!list_matches("\"a-b\"", etag, Comparison::Weak));
        assert!(!list_matches("a-b-c", etag, Comparison::Weak));
        assert!(!list_matches("\"a-b-c", etag, Comparison::Weak));
        assert!(!list_matches("", etag, Comparison::Weak));
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        let v = validators(10);
        let h = headers(&[(header::IF_NONE_MATCH, "\"a-b-c\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_NONE_MATCH, "\"other\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, LM)]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "Sun, 11 Jan 1970 00:00:00 GMT")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        // If-None-Match takes precedence over If-Modified-Since.
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, LM),
        ]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "not a date")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let v = validators(10);
        let h = headers(&[(header::IF_MATCH, "\"nope\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_MATCH, "\"a-b-c\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, "Sun, 11 Jan 1970 00:00:00 GMT")]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, LM)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_range() {
        let v = validators(10);
        assert!(if_range_allows_range(&HeaderMap::new(), &v));
        assert!(if_range_allows_range(
            &headers(&[(header::IF_RANGE, "\"a-b-c\"")]),
            &v
        ));
        assert!(!if_range_allows_range(
            &headers(&[(header::IF_RANGE, "W/\"a-b-c\"")]),
            &v
        ));
        assert!(!if_range_allows_range(
            &headers(&[(header::IF_RANGE, "\"other\"")]),
            &v
        ));
        assert!(if_range_allows_range(
            &headers(&[(header::IF_RANGE, LM)]),
            &v
        ));
        assert!(!if_range_allows_range(
            &headers(&[(header::IF_RANGE, "Sun, 11 Jan 1970 00:00:00 GMT")]),
            &v
        ));
        assert!(!if_range_allows_range(
            &headers(&[(header::IF_RANGE, "garbage")]),
            &v
        ));
        // A date that is too recent to be a strong validator never matches.
        assert!(!if_range_allows_range(
            &headers(&[(header::IF_RANGE, LM)]),
            &validators(0)
        ));
    }

    #[test]
    fn out_of_range_mtimes_have_no_last_modified() {
        assert_eq!(
            truncate_to_http_date(UNIX_EPOCH - Duration::from_secs(1)),
            None
        );
        assert_eq!(
            truncate_to_http_date(UNIX_EPOCH + Duration::from_secs(MAX_HTTP_DATE_SECS)),
            None
        );
        assert_eq!(
            truncate_to_http_date(UNIX_EPOCH + Duration::from_millis(1500)),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
    }
}
