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

use crate::auth::Authorizer;
use crate::engine::Engine;
use crate::error::{LocalOp, TransferError};
use crate::finished::Finished;
use crate::pace::Pacer;
use crate::progress::{FileState, Outcome, Progress};
use crate::route::Route;
use crate::temp_file::{join_error, TempFile};
use crate::version::{self, Answer, Ask, Plan};
use bits_core::{ByteRange, FileValidator};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
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

impl SegEnd {
    /// Why the ranges cannot go on, for the log.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            SegEnd::Restart(why) => why,
            SegEnd::NoRanges => "the server answers ranges with the whole file",
            SegEnd::Failed(_) => "a connection failed",
        }
    }
}

/// One segmented download.
pub(crate) struct Segmented<'a> {
    pub url: &'a Url,
    /// Answers the server's challenges (shared with the other requests of
    /// the file).
    pub auth: Option<Arc<Authorizer>>,
    /// Proxies, TLS, redirects and custom headers.
    pub route: Arc<Route>,
    pub shown: &'a str,
    pub temp: Arc<TempFile>,
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
    auth: Option<Arc<Authorizer>>,
    route: Arc<Route>,
    shown: String,
    temp: Arc<TempFile>,
    table: Mutex<Table>,
    validator: FileValidator,
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
            path: self.temp.path().to_path_buf(),
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
        let Some(pacer) = &self.pace else {
            return;
        };
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => {}
            () = pacer.pause(wait) => {}
        }
    }

    /// Asks for `[pos, end)` of the version being written.
    async fn request(&self, pos: u64, end: u64) -> Result<reqwest::Response, SegEnd> {
        let ask = Ask {
            start: pos,
            end: Some(end),
            stored: &self.validator,
        };
        let headers = ask.headers();
        let asked = tokio::time::Instant::now();
        let response = self
            .route
            .get(
                &self.url,
                &headers,
                self.auth.as_deref(),
                self.engine.config.read_timeout,
                &self.stop,
            )
            .await
            .map_err(SegEnd::Failed)?
            .response;
        if let Some(pacer) = &self.pace {
            pacer.answered_in(asked.elapsed());
        }
        let answer = Answer::from_headers(
            response.status().as_u16(),
            response.headers(),
            SystemTime::now(),
        );
        match version::plan(&ask, &answer) {
            Plan::Write { fresh: false, .. } => Ok(response),
            // If-Range failed: the whole body is another version.
            Plan::Write { fresh: true, .. } | Plan::Complete => Err(SegEnd::Restart(
                "the server sent the whole file instead of a range: it changed",
            )),
            Plan::Restart(why) => Err(SegEnd::Restart(why)),
            Plan::NoRanges => Err(SegEnd::NoRanges),
            Plan::Refuse(refusal) => {
                Err(SegEnd::Failed(TransferError::refused(refusal, &self.shown)))
            }
        }
    }

    /// Writes the buffer (which ends at `pos`) and records it.
    async fn flush(&self, id: u64, buf: &mut Vec<u8>, pos: u64) -> Result<(), SegEnd> {
        if buf.is_empty() {
            return Ok(());
        }
        let at = pos - buf.len() as u64;
        let temp = self.temp.clone();
        let data = std::mem::take(buf);
        let (data, result) = tokio::task::spawn_blocking(move || {
            let r = temp.write_at(&data, at);
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
            let limit = self.pace.as_ref().and_then(|p| p.chunk()).map(|c| pos + c);
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

/// A checkpoint in flight: the `fdatasync` whose result is the durable set.
type Syncing = JoinHandle<std::io::Result<crate::ranges::RangeSet>>;

/// Starts a sync of the file on the blocking pool.
fn start_sync(temp: &Arc<TempFile>) -> Syncing {
    let temp = temp.clone();
    tokio::task::spawn_blocking(move || temp.sync())
}

impl Engine {
    /// Downloads the missing ranges of one file over up to `connections`
    /// connections. On success every byte is written (and fsynced, with the
    /// last checkpoint saved, if `sync_on_finish`).
    pub(crate) async fn download_segments(
        &self,
        job: Segmented<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, SegEnd> {
        let Some(total) = job.validator.size else {
            return Err(SegEnd::Restart("the file's size is not known"));
        };
        if version::if_range(job.validator).is_none() {
            return Err(SegEnd::Restart(
                "no strong ETag or date ties the ranges to one version",
            ));
        }
        let temp = job.temp.clone();
        let state = |durable: &crate::ranges::RangeSet| FileState {
            validator: job.validator.clone(),
            bytes: durable.len(),
            missing: durable.complement(total).ranges().to_vec(),
            temp_id: temp.id(),
        };
        if job.first.is_some() {
            // A fresh download (its resume point was saved as the version at
            // byte 0): give the file its full size; holes read as zeros
            // until their bytes arrive, and the durable set says which are
            // real.
            let t = temp.clone();
            let sized = tokio::task::spawn_blocking(move || t.set_len(total))
                .await
                .unwrap_or_else(|e| Err(join_error(e)));
            if let Err(source) = sized {
                return Err(SegEnd::Failed(TransferError::LocalFile {
                    op: LocalOp::Truncate,
                    path: temp.path().to_path_buf(),
                    written: 0,
                    source,
                }));
            }
        } else {
            // Resuming the record's ranges (the caller checked the file).
            let resumed = state(&temp.durable());
            if let Err(e) = progress.begin(&resumed, Some(total)).await {
                return Err(SegEnd::Failed(TransferError::NotSaved {
                    written: 0,
                    source: e,
                }));
            }
        }
        let durable_at_start = temp.durable().len();
        let mut saved_durable = durable_at_start;

        let ctx = Arc::new(Ctx {
            engine: self.clone(),
            url: job.url.clone(),
            auth: job.auth.clone(),
            route: job.route.clone(),
            shown: job.shown.to_string(),
            temp: temp.clone(),
            table: Mutex::new(Table::new(job.missing)),
            validator: job.validator.clone(),
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

        while !workers.is_empty() || syncing.is_some() {
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if failure.is_none() => {
                    failure = Some(SegEnd::Failed(TransferError::Cancelled));
                    ctx.stop.cancel();
                }
                joined = workers.join_next(), if !workers.is_empty() => {
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
                    match done.unwrap_or_else(|e| Err(join_error(e))) {
                        Ok(durable) => {
                            if let Err(e) = progress.checkpoint(&state(&durable)).await {
                                if failure.is_none() {
                                    failure = Some(SegEnd::Failed(TransferError::NotSaved { written: 0, source: e }));
                                    ctx.stop.cancel();
                                }
                            } else {
                                saved_durable = durable.len();
                            }
                        }
                        Err(source) => {
                            if failure.is_none() {
                                failure = Some(ctx.local_error(LocalOp::Sync, source));
                                ctx.stop.cancel();
                            }
                        }
                    }
                }
                _ = tick.tick(), if !workers.is_empty() => {
                    let received = total - ctx.table().unreceived();
                    progress.progress(received);
                    let written = total - missing_len(&ctx.table().missing());
                    let gained = written.saturating_sub(saved_durable);
                    let due = last_cp.elapsed() >= policy.interval || gained >= policy.bytes;
                    if syncing.is_none() && failure.is_none() && due && gained > 0 {
                        syncing = Some(start_sync(&temp));
                    }
                }
            }
        }

        if let Some(SegEnd::Failed(error)) = failure {
            // Every connection has stopped and written what it had: make it
            // durable so the next attempt starts from there. After a failed
            // sync this adds nothing (the file counts only what a
            // successful sync covered).
            match start_sync(&temp)
                .await
                .unwrap_or_else(|e| Err(join_error(e)))
            {
                Ok(durable) if durable.len() > saved_durable => {
                    match progress.checkpoint(&state(&durable)).await {
                        Ok(()) => saved_durable = durable.len(),
                        Err(e) => {
                            warn!(error = %e, "could not save the checkpoint of a failed transfer")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "could not checkpoint a failed transfer"),
            }
            let written = saved_durable.saturating_sub(durable_at_start);
            return Err(SegEnd::Failed(error.with_written(written)));
        }
        if let Some(end) = failure {
            return Err(end);
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
        let mtime = version::mtime(job.validator);
        let sync = job.sync_on_finish;
        let t = temp.clone();
        let finished = tokio::task::spawn_blocking(move || {
            t.finish(mtime, sync).map_err(|f| f.source)?;
            t.file()
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        let (file, id) = finished.map_err(|source| {
            SegEnd::Failed(TransferError::LocalFile {
                op: LocalOp::Sync,
                path: temp.path().to_path_buf(),
                written: 0,
                source,
            })
        })?;
        if sync {
            let done = FileState {
                validator: job.validator.clone(),
                bytes: total,
                missing: Vec::new(),
                temp_id: Some(id),
            };
            if let Err(e) = progress.checkpoint(&done).await {
                return Err(SegEnd::Failed(TransferError::NotSaved {
                    written: 0,
                    source: e,
                }));
            }
        }
        Ok(Outcome {
            remote_name: None,
            via: None,
            bytes: total,
            validator: job.validator.clone(),
            temp: Finished::open(file, id),
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
