//! The download engine: moves the bytes of one file from an HTTP(S) server
//! or a local file into a temporary file, resuming where a previous attempt
//! durably stopped.
//!
//! The promises, in order of importance:
//!
//! 1. **Never splice two versions.** A resumed transfer only appends to the
//!    temporary file when the source proves it is still the version the
//!    existing bytes came from (`If-Range` with a strong ETag or
//!    Last-Modified, the response's own validator, `Content-Range` and size
//!    checks; size and mtime for local files). Anything else restarts from
//!    byte 0.
//! 2. **Never write bytes we cannot vouch for.** A partial response whose
//!    `Content-Range` is not what was asked is rejected before any byte is
//!    written; a body longer than announced is cut off with an error.
//! 3. **Survive kill -9 and power loss.** The temporary file is truncated to
//!    the last checkpoint before writing (bytes after it may be garbage after
//!    power loss), and a checkpoint is only reported through
//!    [`Progress::checkpoint`] once the bytes before it are `fdatasync`ed.
//!
//! Writing is done by [`Sink`], which batches chunks into 1 MiB buffers and
//! writes them on tokio's blocking pool while the next buffer fills (see
//! there for why).

use crate::error::{redact, LocalOp, NetFailure, TransferError};
use crate::pace::{probe_target, Pacer};
use crate::segmented::{self, SegEnd, Segmented};
use bits_core::{ByteRange, FileValidator};
use bytes::Bytes;
use filetime::FileTime;
use reqwest::header::{self, HeaderMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

/// Size of one write buffer. Large enough that a write syscall (and a trip
/// to the blocking pool) is amortised over many network chunks, small enough
/// that two of them per running download cost little memory.
const BUF_CAP: usize = 1 << 20;

/// How many times one `download` call restarts from zero because the source
/// changed under it before giving up with [`TransferError::SourceChanged`]
/// (the daemon retries later). Guards against a file rewritten continuously.
const MAX_RESTARTS: u32 = 3;

/// How often progress is made durable.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Checkpoint at least this often while bytes arrive.
    pub interval: Duration,
    /// ... and at least every this many bytes.
    pub bytes: u64,
}

impl Default for CheckpointPolicy {
    /// Every 5 seconds or 32 MiB: at most that much is downloaded again after
    /// a power loss, while `fdatasync` stays rare enough not to throttle fast
    /// links.
    fn default() -> Self {
        CheckpointPolicy {
            interval: Duration::from_secs(5),
            bytes: 32 << 20,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Checkpoint policy.
    pub checkpoint: CheckpointPolicy,
    /// Give up on a connection that sends nothing for this long.
    pub read_timeout: Duration,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Bytes per BITS upload Fragment packet; see
    /// [`DEFAULT_UPLOAD_FRAGMENT`](crate::DEFAULT_UPLOAD_FRAGMENT) for the
    /// trade-off. Values below 1 are treated as 1.
    pub upload_fragment: u64,
}

impl Default for EngineConfig {
    /// Default checkpoints, a 60 s read timeout, a 30 s connect timeout and
    /// 4 MiB upload fragments.
    fn default() -> Self {
        EngineConfig {
            checkpoint: CheckpointPolicy::default(),
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            upload_fragment: crate::upload::DEFAULT_UPLOAD_FRAGMENT,
        }
    }
}

/// One file to move.
#[derive(Debug, Clone)]
pub struct FileTransfer<'a> {
    /// http(s) URL, file:// URL or absolute local path.
    pub remote: &'a str,
    /// Where the bytes are written.
    pub temp: &'a Path,
    /// Bytes of `temp` that are durable (the last checkpoint).
    pub offset: u64,
    /// The version of the remote file those bytes belong to.
    pub validator: &'a FileValidator,
    /// Whether the engine makes the finished file durable itself (fsync,
    /// then a last [`Progress::checkpoint`]). A caller that moves many files
    /// passes `false` and makes a batch of them durable at once (one
    /// `syncfs` instead of one `fsync` per file); until it has, the bytes
    /// past the last checkpoint are not promised to survive a power cut.
    pub sync_on_finish: bool,
    /// When not empty, the file was being fetched over several connections
    /// and these ranges (sorted) are what its last checkpoint still lacked;
    /// `offset` then only counts the bytes outside them.
    pub missing: &'a [ByteRange],
    /// How many connections this file may use (ranges of one version side
    /// by side) when the server allows ranges. 1: front to back.
    pub connections: u32,
    /// For a background job: paces HTTP(S) reads to the bandwidth nobody
    /// else uses (see [`Pacer`]). `None`: as fast as the path allows.
    pub pace: Option<Arc<Pacer>>,
}

/// Receives progress. Called from the transfer task; must be quick.
pub trait Progress: Send {
    /// The source answered; `validator` names the version being written and
    /// `offset` is where writing continues (0 after a restart). Called before
    /// any byte of that version is written: persist both as the new resume
    /// point before later checkpoints. `missing` is empty when the file is
    /// written front to back from `offset`; otherwise the file is fetched
    /// over several connections, `missing` lists the ranges not yet on disk
    /// and `offset` counts the bytes outside them.
    fn connected(
        &mut self,
        total: Option<u64>,
        validator: &FileValidator,
        offset: u64,
        missing: &[ByteRange],
    );
    /// `bytes` are written (not yet durable).
    fn progress(&mut self, bytes: u64);
    /// `bytes` are durable on disk: persist them as the resume point.
    fn checkpoint(&mut self, bytes: u64);
    /// Several connections: every byte outside `missing` (sorted) is durable
    /// on disk, `bytes` in all; persist the list as the resume point.
    fn checkpoint_ranges(&mut self, bytes: u64, missing: &[ByteRange]);
}

/// How to read one response body (see [`Engine::stream_body`]).
struct Body<'a> {
    /// Bytes to drop first (a server that ignored Range).
    skip: u64,
    /// The absolute position the body must end at, if known.
    end: Option<u64>,
    /// The URL for messages.
    shown: &'a str,
    /// The background pace, if any.
    pace: Option<&'a Pacer>,
}

/// A finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file's size.
    pub bytes: u64,
    /// The version downloaded.
    pub validator: FileValidator,
}

