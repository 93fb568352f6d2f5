//! Finished files made durable together: a job of thousands of small files
//! costs a few syncs and store commits a second instead of two per file,
//! and one trip to the blocking pool per batch, which also creates and
//! writes the small files the engine left in memory. A file counts as
//! transferred only once its data is durable and its completion is saved.

use super::Done;
use crate::state::{error_chain, Shared};
use bits_core::JobId;
use bits_transfer::{Finished, LocalOp, SaveError, TransferError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Finished files wait at most this long to be made durable together...
const DELAY: Duration = Duration::from_millis(200);
/// ... or until this many have finished: one `syncfs` and one store commit
/// for the batch, instead of an fsync and a commit per file...
const FILES: usize = 256;
/// ... or until this many bytes of small files wait in memory to be
/// written (see `bits_transfer::Finished`).
const IN_MEMORY: usize = 4 << 20;
/// While a sync runs, the next batch keeps filling; past this many files
/// or bytes in memory no new file starts until the sync ends. Far above
/// a full batch, so that a sync of normal length (tens to hundreds of
/// milliseconds, while thousands of small files a second arrive) never
/// stalls the transfers; only a stalled disk does.
const HOLD_FILES: usize = 16 * FILES;
const HOLD_IN_MEMORY: usize = 4 * IN_MEMORY;

/// A batch after its sync: the files, and how the sync went (places in it
/// count its downloads only).
type Synced = (Vec<Done>, crate::fsops::BatchSync);

/// How a batch's sync and save ended: on failure, the error and the file
/// it is about, if it is one file's.
pub(super) type Saved = Result<(), (Option<usize>, TransferError)>;

/// Finished files not yet durable (written, or small ones still in
/// memory), and the sync and save of the previous batch.
#[derive(Default)]
pub(super) struct Batch {
    files: Vec<Done>,
    /// Bytes of those files still in memory.
    in_memory: usize,
    since: Option<Instant>,
    /// Polled by the runner beside its transfers, so that a store commit
    /// never keeps the next files from starting.
    syncing: Option<Pin<Box<dyn Future<Output = Saved> + Send>>>,
}

impl Batch {
    pub(super) fn push(&mut self, done: Done) {
        self.since.get_or_insert_with(Instant::now);
        self.in_memory += done.download.as_ref().map_or(0, |(_, f)| f.in_memory());
        self.files.push(done);
    }

    pub(super) fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    pub(super) fn syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// Whether the waiting files make a full batch.
    fn full(&self) -> bool {
        self.files.len() >= FILES || self.in_memory >= IN_MEMORY
    }

    /// Whether no new file should start until the sync running ends: a
    /// slow disk holds back the transfers instead of piling up bytes in
    /// memory and open files.
    pub(super) fn holds_back(&self) -> bool {
        self.files.len() >= HOLD_FILES || self.in_memory >= HOLD_IN_MEMORY
    }

    /// When the waiting files should be synced: after a short delay, or at
    /// once when the batch is full; never while a sync runs.
    pub(super) fn due_at(&self) -> Option<Instant> {
        if self.syncing.is_some() {
            return None;
        }
        let since = self.since?;
        Some(if self.full() {
            Instant::now()
        } else {
            since + DELAY
        })
    }

    /// Starts making the waiting files durable (on the blocking pool),
    /// then saving them as transferred.
    pub(super) fn start_sync(&mut self, shared: &Arc<Shared>, id: JobId) {
        let mut files = std::mem::take(&mut self.files);
        self.in_memory = 0;
        self.since = None;
        let shared = shared.clone();
        self.syncing = Some(Box::pin(async move {
            let synced = tokio::task::spawn_blocking(move || {
                let mut finished: Vec<&mut Finished> = files
                    .iter_mut()
                    .filter_map(|d| d.download.as_mut().map(|(_, f)| f))
                    .collect();
                let result = crate::fsops::sync_finished(&mut finished);
                (files, result)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            save(&shared, id, synced).await
        }));
    }

    /// Waits for the sync and save in flight. Cancel-safe.
    pub(super) async fn synced(&mut self) -> Saved {
        let saving = self
            .syncing
            .as_mut()
            .expect("synced is only awaited while a sync runs");
        let saved = saving.await;
        self.syncing = None;
        saved
    }
}

/// Once a batch's data is durable, saves its files as complete with one
/// store commit, then shows them: only then do they count as transferred.
async fn save(shared: &Arc<Shared>, id: JobId, synced: Synced) -> Saved {
    let (files, report) = synced;
    // A place in the batch's downloads: the job's file, and the error.
    let error = |i: usize, op: LocalOp, source: std::io::Error| {
        let index = files
            .iter()
            .filter(|d| d.download.is_some())
            .nth(i)
            .map(|d| d.index);
        let path = index
            .and_then(|index| {
                shared
                    .read()
                    .jobs
                    .get(&id)
                    .and_then(|e| e.job.files.get(index).map(|f| f.temp(id)))
            })
            .unwrap_or_default();
        let error = TransferError::LocalFile {
            op,
            path,
            written: 0,
            source,
        };
        (index, error)
    };
    if let Some((i, source)) = report.sync_failed {
        // The batch's failure, not one file's: one syncfs may stand for
        // every file.
        return Err((None, error(i, LocalOp::Sync, source).1));
    }
    let unwritten = report.unwritten.map(|(i, op, source)| error(i, op, source));
    let rows: Vec<(usize, bits_core::JobFile)> = {
        let view = shared.read();
        let Some(e) = view.jobs.get(&id) else {
            return Ok(());
        };
        files
            .iter()
            // A file that could not be written is not saved: it is
            // transferred again.
            .filter(|d| d.download.as_ref().is_none_or(|(_, f)| f.id().is_some()))
            .filter_map(|d| {
                let mut f = e.job.files.get(d.index)?.clone();
                if let Some(name) = &d.remote_name {
                    f.remote = name.as_str().into();
                }
                f.bytes_transferred = d.bytes;
                f.bytes_total = Some(d.bytes);
                if let Some((validator, finished)) = &d.download {
                    f.set_validator(validator.clone());
                    f.set_temp_id(finished.id());
                }
                f.set_missing(Vec::new());
                f.complete = true;
                Some((d.index, f))
            })
            .collect()
    };
    let saved = rows.clone();
    let count = rows.len();
    shared
        .store
        .call(move |s| s.save_files(id, saved.iter().map(|(i, f)| (*i, f))))
        .await
        .map_err(|e| {
            let error = TransferError::NotSaved {
                written: 0,
                source: SaveError {
                    message: error_chain(&e),
                },
            };
            (None, error)
        })?;
    let mut view = shared.write();
    if let Some(e) = view.jobs.get_mut(&id) {
        for (index, f) in rows {
            if let Some(slot) = e.job.files.get_mut(index) {
                *slot = f;
            }
        }
        shared.bump(&e.revision);
    }
    tracing::debug!(files = count, "files transferred and durable");
    match unwritten {
        Some(failed) => Err(failed),
        None => Ok(()),
    }
}
