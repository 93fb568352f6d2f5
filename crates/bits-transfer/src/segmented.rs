//! One file over several connections: each fetches a byte range of the same
//! version and writes it in place.
//!
//! Why a path of its own: a front-to-back download has one number as its
//! resume point (the checkpoint offset); here bytes arrive out of order, so
//! progress is the set of ranges still missing, and a checkpoint persists
//! that set (through [`Progress::checkpoint_ranges`]) once the bytes outside
//! it are fsynced.
//!
//! Versions are never mixed: every range request carries `If-Range` with the
//! validator of the version being written, and its answer must be a 206 with
//! the expected `Content-Range` and no other ETag or date. A 200 (If-Range
//! failed) or a 416 means the file changed: the caller restarts from byte 0.
//!
//! A connection that finishes its range takes the first range nobody has
//! started, else half of the largest range still running (the running one
//! stops where the taken half begins), so every connection stays busy until
//! the end.

use crate::engine::{
    accept_content_range, changed, content_length, if_range_value, join_error, mtime_of,
    request_error, response_validator, retry_after, same_version, write_all_at, Engine, Outcome,
    Progress,
};
use crate::error::{LocalOp, TransferError};
use crate::pace::Pacer;
use bits_core::{ByteRange, FileValidator};
use reqwest::header;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

/// No range is split below this: a request costs a round trip, and tiny
/// ranges would spend more time asking than receiving.
pub(crate) const MIN_SEGMENT: u64 = 1 << 20;

/// Each connection's write buffer: one `pwrite` per this many bytes.
const SEG_BUF: usize = 256 << 10;

/// How often progress is reported (and a due checkpoint started).
const TICK: Duration = Duration::from_millis(100);

/// Split points fall on multiples of this, so ranges stay page-aligned.
const ALIGN: u64 = 64 << 10;

/// How a segmented download ended without the file.
#[derive(Debug)]
pub(crate) enum SegEnd {
    /// The file cannot be continued: another version, or the bytes on disk
    /// cannot be trusted. Start again from byte 0.
    Restart(&'static str),
    /// The server answered a range with the whole, unchanged file: it does
    /// not really serve ranges. Fetch the file front to back instead.
    NoRanges,
    /// A failure; what arrived before it is checkpointed.
    Failed(TransferError),
}

/// One segmented download.
pub(crate) struct Segmented<'a> {
    pub url: &'a Url,
    pub shown: &'a str,
    pub temp: &'a Path,
    /// The version: a known size and something `If-Range` can carry.
    pub validator: &'a FileValidator,
    /// What is still to fetch: sorted, disjoint, non-empty ranges inside the
    /// file. Everything else is already in the temporary file.
    pub missing: Vec<ByteRange>,
    /// An answer already received whose body starts at `missing[0].start`
    /// and runs to the end of the file (the first request of a download that
    /// turned out to allow ranges). `None` when resuming: the temporary file
    /// must then already have the file's full length.
    pub first: Option<reqwest::Response>,
    pub connections: usize,
    pub sync_on_finish: bool,
    /// The background pace the connections share, if any.
    pub pace: Option<Arc<Pacer>>,
}

/// Splits `[start, end)` into `n` nearly equal ranges on [`ALIGN`] bounds.
pub(crate) fn split(start: u64, end: u64, n: usize) -> Vec<ByteRange> {
    let n = (n.max(1) as u64).min((end - start) / ALIGN).max(1);
    let step = ((end - start) / n) / ALIGN * ALIGN;
    (0..n)
        .map(|i| ByteRange {
            start: start + i * step,
            end: if i + 1 == n {
                end
            } else {
                start + (i + 1) * step
            },
        })
        .collect()
}

/// A paced request asks for about this much time's worth of the allowed
/// rate.
const CHUNK_TIME: Duration = Duration::from_millis(20);

/// The bytes of one paced request at `rate` bytes per second.
fn chunk_len(rate: u64) -> u64 {
    ((rate as f64 * CHUNK_TIME.as_secs_f64()) as u64).clamp(16 << 10, 64 << 20)
}