/// The transfer engine (downloads here, BITS uploads in module `upload`).
/// One per daemon; cheap to share (clones share the HTTP connection pool).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) client: reqwest::Client,
    pub(crate) config: EngineConfig,
}

/// Where the bytes come from.
enum Source {
    Http(Url),
    Local(PathBuf),
}

impl Engine {
    /// Builds an engine: one HTTP client (rustls with the system's root
    /// certificates, keep-alive pool, up to 10 redirects, no automatic
    /// decompression) shared by every download.
    pub fn new(config: EngineConfig) -> Result<Engine, TransferError> {
        let mut headers = HeaderMap::new();
        // Without Accept-Encoding a server may pick any coding (RFC 9110
        // §12.5.3). We store raw bytes and rely on Content-Length and
        // Content-Range describing the file itself, so ask for identity.
        headers.insert(
            header::ACCEPT_ENCODING,
            header::HeaderValue::from_static("identity"),
        );
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .user_agent(concat!("bits/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Enough idle connections for every file and range a job moves
            // at once: fewer, and each burst of small files would close
            // some and open new ones (hundreds per thousand files).
            .pool_max_idle_per_host(32)
            .tcp_keepalive(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(10))
            // No reqwest read timeout: stalls are detected in `stream_body`
            // so that they become a precise `Stalled` error after the bytes
            // received so far are checkpointed.
            .build()
            .map_err(|source| TransferError::Client { source })?;
        Ok(Engine { client, config })
    }

    /// The settings this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Downloads one file into `file.temp`, resuming from `file.offset`.
    ///
    /// On success every byte is on disk and fsynced, the temporary file's
    /// mtime is the source's, and `progress.checkpoint(total)` was called.
    /// On failure (including [`TransferError::Cancelled`]) what was received
    /// is fsynced and checkpointed first, so the next call resumes there.
    pub async fn download(
        &self,
        file: FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        match parse_source(file.remote)? {
            Source::Http(url) => self.download_http(&url, &file, progress, cancel).await,
            Source::Local(path) => self.copy_local(&path, &file, progress, cancel).await,
        }
    }

    // ----------------------------------------------------------------- HTTP

    async fn download_http(
        &self,
        url: &Url,
        file: &FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        let shown = redact(url);
        // Round trips are measured while this file moves, so the pace
        // follows the path to this server.
        let _probe = match &file.pace {
            Some(pacer) => probe_target(url).await.map(|addr| pacer.probe(addr)),
            None => None,
        };
        let mut sink = Sink::open(
            file.temp,
            self.config.checkpoint,
            progress,
            file.offset == 0 && file.missing.is_empty(),
        )
        .await?;
        let mut stored = file.validator.clone();
        let mut restarts = 0u32;
        // Set once the server has shown it does not really serve ranges.
        let mut single = false;
        let mut offset = if file.missing.is_empty() {
            resume_point(&mut sink, file, &shown).await?
        } else {
            // Ranges were being fetched side by side: carry on with them.
            let resumable = stored
                .size
                .filter(|&total| segmented::well_formed(file.missing, total));
            let why = match (resumable, if_range_value(&stored)) {
                (Some(_), Some(_)) => {
                    let job = Segmented {
                        url,
                        shown: &shown,
                        temp: file.temp,
                        validator: &stored,
                        missing: file.missing.to_vec(),
                        first: None,
                        connections: file.connections.max(1) as usize,
                        sync_on_finish: file.sync_on_finish,
                        pace: file.pace.clone(),
                    };
                    match self
                        .download_segments(job, &mut *sink.progress, cancel)
                        .await
                    {
                        Ok(outcome) => return Ok(outcome),
                        Err(SegEnd::Failed(e)) => return Err(e),
                        Err(SegEnd::Restart(why)) => {
                            restarts += 1;
                            why
                        }
                        Err(SegEnd::NoRanges) => {
                            single = true;
                            "the server no longer serves ranges"
                        }
                    }
                }
                _ => "the stored ranges or version cannot be resumed",
            };
            info!(url = %shown, reason = why, "cannot resume, restarting from 0");
            stored = FileValidator::default();
            sink.forget_len();
            0
        };
        sink.reset(offset).await?;

        loop {
            let ranged = offset > 0;
            let mut request = self.client.get(url.clone());
            let mut if_range_sent = false;
            if ranged {
                request = request.header(header::RANGE, format!("bytes={offset}-"));
                if let Some(v) = if_range_value(&stored) {
                    request = request.header(header::IF_RANGE, v);
                    if_range_sent = true;
                }
            }
            let response = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(sink.cancel().await),
                r = request.send() => r,
            };
            let mut response = response.map_err(|e| request_error(&shown, e))?;
            let status = response.status().as_u16();
            let got = response_validator(response.headers());

            let plan = match status {
                206 => {
                    let proven = if_range_sent || same_tag(&got, &stored);
                    if ranged && changed(&got, &stored) {
                        Plan::Restart("the partial response names another version")
                    } else if ranged && !proven {
                        Plan::Restart("a partial response cannot be tied to the stored version")
                    } else {
                        let range = accept_content_range(
                            response.headers(),
                            offset,
                            ranged.then_some(stored.size).flatten(),
                            &shown,
                        )?;
                        let validator = FileValidator {
                            // If-Range (or the matching tag) proved this is the
                            // stored version; keep what the 206 left out.
                            etag: got.etag.or_else(|| stored.etag.clone()),
                            last_modified: got
                                .last_modified
                                .or_else(|| stored.last_modified.clone()),
                            size: Some(range.total),
                        };
                        Plan::Write {
                            at: offset,
                            skip: 0,
                            end: Some(range.end + 1),
                            validator,
                        }
                    }
                }
                416 if ranged => {
                    // Some servers check the range before If-Range: only
                    // trust "nothing left" if the answer names no other
                    // version.
                    if stored.size == Some(offset) && !changed(&got, &stored) {
                        Plan::Complete
                    } else {
                        Plan::Restart("the server cannot satisfy the range")
                    }
                }
                s if (200..300).contains(&s) => {
                    let total = content_length(response.headers());
                    let validator = FileValidator {
                        etag: got.etag,
                        last_modified: got.last_modified,
                        size: total,
                    };
                    if !ranged {
                        Plan::Write {
                            at: 0,
                            skip: 0,
                            end: total,
                            validator,
                        }
                    } else if same_version(&validator, &stored) {
                        debug!(url = %shown, offset, "server ignored Range; skipping the bytes already on disk");
                        Plan::Write {
                            at: offset,
                            skip: offset,
                            end: total,
                            validator,
                        }
                    } else {
                        // If-Range failed: the body is the whole new version.
                        // Write it from 0 rather than ask again.
                        info!(url = %shown, offset, "remote file changed, restarting from 0");
                        sink.reset(0).await?;
                        offset = 0;
                        Plan::Write {
                            at: 0,
                            skip: 0,
                            end: total,
                            validator,
                        }
                    }
                }
                _ => {
                    return Err(TransferError::HttpStatus {
                        url: shown,
                        status,
                        retry_after: retry_after(response.headers()),
                    })
                }
            };

            match plan {
                Plan::Restart(why) => {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        return Err(TransferError::SourceChanged {
                            source_name: shown,
                            restarts: MAX_RESTARTS,
                        });
                    }
                    info!(url = %shown, offset, reason = why, "remote file changed, restarting from 0");
                    sink.reset(0).await?;
                    offset = 0;
                    stored = FileValidator::default();
                }
                Plan::Complete => {
                    debug!(url = %shown, offset, "every byte was already on disk");
                    sink.progress.connected(stored.size, &stored, offset, &[]);
                    sink.finish(mtime_of(&stored), file.sync_on_finish).await?;
                    return Ok(Outcome {
                        bytes: offset,
                        validator: stored,
                    });
                }
                Plan::Write {
                    at,
                    skip,
                    end,
                    mut validator,
                } => {
                    debug_assert_eq!(sink.pos, at);
                    let plan = (!single)
                        .then(|| self.segmentable(file, &response, at, skip, end, &validator))
                        .flatten();
                    if let Some(missing) = plan {
                        let job = Segmented {
                            url,
                            shown: &shown,
                            temp: file.temp,
                            validator: &validator,
                            connections: missing.len(),
                            missing,
                            first: Some(response),
                            sync_on_finish: file.sync_on_finish,
                            pace: file.pace.clone(),
                        };
                        let why = match self
                            .download_segments(job, &mut *sink.progress, cancel)
                            .await
                        {
                            Ok(outcome) => return Ok(outcome),
                            Err(SegEnd::Failed(e)) => return Err(e),
                            Err(SegEnd::NoRanges) => {
                                single = true;
                                "the server answers ranges with the whole file"
                            }
                            Err(SegEnd::Restart(why)) => {
                                restarts += 1;
                                if restarts > MAX_RESTARTS {
                                    return Err(TransferError::SourceChanged {
                                        source_name: shown,
                                        restarts: MAX_RESTARTS,
                                    });
                                }
                                why
                            }
                        };
                        info!(url = %shown, reason = why, "restarting from 0");
                        sink.forget_len();
                        sink.reset(0).await?;
                        offset = 0;
                        stored = FileValidator::default();
                        continue;
                    }
                    sink.progress.connected(validator.size, &validator, at, &[]);
                    sink.expect(end.map(|e| e.saturating_sub(at)));
                    self.stream_body(
                        &mut response,
                        &mut sink,
                        Body {
                            skip,
                            end,
                            shown: &shown,
                            pace: file.pace.as_deref(),
                        },
                        cancel,
                    )
                    .await?;
                    let pos = sink.pos;
                    match validator.size {
                        // A server may answer an open range with a shorter one:
                        // ask for the rest of the same version.
                        Some(total) if pos < total && validator.is_usable() => {
                            debug!(url = %shown, pos, total, "partial answer; requesting the rest");
                            offset = pos;
                            stored = validator;
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
                            validator.size = Some(pos);
                            sink.finish(mtime_of(&validator), file.sync_on_finish)
                                .await?;
                            return Ok(Outcome {
                                bytes: pos,
                                validator,
                            });
                        }
                    }
                }
            }
        }
    }

