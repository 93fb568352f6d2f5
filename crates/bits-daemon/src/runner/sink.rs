//! What the engine reports about one file, saved and shown: received bytes
//! go to an atomic beside the view (no lock on the data path); resume points
//! are saved to the store, awaited, and only then put in the view.

use crate::lifecycle::{Command, Handle};
use crate::state::{error_chain, Shared};
use bits_core::{FileValidator, JobFile, JobId, UploadSession};
use bits_transfer::{FileState, Progress, SaveError, Saved, UploadProgress};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often progress wakes watchers: progress arrives per network chunk,
/// from several files at once, and a person watching a progress bar needs
/// a few updates a second.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wakes watchers of one job, at most every [`PUBLISH_INTERVAL`]; shared by
/// the files of an attempt.
pub(super) struct Publisher {
    shared: Arc<Shared>,
    revision: Arc<AtomicU64>,
    progressed_ms: Arc<AtomicU64>,
    last_ms: AtomicU64,
}

impl Publisher {
    pub(super) fn new(
        shared: Arc<Shared>,
        revision: Arc<AtomicU64>,
        progressed_ms: Arc<AtomicU64>,
    ) -> Publisher {
        Publisher {
            shared,
            revision,
            progressed_ms,
            last_ms: AtomicU64::new(0),
        }
    }

    /// Bytes moved: publish if the last publication is old enough.
    fn progressed(&self) {
        let now = now_ms();
        self.progressed_ms.store(now, Ordering::Relaxed);
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= PUBLISH_INTERVAL.as_millis() as u64
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.shared.bump(&self.revision);
        }
    }
}

/// Tells the lifecycle owner, once per attempt, that the server answered.
pub(super) struct Connected {
    manager: Handle,
    id: JobId,
    run: u64,
    sent: AtomicBool,
}

impl Connected {
    pub(super) fn new(manager: Handle, id: JobId, run: u64) -> Connected {
        Connected {
            manager,
            id,
            run,
            sent: AtomicBool::new(false),
        }
    }

    fn tell(&self) {
        if !self.sent.swap(true, Ordering::Relaxed) {
            self.manager.tell(Command::Connected {
                id: self.id,
                run: self.run,
            });
        }
    }
}

/// Receives the engine's progress for one file of one job.
pub(super) struct FileSink {
    shared: Arc<Shared>,
    id: JobId,
    index: usize,
    /// The file as the store holds it.
    saved: JobFile,
    /// The size the engine announced with the version it writes, before
    /// any resume point holds it: shown, and kept by the checkpoints that
    /// follow (which announce none).
    announced_total: Option<u64>,
    received: crate::counters::Counter,
    publisher: Arc<Publisher>,
    connected: Arc<Connected>,
}

impl FileSink {
    pub(super) fn new(
        shared: Arc<Shared>,
        id: JobId,
        index: usize,
        saved: JobFile,
        received: crate::counters::Counter,
        publisher: Arc<Publisher>,
        connected: Arc<Connected>,
    ) -> FileSink {
        received.store(saved.bytes_transferred);
        FileSink {
            shared,
            id,
            index,
            saved,
            announced_total: None,
            received,
            publisher,
            connected,
        }
    }

    /// Saves `file` as this file's row, then shows it: a result that could
    /// not be saved did not happen.
    async fn save(&mut self, file: JobFile) -> Result<(), SaveError> {
        let (id, index, row) = (self.id, self.index, file.clone());
        self.shared
            .store
            .call(move |s| s.save_file(id, index, &row))
            .await
            .map_err(|e| {
                tracing::error!(job = %id, cause = %error_chain(&e), "cannot save a file's progress");
                SaveError {
                    message: format!("the job database could not be written: {}", error_chain(&e)),
                }
            })?;
        self.show(&file);
        self.saved = file;
        Ok(())
    }

    /// Puts the file's saved row in the view. Watchers hear of it with the
    /// progress, at most every [`PUBLISH_INTERVAL`]: a job of thousands of
    /// small files would otherwise wake every follower once per file.
    fn show(&self, file: &JobFile) {
        let mut view = self.shared.write();
        if let Some(slot) = view
            .jobs
            .get_mut(&self.id)
            .and_then(|e| e.job.files.get_mut(self.index))
        {
            // The credential is the view's: it may have been removed since
            // this transfer copied the file (and the store kept it so).
            let credential = slot.take_credential();
            *slot = file.clone();
            slot.set_credential(credential);
        }
        drop(view);
        self.publisher.progressed();
    }

    /// The row with a download's resume point.
    fn with_state(&self, state: &FileState, total: Option<u64>) -> JobFile {
        let mut file = self.saved.clone();
        file.set_validator(state.validator.clone());
        file.bytes_transferred = state.bytes;
        file.set_missing(state.missing.clone());
        // The file the bytes are in now: none yet for a fresh file that is
        // still to be created by its first write.
        file.set_temp_id(state.temp_id);
        file.bytes_total = total.or(self.announced_total).or(self.saved.bytes_total);
        file
    }
}

/// Whether a row records no resume point (nothing to protect).
fn records_nothing(f: &JobFile) -> bool {
    f.bytes_transferred == 0 && f.missing().is_empty()
}

impl Progress for FileSink {
    fn begin<'a>(&'a mut self, state: &'a FileState, total: Option<u64>) -> Saved<'a> {
        Box::pin(async move {
            self.connected.tell();
            self.received.store(state.bytes);
            // A new version's size replaces any earlier one's.
            self.announced_total = total;
            let file = self.with_state(state, total);
            if file == self.saved {
                return Ok(());
            }
            if records_nothing(&self.saved) && state.is_empty() {
                // Starting from nothing: no resume point to protect yet (the
                // first checkpoint saves one). Only the size is shown.
                let mut shown = self.saved.clone();
                shown.bytes_total = total;
                self.show(&shown);
                return Ok(());
            }
            // A new version (or another point) replaces what the store
            // holds: saved before the engine writes a byte of it.
            self.save(file).await
        })
    }

    fn progress(&mut self, bytes: u64) {
        self.received.store(bytes);
        self.publisher.progressed();
    }

    fn checkpoint<'a>(&'a mut self, state: &'a FileState) -> Saved<'a> {
        Box::pin(async move {
            let file = self.with_state(state, None);
            self.save(file).await
        })
    }
}

impl UploadProgress for FileSink {
    fn session<'a>(
        &'a mut self,
        session: &'a UploadSession,
        validator: &'a FileValidator,
        total: u64,
    ) -> Saved<'a> {
        Box::pin(async move {
            self.connected.tell();
            let mut file = self.saved.clone();
            file.set_upload_session(session.clone());
            file.set_validator(validator.clone());
            file.bytes_total = Some(total);
            // Saved before any fragment goes out: a restart continues this
            // session, and notices a local file that changed meanwhile.
            self.save(file).await
        })
    }

    fn moved(&mut self, bytes: u64) {
        self.received.store(bytes);
        self.publisher.progressed();
    }

    fn acknowledged(&mut self, bytes: u64) -> Saved<'_> {
        Box::pin(async move {
            self.received.store(bytes);
            let mut file = self.saved.clone();
            file.bytes_transferred = bytes;
            self.save(file).await?;
            self.publisher.progressed();
            Ok(())
        })
    }
}