/// Whether `missing` can describe what is left of a file of `total` bytes.
pub(crate) fn well_formed(missing: &[ByteRange], total: u64) -> bool {
    !missing.is_empty()
        && missing.iter().all(|r| r.start < r.end && r.end <= total)
        && missing.windows(2).all(|w| w[0].end <= w[1].start)
}

/// A range being fetched. `[written, end)` is not on disk yet;
/// `[written, pos)` arrived and waits in the connection's buffer.
#[derive(Debug)]
struct Seg {
    id: u64,
    pos: u64,
    written: u64,
    end: u64,
}

/// Who fetches what. Shared by the connections (short locks, never held
/// across an await).
#[derive(Debug, Default)]
struct Table {
    active: Vec<Seg>,
    /// Ranges nobody fetches yet, sorted.
    queue: Vec<ByteRange>,
    next_id: u64,
}

impl Table {
    fn new(missing: Vec<ByteRange>) -> Table {
        Table {
            queue: missing,
            ..Table::default()
        }
    }

    fn seg(&mut self, id: u64) -> Option<&mut Seg> {
        self.active.iter_mut().find(|s| s.id == id)
    }

    /// Work for a free connection: the first waiting range, else the upper
    /// half of the running range with the most left, if that is worth it.
    fn next(&mut self) -> Option<(u64, ByteRange)> {
        let range = if self.queue.is_empty() {
            let victim = self.active.iter_mut().max_by_key(|s| s.end - s.pos)?;
            let left = victim.end - victim.pos;
            if left < 2 * MIN_SEGMENT {
                return None;
            }
            // `pos` already counts the victim's buffered bytes, and it takes
            // no byte past its (new) end, so the halves never overlap.
            let mid = (victim.pos + left / 2) / ALIGN * ALIGN;
            let mid = mid.max(victim.pos + 1);
            let upper = ByteRange {
                start: mid,
                end: victim.end,
            };
            victim.end = mid;
            upper
        } else {
            self.queue.remove(0)
        };
        let id = self.next_id;
        self.next_id += 1;
        self.active.push(Seg {
            id,
            pos: range.start,
            written: range.start,
            end: range.end,
        });
        Some((id, range))
    }

    /// Accepts up to `n` more bytes for `id`; returns how many fit before
    /// its end, and whether the end is reached.
    fn advance(&mut self, id: u64, n: u64) -> (u64, bool) {
        let Some(s) = self.seg(id) else {
            return (0, true);
        };
        let take = n.min(s.end.saturating_sub(s.pos));
        s.pos += take;
        (take, s.pos >= s.end)
    }

    fn end_of(&mut self, id: u64) -> u64 {
        self.seg(id).map_or(0, |s| s.end)
    }

    fn wrote(&mut self, id: u64, upto: u64) {
        if let Some(s) = self.seg(id) {
            s.written = s.written.max(upto);
        }
    }

    /// A connection stopped: what it did not write waits for another.
    fn finish(&mut self, id: u64) {
        let Some(i) = self.active.iter().position(|s| s.id == id) else {
            return;
        };
        let s = self.active.swap_remove(i);
        if s.written < s.end {
            self.queue.push(ByteRange {
                start: s.written,
                end: s.end,
            });
            self.queue.sort_by_key(|r| r.start);
        }
    }

    /// The ranges not yet written, sorted.
    fn missing(&self) -> Vec<ByteRange> {
        let mut all: Vec<ByteRange> = self
            .active
            .iter()
            .filter(|s| s.written < s.end)
            .map(|s| ByteRange {
                start: s.written,
                end: s.end,
            })
            .chain(self.queue.iter().copied())
            .collect();
        all.sort_by_key(|r| r.start);
        all
    }

    /// Bytes not yet received.
    fn unreceived(&self) -> u64 {
        let active: u64 = self
            .active
            .iter()
            .map(|s| s.end.saturating_sub(s.pos))
            .sum();
        active + self.queue.iter().map(ByteRange::len).sum::<u64>()
    }
}

fn missing_len(missing: &[ByteRange]) -> u64 {
    missing.iter().map(ByteRange::len).sum()
}

