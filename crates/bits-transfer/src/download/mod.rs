//! Downloads: one file from an HTTP(S) server or a local file into its
//! temporary file, resuming where a previous attempt durably stopped.
//!
//! The promises, in order of importance:
//!
//! 1. **Never splice two versions.** Bytes are appended only when the
//!    source proves they belong to the version already on disk (see
//!    `version`); the resume point of a new version is saved before its
//!    first byte is written.
//! 2. **Never write bytes we cannot vouch for.** A partial response whose
//!    `Content-Range` is not what was asked, a coded body, a body longer
//!    than announced: nothing of it reaches the file.
//! 3. **Survive kill -9 and power loss.** Only bytes made durable (see
//!    `temp_file`) are reported, and a resume starts from the saved point in
//!    the very file it was written to.
//! 4. **Always end.** Every wait on the network is bounded.
//!
//! The parts: `sink` (the front-to-back writer), `body` (reading a response
//! into it), `segmented` (ranges over several connections), `local` (local
//! files), this file (the request loop).

mod body;
mod local;
mod segmented;
mod sink;

use crate::engine::Engine;
use crate::error::TransferError;
use crate::net::{self, shown};
use crate::pace::probe_target;
use crate::progress::{FileTransfer, Outcome, Progress};
use crate::ranges::RangeSet;
use crate::temp_file::{TempFile, Untrusted};
use crate::version::{self, Answer, Ask, Plan, Refusal};
use bits_core::{ByteRange, FileValidator};
use body::Body;
use filetime::FileTime;
use reqwest::header;
use segmented::{SegEnd, Segmented};
use sink::Sink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use url::Url;

/// How many times one `download` call restarts from zero because the source
/// changed under it before giving up with [`TransferError::SourceChanged`]
/// (the daemon retries later). Guards against a file rewritten continuously.
const MAX_RESTARTS: u32 = 3;

/// Where the bytes come from.
enum Source {
    Http(Url),
    Local(PathBuf),
}