    /// How to fetch the rest of a file over several connections, if that is
    /// worth it: the file may use more than one, the server allows ranges,
    /// the answer covers the rest of a version `If-Range` can name, and at
    /// least two ranges' worth is left. Gives the ranges, one per
    /// connection.
    fn segmentable(
        &self,
        file: &FileTransfer<'_>,
        response: &reqwest::Response,
        at: u64,
        skip: u64,
        end: Option<u64>,
        validator: &FileValidator,
    ) -> Option<Vec<ByteRange>> {
        let total = validator.size?;
        let ranges_allowed = response.status().as_u16() == 206
            || response
                .headers()
                .get(header::ACCEPT_RANGES)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes")));
        let left = total.checked_sub(at)?;
        // A paced (background) file goes by ranges even over one
        // connection: a request per chunk keeps the server from sending
        // far ahead of the pace.
        let paced = file.pace.is_some() && left >= segmented::MIN_SEGMENT;
        if (file.connections <= 1 && !paced)
            || !ranges_allowed
            || skip != 0
            || end != Some(total)
            || (left < 2 * segmented::MIN_SEGMENT && !paced)
        {
            return None;
        }
        let n = u64::from(file.connections)
            .min(left / segmented::MIN_SEGMENT)
            .max(1) as usize;
        if_range_value(validator)?;
        Some(segmented::split(at, total, n))
    }

