//! Which version of a remote file bytes belong to, and what a response
//! means for the bytes already on disk. Pure: no I/O and no clock (the time
//! comes in as an argument), so every rule here is tested against a model of
//! a server whose file changes (the tests at the bottom).
//!
//! The rules, from RFC 9110:
//!
//! - Only **strong** validators may prove that two sets of bytes belong to
//!   one version (§8.8.1, §13.1.5, §15.3.7.3): a strong ETag, or a
//!   Last-Modified at least one second older than the response's `Date`
//!   (§8.8.2.2: a file changed twice within one second keeps its date). A
//!   file whose version cannot be proven is never resumed: it starts again
//!   from byte 0.
//! - A response that **names another version** (a different entity-tag,
//!   weak or strong, or a different date) means the bytes on disk are not
//!   the file any more: start again from byte 0.
//! - Every ranged request carries `If-Range` with the strong validator, so
//!   a server that has a newer version answers with the whole of it.
//! - A body coded with anything but `identity` (`Content-Encoding: gzip`…)
//!   is not the file: its length and ranges count coded bytes. bits asks
//!   for `identity`; a server that codes anyway is refused (see
//!   ARCHITECTURE.md, "Never splice").
//!
//! [`plan`] turns one response into what the engine does next.

use crate::headers::{self, ContentRange};
use bits_core::FileValidator;
use reqwest::header::{self, HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime};

/// What the engine asks a server for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    /// The first byte wanted; 0 with no `end` asks for the whole file.
    pub(crate) start: u64,
    /// One past the last byte wanted (a range of a file fetched over
    /// several connections); `None`: to the end.
    pub(crate) end: Option<u64>,
    /// The version the bytes already on disk belong to.
    pub(crate) stored: &'a FileValidator,
}

impl Ask<'_> {
    /// Whether this asks for part of the file.
    pub(crate) fn ranged(&self) -> bool {
        self.start > 0 || self.end.is_some()
    }

    /// The `Range` header, if any.
    pub(crate) fn range(&self) -> Option<String> {
        if !self.ranged() {
            return None;
        }
        Some(match self.end {
            Some(end) => format!("bytes={}-{}", self.start, end.saturating_sub(1)),
            None => format!("bytes={}-", self.start),
        })
    }

    /// The `If-Range` header: on every ranged request whose version can be
    /// proven (the engine asks for no other ranges).
    pub(crate) fn if_range(&self) -> Option<String> {
        self.ranged().then(|| if_range(self.stored)).flatten()
    }

    /// `Range` and `If-Range` as request headers. A validator that cannot
    /// travel as a header value (only a corrupt record holds one) drops
    /// the range too: without `If-Range` the range could be of another
    /// version, so the whole file is asked for.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let Some(range) = self.range().and_then(|r| HeaderValue::from_str(&r).ok()) else {
            return headers;
        };
        if let Some(tag) = self.if_range() {
            match HeaderValue::from_str(&tag) {
                Ok(tag) => headers.insert(header::IF_RANGE, tag),
                Err(_) => return headers,
            };
        }
        headers.insert(header::RANGE, range);
        headers
    }
}

/// The `If-Range` value for a version: its strong ETag, else its strong
/// date. Weak validators are not allowed there (§13.1.5).
pub(crate) fn if_range(v: &FileValidator) -> Option<String> {
    v.strong_etag()
        .or_else(|| v.strong_date())
        .map(str::to_string)
}

/// The version of a local file: its size and its modification time at the
/// file system's full resolution (`seconds.nanoseconds` since the epoch), a
/// strong validator. An HTTP date's one-second resolution would miss a
/// rewrite of the same size within the same second.
pub(crate) fn of_local_file(meta: &std::fs::Metadata) -> FileValidator {
    use std::time::UNIX_EPOCH;
    let mtime = meta
        .modified()
        .ok()
        .map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
            Err(before) => {
                let d = before.duration();
                format!("-{}.{:09}", d.as_secs(), d.subsec_nanos())
            }
        });
    FileValidator {
        etag: None,
        last_modified_strong: mtime.is_some(),
        last_modified: mtime,
        size: Some(meta.len()),
    }
}

/// A version's date as a file modification time, if it has one that is an
/// HTTP date (the temporary file gets the source's mtime).
pub(crate) fn mtime(v: &FileValidator) -> Option<filetime::FileTime> {
    let date = v.last_modified.as_deref()?;
    headers::http_date(date).map(filetime::FileTime::from_system_time)
}