fn parse_source(remote: &str) -> Result<Source, TransferError> {
    if remote.starts_with('/') {
        return Ok(Source::Local(PathBuf::from(remote)));
    }
    let invalid = |remote: String| TransferError::InvalidSource { remote };
    let url = Url::parse(remote).map_err(|_| invalid(remote.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(Source::Http(url)),
        "file" => url
            .to_file_path()
            .map(Source::Local)
            .map_err(|()| invalid(shown(&url))),
        _ => Err(invalid(shown(&url))),
    }
}

/// Where an attempt continues: the file to write and the bytes in it that
/// count.
struct Start {
    temp: Arc<TempFile>,
    /// Front to back: where writing continues.
    offset: u64,
    /// The version of the bytes before `offset` (or outside `missing`).
    stored: FileValidator,
    /// Several connections: the ranges still to fetch (empty otherwise).
    missing: Vec<ByteRange>,
}

impl Start {
    fn fresh(path: &Path) -> Start {
        Start {
            temp: Arc::new(TempFile::fresh(path)),
            offset: 0,
            stored: FileValidator::default(),
            missing: Vec::new(),
        }
    }
}

/// The record's resume point, if the temporary file still holds the bytes
/// it vouches for and their version can be proven; else byte 0 in a fresh
/// file. `validator` is the source's version for local files (it must
/// equal the record's), `None` for HTTP (the server checks `If-Range`).
async fn start_point(
    file: &FileTransfer<'_>,
    shown: &str,
    local_version: Option<&FileValidator>,
) -> Result<Start, TransferError> {
    let r = file.resume;
    if r.is_empty() {
        return Ok(Start::fresh(file.temp));
    }
    let size = r.validator.size;
    let why = if !r.validator.can_prove() {
        Some("its version cannot be proven (no strong ETag or date)")
    } else if local_version.is_some_and(|v| *v != r.validator) {
        Some("the source file changed")
    } else if size.is_none() {
        Some("the file's size was not known")
    } else if r.missing.is_empty() && size.is_some_and(|s| r.bytes > s) {
        Some("the checkpoint lies past the end of the file")
    } else if !r.missing.is_empty() && !size.is_some_and(|s| segmented::well_formed(&r.missing, s))
    {
        Some("the missing ranges do not describe the file")
    } else {
        None
    };
    if let Some(why) = why {
        info!(source = %shown, offset = r.bytes, reason = why, "cannot resume, restarting from 0");
        return Ok(Start::fresh(file.temp));
    }
    let total = size.unwrap_or(0);
    let durable = if r.missing.is_empty() {
        RangeSet::prefix(r.bytes)
    } else {
        RangeSet::all_but(total, &r.missing)
    };
    let path = file.temp.to_path_buf();
    let expected = r.temp_id;
    let opened = tokio::task::spawn_blocking(move || TempFile::reopen(&path, expected, durable))
        .await
        .map_err(crate::temp_file::join_error)
        .and_then(|r| r)
        .map_err(|source| TransferError::LocalFile {
            op: crate::error::LocalOp::Open,
            path: file.temp.to_path_buf(),
            written: 0,
            source,
        })?;
    let (temp, len) = match opened {
        Ok(found) => found,
        Err(Untrusted(why)) => {
            info!(path = %file.temp.display(), reason = %why, "the temporary file cannot be trusted; restarting from 0");
            return Ok(Start::fresh(file.temp));
        }
    };
    let temp = Arc::new(temp);
    let short = if r.missing.is_empty() {
        // The checkpoint claims bytes the file does not hold (someone cut
        // it, or a power cut lost what was never synced): extending it
        // would write zeros into the file.
        (len < r.bytes).then_some("the temporary file is shorter than the checkpoint")
    } else {
        (len != total).then_some("the temporary file does not have the file's size")
    };
    if let Some(why) = short {
        info!(source = %shown, offset = r.bytes, reason = why, "cannot resume, restarting from 0");
        // Our own file: it is truncated when the new version begins.
        return Ok(Start {
            temp,
            offset: 0,
            stored: FileValidator::default(),
            missing: Vec::new(),
        });
    }
    Ok(Start {
        temp,
        offset: if r.missing.is_empty() { r.bytes } else { 0 },
        stored: r.validator.clone(),
        missing: r.missing.clone(),
    })
}

impl Engine {
    /// Downloads one file into `file.temp`, resuming from `file.resume`.
    ///
    /// On success every byte is written (and, with `sync_on_finish`,
    /// fsynced and reported), and the temporary file's mtime is the
    /// source's. On failure (including [`TransferError::Cancelled`]) what
    /// arrived is made durable and reported first, so the next call resumes
    /// there.
    pub async fn download(
        &self,
        file: FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        match parse_source(file.remote)? {
            Source::Http(url) => self.download_http(&url, &file, progress, cancel).await,
            Source::Local(path) => local::copy(self, &path, &file, progress, cancel).await,
        }
    }

    async fn download_http(
        &self,
        url: &Url,
        file: &FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        let shown = shown(url);
        // Round trips are measured while this file moves, so the pace
        // follows the path to this server.
        let _probe = match &file.pace {
            Some(pacer) => probe_target(url).await.map(|addr| pacer.probe(addr)),
            None => None,
        };
        let start = start_point(file, &shown, None).await?;
        let mut restarts = 0u32;
        // Set once the server has shown it does not really serve ranges.
        let mut single = false;
        let mut sink = Sink::new(start.temp.clone(), self.config.checkpoint, progress);
        let mut offset = start.offset;
        let mut stored = start.stored;
        if !start.missing.is_empty() {
            // Ranges were being fetched side by side: carry on with them.
            let job = Segmented {
                url,
                credential: file.credential,
                shown: &shown,
                temp: start.temp.clone(),
                validator: &stored,
                missing: start.missing,
                first: None,
                connections: file.connections.max(1) as usize,
                sync_on_finish: file.sync_on_finish,
                pace: file.pace.clone(),
            };
            match self.download_segments(job, sink.progress(), cancel).await {
                Ok(outcome) => return Ok(outcome),
                Err(SegEnd::Failed(e)) => return Err(e),
                Err(end) => {
                    if matches!(end, SegEnd::NoRanges) {
                        single = true;
                    } else {
                        restarts += 1;
                    }
                    info!(url = %shown, reason = end.reason(), "cannot continue the ranges, restarting from 0");
                    stored = FileValidator::default();
                    offset = 0;
                }
            }
        }

        loop {
            let ask = Ask {
                start: offset,
                end: None,
                stored: &stored,
            };
            let mut request = net::with_credential(self.client.get(url.clone()), file.credential);
            if let Some(range) = ask.range() {
                request = request.header(header::RANGE, range);
            }
            if let Some(tag) = ask.if_range() {
                request = request.header(header::IF_RANGE, tag);
            }
            let mut response =
                match net::send(request, &shown, self.config.read_timeout, cancel).await {
                    Err(TransferError::Cancelled) => return Err(sink.cancel().await),
                    Err(e) => {
                        sink.checkpoint().await?;
                        return Err(e.with_written(sink.written()));
                    }
                    Ok(r) => r,
                };
            let answer = Answer::from_headers(
                response.status().as_u16(),
                response.headers(),
                SystemTime::now(),
            );
            match version::plan(&ask, &answer) {
                Plan::Refuse(refusal) => {
                    sink.checkpoint().await?;
                    return Err(refused(refusal, &shown));
                }
                plan @ (Plan::Restart(_) | Plan::NoRanges) => {
                    // (NoRanges is only given for ranges with an end, which
                    // this loop never asks for; it restarts all the same.)
                    let why = match plan {
                        Plan::Restart(why) => why,
                        _ => "the server answered a range with the whole file",
                    };
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        sink.checkpoint().await?;
                        return Err(TransferError::SourceChanged {
                            source_name: shown,
                            restarts: MAX_RESTARTS,
                        });
                    }
                    info!(url = %shown, offset, reason = why, "remote file changed, restarting from 0");
                    offset = 0;
                    stored = FileValidator::default();
                }
                Plan::Complete => {
                    debug!(url = %shown, offset, "every byte was already on disk");
                    sink.begin(&stored, offset, false).await?;
                    return sink
                        .finish(
                            mtime_of(&stored),
                            file.sync_on_finish,
                            stored.clone(),
                            offset,
                        )
                        .await;
                }
                Plan::Write {
                    at,
                    skip,
                    end,
                    version,
                    fresh,
                } => {
                    if fresh && offset > 0 {
                        info!(url = %shown, offset, "remote file changed, restarting from 0");
                    }
                    sink.begin(&version, at, fresh).await?;
                    let segments = (!single)
                        .then(|| segmentable(file, &answer, at, skip, end, &version))
                        .flatten();
                    if let Some(missing) = segments {
                        let job = Segmented {
                            url,
                            credential: file.credential,
                            shown: &shown,
                            temp: sink.temp(),
                            validator: &version,
                            connections: missing.len(),
                            missing,
                            first: Some(response),
                            sync_on_finish: file.sync_on_finish,
                            pace: file.pace.clone(),
                        };
                        match self.download_segments(job, sink.progress(), cancel).await {
                            Ok(outcome) => return Ok(outcome),
                            Err(SegEnd::Failed(e)) => return Err(e),
                            Err(SegEnd::NoRanges) => single = true,
                            Err(end) => {
                                restarts += 1;
                                if restarts > MAX_RESTARTS {
                                    return Err(TransferError::SourceChanged {
                                        source_name: shown,
                                        restarts: MAX_RESTARTS,
                                    });
                                }
                                info!(url = %shown, reason = end.reason(), "restarting from 0");
                            }
                        }
                        offset = 0;
                        stored = FileValidator::default();
                        continue;
                    }
                    sink.expect(end.map(|e| e.saturating_sub(at)));
                    body::stream(
                        &mut response,
                        &mut sink,
                        Body {
                            skip,
                            end,
                            shown: &shown,
                            pace: file.pace.as_deref(),
                            read_timeout: self.config.read_timeout,
                        },
                        cancel,
                    )
                    .await?;
                    let pos = sink.pos();
                    match version.size {
                        // A server may answer an open range with a shorter
                        // one: ask for the rest of the same version.
                        Some(total) if pos < total && version.can_prove() => {
                            debug!(url = %shown, pos, total, "partial answer; requesting the rest");
                            offset = pos;
                            stored = version;
                        }
                        Some(total) if pos < total => {
                            sink.checkpoint().await?;
                            return Err(TransferError::BodyCut {
                                url: shown,
                                received: pos,
                                expected: Some(total),
                                written: sink.written(),
                                source: None,
                            });
                        }
                        _ => {
                            let version = FileValidator {
                                size: Some(pos),
                                ..version
                            };
                            return sink
                                .finish(mtime_of(&version), file.sync_on_finish, version, pos)
                                .await;
                        }
                    }
                }
            }
        }
    }
}