    /// Streams a response body into the sink: skips its first `skip` bytes
    /// (a server that ignored Range), stops with an error at `end` (the
    /// absolute position the body must end at, if known). Returns when the
    /// body ended exactly there; on any failure, checkpoints what arrived.
    async fn stream_body(
        &self,
        response: &mut reqwest::Response,
        sink: &mut Sink<'_>,
        body: Body<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), TransferError> {
        let Body {
            mut skip,
            end,
            shown,
            pace,
        } = body;
        enum Step {
            Cancel,
            Reaped(Result<OpDone, tokio::task::JoinError>),
            Chunk(reqwest::Result<Option<Bytes>>),
            Tick,
            Stall,
        }
        let read_timeout = self.config.read_timeout;
        let interval = self.config.checkpoint.interval;
        // Timers are armed once and re-armed lazily when they fire, rather
        // than re-created per chunk: a fast download sees tens of thousands
        // of chunks per second.
        let mut last_data = Instant::now();
        let stall = sleep(read_timeout);
        let tick = sleep(interval);
        tokio::pin!(stall, tick);

        loop {
            let busy = sink.busy();
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => Step::Cancel,
                r = sink.next_done(), if busy => Step::Reaped(r),
                r = response.chunk() => Step::Chunk(r),
                () = &mut tick => Step::Tick,
                () = &mut stall => Step::Stall,
            };
            match step {
                Step::Cancel => return Err(sink.cancel().await),
                Step::Reaped(r) => sink.complete(r).await?,
                Step::Tick => {
                    // A slow trickle fills the buffer slowly: make it durable
                    // on time anyway.
                    if sink.checkpoint_due() {
                        sink.start_checkpoint().await?;
                    }
                    let soonest = Instant::now() + (interval / 8).max(Duration::from_millis(10));
                    let next = (sink.cp_at + interval).max(soonest);
                    tick.as_mut().reset(next);
                }
                Step::Stall => {
                    if last_data.elapsed() < read_timeout {
                        stall.as_mut().reset(last_data + read_timeout);
                        continue;
                    }
                    sink.checkpoint().await?;
                    return Err(TransferError::Stalled {
                        url: shown.to_string(),
                        secs: read_timeout.as_secs_f64().ceil() as u64,
                        written: sink.written(),
                    });
                }
                Step::Chunk(Err(e)) => {
                    sink.checkpoint().await?;
                    return Err(TransferError::BodyCut {
                        url: shown.to_string(),
                        received: sink.pos,
                        expected: end,
                        written: sink.written(),
                        source: Some(e.without_url()),
                    });
                }
                Step::Chunk(Ok(None)) => {
                    if skip > 0 || end.is_some_and(|end| sink.pos < end) {
                        sink.checkpoint().await?;
                        return Err(TransferError::BodyCut {
                            url: shown.to_string(),
                            received: sink.pos,
                            expected: end,
                            written: sink.written(),
                            source: None,
                        });
                    }
                    return Ok(());
                }
                Step::Chunk(Ok(Some(mut data))) => {
                    last_data = Instant::now();
                    if skip > 0 {
                        let n = skip.min(data.len() as u64);
                        // n <= data.len(), so the cast cannot truncate.
                        let _ = data.split_to(n as usize);
                        skip -= n;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(end) = end {
                        if sink.pos + data.len() as u64 > end {
                            sink.checkpoint().await?;
                            return Err(TransferError::Overrun {
                                url: shown.to_string(),
                                expected: end,
                                written: sink.written(),
                            });
                        }
                    }
                    sink.write(&data).await?;
                    if let Some(pacer) = pace {
                        let wait = pacer.take(data.len());
                        if !wait.is_zero() {
                            tokio::select! {
                                biased;
                                _ = cancel.cancelled() => return Err(sink.cancel().await),
                                () = sleep(wait) => {}
                            }
                            // Waiting for the pace is not the server stalling.
                            last_data = Instant::now();
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- local

    async fn copy_local(
        &self,
        path: &Path,
        file: &FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        let shown = path.display().to_string();
        let mut sink = Sink::open(
            file.temp,
            self.config.checkpoint,
            progress,
            file.offset == 0,
        )
        .await?;
        let mut restarts = 0u32;
        let mut first = true;
        loop {
            let (source, meta) = open_source(path, sink.written()).await?;
            let size = meta.len();
            let mtime = FileTime::from_last_modification_time(&meta);
            let validator = FileValidator {
                etag: None,
                last_modified: meta.modified().ok().map(httpdate::fmt_http_date),
                size: Some(size),
            };
            let mut offset = 0;
            if first {
                first = false;
                offset = resume_point(&mut sink, file, &shown).await?;
                if offset > 0 && validator != *file.validator {
                    info!(path = %shown, offset, "source file changed, restarting from 0");
                    offset = 0;
                }
            }
            sink.reset(offset).await?;
            sink.progress.connected(Some(size), &validator, offset, &[]);

            match copy_body(source, path, size, mtime, &mut sink, cancel).await? {
                Copied::Complete => {
                    sink.finish(Some(mtime), file.sync_on_finish).await?;
                    return Ok(Outcome {
                        bytes: size,
                        validator,
                    });
                }
                Copied::Changed => {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        sink.reset(0).await?;
                        return Err(TransferError::SourceChanged {
                            source_name: shown,
                            restarts: MAX_RESTARTS,
                        });
                    }
                    info!(path = %shown, "source file changed during the copy, restarting from 0");
                }
            }
        }
    }
}

/// What to do with an accepted HTTP response.
enum Plan {
    /// Write the body at `at`, after discarding its first `skip` bytes; the
    /// body must end at absolute position `end` if known.
    Write {
        at: u64,
        skip: u64,
        end: Option<u64>,
        validator: FileValidator,
    },
    /// The source changed (or cannot be shown unchanged): truncate and GET
    /// the whole file again.
    Restart(&'static str),
    /// Every byte is already on disk.
    Complete,
}

/// How a local copy ended.
enum Copied {
    Complete,
    /// The source changed size or mtime while being read.
    Changed,
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
            .map_err(|()| invalid(redact(&url))),
        _ => Err(invalid(redact(&url))),
    }
}

/// Where this attempt may continue writing: the checkpoint, unless it cannot
/// be trusted, then 0.
async fn resume_point(
    sink: &mut Sink<'_>,
    file: &FileTransfer<'_>,
    shown: &str,
) -> Result<u64, TransferError> {
    let offset = file.offset;
    if offset == 0 {
        return Ok(0);
    }
    let v = file.validator;
    let why = if !v.is_usable() {
        "no ETag or Last-Modified is known, so the version cannot be checked"
    } else if v.size.is_none() {
        "the file's size was not known"
    } else if v.size.is_some_and(|size| offset > size) {
        "the checkpoint lies past the end of the file"
    } else if sink.len().await? < offset {
        // The checkpoint claims bytes the file does not hold (a restart
        // truncated it before the new resume point was persisted, or someone
        // edited it). Extending it would write zeros into the file.
        "the temporary file is shorter than the checkpoint"
    } else {
        return Ok(offset);
    };
    info!(source = %shown, offset, reason = why, "cannot resume, restarting from 0");
    Ok(0)
}

/// The `If-Range` value for a stored version: a strong ETag, else
/// Last-Modified (weak ETags are not allowed in If-Range).
pub(crate) fn if_range_value(v: &FileValidator) -> Option<String> {
    match (&v.etag, &v.last_modified) {
        (Some(tag), _) if !tag.starts_with("W/") => Some(tag.clone()),
        (_, Some(date)) => Some(date.clone()),
        _ => None,
    }
}

/// A response's ETag and Last-Modified (size left to the caller).
pub(crate) fn response_validator(h: &HeaderMap) -> FileValidator {
    let text = |name| {
        h.get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    FileValidator {
        etag: text(header::ETAG),
        last_modified: text(header::LAST_MODIFIED),
        size: None,
    }
}

/// Whether a response explicitly names another version than the stored one.
pub(crate) fn changed(got: &FileValidator, stored: &FileValidator) -> bool {
    let differs =
        |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
    differs(&got.etag, &stored.etag) || differs(&got.last_modified, &stored.last_modified)
}

/// Whether a response carries the stored ETag.
fn same_tag(got: &FileValidator, stored: &FileValidator) -> bool {
    got.etag.is_some() && got.etag == stored.etag
}

/// Whether a full (200) response is the stored version: the same ETag, or
/// (without ETags) the same Last-Modified, and in both cases the same size.
pub(crate) fn same_version(got: &FileValidator, stored: &FileValidator) -> bool {
    let same_size = got.size.is_some() && got.size == stored.size;
    match (&got.etag, &stored.etag) {
        (Some(a), Some(b)) => a == b && same_size,
        _ => got.last_modified.is_some() && got.last_modified == stored.last_modified && same_size,
    }
}

pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A parsed `Content-Range: bytes start-end/total`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContentRange {
    start: u64,
    end: u64,
    total: u64,
}

fn parse_content_range(s: &str) -> Option<ContentRange> {
    let s = s.trim();
    let (unit, rest) = s.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim().split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let r = ContentRange {
        start: start.trim().parse().ok()?,
        end: end.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
    };
    (r.start <= r.end && r.end < r.total).then_some(r)
}

/// Checks a 206's `Content-Range` (and `Content-Length`, if any) against the
/// request: it must start at `offset`, name the known `size`, and describe
/// the body exactly. Nothing may be written otherwise.
pub(crate) fn accept_content_range(
    h: &HeaderMap,
    offset: u64,
    size: Option<u64>,
    shown: &str,
) -> Result<ContentRange, TransferError> {
    let raw = h
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed = raw.as_deref().and_then(parse_content_range);
    let ok = parsed.as_ref().is_some_and(|r| {
        r.start == offset
            && size.is_none_or(|s| s == r.total)
            && content_length(h).is_none_or(|n| n == r.end - r.start + 1)
    });
    match parsed {
        Some(r) if ok => Ok(r),
        _ => Err(TransferError::InvalidContentRange {
            url: shown.to_string(),
            got: raw,
            expected: format!(
                "bytes {offset}-{}/{}",
                size.map_or("*".to_string(), |s| (s.max(1) - 1).to_string()),
                size.map_or("*".to_string(), |s| s.to_string())
            ),
        }),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to now.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

pub(crate) fn mtime_of(v: &FileValidator) -> Option<FileTime> {
    let date = v.last_modified.as_deref()?;
    httpdate::parse_http_date(date)
        .ok()
        .map(FileTime::from_system_time)
}

/// Classifies a failure to get response headers.
pub(crate) fn request_error(shown: &str, e: reqwest::Error) -> TransferError {
    let source = e.without_url();
    let url = shown.to_string();
    if source.is_redirect() {
        TransferError::Redirect { url, source }
    } else if source.is_connect() {
        let kind = NetFailure::of(&source);
        TransferError::Connect { url, kind, source }
    } else {
        let kind = NetFailure::of(&source);
        TransferError::NoResponse { url, kind, source }
    }
}

// ------------------------------------------------------------- local source

async fn open_source(
    path: &Path,
    written: u64,
) -> Result<(File, std::fs::Metadata), TransferError> {
    let p = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let f = File::open(&p)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok((f, meta))
    })
    .await
    .unwrap_or_else(|e| Err(join_error(e)));
    opened.map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TransferError::SourceMissing {
                path: path.to_path_buf(),
            }
        } else {
            TransferError::SourceRead {
                path: path.to_path_buf(),
                written,
                source,
            }
        }
    })
}

/// Copies a local source from the sink's position to `size`. Reports
/// [`Copied::Changed`] if the source is not exactly `size` bytes with mtime
/// `mtime` throughout (the bytes would mix versions otherwise).
async fn copy_body(
    source: File,
    path: &Path,
    size: u64,
    mtime: FileTime,
    sink: &mut Sink<'_>,
    cancel: &CancellationToken,
) -> Result<Copied, TransferError> {
    let mut source = Some(source);
    let mut buf = vec![0u8; BUF_CAP];
    loop {
        let pos = sink.pos;
        let src = source.take().expect("the source is back after each read");
        let mut read_buf = std::mem::take(&mut buf);
        // Reads go to the blocking pool too: a local source may be on a slow
        // or network file system.
        let read = tokio::task::spawn_blocking(move || {
            let r = src.read_at(&mut read_buf, pos);
            (src, read_buf, r)
        });
        let (src, read_buf, result) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(sink.cancel().await),
            r = read => r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
        };
        source = Some(src);
        buf = read_buf;
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                sink.checkpoint().await?;
                return Err(TransferError::SourceRead {
                    path: path.to_path_buf(),
                    written: sink.written(),
                    source: e,
                });
            }
        };
        if n == 0 {
            break;
        }
        if pos + n as u64 > size {
            // Grew: the bytes past `size` belong to another version.
            return Ok(Copied::Changed);
        }
        sink.write(&buf[..n]).await?;
        if cancel.is_cancelled() {
            return Err(sink.cancel().await);
        }
    }
    if sink.pos != size {
        return Ok(Copied::Changed);
    }
    // Same size at the end; also check the mtime to catch a rewrite in place.
    let src = source.take().expect("the source is back after each read");
    let meta = tokio::task::spawn_blocking(move || src.metadata())
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
    match meta {
        Ok(m) if m.len() == size && FileTime::from_last_modification_time(&m) == mtime => {
            Ok(Copied::Complete)
        }
        Ok(_) => Ok(Copied::Changed),
        Err(e) => Err(TransferError::SourceRead {
            path: path.to_path_buf(),
            written: sink.written(),
            source: e,
        }),
    }
}

