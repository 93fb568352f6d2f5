//! The front-to-back writer: a download's bytes in order into its temporary
//! file, with checkpoints.
//!
//! Why this design rather than `tokio::fs::File` + `BufWriter`: tokio's file
//! already ships every write to the blocking pool but copies each buffer and
//! keeps only one operation in flight without telling us when data is
//! written, and `sync_data` through it must wait for that. Here chunks are
//! copied once into a 1 MiB buffer; a full buffer is written with one
//! `pwrite` on the blocking pool *while the next buffer fills from the
//! network* (double buffering), so disk and network overlap. A checkpoint is
//! a write that ends with `fdatasync` ([`TempFile::sync`]): it runs in the
//! background too, and its resume point is saved ([`Progress::checkpoint`])
//! only once the sync has succeeded.
//!
//! Writes are positional (`pwrite` at the logical offset), so the file's
//! cursor never matters after a truncate.

use crate::engine::CheckpointPolicy;
use crate::error::{LocalOp, TransferError};
use crate::finished::{self, Finished};
use crate::progress::{FileState, Outcome, Progress};
use crate::temp_file::{join_error, OpFailed, TempFile};
use bits_core::FileValidator;
use filetime::FileTime;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

/// Size of one write buffer. Large enough that a write syscall (and a trip
/// to the blocking pool) is amortised over many network chunks, small enough
/// that two of them per running download cost little memory.
pub(crate) const BUF_CAP: usize = 1 << 20;

/// A finished blocking-pool write.
pub(crate) struct OpDone {
    buf: Vec<u8>,
    /// `Ok(Some(n))`: a sync succeeded and the first `n` bytes are durable.
    result: Result<Option<u64>, OpFailed>,
}

/// The temporary file being written front to back.
pub(crate) struct Sink<'a> {
    temp: Arc<TempFile>,
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
    /// Bytes known durable (last successful sync, saved).
    durable: u64,
    /// Where this attempt started writing (after any restart).
    base: u64,
    /// Position of the last checkpoint started, and when.
    cp_pos: u64,
    pub(crate) cp_at: Instant,
    /// The file's length when it is known without asking (just truncated,
    /// nothing written since): lets a reset skip a truncate that would
    /// change nothing.
    len_known: Option<u64>,
    policy: CheckpointPolicy,
    progress: &'a mut dyn Progress,
    /// The version being written.
    version: FileValidator,
    /// Capacity of a write buffer: [`BUF_CAP`], or less when fewer bytes are
    /// expected (a 16 KiB file needs no 2 MiB of buffers).
    cap: usize,
}