/// The error for a response nothing of which may be written.
fn refused(refusal: Refusal, shown: &str) -> TransferError {
    let url = shown.to_string();
    match refusal {
        Refusal::Coded(coding) => TransferError::Coded { url, coding },
        Refusal::ContentRange { got, expected } => {
            TransferError::InvalidContentRange { url, got, expected }
        }
        Refusal::Status {
            status,
            retry_after,
        } => TransferError::HttpStatus {
            url,
            status,
            retry_after,
        },
    }
}

/// How to fetch the rest of a file over several connections, if that is
/// worth it: the file may use more than one (or is paced), the server allows
/// ranges, the answer covers the rest of a version `If-Range` can name, and
/// enough is left. Gives the ranges, one per connection.
fn segmentable(
    file: &FileTransfer<'_>,
    answer: &Answer,
    at: u64,
    skip: u64,
    end: Option<u64>,
    version: &FileValidator,
) -> Option<Vec<ByteRange>> {
    let total = version.size?;
    let ranges_allowed = answer.status == 206 || answer.accepts_ranges;
    let left = total.checked_sub(at)?;
    // A paced (background) file goes by ranges even over one connection: a
    // request per chunk keeps the server from sending far ahead of the pace.
    let paced = file.pace.is_some() && left >= segmented::MIN_SEGMENT;
    if (file.connections <= 1 && !paced)
        || !ranges_allowed
        || skip != 0
        || end != Some(total)
        || (left < 2 * segmented::MIN_SEGMENT && !paced)
    {
        return None;
    }
    version::if_range(version)?;
    let n = u64::from(file.connections)
        .min(left / segmented::MIN_SEGMENT)
        .max(1) as usize;
    Some(segmented::split(at, total, n))
}

/// The file's mtime from the version's date, if it has one.
pub(crate) fn mtime_of(v: &FileValidator) -> Option<FileTime> {
    let date = v.last_modified.as_deref()?;
    crate::headers::http_date(date).map(FileTime::from_system_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert!(matches!(parse_source("/srv/a.bin"), Ok(Source::Local(_))));
        assert!(matches!(
            parse_source("file:///srv/a%20b.bin"),
            Ok(Source::Local(p)) if p == Path::new("/srv/a b.bin")
        ));
        assert!(matches!(parse_source("https://h/a"), Ok(Source::Http(_))));
        assert!(matches!(
            parse_source("ftp://u:p@h/a"),
            Err(TransferError::InvalidSource { remote }) if remote == "ftp://h/a"
        ));
        assert!(parse_source("relative/path").is_err());
    }
}