/// A blocking-pool task ended without a result: re-raise its panic, or (the
/// runtime is shutting down) report an I/O error.
pub(crate) fn join_error(e: tokio::task::JoinError) -> io::Error {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    io::Error::other("the runtime shut down during a file operation")
}

// --------------------------------------------------------------------- sink

/// The temporary file being written, with checkpointing.
///
/// Why this design rather than `tokio::fs::File` + `BufWriter`: tokio's file
/// already ships every write to the blocking pool but copies each buffer and
/// keeps only one operation in flight without telling us when data is
/// written, and `sync_data` through it must wait for that. Here chunks are
/// copied once into a 1 MiB buffer; a full buffer is written with one
/// `pwrite` on the blocking pool *while the next buffer fills from the
/// network* (double buffering), so disk and network overlap. A checkpoint is
/// just a write operation that ends with `fdatasync`: it runs in the
/// background too, and [`Progress::checkpoint`] is called only when it has
/// completed — the bytes are durable before the offset is reported.
///
/// Writes are positional (`pwrite` at the logical offset), so the file's
/// cursor never matters after a truncate.
struct Sink<'a> {
    path: PathBuf,
    /// The file, when no operation holds it.
    file: Option<Handle>,
    /// The write (and maybe sync) running on the blocking pool.
    inflight: Option<JoinHandle<OpDone>>,
    /// Bytes received but not yet handed to a write.
    buf: Vec<u8>,
    /// The other buffer, back from the last write, ready for reuse.
    spare: Vec<u8>,
    /// Logical end of the file: every byte accepted.
    pos: u64,
    /// Bytes handed to write operations (`pos - buf.len()`).
    flushed: u64,
    /// Bytes known durable (last completed sync).
    durable: u64,
    /// Where this attempt started writing (after any restart).
    base: u64,
    /// Position of the last checkpoint started, and when.
    cp_pos: u64,
    cp_at: Instant,
    /// The file's length when it is known without asking (just truncated,
    /// nothing written since): lets `reset` skip a truncate that would
    /// change nothing.
    len_known: Option<u64>,
    policy: CheckpointPolicy,
    progress: &'a mut dyn Progress,
    /// Capacity of a write buffer: [`BUF_CAP`], or less when fewer bytes are
    /// expected (a 16 KiB file needs no 2 MiB of buffers).
    cap: usize,
}