/// What a response says, as far as versions and bytes go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The version it describes: ETag, Last-Modified (its strength decided
    /// with `Date`); `size` is the Content-Length of a 200, the total of a
    /// 206's Content-Range.
    pub(crate) version: FileValidator,
    /// `Content-Range` as sent (for messages) and parsed.
    pub(crate) content_range_raw: Option<String>,
    pub(crate) content_range: Option<ContentRange>,
    /// `Content-Length`.
    pub(crate) content_length: Option<u64>,
    /// Content codings other than identity.
    pub(crate) coding: Option<String>,
    /// `Retry-After`, relative to when the answer arrived.
    pub(crate) retry_after: Option<Duration>,
    /// `Accept-Ranges: bytes`.
    pub(crate) accepts_ranges: bool,
}

impl Answer {
    /// Reads the headers of a response that arrived at `now`.
    pub(crate) fn from_headers(status: u16, h: &HeaderMap, now: SystemTime) -> Answer {
        let text = |name: header::HeaderName| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let content_length = text(header::CONTENT_LENGTH).and_then(|s| headers::decimal(&s));
        let content_range_raw = text(header::CONTENT_RANGE);
        let content_range = content_range_raw
            .as_deref()
            .and_then(headers::content_range);
        let last_modified = text(header::LAST_MODIFIED);
        let last_modified_strong = match (
            last_modified.as_deref().and_then(headers::http_date),
            text(header::DATE).as_deref().and_then(headers::http_date),
        ) {
            (Some(modified), Some(date)) => date
                .duration_since(modified)
                .is_ok_and(|age| age >= Duration::from_secs(1)),
            _ => false,
        };
        let size = if status == 206 {
            content_range.map(|r| r.total)
        } else {
            content_length
        };
        Answer {
            status,
            version: FileValidator {
                etag: text(header::ETAG),
                last_modified,
                last_modified_strong,
                size,
            },
            content_range_raw,
            content_range,
            content_length,
            coding: text(header::CONTENT_ENCODING).and_then(|s| headers::coding(&s)),
            retry_after: text(header::RETRY_AFTER).and_then(|s| headers::retry_after(&s, now)),
            accepts_ranges: text(header::ACCEPT_RANGES)
                .is_some_and(|s| headers::accepts_byte_ranges(&s)),
        }
    }
}

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Write the body at `at` as bytes of `version`, after dropping its
    /// first `skip` bytes (a server that ignored `Range`); the body must end
    /// at the absolute position `end`, if known. `fresh`: the body starts
    /// the file anew (a new version, or nothing was there): the resume point
    /// `(version, 0)` must be committed before its first byte is written, or
    /// a crash could leave the new version's start under the old version's
    /// name, to be continued with the old version's tail.
    Write {
        at: u64,
        skip: u64,
        end: Option<u64>,
        version: FileValidator,
        fresh: bool,
    },
    /// Every byte is already on disk.
    Complete,
    /// The bytes on disk cannot be continued with this answer: ask for the
    /// whole file again.
    Restart(&'static str),
    /// A range of a file fetched over several connections came back as the
    /// whole, unchanged file: the server does not really serve ranges.
    NoRanges,
    /// Nothing may be written.
    Refuse(Refusal),
}

/// Why nothing of a response may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The body is coded (`Content-Encoding`).
    Coded(String),
    /// A 206 whose `Content-Range` is not the range asked for, names
    /// another size, or disagrees with `Content-Length`.
    ContentRange {
        got: Option<String>,
        expected: String,
    },
    /// An error status.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// Whether `got` names another version than `stored`: a different
/// entity-tag (weak or strong, compared without `W/`) or a different date.
pub(crate) fn names_another(got: &FileValidator, stored: &FileValidator) -> bool {
    let opaque = |t: &String| t.strip_prefix("W/").unwrap_or(t).to_string();
    let tags_differ = matches!(
        (got.etag.as_ref().map(opaque), stored.etag.as_ref().map(opaque)),
        (Some(a), Some(b)) if a != b
    );
    let dates_differ = matches!(
        (&got.last_modified, &stored.last_modified),
        (Some(a), Some(b)) if a != b
    );
    tags_differ || dates_differ
}

