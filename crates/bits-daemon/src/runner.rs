//! Drives one job's transfer: its files in order, one at a time, through the
//! engine, turning outcomes into job events.
//!
//! A runner owns nothing but its cancellation token. Everything it learns
//! goes into the shared state through short locked sections; everything it
//! decides (retry now, later, or give up) comes from `bits_core::policy`.

use crate::shared::{error_chain, Runner, Shared, State};
use bits_core::error::codes;
use bits_core::policy::retry::{decide, RetryDecision, RetryInput};
use bits_core::{
    ErrorContext, Event, FileValidator, JobError, JobFile, JobId, JobType, UploadSession,
};
use bits_transfer::{Class, FileTransfer, Progress, UploadProgress, UploadTransfer};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often progress wakes watchers. Progress arrives per network chunk;
/// a person watching a progress bar needs a few updates a second.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Starts a runner for job `id`, which the caller has just moved to
/// Connecting.
pub fn spawn(shared: &Arc<Shared>, state: &mut State, id: JobId) {
    state.next_run_id += 1;
    let run_id = state.next_run_id;
    let cancel = shared.shutdown.child_token();
    let task = shared
        .runners
        .spawn(run(shared.clone(), id, cancel.clone(), run_id));
    if let Some(e) = state.jobs.get_mut(&id) {
        e.runner = Some(Runner {
            cancel,
            task: Some(task),
            run_id,
        });
    }
}

/// What the runner needs to know to move the next file.
struct NextFile {
    index: usize,
    file: JobFile,
    remaining: Duration,
    job_type: JobType,
    reply_wanted: bool,
}

/// A file that has been moved.
struct Done {
    bytes: u64,
    /// The version downloaded; uploads report theirs through the sink.
    validator: Option<FileValidator>,
}

/// Moves one file: a download, or an upload (with its reply).
async fn move_file(
    shared: &Arc<Shared>,
    id: JobId,
    next: &NextFile,
    cancel: &CancellationToken,
) -> Result<Done, bits_transfer::TransferError> {
    let mut sink = Sink {
        shared: shared.clone(),
        id,
        index: next.index,
        last_publish: Instant::now(),
    };
    if next.job_type == JobType::Download {
        let outcome = shared
            .engine
            .download(
                FileTransfer {
                    remote: &next.file.remote,
                    temp: &next.file.temp,
                    offset: next.file.bytes_transferred,
                    validator: &next.file.validator,
                },
                &mut sink,
                cancel,
            )
            .await?;
        return Ok(Done {
            bytes: outcome.bytes,
            validator: Some(outcome.validator),
        });
    }
    let outcome = shared
        .engine
        .upload(
            UploadTransfer {
                local: &next.file.local,
                url: &next.file.remote,
                validator: &next.file.validator,
                session: &next.file.upload,
                acknowledged: next.file.bytes_transferred,
                reply_to: next.reply_wanted.then_some(next.file.temp.as_path()),
            },
            &mut sink,
            cancel,
        )
        .await?;
    Ok(Done {
        bytes: outcome.bytes,
        validator: None,
    })
}

enum Step {
    File(Box<NextFile>),
    AllDone,
    Stop,
}

/// The file as the next attempt should see it: never resume past the bytes
/// that are really in the temporary file (a failed flush can leave the
/// in-memory count ahead of the disk).
fn resume_point(file: &JobFile) -> JobFile {
    let mut f = file.clone();
    let on_disk = std::fs::metadata(&f.temp).map(|m| m.len()).unwrap_or(0);
    f.bytes_transferred = f.bytes_transferred.min(on_disk);
    f
}

fn next_step(shared: &Shared, id: JobId) -> Step {
    let st = shared.lock();
    let Some(e) = st.jobs.get(&id) else {
        return Step::Stop;
    };
    if !e.job.state().is_running() {
        return Step::Stop;
    }
    match e.job.next_file() {
        None => Step::AllDone,
        Some(index) => Step::File(Box::new(NextFile {
            index,
            job_type: e.job.job_type,
            reply_wanted: e.job.job_type == JobType::UploadReply,
            file: if e.job.job_type == JobType::Download {
                resume_point(&e.job.files[index])
            } else {
                e.job.files[index].clone()
            },
            remaining: e
                .job
                .props
                .max_download_time
                .saturating_sub(e.job.active_time),
        })),
    }
}