/// The temporary file: open, or (a file started afresh) not created yet.
/// A fresh file is created, empty, by the first operation that needs it, in
/// the same trip to the blocking pool: a small file then costs one trip in
/// all (create, write, mtime, close), and a request never waits for a
/// create.
enum Handle {
    Open(File),
    Pending(PathBuf),
}

impl Handle {
    /// The open file, creating (truncating) a pending one.
    fn get(self) -> Result<File, (Handle, io::Error)> {
        match self {
            Handle::Open(f) => Ok(f),
            Handle::Pending(p) => std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .map_err(|e| (Handle::Pending(p), e)),
        }
    }
}

/// A finished blocking-pool write.
struct OpDone {
    file: Handle,
    buf: Vec<u8>,
    /// `Ok(Some(p))`: everything before `p` is durable.
    result: Result<Option<u64>, OpFailed>,
}

pub(crate) struct OpFailed {
    pub(crate) op: LocalOp,
    pub(crate) source: io::Error,
    /// Bytes before this position were written successfully.
    pub(crate) ok_until: u64,
}

/// `pwrite`s all of `buf` at `at`; on failure says how far it got.
pub(crate) fn write_all_at(file: &File, buf: &[u8], at: u64) -> Result<(), OpFailed> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.write_at(&buf[done..], at + done as u64) {
            Ok(0) => {
                return Err(OpFailed {
                    op: LocalOp::Write,
                    source: io::Error::from(io::ErrorKind::WriteZero),
                    ok_until: at + done as u64,
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(OpFailed {
                    op: LocalOp::Write,
                    source,
                    ok_until: at + done as u64,
                })
            }
        }
    }
    Ok(())
}