impl<'a> Sink<'a> {
    /// A writer for `temp`, whose durable bytes (if any) the caller's record
    /// vouches for.
    pub(crate) fn new(
        temp: Arc<TempFile>,
        policy: CheckpointPolicy,
        progress: &'a mut dyn Progress,
    ) -> Sink<'a> {
        let len_known = temp.id().is_none().then_some(0);
        Sink {
            temp,
            inflight: None,
            buf: Vec::new(),
            spare: Vec::new(),
            pos: 0,
            flushed: 0,
            durable: 0,
            base: 0,
            cp_pos: 0,
            cp_at: Instant::now(),
            len_known,
            policy,
            progress,
            version: FileValidator::default(),
            cap: BUF_CAP,
        }
    }

    /// The file, for the segmented path.
    pub(crate) fn temp(&self) -> Arc<TempFile> {
        self.temp.clone()
    }

    /// The progress receiver, for the segmented path.
    pub(crate) fn progress(&mut self) -> &mut dyn Progress {
        &mut *self.progress
    }

    fn path(&self) -> &Path {
        self.temp.path()
    }

    fn local_error(&self, op: LocalOp, source: std::io::Error) -> TransferError {
        TransferError::LocalFile {
            op,
            path: self.path().to_path_buf(),
            written: self.written(),
            source,
        }
    }

    fn not_saved(&self, source: crate::progress::SaveError) -> TransferError {
        TransferError::NotSaved {
            written: self.written(),
            source,
        }
    }

    /// Bytes this attempt made durable.
    pub(crate) fn written(&self) -> u64 {
        self.durable.saturating_sub(self.base)
    }

    /// Every byte accepted so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// How often checkpoints are due.
    pub(crate) fn interval(&self) -> Duration {
        self.policy.interval
    }

    pub(crate) fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    fn state(&self, bytes: u64) -> FileState {
        FileState {
            validator: self.version.clone(),
            bytes,
            missing: Vec::new(),
            temp_id: self.temp.id(),
        }
    }

    /// Starts writing `version` at `at`. A `fresh` version replaces what the
    /// file held: its resume point `(version, 0)` is saved first, then the
    /// file is truncated, so no crash can leave bytes of two versions under
    /// one record. Otherwise `at` is a durable point of the same version,
    /// and bytes after it (garbage after a power cut) are cut off.
    pub(crate) async fn begin(
        &mut self,
        version: &FileValidator,
        at: u64,
        fresh: bool,
    ) -> Result<(), TransferError> {
        self.reap().await?;
        self.version = version.clone();
        let at = if fresh { 0 } else { at };
        if fresh {
            self.durable = 0;
            self.base = 0;
        }
        let state = self.state(at);
        let total = version.size;
        if let Err(e) = self.progress.begin(&state, total).await {
            return Err(self.not_saved(e));
        }
        self.reset(at).await
    }

    /// Drops buffered bytes and truncates the file to `at`, a durable
    /// position: writing continues there.
    async fn reset(&mut self, at: u64) -> Result<(), TransferError> {
        self.reap().await?;
        self.buf.clear();
        if self.len_known != Some(at) {
            let temp = self.temp.clone();
            let r = tokio::task::spawn_blocking(move || temp.set_len(at))
                .await
                .unwrap_or_else(|e| Err(join_error(e)));
            r.map_err(|e| self.local_error(LocalOp::Truncate, e))?;
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
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), TransferError> {
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

    pub(crate) fn checkpoint_due(&self) -> bool {
        self.pos > self.cp_pos && self.cp_at.elapsed() >= self.policy.interval
    }

    /// Starts a checkpoint in the background; it is reported when it
    /// completes (see [`Sink::reap`]).
    pub(crate) async fn start_checkpoint(&mut self) -> Result<(), TransferError> {
        self.submit(true).await
    }

    /// Hands the buffer to a blocking-pool write (ending with `fdatasync` if
    /// `sync`), after the previous one completed.
    async fn submit(&mut self, sync: bool) -> Result<(), TransferError> {
        self.reap().await?;
        self.len_known = None;
        let buf = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        let at = self.flushed;
        let end = self.pos;
        self.flushed = end;
        if sync {
            self.cp_pos = end;
            self.cp_at = Instant::now();
        }
        let temp = self.temp.clone();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let mut result = temp.write_at(&buf, at).map(|()| None);
            if !sync && result.is_ok() {
                temp.start_writeback(at, buf.len());
            }
            if sync && result.is_ok() {
                result = match temp.sync() {
                    // Written front to back: the durable bytes are a prefix.
                    Ok(durable) => Ok(durable.as_prefix()),
                    Err(source) => Err(OpFailed {
                        op: LocalOp::Sync,
                        source,
                        ok_until: at,
                    }),
                };
            }
            OpDone { buf, result }
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, and completes it.
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
    pub(crate) async fn next_done(&mut self) -> Result<OpDone, tokio::task::JoinError> {
        let handle = self
            .inflight
            .as_mut()
            .expect("next_done is only awaited while a write is in flight");
        let joined = handle.await;
        self.inflight = None;
        joined
    }

    /// Takes back the buffer of a finished write and saves its checkpoint.
    /// On a write failure, makes what was written before it durable and
    /// saves that, then returns the error. Not cancel-safe.
    pub(crate) async fn complete(
        &mut self,
        joined: Result<OpDone, tokio::task::JoinError>,
    ) -> Result<(), TransferError> {
        let done = match joined {
            Ok(done) => done,
            Err(e) => return Err(self.local_error(LocalOp::Write, join_error(e))),
        };
        let mut buf = done.buf;
        buf.clear();
        self.spare = buf;
        match done.result {
            Ok(Some(synced)) => self.saved(synced).await,
            Ok(None) => Ok(()),
            Err(failed) => {
                // Keep what did reach the file (a full disk should not cost
                // the whole download): sync it and save it. After a failed
                // sync this adds nothing: the file counts only bytes synced
                // before, since a second sync may "succeed" without the data.
                if failed.op == LocalOp::Write && failed.ok_until > self.durable {
                    let temp = self.temp.clone();
                    let synced = tokio::task::spawn_blocking(move || temp.sync())
                        .await
                        .unwrap_or_else(|e| Err(join_error(e)));
                    if let Ok(Some(n)) = synced.map(|d| d.as_prefix()) {
                        self.saved(n).await?;
                    }
                }
                // Nothing more may be written after a gap; the next attempt
                // starts from the durable point.
                self.buf.clear();
                self.pos = self.durable;
                self.flushed = self.durable;
                Err(self.local_error(failed.op, failed.source))
            }
        }
    }

    /// The first `n` bytes are durable: save them as the resume point.
    async fn saved(&mut self, n: u64) -> Result<(), TransferError> {
        if n <= self.durable && n != 0 {
            return Ok(());
        }
        let state = self.state(n);
        match self.progress.checkpoint(&state).await {
            Ok(()) => {
                self.durable = n;
                Ok(())
            }
            Err(e) => Err(self.not_saved(e)),
        }
    }

    /// Sizes the write buffers for `remaining` more bytes, if known.
    pub(crate) fn expect(&mut self, remaining: Option<u64>) {
        self.cap = remaining.map_or(BUF_CAP, |n| n.clamp(1, BUF_CAP as u64) as usize);
    }

    /// Writes everything buffered, fsyncs it and saves the checkpoint.
    pub(crate) async fn checkpoint(&mut self) -> Result<(), TransferError> {
        if self.pos == self.durable && self.buf.is_empty() {
            return self.reap().await;
        }
        self.submit(true).await?;
        self.reap().await
    }

    /// Cancellation: checkpoint what arrived (best effort: a failure here
    /// only loses bytes after the previous checkpoint) and say so.
    pub(crate) async fn cancel(&mut self) -> TransferError {
        if let Err(e) = self.checkpoint().await {
            warn!(error = %e, "could not checkpoint a cancelled transfer");
        }
        TransferError::Cancelled
    }

    /// The last write: everything buffered, the mtime, then (if `sync`)
    /// `fsync` of data and metadata and the final checkpoint. A small fresh
    /// file that is not to be synced here is not written at all: its bytes
    /// go back in the outcome, for the caller's batch to write.
    pub(crate) async fn finish(
        &mut self,
        mtime: Option<FileTime>,
        sync: bool,
        version: FileValidator,
        total: u64,
    ) -> Result<Outcome, TransferError> {
        self.reap().await?;
        self.len_known = None;
        let buf = std::mem::take(&mut self.buf);
        let at = self.flushed;
        let end = self.pos;
        if !sync && at == 0 && buf.len() <= finished::IN_MEMORY_MAX && self.temp.id().is_none() {
            // A small fresh file the caller makes durable in a batch: the
            // batch creates and writes it (see `finished`).
            self.version = version.clone();
            return Ok(Outcome {
                remote_name: None,
                via: None,
                bytes: total,
                validator: version,
                temp: Finished::unwritten(self.temp.clone(), buf, mtime),
            });
        }
        let temp = self.temp.clone();
        let result = tokio::task::spawn_blocking(move || temp.write_last(&buf, at, mtime, sync))
            .await
            .unwrap_or_else(|e| {
                Err(OpFailed {
                    op: LocalOp::Write,
                    source: join_error(e),
                    ok_until: 0,
                })
            });
        self.flushed = end;
        let (file, id) = result.map_err(|f| self.local_error(f.op, f.source))?;
        self.version = version.clone();
        if sync {
            self.saved(end).await?;
        }
        Ok(Outcome {
            remote_name: None,
            via: None,
            bytes: total,
            validator: version,
            temp: Finished::open(file, id),
        })
    }
}