/// What every connection of one download shares.
struct Ctx {
    engine: Engine,
    url: Url,
    shown: String,
    temp: PathBuf,
    file: Arc<File>,
    table: Mutex<Table>,
    validator: FileValidator,
    if_range: String,
    total: u64,
    /// Stops every connection (the caller's cancel, or another one failed).
    stop: CancellationToken,
    /// The background pace, shared by the connections.
    pace: Option<Arc<Pacer>>,
}

impl Ctx {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A connection that panicked holding the lock left the table as
        // consistent as any other moment: each method is one short update.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn local_error(&self, op: LocalOp, source: std::io::Error) -> SegEnd {
        SegEnd::Failed(TransferError::LocalFile {
            op,
            path: self.temp.clone(),
            written: 0,
            source,
        })
    }

    /// Waits `wait` for the pace, or until the connections are stopped
    /// (the next read or request then notices).
    async fn pause(&self, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }

    /// Asks for `[pos, end)` of the version being written.
    async fn request(&self, pos: u64, end: u64) -> Result<reqwest::Response, SegEnd> {
        let request = self
            .engine
            .client
            .get(self.url.clone())
            .header(header::RANGE, format!("bytes={pos}-{}", end - 1))
            .header(header::IF_RANGE, &self.if_range);
        let response = tokio::select! {
            biased;
            _ = self.stop.cancelled() => return Err(SegEnd::Failed(TransferError::Cancelled)),
            r = request.send() => r,
        };
        let response = response.map_err(|e| SegEnd::Failed(request_error(&self.shown, e)))?;
        match response.status().as_u16() {
            206 => {
                if changed(&response_validator(response.headers()), &self.validator) {
                    return Err(SegEnd::Restart("a range of the file names another version"));
                }
                accept_content_range(response.headers(), pos, Some(self.total), &self.shown)
                    .map_err(SegEnd::Failed)?;
                Ok(response)
            }
            200 => {
                let mut got = response_validator(response.headers());
                got.size = content_length(response.headers());
                if same_version(&got, &self.validator) {
                    Err(SegEnd::NoRanges)
                } else {
                    // If-Range failed: not the version being written.
                    Err(SegEnd::Restart(
                        "the server sent the whole file instead of a range: it changed",
                    ))
                }
            }
            416 => Err(SegEnd::Restart(
                "the server cannot satisfy a range of the file",
            )),
            status => Err(SegEnd::Failed(TransferError::HttpStatus {
                url: self.shown.clone(),
                status,
                retry_after: retry_after(response.headers()),
            })),
        }
    }

    /// Writes the buffer (which ends at `pos`) and records it.
    async fn flush(&self, id: u64, buf: &mut Vec<u8>, pos: u64) -> Result<(), SegEnd> {
        if buf.is_empty() {
            return Ok(());
        }
        let at = pos - buf.len() as u64;
        let file = self.file.clone();
        let data = std::mem::take(buf);
        let (data, result) = tokio::task::spawn_blocking(move || {
            let r = write_all_at(&file, &data, at);
            (data, r)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        *buf = data;
        buf.clear();
        match result {
            Ok(()) => {
                self.table().wrote(id, pos);
                Ok(())
            }
            Err(failed) => {
                // Bytes before the failure did reach the file.
                self.table().wrote(id, failed.ok_until);
                Err(self.local_error(failed.op, failed.source))
            }
        }
    }

    /// One connection: fetches range `id` until its (possibly lowered) end.
    async fn run(
        &self,
        id: u64,
        start: u64,
        mut first: Option<reqwest::Response>,
    ) -> Result<(), SegEnd> {
        let mut pos = start;
        let mut buf = Vec::with_capacity(SEG_BUF);
        let read_timeout = self.engine.config.read_timeout;
        loop {
            let end = self.table().end_of(id);
            if pos >= end {
                return Ok(());
            }
            // Paced (background): one chunk of about CHUNK_TIME at the
            // allowed rate per request, so the server can never send more
            // than that ahead of the pace; the pauses between chunks are
            // what leaves the path to others.
            let limit = self.pace.as_ref().map(|p| pos + chunk_len(p.rate()));
            let mut response = match first.take() {
                Some(r) => r,
                None => self.request(pos, limit.map_or(end, |l| l.min(end))).await?,
            };
            let asked_at = pos;
            loop {
                let step = tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => None,
                    r = tokio::time::timeout(read_timeout, response.chunk()) => Some(r),
                };
                let failure = match step {
                    None => TransferError::Cancelled,
                    Some(Err(_)) => TransferError::Stalled {
                        url: self.shown.clone(),
                        secs: read_timeout.as_secs_f64().ceil() as u64,
                        written: 0,
                    },
                    Some(Ok(Err(e))) => TransferError::BodyCut {
                        url: self.shown.clone(),
                        received: pos,
                        expected: Some(self.total),
                        written: 0,
                        source: Some(e.without_url()),
                    },
                    Some(Ok(Ok(None))) => {
                        self.flush(id, &mut buf, pos).await?;
                        if pos == asked_at {
                            return Err(SegEnd::Failed(TransferError::BodyCut {
                                url: self.shown.clone(),
                                received: pos,
                                expected: Some(self.total),
                                written: 0,
                                source: None,
                            }));
                        }
                        // A shorter range than asked: ask for the rest.
                        break;
                    }
                    Some(Ok(Ok(Some(data)))) => {
                        let room = limit.map_or(u64::MAX, |l| l.saturating_sub(pos));
                        let (take, done) = self.table().advance(id, (data.len() as u64).min(room));
                        // take <= data.len(), so the cast cannot truncate.
                        buf.extend_from_slice(&data[..take as usize]);
                        pos += take;
                        if done {
                            // Past our end the bytes belong to another
                            // connection: stop reading (the connection closes).
                            self.flush(id, &mut buf, pos).await?;
                            return Ok(());
                        }
                        if buf.len() >= SEG_BUF {
                            self.flush(id, &mut buf, pos).await?;
                        }
                        if let Some(pacer) = &self.pace {
                            let wait = pacer.take(take as usize);
                            if limit.is_some_and(|l| pos >= l) {
                                // The chunk is in (an open-ended first answer
                                // is dropped here): wait for the pace, then
                                // ask for the next one.
                                self.flush(id, &mut buf, pos).await?;
                                drop(response);
                                self.pause(wait).await;
                                break;
                            }
                            self.pause(wait).await;
                        }
                        continue;
                    }
                };
                self.flush(id, &mut buf, pos).await?;
                return Err(SegEnd::Failed(failure));
            }
        }
    }
}

