//! The version rules, case by case, and against a model: a server whose
//! file changes between requests (some of its versions sharing a date or a
//! weak tag, some of its mirrors still serving old versions), a client that
//! follows [`plan`] the way the engine does, and crashes that drop whatever
//! was not made durable. Whatever happens, a file the client calls complete
//! is exactly one version.

use super::*;
use proptest::prelude::*;

fn v(etag: Option<&str>, lm: Option<&str>, strong: bool, size: Option<u64>) -> FileValidator {
    FileValidator {
        etag: etag.map(str::to_string),
        last_modified: lm.map(str::to_string),
        last_modified_strong: strong,
        size,
    }
}

fn answer(status: u16, version: FileValidator) -> Answer {
    Answer {
        status,
        content_length: version.size,
        version,
        ..Answer::default()
    }
}

fn partial(version: FileValidator, start: u64, end: u64, total: u64) -> Answer {
    let raw = format!("bytes {start}-{end}/{total}");
    Answer {
        status: 206,
        content_range: headers::content_range(&raw),
        content_range_raw: Some(raw),
        content_length: Some(end - start + 1),
        version: FileValidator {
            size: Some(total),
            ..version
        },
        ..Answer::default()
    }
}

#[test]
fn if_range_carries_only_strong_validators() {
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    assert_eq!(
        if_range(&v(Some("\"a\""), Some(date), true, None)).as_deref(),
        Some("\"a\"")
    );
    assert_eq!(
        if_range(&v(Some("W/\"a\""), Some(date), true, None)).as_deref(),
        Some(date)
    );
    assert_eq!(if_range(&v(Some("W/\"a\""), Some(date), false, None)), None);
    assert!(!v(Some("W/\"a\""), Some(date), false, Some(9)).can_prove());
}

/// Regression: a Range request without If-Range, answered 206 with the same
/// weak tag, was appended. A weak tag proves nothing.
#[test]
fn a_weak_etag_never_proves_a_partial_response() {
    let stored = v(Some("W/\"a\""), None, false, Some(100));
    let ask = Ask {
        start: 40,
        end: None,
        stored: &stored,
    };
    assert_eq!(ask.if_range(), None);
    let got = plan(&ask, &partial(stored.clone(), 40, 99, 100));
    assert!(matches!(got, Plan::Restart(_)), "{got:?}");
    // Nor does it prove a whole answer to be the same version.
    let got = plan(&ask, &answer(200, stored.clone()));
    assert!(
        matches!(
            got,
            Plan::Write {
                at: 0,
                fresh: true,
                ..
            }
        ),
        "{got:?}"
    );
}