#[tracing::instrument(skip(shared, cancel), fields(job = %id))]
async fn run(shared: Arc<Shared>, id: JobId, cancel: CancellationToken, run_id: u64) {
    let mut immediate_retries = 0u32;
    loop {
        let next = match next_step(&shared, id) {
            Step::Stop => break,
            Step::AllDone => {
                let mut st = shared.lock();
                let _ = shared.mutate(&mut st, id, |job| {
                    job.apply(Event::AllFilesTransferred, SystemTime::now())
                        .map_err(crate::ipc::invalid)?;
                    Ok(())
                });
                tracing::info!("all files transferred");
                break;
            }
            Step::File(n) => n,
        };
        if next.remaining.is_zero() {
            fail(&shared, id, max_download_time_error(&shared, id));
            break;
        }
        let file_cancel = cancel.child_token();
        let started = Instant::now();
        let transfer = move_file(&shared, id, &next, &file_cancel);
        tokio::pin!(transfer);
        let mut timed_out = false;
        let result = tokio::select! {
            r = &mut transfer => r,
            _ = tokio::time::sleep(next.remaining) => {
                // Let the engine checkpoint before giving up on the job.
                timed_out = true;
                file_cancel.cancel();
                transfer.await
            }
        };
        add_active_time(&shared, id, started.elapsed());

        match result {
            Ok(outcome) => {
                immediate_retries = 0;
                let mut st = shared.lock();
                if let Some(e) = st.jobs.get_mut(&id) {
                    if let Some(f) = e.job.files.get_mut(next.index) {
                        f.bytes_transferred = outcome.bytes;
                        f.bytes_total = Some(outcome.bytes);
                        if let Some(v) = outcome.validator {
                            f.validator = v;
                        }
                        f.complete = true;
                        let f = f.clone();
                        if let Err(err) = shared.store().save_file(id, next.index, &f) {
                            tracing::error!(cause = %error_chain(&err), "cannot save file completion");
                        }
                    }
                    shared.bump(&mut st, id);
                }
                tracing::debug!(file = next.index, bytes = outcome.bytes, "file transferred");
            }
            Err(err) => {
                let mut job_error = err.job_error();
                job_error.file_index = Some(next.index);
                match err.class() {
                    Class::Cancelled if timed_out => {
                        fail(&shared, id, max_download_time_error(&shared, id));
                        break;
                    }
                    Class::Cancelled => {
                        // A user action (suspend, cancel, complete) has already
                        // moved the job; if it is still running, the daemon is
                        // stopping and the job waits for the next start.
                        let mut st = shared.lock();
                        let running = st.jobs.get(&id).is_some_and(|e| e.job.state().is_running());
                        if running {
                            let _ = shared.mutate(&mut st, id, |job| {
                                job.apply(Event::Interrupted, SystemTime::now())
                                    .map_err(crate::ipc::invalid)?;
                                Ok(())
                            });
                        }
                        break;
                    }
                    Class::Fatal => {
                        tracing::warn!(error = %job_error, "transfer failed");
                        fail(&shared, id, job_error);
                        break;
                    }
                    Class::Transient { retry_after } => {
                        let now = SystemTime::now();
                        let input = {
                            let st = shared.lock();
                            let Some(e) = st.jobs.get(&id) else { break };
                            RetryInput {
                                made_progress: err.made_progress(),
                                immediate_retries,
                                no_progress_since: e.job.no_progress_since,
                                min_retry_delay: e.job.props.min_retry_delay,
                                no_progress_timeout: e.job.props.no_progress_timeout,
                                retry_after,
                            }
                        };
                        match decide(input, now) {
                            RetryDecision::Immediately => {
                                immediate_retries += 1;
                                tracing::info!(error = %job_error, "transfer interrupted after progress; resuming");
                                continue;
                            }
                            RetryDecision::At(retry_at) => {
                                tracing::info!(error = %job_error, "transient error; retrying later");
                                let mut st = shared.lock();
                                let _ = shared.mutate(&mut st, id, |job| {
                                    job.apply(
                                        Event::TransientFailure {
                                            error: job_error,
                                            retry_at,
                                        },
                                        now,
                                    )
                                    .map_err(crate::ipc::invalid)?;
                                    Ok(())
                                });
                                break;
                            }
                            RetryDecision::GiveUp => {
                                tracing::warn!(error = %job_error, "no progress within the retry period; giving up");
                                fail(&shared, id, job_error);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut st = shared.lock();
    if let Some(e) = st.jobs.get_mut(&id) {
        if e.runner.as_ref().is_some_and(|r| r.run_id == run_id) {
            e.runner = None;
        }
    }
    drop(st);
    shared.wake.notify_one();
}

fn add_active_time(shared: &Shared, id: JobId, d: Duration) {
    let mut st = shared.lock();
    if let Some(e) = st.jobs.get_mut(&id) {
        e.job.active_time += d;
    }
}

fn fail(shared: &Shared, id: JobId, error: JobError) {
    let mut st = shared.lock();
    let _ = shared.mutate(&mut st, id, |job| {
        job.apply(Event::FatalFailure { error }, SystemTime::now())
            .map_err(crate::ipc::invalid)?;
        Ok(())
    });
}

fn max_download_time_error(shared: &Shared, id: JobId) -> JobError {
    let secs = shared
        .lock()
        .jobs
        .get(&id)
        .map(|e| e.job.props.max_download_time.as_secs())
        .unwrap_or(0);
    JobError::new(
        ErrorContext::GeneralQueueManager,
        codes::BG_E_MAXDOWNLOAD_TIMEOUT,
        format!(
            "The job did not finish within its maximum download time of {secs} seconds \
             (time spent connecting and transferring since the last resume)."
        ),
    )
}

/// Receives the engine's progress for one file of one job.
struct Sink {
    shared: Arc<Shared>,
    id: JobId,
    index: usize,
    last_publish: Instant,
}

impl Sink {
    fn with_file(&self, f: impl FnOnce(&mut State, &mut JobFile) -> Option<JobFile>) {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let Some(mut file) = st
            .jobs
            .get(&self.id)
            .and_then(|e| e.job.files.get(self.index).cloned())
        else {
            return;
        };
        let to_save = f(st, &mut file);
        if let Some(e) = st.jobs.get_mut(&self.id) {
            e.job.files[self.index] = file;
        }
        if let Some(save) = to_save {
            if let Err(err) = self.shared.store().save_file(self.id, self.index, &save) {
                tracing::error!(job = %self.id, cause = %error_chain(&err), "cannot save checkpoint");
            }
        }
    }
}

impl Progress for Sink {
    fn connected(&mut self, total: Option<u64>, validator: &FileValidator, offset: u64) {
        self.with_file(|_, f| {
            f.bytes_total = total;
            f.validator = validator.clone();
            f.bytes_transferred = offset;
            // The validator is saved before any byte of this version is
            // checkpointed, so a resume never pairs old bytes with a new
            // version.
            Some(f.clone())
        });
        self.mark_connected();
    }

    fn progress(&mut self, bytes: u64) {
        self.on_progress(bytes);
    }

    fn checkpoint(&mut self, bytes: u64) {
        self.on_checkpoint(bytes);
    }
}

impl Sink {
    /// Connecting -> Transferring once the server answered.
    fn mark_connected(&mut self) {
        let mut st = self.shared.lock();
        let connecting = st
            .jobs
            .get(&self.id)
            .is_some_and(|e| e.job.state() == bits_core::JobState::Connecting);
        if connecting {
            let _ = self.shared.mutate(&mut st, self.id, |job| {
                job.apply(Event::Connected, SystemTime::now())
                    .map_err(crate::ipc::invalid)?;
                Ok(())
            });
        } else {
            self.shared.bump(&mut st, self.id);
        }
    }

    fn on_progress(&mut self, bytes: u64) {
        let publish = self.last_publish.elapsed() >= PUBLISH_INTERVAL;
        let mut st = self.shared.lock();
        if let Some(e) = st.jobs.get_mut(&self.id) {
            e.job.record_progress(self.index, bytes, SystemTime::now());
        }
        if publish {
            self.last_publish = Instant::now();
            self.shared.bump(&mut st, self.id);
        }
    }

    fn on_checkpoint(&mut self, bytes: u64) {
        self.with_file(|_, f| {
            let mut saved = f.clone();
            saved.bytes_transferred = bytes;
            if f.bytes_transferred < bytes {
                f.bytes_transferred = bytes;
            }
            Some(saved)
        });
        let mut st = self.shared.lock();
        self.shared.bump(&mut st, self.id);
    }
}

impl UploadProgress for Sink {
    fn session(&mut self, session: &UploadSession, validator: &FileValidator, total: u64) {
        self.with_file(|_, f| {
            f.upload = session.clone();
            f.validator = validator.clone();
            f.bytes_total = Some(total);
            // Saved before any fragment goes out: a restart continues this
            // session, and notices a local file that changed meanwhile.
            Some(f.clone())
        });
        self.mark_connected();
    }

    fn acknowledged(&mut self, bytes: u64) {
        let now = SystemTime::now();
        self.with_file(|_, f| {
            f.bytes_transferred = bytes;
            Some(f.clone())
        });
        let mut st = self.shared.lock();
        if let Some(e) = st.jobs.get_mut(&self.id) {
            // Progress resets the NoProgressTimeout clock.
            e.job.no_progress_since = None;
            e.job.modified = now;
        }
        self.shared.bump(&mut st, self.id);
    }
}