/// Whether a whole-file (200) answer is proven to be the stored version:
/// the same size, nothing naming another version, and an equal strong
/// validator on both sides.
pub(crate) fn proves_same(got: &FileValidator, stored: &FileValidator) -> bool {
    let same = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a == b);
    got.size.is_some()
        && got.size == stored.size
        && !names_another(got, stored)
        && (same(got.strong_etag(), stored.strong_etag())
            || same(got.strong_date(), stored.strong_date()))
}

/// What the engine does with `answer` to `ask`.
pub(crate) fn plan(ask: &Ask<'_>, answer: &Answer) -> Plan {
    let stored = ask.stored;
    let status = answer.status;
    if (200..300).contains(&status) {
        if let Some(coding) = &answer.coding {
            return Plan::Refuse(Refusal::Coded(coding.clone()));
        }
    }
    match status {
        206 => {
            if ask.ranged() && names_another(&answer.version, stored) {
                return Plan::Restart("the partial response names another version");
            }
            let proven = !ask.ranged()
                || ask.if_range().is_some()
                || matches!((answer.version.strong_etag(), stored.strong_etag()), (Some(a), Some(b)) if a == b);
            if !proven {
                return Plan::Restart("a partial response cannot be tied to the stored version");
            }
            let size = if ask.ranged() { stored.size } else { None };
            let Some(range) = acceptable_range(ask, answer, size) else {
                return Plan::Refuse(Refusal::ContentRange {
                    got: answer.content_range_raw.clone(),
                    expected: expected_range(ask, size),
                });
            };
            let version = if ask.ranged() {
                // If-Range (or the matching tag) proved this is the stored
                // version; the 206 may leave validators out.
                FileValidator {
                    size: Some(range.total),
                    ..stored.clone()
                }
            } else {
                FileValidator {
                    size: Some(range.total),
                    ..answer.version.clone()
                }
            };
            Plan::Write {
                at: ask.start,
                skip: 0,
                end: Some(range.end + 1),
                version,
                fresh: !ask.ranged(),
            }
        }
        416 if ask.ranged() => {
            // Some servers check the range before If-Range: only trust
            // "nothing left" if the answer names no other version.
            if ask.end.is_none()
                && stored.size == Some(ask.start)
                && !names_another(&answer.version, stored)
            {
                Plan::Complete
            } else {
                Plan::Restart("the server cannot satisfy the range")
            }
        }
        s if (200..300).contains(&s) => {
            let version = answer.version.clone();
            let end = answer.content_length;
            if !ask.ranged() {
                return Plan::Write {
                    at: 0,
                    skip: 0,
                    end,
                    version,
                    fresh: true,
                };
            }
            match (proves_same(&version, stored), ask.end.is_some()) {
                (true, true) => Plan::NoRanges,
                (true, false) => Plan::Write {
                    at: ask.start,
                    skip: ask.start,
                    end,
                    version,
                    fresh: false,
                },
                (false, true) => {
                    Plan::Restart("the server sent the whole file instead of a range: it changed")
                }
                // If-Range failed: the body is the whole new version. Write
                // it from 0 rather than ask again.
                (false, false) => Plan::Write {
                    at: 0,
                    skip: 0,
                    end,
                    version,
                    fresh: true,
                },
            }
        }
        _ => Plan::Refuse(Refusal::Status {
            status,
            retry_after: answer.retry_after,
        }),
    }
}

/// A 206's `Content-Range`, if it is what was asked: it starts at the first
/// byte asked for, ends no later than asked, names the known size, and
/// agrees with `Content-Length`.
fn acceptable_range(ask: &Ask<'_>, answer: &Answer, size: Option<u64>) -> Option<ContentRange> {
    let r = answer.content_range?;
    let ok = r.start == ask.start
        && ask.end.is_none_or(|end| r.end < end)
        && size.is_none_or(|s| s == r.total)
        && answer.content_length.is_none_or(|n| n == r.len());
    ok.then_some(r)
}

/// The `Content-Range` a 206 should have carried, for the message.
fn expected_range(ask: &Ask<'_>, size: Option<u64>) -> String {
    let star = || "*".to_string();
    let last = ask
        .end
        .map(|e| e.saturating_sub(1))
        .or(size.map(|s| s.max(1) - 1));
    format!(
        "bytes {}-{}/{}",
        ask.start,
        last.map_or_else(star, |l| l.to_string()),
        size.map_or_else(star, |s| s.to_string())
    )
}

#[cfg(test)]
mod tests;