/// Regression: a Last-Modified is strong only when at least a second older
/// than the response's Date.
#[test]
fn a_date_is_strong_only_a_second_before_the_response() {
    let mut h = HeaderMap::new();
    h.insert(
        header::LAST_MODIFIED,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    h.insert(
        header::DATE,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    let now = SystemTime::now();
    assert!(
        !Answer::from_headers(200, &h, now)
            .version
            .last_modified_strong
    );
    h.insert(
        header::DATE,
        "Wed, 21 Oct 2015 07:28:01 GMT".parse().unwrap(),
    );
    assert!(
        Answer::from_headers(200, &h, now)
            .version
            .last_modified_strong
    );
    h.remove(header::DATE);
    assert!(
        !Answer::from_headers(200, &h, now)
            .version
            .last_modified_strong
    );
}

/// Regression: a gzip-coded body was saved (or written at the offset) as if
/// it were the file.
#[test]
fn a_coded_body_is_refused() {
    let stored = v(Some("\"a\""), None, false, Some(100));
    for (start, a) in [
        (0, answer(200, stored.clone())),
        (40, partial(stored.clone(), 40, 99, 100)),
    ] {
        let a = Answer {
            coding: Some("gzip".into()),
            ..a
        };
        let ask = Ask {
            start,
            end: None,
            stored: &stored,
        };
        assert_eq!(plan(&ask, &a), Plan::Refuse(Refusal::Coded("gzip".into())));
    }
}

#[test]
fn a_partial_response_must_be_the_range_asked() {
    let stored = v(Some("\"a\""), None, false, Some(100));
    let ask = Ask {
        start: 10,
        end: None,
        stored: &stored,
    };
    let ok = plan(&ask, &partial(stored.clone(), 10, 99, 100));
    assert!(matches!(
        ok,
        Plan::Write {
            at: 10,
            end: Some(100),
            fresh: false,
            ..
        }
    ));
    for bad in [
        partial(stored.clone(), 11, 99, 100),
        partial(stored.clone(), 10, 99, 101),
        Answer {
            content_length: Some(5),
            ..partial(stored.clone(), 10, 99, 100)
        },
        Answer {
            content_range: None,
            content_range_raw: None,
            ..partial(stored.clone(), 10, 99, 100)
        },
    ] {
        assert!(matches!(
            plan(&ask, &bad),
            Plan::Refuse(Refusal::ContentRange { .. })
        ));
    }
    // Another tag in the 206: the file changed.
    let other = partial(v(Some("\"b\""), None, false, None), 10, 99, 100);
    assert!(matches!(plan(&ask, &other), Plan::Restart(_)));
}

#[test]
fn a_whole_answer_to_a_range_is_skipped_only_when_proven_the_same() {
    let stored = v(Some("\"a\""), None, false, Some(100));
    let ask = Ask {
        start: 30,
        end: None,
        stored: &stored,
    };
    let same = plan(&ask, &answer(200, stored.clone()));
    assert!(matches!(
        same,
        Plan::Write {
            at: 30,
            skip: 30,
            fresh: false,
            ..
        }
    ));
    let other = plan(&ask, &answer(200, v(Some("\"b\""), None, false, Some(100))));
    assert!(matches!(
        other,
        Plan::Write {
            at: 0,
            skip: 0,
            fresh: true,
            ..
        }
    ));
    let no_size = Answer {
        content_length: None,
        ..answer(
            200,
            FileValidator {
                size: None,
                ..stored.clone()
            },
        )
    };
    assert!(matches!(
        plan(&ask, &no_size),
        Plan::Write { fresh: true, .. }
    ));
    // A range of a segmented download answered whole: no ranges here.
    let seg = Ask {
        start: 30,
        end: Some(60),
        stored: &stored,
    };
    assert_eq!(plan(&seg, &answer(200, stored.clone())), Plan::NoRanges);
}

#[test]
fn nothing_left_is_believed_only_without_another_version() {
    let stored = v(Some("\"a\""), None, false, Some(100));
    let ask = Ask {
        start: 100,
        end: None,
        stored: &stored,
    };
    assert_eq!(
        plan(&ask, &answer(416, FileValidator::default())),
        Plan::Complete
    );
    let other = answer(416, v(Some("\"b\""), None, false, None));
    assert!(matches!(plan(&ask, &other), Plan::Restart(_)));
}

// ------------------------------------------------------------------ model

/// One version of the remote file.
#[derive(Debug, Clone)]
struct Version {
    content: Vec<u8>,
    validator: FileValidator,
}

/// A server (or a pool of mirrors) serving a file that changes.
#[derive(Debug)]
struct Server {
    versions: Vec<Version>,
    current: usize,
    /// Honours Range (with If-Range); else always answers 200.
    ranges: bool,
}

impl Server {
    /// The answer to `ask`; `stale` when the request reaches a mirror (a
    /// CDN edge) that still serves a range of an *old* version that
    /// If-Range names.
    fn answer(&self, ask: &Ask<'_>, stale: bool) -> (Answer, Vec<u8>, usize) {
        let whole = |i: usize| {
            let v = &self.versions[i];
            (answer(200, v.validator.clone()), v.content.clone(), i)
        };
        if !ask.ranged() || !self.ranges {
            return whole(self.current);
        }
        let matches = |v: &Version| {
            ask.if_range().is_some_and(|ir| {
                v.validator.strong_etag() == Some(ir.as_str())
                    || v.validator.strong_date() == Some(ir.as_str())
            })
        };
        let served = if matches(&self.versions[self.current]) {
            Some(self.current)
        } else if stale {
            self.versions.iter().position(matches)
        } else {
            None
        };
        let Some(i) = served else {
            return whole(self.current);
        };
        let v = &self.versions[i];
        let len = v.content.len() as u64;
        if ask.start >= len {
            return (answer(416, v.validator.clone()), Vec::new(), i);
        }
        let end = ask.end.unwrap_or(len).min(len);
        let body = v.content[ask.start as usize..end as usize].to_vec();
        (
            partial(v.validator.clone(), ask.start, end - 1, len),
            body,
            i,
        )
    }
}

/// What the store holds for the file.
#[derive(Debug, Clone, Default)]
struct Saved {
    validator: FileValidator,
    bytes: u64,
}

/// One step of the world, drawn by proptest.
#[derive(Debug, Clone)]
struct Step {
    /// The server switches to this version first (modulo the count).
    switch: Option<usize>,
    /// The body is cut after this many bytes.
    cut: Option<usize>,
    /// The client checkpoints after this many bytes of the body.
    checkpoint_at: Option<usize>,
    /// After a cut: the machine loses power; of the bytes not durable, this
    /// fraction (in 1/4) reached the disk anyway.
    crash: Option<u8>,
    /// The request reaches a mirror that still holds old versions.
    stale: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        proptest::option::weighted(0.5, 0usize..4),
        proptest::option::weighted(0.6, 0usize..70),
        proptest::option::weighted(0.3, 0usize..70),
        proptest::option::weighted(0.5, prop_oneof![Just(0u8), Just(2), Just(4)]),
        any::<bool>(),
    )
        .prop_map(|(switch, cut, checkpoint_at, crash, stale)| Step {
            switch,
            cut,
            checkpoint_at,
            crash,
            stale,
        })
}

/// Versions: random contents (some the same length), tags strong, weak
/// (possibly shared) or absent, dates shared by some (and then weak).
fn versions() -> impl Strategy<Value = Vec<Version>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 1..64),
            0u8..3,
            0u8..3,
            0u8..3,
        ),
        2..5,
    )
    .prop_map(|raw| {
        let dates: Vec<u8> = raw.iter().map(|r| r.3).collect();
        raw.iter()
            .enumerate()
            .map(|(i, (content, tag, weak_tag, date))| {
                let etag = match tag {
                    0 => None,
                    1 => Some(format!("\"v{i}\"")),
                    _ => Some(format!("W/\"w{weak_tag}\"")),
                };
                let shared = dates.iter().filter(|d| *d == date).count() > 1;
                Version {
                    content: content.clone(),
                    validator: FileValidator {
                        etag,
                        last_modified: (*date > 0).then(|| format!("day {date}")),
                        last_modified_strong: *date > 0 && !shared,
                        size: Some(content.len() as u64),
                    },
                }
            })
            .collect()
    })
}