impl<'a> Sink<'a> {
    /// Opens the temporary file, or, when nothing in it is worth keeping
    /// (`empty`: no durable offset), only notes that it is to be created
    /// empty by the first write (see [`Handle`]). Its directory must exist.
    async fn open(
        path: &Path,
        policy: CheckpointPolicy,
        progress: &'a mut dyn Progress,
        empty: bool,
    ) -> Result<Sink<'a>, TransferError> {
        let file = if empty {
            Handle::Pending(path.to_path_buf())
        } else {
            let p = path.to_path_buf();
            let opened = tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(p)
            })
            .await
            .unwrap_or_else(|e| Err(join_error(e)));
            Handle::Open(opened.map_err(|source| TransferError::LocalFile {
                op: LocalOp::Open,
                path: path.to_path_buf(),
                written: 0,
                source,
            })?)
        };
        Ok(Sink {
            path: path.to_path_buf(),
            file: Some(file),
            inflight: None,
            buf: Vec::new(),
            spare: Vec::new(),
            cap: BUF_CAP,
            pos: 0,
            flushed: 0,
            durable: 0,
            base: 0,
            cp_pos: 0,
            cp_at: Instant::now(),
            len_known: empty.then_some(0),
            policy,
            progress,
        })
    }

    fn local_error(&self, op: LocalOp, source: io::Error) -> TransferError {
        TransferError::LocalFile {
            op,
            path: self.path.clone(),
            written: self.written(),
            source,
        }
    }

    /// Bytes this attempt made durable.
    fn written(&self) -> u64 {
        self.durable.saturating_sub(self.base)
    }

    fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// Runs `f` on the file on the blocking pool, once no write is in flight.
    async fn with_file<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&File) -> T + Send + 'static,
    ) -> Result<T, TransferError> {
        self.reap().await?;
        let handle = self.file.take().expect("no operation holds the file");
        let (handle, out) = tokio::task::spawn_blocking(move || match handle.get() {
            Ok(file) => {
                let out = f(&file);
                (Handle::Open(file), Ok(out))
            }
            Err((handle, e)) => (handle, Err(e)),
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.file = Some(handle);
        out.map_err(|e| self.local_error(LocalOp::Open, e))
    }

    /// The file's current length.
    async fn len(&mut self) -> Result<u64, TransferError> {
        self.with_file(|f| f.metadata().map(|m| m.len()))
            .await?
            .map_err(|e| self.local_error(LocalOp::Open, e))
    }

    /// Drops buffered bytes and truncates the file to `at`, which must be a
    /// durable position (a checkpoint, or 0): writing continues there.
    async fn reset(&mut self, at: u64) -> Result<(), TransferError> {
        self.reap().await?;
        self.buf.clear();
        if self.len_known != Some(at) {
            self.with_file(move |f| f.set_len(at))
                .await?
                .map_err(|e| self.local_error(LocalOp::Truncate, e))?;
            self.len_known = Some(at);
        }
        self.pos = at;
        self.flushed = at;
        self.durable = at;
        self.base = at;
        self.cp_pos = at;
        self.cp_at = Instant::now();
        Ok(())
    }

    /// Accepts bytes at the logical end; starts a background write when the
    /// buffer is full and a checkpoint when one is due.
    async fn write(&mut self, data: &[u8]) -> Result<(), TransferError> {
        if !self.buf.is_empty() && self.buf.len() + data.len() > BUF_CAP {
            self.submit(false).await?;
        }
        if self.buf.capacity() == 0 {
            // Buffers are allocated when first needed, at the size the rest
            // of the file needs.
            self.buf.reserve(self.cap.max(data.len()));
        }
        self.buf.extend_from_slice(data);
        self.pos += data.len() as u64;
        self.progress.progress(self.pos);
        if self.pos - self.cp_pos >= self.policy.bytes || self.checkpoint_due() {
            self.submit(true).await?;
        } else if self.buf.len() >= BUF_CAP {
            self.submit(false).await?;
        }
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        self.pos > self.cp_pos && self.cp_at.elapsed() >= self.policy.interval
    }

    /// Starts a checkpoint in the background; it is reported when it
    /// completes (see [`Sink::reap`]).
    async fn start_checkpoint(&mut self) -> Result<(), TransferError> {
        self.submit(true).await
    }

    /// Hands the buffer to a blocking-pool write (ending with `fdatasync` if
    /// `sync`), after the previous one completed.
    async fn submit(&mut self, sync: bool) -> Result<(), TransferError> {
        self.reap().await?;
        self.len_known = None;
        let file = self.file.take().expect("no operation holds the file");
        let buf = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        let at = self.flushed;
        let end = self.pos;
        self.flushed = end;
        if sync {
            self.cp_pos = end;
            self.cp_at = Instant::now();
        }
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let file = match file.get() {
                Ok(file) => file,
                Err((file, source)) => {
                    let result = Err(OpFailed {
                        op: LocalOp::Open,
                        source,
                        ok_until: at,
                    });
                    return OpDone { file, buf, result };
                }
            };
            let mut result = write_all_at(&file, &buf, at).map(|()| None);
            if sync && result.is_ok() {
                result = file
                    .sync_data()
                    .map(|()| Some(end))
                    .map_err(|source| OpFailed {
                        op: LocalOp::Sync,
                        source,
                        ok_until: at,
                    });
            }
            OpDone {
                file: Handle::Open(file),
                buf,
                result,
            }
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, and completes it (see
    /// [`Sink::complete`]).
    async fn reap(&mut self) -> Result<(), TransferError> {
        if self.inflight.is_none() {
            return Ok(());
        }
        let joined = self.next_done().await;
        self.complete(joined).await
    }

    /// Waits for the write in flight to finish. Cancel-safe (for
    /// `select!`): the operation stays in flight until this returns, and it
    /// returns as soon as the operation is done. Pass the result to
    /// [`Sink::complete`].
    async fn next_done(&mut self) -> Result<OpDone, tokio::task::JoinError> {
        let handle = self
            .inflight
            .as_mut()
            .expect("next_done is only awaited while a write is in flight");
        let joined = handle.await;
        self.inflight = None;
        joined
    }

    /// Takes back the file and buffer of a finished write and reports its
    /// checkpoint. On a write failure, makes what was written before it
    /// durable and reports that, then returns the error. Not cancel-safe.
    async fn complete(
        &mut self,
        joined: Result<OpDone, tokio::task::JoinError>,
    ) -> Result<(), TransferError> {
        let done = match joined {
            Ok(done) => done,
            Err(e) => return Err(self.local_error(LocalOp::Write, join_error(e))),
        };
        self.file = Some(done.file);
        let mut buf = done.buf;
        buf.clear();
        self.spare = buf;
        match done.result {
            Ok(Some(synced)) => {
                self.durable = synced;
                self.progress.checkpoint(synced);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(failed) => {
                // Keep what did reach the file (a full disk should not cost
                // the whole download): sync it and report it. Not after a
                // failed fsync: Linux may then mark the lost pages clean, and
                // a second fsync would "succeed" without the data.
                if failed.op == LocalOp::Write && failed.ok_until > self.durable {
                    // A write failed, so the file was open.
                    let handle = self.file.take().expect("the file just came back");
                    let (handle, synced) = tokio::task::spawn_blocking(move || {
                        let r = match &handle {
                            Handle::Open(file) => file.sync_data(),
                            Handle::Pending(_) => {
                                Err(io::Error::other("the file was never created"))
                            }
                        };
                        (handle, r)
                    })
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    self.file = Some(handle);
                    if synced.is_ok() {
                        self.durable = failed.ok_until;
                        self.progress.checkpoint(failed.ok_until);
                    }
                }
                // Nothing more may be written after a gap.
                self.buf.clear();
                self.pos = self.durable;
                self.flushed = self.durable;
                Err(self.local_error(failed.op, failed.source))
            }
        }
    }

    /// Sizes the write buffers for `remaining` more bytes, if known.
    fn expect(&mut self, remaining: Option<u64>) {
        self.cap = remaining.map_or(BUF_CAP, |n| n.clamp(1, BUF_CAP as u64) as usize);
    }

    /// Forgets what is known of the file's length: someone else (the
    /// segmented path) changed it through another handle.
    fn forget_len(&mut self) {
        self.len_known = None;
    }

    /// Writes everything buffered, fsyncs it and reports the checkpoint.
    async fn checkpoint(&mut self) -> Result<(), TransferError> {
        self.submit(true).await?;
        self.reap().await
    }

    /// Cancellation: checkpoint what arrived (best effort: a failure here
    /// only loses bytes after the previous checkpoint) and say so.
    async fn cancel(&mut self) -> TransferError {
        if let Err(e) = self.checkpoint().await {
            warn!(error = %e, "could not checkpoint a cancelled transfer");
        }
        TransferError::Cancelled
    }

    /// The last write: everything buffered, the mtime, then `fsync` (data and
    /// metadata, so the mtime is durable too), then the final checkpoint.
    async fn finish(&mut self, mtime: Option<FileTime>, sync: bool) -> Result<(), TransferError> {
        self.len_known = None;
        let buf = std::mem::take(&mut self.buf);
        let at = self.flushed;
        let end = self.pos;
        let path = self.path.clone();
        let result = self
            .with_file(move |f| {
                write_all_at(f, &buf, at).map_err(|e| (e.op, e.source))?;
                if let Some(t) = mtime {
                    // Cosmetic: a file system that cannot store it should not
                    // fail a complete download.
                    if let Err(e) = filetime::set_file_handle_times(f, None, Some(t)) {
                        warn!(path = %path.display(), error = %e, "could not set the modification time");
                    }
                }
                if sync {
                    f.sync_all().map_err(|e| (LocalOp::Sync, e))?;
                }
                Ok(())
            })
            .await?;
        self.flushed = end;
        if let Err((op, e)) = result {
            return Err(self.local_error(op, e));
        }
        if sync {
            self.durable = end;
            self.cp_pos = end;
            self.progress.checkpoint(end);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_and_rejects() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some(ContentRange {
                start: 10,
                end: 99,
                total: 100
            })
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), None);
        assert_eq!(parse_content_range("bytes 10-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("garbage"), None);
    }

    #[test]
    fn content_range_must_match_request_size_and_length() {
        let h = |cr: &str, len: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_RANGE, cr.parse().unwrap());
            if let Some(len) = len {
                h.insert(header::CONTENT_LENGTH, len.parse().unwrap());
            }
            h
        };
        let ok = accept_content_range(&h("bytes 10-99/100", Some("90")), 10, Some(100), "u");
        assert_eq!(ok.unwrap().end, 99);
        for (cr, len) in [
            ("bytes 11-99/100", Some("89")), // wrong start
            ("bytes 10-99/101", Some("90")), // another size
            ("bytes 10-99/100", Some("80")), // body length disagrees
            ("bytes 10-99/*", None),         // size unknown
        ] {
            let err = accept_content_range(&h(cr, len), 10, Some(100), "u").unwrap_err();
            assert!(
                matches!(err, TransferError::InvalidContentRange { .. }),
                "{cr}"
            );
        }
        assert!(accept_content_range(&HeaderMap::new(), 10, Some(100), "u").is_err());
    }

    #[test]
    fn versions_compare_by_etag_then_date_and_size() {
        let v = |etag: Option<&str>, lm: Option<&str>, size| FileValidator {
            etag: etag.map(str::to_string),
            last_modified: lm.map(str::to_string),
            size,
        };
        let stored = v(Some("\"a\""), Some("d1"), Some(10));
        assert!(same_version(
            &v(Some("\"a\""), Some("d2"), Some(10)),
            &stored
        ));
        assert!(!same_version(
            &v(Some("\"b\""), Some("d1"), Some(10)),
            &stored
        ));
        assert!(!same_version(&v(Some("\"a\""), Some("d1"), None), &stored));
        assert!(same_version(&v(None, Some("d1"), Some(10)), &stored));
        assert!(!same_version(&v(None, Some("d1"), Some(11)), &stored));
        assert!(!same_version(&v(None, None, Some(10)), &stored));
        assert!(changed(&v(Some("\"b\""), None, None), &stored));
        assert!(changed(&v(None, Some("d2"), None), &stored));
        assert!(!changed(&v(None, None, None), &stored));
    }

    #[test]
    fn if_range_prefers_strong_etag_then_date() {
        let mut v = FileValidator {
            etag: Some("\"v1\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            size: Some(1),
        };
        assert_eq!(if_range_value(&v).as_deref(), Some("\"v1\""));
        v.etag = Some("W/\"v1\"".into());
        assert_eq!(
            if_range_value(&v).as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        v.last_modified = None;
        assert_eq!(if_range_value(&v), None);
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            header::RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        h.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

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

    #[test]
    fn download_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        struct P;
        impl Progress for P {
            fn connected(&mut self, _: Option<u64>, _: &FileValidator, _: u64, _: &[ByteRange]) {}
            fn checkpoint_ranges(&mut self, _: u64, _: &[ByteRange]) {}
            fn progress(&mut self, _: u64) {}
            fn checkpoint(&mut self, _: u64) {}
        }
        let engine = Engine::new(EngineConfig::default()).unwrap();
        let v = FileValidator::default();
        let mut p = P;
        let cancel = CancellationToken::new();
        let file = FileTransfer {
            remote: "http://127.0.0.1:9/",
            temp: Path::new("/nonexistent/x"),
            offset: 0,
            validator: &v,
            sync_on_finish: true,
            missing: &[],
            connections: 4,
            pace: Some(Arc::new(Pacer::new())),
        };
        let fut = engine.download(file, &mut p, &cancel);
        assert_send(&fut);
    }
}