/// A checkpoint in flight: the missing ranges it will make true, and the
/// `fdatasync` that makes them so.
type Syncing = JoinHandle<(Vec<ByteRange>, std::io::Result<()>)>;

impl Engine {
    /// Downloads the missing ranges of one file over up to `connections`
    /// connections. On success every byte is written (and fsynced, with the
    /// last checkpoint reported, if `sync_on_finish`).
    pub(crate) async fn download_segments(
        &self,
        job: Segmented<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, SegEnd> {
        let total = job
            .validator
            .size
            .expect("segmented downloads need a known size");
        let Some(if_range) = if_range_value(job.validator) else {
            return Err(SegEnd::Restart(
                "no ETag or Last-Modified ties the ranges to one version",
            ));
        };
        let fresh = job.first.is_some();
        let path = job.temp.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<Option<File>> {
            // A fresh download's file may not exist yet (it is created by
            // the first write; see `Handle`).
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(fresh)
                .open(path)?;
            if fresh {
                // Holes read as zeros until their bytes arrive; the missing
                // list says which ones are real.
                file.set_len(total)?;
            } else if file.metadata()?.len() != total {
                return Ok(None);
            }
            Ok(Some(file))
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        let file = match opened {
            Ok(Some(file)) => Arc::new(file),
            Ok(None) => {
                return Err(SegEnd::Restart(
                    "the temporary file does not have the file's size",
                ))
            }
            Err(source) => {
                return Err(SegEnd::Failed(TransferError::LocalFile {
                    op: LocalOp::Open,
                    path: job.temp.to_path_buf(),
                    written: 0,
                    source,
                }))
            }
        };

        let mut durable_missing = job.missing.clone();
        let durable_at_start = total - missing_len(&durable_missing);
        progress.connected(
            Some(total),
            job.validator,
            durable_at_start,
            &durable_missing,
        );
        let ctx = Arc::new(Ctx {
            engine: self.clone(),
            url: job.url.clone(),
            shown: job.shown.to_string(),
            temp: job.temp.to_path_buf(),
            file: file.clone(),
            table: Mutex::new(Table::new(job.missing)),
            validator: job.validator.clone(),
            if_range,
            total,
            stop: cancel.child_token(),
            pace: job.pace.clone(),
        });
        let connections = job.connections.max(1);
        debug!(url = %job.shown, total, connections, "downloading ranges side by side");

        let mut workers: JoinSet<(u64, Result<(), SegEnd>)> = JoinSet::new();
        let spawn = |workers: &mut JoinSet<_>, first: Option<reqwest::Response>| -> bool {
            let Some((id, range)) = ctx.table().next() else {
                return false;
            };
            let ctx = ctx.clone();
            workers.spawn(async move { (id, ctx.run(id, range.start, first).await) });
            true
        };
        spawn(&mut workers, job.first);
        while workers.len() < connections && spawn(&mut workers, None) {}

        let policy = self.config.checkpoint;
        let mut failure: Option<SegEnd> = None;
        let mut syncing: Option<Syncing> = None;
        let mut last_cp = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start_sync = |missing: Vec<ByteRange>| -> Syncing {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                let r = file.sync_data();
                (missing, r)
            })
        };

        while !workers.is_empty() {
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if failure.is_none() => {
                    failure = Some(SegEnd::Failed(TransferError::Cancelled));
                    ctx.stop.cancel();
                }
                joined = workers.join_next() => {
                    let Some(joined) = joined else { continue };
                    let (id, result) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    ctx.table().finish(id);
                    match result {
                        Ok(()) => {
                            if failure.is_none() {
                                while workers.len() < connections && spawn(&mut workers, None) {}
                            }
                        }
                        Err(e) => {
                            if failure.is_none() {
                                debug!(url = %job.shown, error = ?e, "a connection failed; stopping the others");
                                failure = Some(e);
                                ctx.stop.cancel();
                            }
                        }
                    }
                }
                done = async { syncing.as_mut().expect("guarded").await }, if syncing.is_some() => {
                    syncing = None;
                    last_cp = Instant::now();
                    match done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())) {
                        (missing, Ok(())) => {
                            durable_missing = missing;
                            progress.checkpoint_ranges(total - missing_len(&durable_missing), &durable_missing);
                        }
                        (_, Err(source)) => {
                            if failure.is_none() {
                                failure = Some(ctx.local_error(LocalOp::Sync, source));
                                ctx.stop.cancel();
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let (received, missing) = {
                        let t = ctx.table();
                        (total - t.unreceived(), t.missing())
                    };
                    progress.progress(received);
                    let gained = missing_len(&durable_missing) - missing_len(&missing).min(missing_len(&durable_missing));
                    let due = last_cp.elapsed() >= policy.interval || gained >= policy.bytes;
                    if syncing.is_none() && failure.is_none() && due && gained > 0 {
                        syncing = Some(start_sync(missing));
                    }
                }
            }
        }
        if let Some(handle) = syncing.take() {
            if let (missing, Ok(())) = handle
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            {
                durable_missing = missing;
                progress.checkpoint_ranges(total - missing_len(&durable_missing), &durable_missing);
            }
        }

        match failure {
            Some(end @ (SegEnd::Restart(_) | SegEnd::NoRanges)) => return Err(end),
            Some(SegEnd::Failed(error)) => {
                // Every connection has stopped and written what it had:
                // make it durable so the next attempt starts from there.
                let missing = ctx.table().missing();
                if missing_len(&missing) < missing_len(&durable_missing) {
                    match start_sync(missing)
                        .await
                        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
                    {
                        (missing, Ok(())) => {
                            durable_missing = missing;
                            progress.checkpoint_ranges(
                                total - missing_len(&durable_missing),
                                &durable_missing,
                            );
                        }
                        (_, Err(e)) => warn!(error = %e, "could not checkpoint a failed transfer"),
                    }
                }
                let written =
                    (total - missing_len(&durable_missing)).saturating_sub(durable_at_start);
                return Err(SegEnd::Failed(error.with_written(written)));
            }
            None => {}
        }
        let left = ctx.table().missing();
        if !left.is_empty() {
            // Every connection ended well, so nothing can be left; refuse to
            // call a file with holes complete if that ever breaks.
            info!(url = %job.shown, ranges = left.len(), "ranges left after every connection ended");
            return Err(SegEnd::Failed(TransferError::BodyCut {
                url: job.shown.to_string(),
                received: total - missing_len(&left),
                expected: Some(total),
                written: 0,
                source: None,
            }));
        }
        drop(ctx);
        let mtime = mtime_of(job.validator);
        let sync = job.sync_on_finish;
        let temp = job.temp.to_path_buf();
        let finished = tokio::task::spawn_blocking(move || {
            if let Some(t) = mtime {
                if let Err(e) = filetime::set_file_handle_times(&file, None, Some(t)) {
                    warn!(path = %temp.display(), error = %e, "could not set the modification time");
                }
            }
            if sync {
                file.sync_all()?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        if let Err(source) = finished {
            return Err(SegEnd::Failed(TransferError::LocalFile {
                op: LocalOp::Sync,
                path: job.temp.to_path_buf(),
                written: 0,
                source,
            }));
        }
        if sync {
            progress.checkpoint(total);
        }
        Ok(Outcome {
            bytes: total,
            validator: job.validator.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range_on_aligned_bounds() {
        let parts = split(1000, 1000 + 10 * MIN_SEGMENT + 7, 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].start, 1000);
        assert_eq!(parts[3].end, 1000 + 10 * MIN_SEGMENT + 7);
        for w in parts.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!((w[1].start - 1000) % ALIGN, 0);
        }
        // Never more parts than aligned blocks, never zero.
        assert_eq!(split(0, 10, 8).len(), 1);
        assert_eq!(split(0, 3 * ALIGN, 8).len(), 3);
    }

    #[test]
    fn missing_lists_are_checked() {
        let r = |start, end| ByteRange { start, end };
        assert!(well_formed(&[r(0, 5), r(5, 9)], 9));
        assert!(!well_formed(&[], 9));
        assert!(!well_formed(&[r(0, 10)], 9));
        assert!(!well_formed(&[r(4, 6), r(0, 5)], 9));
        assert!(!well_formed(&[r(3, 3)], 9));
    }

    #[test]
    fn a_free_connection_takes_half_of_the_largest_range() {
        let mut t = Table::new(vec![ByteRange {
            start: 0,
            end: 8 * MIN_SEGMENT,
        }]);
        let (a, ra) = t.next().unwrap();
        assert_eq!(ra.len(), 8 * MIN_SEGMENT);
        assert_eq!(t.advance(a, MIN_SEGMENT), (MIN_SEGMENT, false));
        let (b, rb) = t.next().unwrap();
        // The running range keeps [pos, mid); the new one gets [mid, end).
        assert_eq!(
            rb.start,
            MIN_SEGMENT + (7 * MIN_SEGMENT) / 2 / ALIGN * ALIGN
        );
        assert_eq!(rb.end, 8 * MIN_SEGMENT);
        assert_eq!(t.end_of(a), rb.start);
        // a cannot take bytes past its new end.
        let (took, done) = t.advance(a, 100 * MIN_SEGMENT);
        assert_eq!(took, rb.start - MIN_SEGMENT);
        assert!(done);
        // Nothing written yet: everything is missing, without overlaps.
        let missing = t.missing();
        assert_eq!(missing_len(&missing), 8 * MIN_SEGMENT);
        assert!(well_formed(&missing, 8 * MIN_SEGMENT));
        // a wrote only its first MiB, then stopped: the rest waits in the
        // queue for the next free connection.
        t.wrote(a, MIN_SEGMENT);
        t.finish(a);
        let (_, rc) = t.next().unwrap();
        assert_eq!(
            rc,
            ByteRange {
                start: MIN_SEGMENT,
                end: rb.start
            }
        );
        let _ = b;
    }

    #[test]
    fn small_ranges_are_not_split() {
        let mut t = Table::new(vec![ByteRange {
            start: 0,
            end: 2 * MIN_SEGMENT - 1,
        }]);
        t.next().unwrap();
        assert!(t.next().is_none());
    }
}