/// Runs the client until it calls the file complete; returns the file and
/// the version it says the file is. The client follows the engine: resume
/// only a provable version from a file at least as long as the checkpoint,
/// commit `(version, 0)` before the first byte of a fresh body, checkpoint
/// (durable, then saved), and after a cut save what arrived.
fn run(server: &mut Server, steps: &[Step]) -> Option<(Vec<u8>, FileValidator)> {
    let mut saved = Saved::default();
    let mut disk: Vec<u8> = Vec::new();
    let mut durable = 0usize;
    let mut steps = steps.iter().cycle().take(400);
    'daemon: loop {
        // A new attempt after a crash or failure: the resume point.
        let resumable = saved.bytes > 0
            && saved.validator.can_prove()
            && saved.validator.size.is_some_and(|s| saved.bytes <= s)
            && disk.len() as u64 >= saved.bytes;
        let mut offset = if resumable { saved.bytes } else { 0 };
        let mut stored = if resumable {
            saved.validator.clone()
        } else {
            FileValidator::default()
        };
        disk.truncate(offset as usize);
        durable = durable.min(disk.len());
        loop {
            let step = steps.next()?;
            if let Some(s) = step.switch {
                server.current = s % server.versions.len();
            }
            let ask = Ask {
                start: offset,
                end: None,
                stored: &stored,
            };
            let (a, body, _) = server.answer(&ask, step.stale);
            match plan(&ask, &a) {
                Plan::Complete => return Some((disk, stored)),
                Plan::Restart(_) => {
                    disk.clear();
                    durable = 0;
                    offset = 0;
                    stored = FileValidator::default();
                }
                Plan::Write {
                    at,
                    skip,
                    end,
                    version,
                    fresh,
                } => {
                    if fresh {
                        saved = Saved {
                            validator: version.clone(),
                            bytes: 0,
                        };
                    }
                    disk.truncate(at as usize);
                    durable = durable.min(disk.len());
                    let body = &body[skip as usize..];
                    let take = step.cut.map_or(body.len(), |c| c.min(body.len()));
                    for (i, b) in body[..take].iter().enumerate() {
                        disk.push(*b);
                        if step.checkpoint_at == Some(i) {
                            durable = disk.len();
                            saved = Saved {
                                validator: version.clone(),
                                bytes: disk.len() as u64,
                            };
                        }
                    }
                    let pos = disk.len() as u64;
                    if take < body.len() {
                        if let Some(kept) = step.crash {
                            // Power lost: unsynced bytes may or may not be there.
                            let extra = (disk.len() - durable) * usize::from(kept.min(4)) / 4;
                            disk.truncate(durable + extra);
                        } else {
                            // The engine makes what arrived durable and saves it.
                            durable = disk.len();
                            saved = Saved {
                                validator: version.clone(),
                                bytes: pos,
                            };
                        }
                        continue 'daemon;
                    }
                    match version.size {
                        Some(total) if pos < total && version.can_prove() => {
                            offset = pos;
                            stored = version;
                        }
                        Some(total) if pos < total => {
                            // Cannot continue this version: it fails; saved as is.
                            continue 'daemon;
                        }
                        _ if end.is_some_and(|e| pos != e) => return None,
                        _ => return Some((disk, version)),
                    }
                }
                Plan::NoRanges | Plan::Refuse(_) => return None,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Whatever the server does, a file the client calls complete is
    /// exactly one version: the one it names.
    #[test]
    fn a_finished_file_is_exactly_one_version(
        versions in versions(),
        ranges in proptest::bool::weighted(0.8),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let mut server = Server { versions, current: 0, ranges };
        if let Some((file, named)) = run(&mut server, &steps) {
            let matching: Vec<_> = server
                .versions
                .iter()
                .filter(|v| v.content == file)
                .collect();
            prop_assert!(!matching.is_empty(), "the file is no version: {file:?}");
            prop_assert!(
                matching.iter().any(|v| named.size == v.validator.size && !names_another(&named, &v.validator)),
                "the file is not the version it names"
            );
        }
    }
}
