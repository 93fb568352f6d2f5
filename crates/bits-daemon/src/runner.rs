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
    ByteRange, ErrorContext, Event, FileValidator, JobError, JobFile, JobId, JobType, UploadSession,
};
use bits_transfer::{Class, FileTransfer, Pacer, Progress, UploadProgress, UploadTransfer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

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
            started: SystemTime::now(),
        });
    }
}

/// What the runner needs to know to move the next file.
struct NextFile {
    index: usize,
    file: JobFile,
    job_type: JobType,
    reply_wanted: bool,
    /// Connections the file may use.
    connections: u32,
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
    pace: Option<&Arc<Pacer>>,
    cancel: &CancellationToken,
) -> Result<Done, bits_transfer::TransferError> {
    let mut sink = Sink {
        shared: shared.clone(),
        id,
        index: next.index,
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
                    // Made durable in batches by `make_durable`.
                    sync_on_finish: false,
                    missing: &next.file.missing,
                    connections: next.connections,
                    pace: pace.cloned(),
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
                pace: pace.cloned(),
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

#[tracing::instrument(skip(shared, cancel), fields(job = %id))]
async fn run(shared: Arc<Shared>, id: JobId, cancel: CancellationToken, run_id: u64) {
    let mut immediate_retries = 0u32;
    loop {
        match attempt(&shared, id, &cancel).await {
            Attempt::Stop => break,
            Attempt::AllDone => {
                let mut st = shared.lock();
                let _ = shared.mutate(&mut st, id, |job| {
                    job.apply(Event::AllFilesTransferred, SystemTime::now())
                        .map_err(crate::ipc::invalid)?;
                    Ok(())
                });
                tracing::info!("all files transferred");
                break;
            }
            Attempt::TimedOut => {
                fail(&shared, id, max_download_time_error(&shared, id));
                break;
            }
            Attempt::Failed {
                error: job_error,
                class,
                made_progress,
            } => match class {
                Class::Cancelled => {
                    // A user action (suspend, cancel, complete) has already
                    // moved the job; if it is still running, the daemon is
                    // stopping or the scheduler gave the slot to another
                    // job, and the job waits for its next turn.
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
                            made_progress,
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
            },
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

/// How one attempt at a job's files ended.
enum Attempt {
    /// Every file is on disk, durable.
    AllDone,
    /// The job is no longer running (a user action moved it).
    Stop,
    /// MaxDownloadTime ran out.
    TimedOut,
    /// A file failed; the other transfers of the attempt were stopped.
    Failed {
        error: JobError,
        class: Class,
        made_progress: bool,
    },
}

/// Files a download job moves at the same time. BITS transfers a job's
/// files one after another and reports them in order; for small files the
/// time goes to round trips and file creation, so a few run at once under
/// the hood. The job's state rules are unchanged: one failure stops the
/// others and holds the job.
const PARALLEL_FILES: usize = 8;

/// Finished files wait at most this long to be made durable together...
const DURABLE_BATCH_DELAY: Duration = Duration::from_millis(200);
/// ... or until this many have finished: one `syncfs` and one store commit
/// for the batch, instead of an fsync and a commit per file.
const DURABLE_BATCH_FILES: usize = 256;

/// Finished files whose bytes are written but not yet durable.
#[derive(Default)]
struct Batch {
    files: Vec<(usize, Done, Option<PathBuf>)>,
    since: Option<tokio::time::Instant>,
}

impl Batch {
    fn push(&mut self, index: usize, done: Done, temp: Option<PathBuf>) {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.files.push((index, done, temp));
    }

    /// When the batch should be synced: after a short delay, or at once
    /// when it is full.
    fn due(&self) -> Option<tokio::time::Instant> {
        let since = self.since?;
        if self.files.len() >= DURABLE_BATCH_FILES {
            Some(tokio::time::Instant::now())
        } else {
            Some(since + DURABLE_BATCH_DELAY)
        }
    }
}

/// Moves the job's remaining files, several at once for downloads, until all
/// are done, one fails, the job stops running, or MaxDownloadTime runs out.
///
/// Finished files are made durable in batches while the next files move: the
/// sync runs beside the transfers, never in their way.
async fn attempt(shared: &Arc<Shared>, id: JobId, cancel: &CancellationToken) -> Attempt {
    let (job_type, remaining, background) = {
        let st = shared.lock();
        let Some(e) = st.jobs.get(&id) else {
            return Attempt::Stop;
        };
        if !e.job.state().is_running() {
            return Attempt::Stop;
        }
        (
            e.job.job_type,
            e.job
                .props
                .max_download_time
                .saturating_sub(e.job.active_time),
            e.job.props.priority.is_background(),
        )
    };
    // Background transfers use only the bandwidth nobody else uses; one
    // pace for all the files of the attempt.
    let pace = background.then(|| Arc::new(Pacer::new()));
    if remaining.is_zero() {
        return Attempt::TimedOut;
    }
    let width = if job_type == JobType::Download {
        PARALLEL_FILES
    } else {
        1
    };
    let started = tokio::time::Instant::now();
    let deadline = started + remaining;
    let files_cancel = cancel.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    // Files are started in list order: every file before `cursor` is
    // complete or already started by this attempt.
    let mut cursor = 0;
    let mut batch = Batch::default();
    let mut syncing: Option<tokio::task::JoinHandle<SyncedFiles>> = None;
    let mut failure: Option<(usize, bits_transfer::TransferError)> = None;
    let mut timed_out = false;
    let mut made_progress = false;

    loop {
        while failure.is_none() && !files_cancel.is_cancelled() && tasks.len() < width {
            let Some(next) = next_file(shared, id, cursor) else {
                break;
            };
            cursor = next.index + 1;
            let shared = shared.clone();
            let token = files_cancel.clone();
            let pace = pace.clone();
            tasks.spawn(async move {
                let index = next.index;
                // Only a download leaves bytes of its own to make durable
                // (an upload's reply is synced by the engine).
                let temp = (next.job_type == JobType::Download).then(|| next.file.temp.clone());
                (
                    index,
                    temp,
                    move_file(&shared, id, &next, pace.as_ref(), &token).await,
                )
            });
        }
        if tasks.is_empty() && syncing.is_none() {
            break;
        }
        let batch_due = if syncing.is_none() { batch.due() } else { None };
        tokio::select! {
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                let (index, temp, result) = match joined {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                match result {
                    Ok(done) => batch.push(index, done, temp),
                    Err(e) => {
                        made_progress |= e.made_progress();
                        // The first failure decides; the transfers stopped
                        // because of it come back Cancelled.
                        if failure.is_none() {
                            failure = Some((index, e));
                            files_cancel.cancel();
                        }
                    }
                }
            }
            _ = sleep_until_opt(batch_due) => {
                syncing = Some(start_sync(&mut batch));
            }
            synced = async { syncing.as_mut().expect("guarded").await }, if syncing.is_some() => {
                syncing = None;
                made_progress = true;
                if let Err(e) = finish_sync(shared, id, synced) {
                    failure.get_or_insert((usize::MAX, e));
                    files_cancel.cancel();
                }
            }
            _ = tokio::time::sleep_until(deadline), if !timed_out => {
                // Let the engines checkpoint before giving up on the job.
                timed_out = true;
                files_cancel.cancel();
            }
        }
    }
    // Whatever finished is kept, even when another file failed.
    if !batch.files.is_empty() {
        made_progress = true;
        let synced = start_sync(&mut batch).await;
        if let Err(e) = finish_sync(shared, id, synced) {
            failure.get_or_insert((usize::MAX, e));
        }
    }
    add_active_time(shared, id, started.elapsed());

    if timed_out {
        return Attempt::TimedOut;
    }
    if let Some((index, err)) = failure {
        let mut error = err.job_error();
        error.file_index = (index != usize::MAX).then_some(index);
        return Attempt::Failed {
            error,
            class: err.class(),
            made_progress: made_progress || err.made_progress(),
        };
    }
    let st = shared.lock();
    match st.jobs.get(&id) {
        Some(e) if e.job.state().is_running() && e.job.all_files_complete() => Attempt::AllDone,
        _ => Attempt::Stop,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The file as the next attempt should see it: never resume past the bytes
/// that are really in the temporary file (a failed flush can leave the
/// in-memory count ahead of the disk).
fn resume_point(file: &JobFile) -> JobFile {
    let mut f = file.clone();
    if f.bytes_transferred == 0 {
        return f;
    }
    let on_disk = std::fs::metadata(&f.temp).map(|m| m.len()).unwrap_or(0);
    f.bytes_transferred = f.bytes_transferred.min(on_disk);
    f
}

/// The next file to start: the first incomplete one from `from` on.
fn next_file(shared: &Shared, id: JobId, from: usize) -> Option<NextFile> {
    let st = shared.lock();
    let e = st.jobs.get(&id)?;
    if !e.job.state().is_running() {
        return None;
    }
    let index = from + e.job.files.get(from..)?.iter().position(|f| !f.complete)?;
    Some(NextFile {
        index,
        job_type: e.job.job_type,
        reply_wanted: e.job.job_type == JobType::UploadReply,
        connections: e.job.props.connections,
        file: if e.job.job_type == JobType::Download {
            resume_point(&e.job.files[index])
        } else {
            e.job.files[index].clone()
        },
    })
}

/// A batch after its sync: the files, and how the sync went.
type SyncedFiles = (
    Vec<(usize, Done, Option<PathBuf>)>,
    Result<(), (PathBuf, std::io::Error)>,
);
/// The sync task's result.
type Synced = Result<SyncedFiles, tokio::task::JoinError>;

/// Starts making a batch of finished files durable, on the blocking pool.
fn start_sync(batch: &mut Batch) -> tokio::task::JoinHandle<SyncedFiles> {
    let files = std::mem::take(&mut batch.files);
    batch.since = None;
    tokio::task::spawn_blocking(move || {
        let temps: Vec<PathBuf> = files.iter().filter_map(|(_, _, t)| t.clone()).collect();
        let result = crate::fsops::sync_files(&temps);
        (files, result)
    })
}

/// Once a batch's data is durable, marks its files complete with one store
/// commit: only then do they count as transferred.
fn finish_sync(
    shared: &Shared,
    id: JobId,
    synced: Synced,
) -> Result<(), bits_transfer::TransferError> {
    let (files, result) = synced.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    result.map_err(|(path, source)| bits_transfer::TransferError::LocalFile {
        op: bits_transfer::LocalOp::Sync,
        path,
        written: 0,
        source,
    })?;
    let mut st = shared.lock();
    let Some(e) = st.jobs.get_mut(&id) else {
        return Ok(());
    };
    for (index, done, _) in &files {
        if let Some(f) = e.job.files.get_mut(*index) {
            f.bytes_transferred = done.bytes;
            f.bytes_total = Some(done.bytes);
            if let Some(v) = &done.validator {
                f.validator = v.clone();
            }
            f.missing.clear();
            f.complete = true;
        }
    }
    let saved = files
        .iter()
        .filter_map(|(i, _, _)| e.job.files.get(*i).map(|f| (*i, f)));
    if let Err(err) = shared.store().save_files(id, saved) {
        tracing::error!(cause = %error_chain(&err), "cannot save file completions");
    }
    tracing::debug!(files = files.len(), "files transferred and durable");
    shared.bump(&mut st, id);
    Ok(())
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
}

impl Progress for Sink {
    fn connected(
        &mut self,
        total: Option<u64>,
        validator: &FileValidator,
        offset: u64,
        missing: &[ByteRange],
    ) {
        self.with_file(|f| {
            f.bytes_total = total;
            f.validator = validator.clone();
            f.bytes_transferred = offset;
            f.missing = missing.to_vec();
            // Kept in memory only: every store write of this file (a
            // checkpoint, the completion) carries the validator with the
            // offset, so the two always describe the same version. Until
            // then the store still holds the previous pair, which a resume
            // checks against the server (If-Range) and against the bytes
            // really on disk. Skipping this write saves a commit per file.
            None
        });
        self.mark_connected();
    }

    fn progress(&mut self, bytes: u64) {
        self.on_progress(bytes);
    }

    fn checkpoint(&mut self, bytes: u64) {
        self.on_checkpoint(bytes, &[]);
    }

    fn checkpoint_ranges(&mut self, bytes: u64, missing: &[ByteRange]) {
        self.on_checkpoint(bytes, missing);
    }
}

impl Sink {
    /// Changes this sink's file in memory with `f`; saves what `f` returns
    /// (the row to persist), if anything.
    fn with_file(&self, f: impl FnOnce(&mut JobFile) -> Option<JobFile>) {
        let mut st = self.shared.lock();
        let Some(file) = st
            .jobs
            .get_mut(&self.id)
            .and_then(|e| e.job.files.get_mut(self.index))
        else {
            return;
        };
        if let Some(save) = f(file) {
            if let Err(err) = self.shared.store().save_file(self.id, self.index, &save) {
                tracing::error!(job = %self.id, cause = %error_chain(&err), "cannot save checkpoint");
            }
        }
    }

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
        }
    }

    fn on_progress(&mut self, bytes: u64) {
        let mut st = self.shared.lock();
        if let Some(e) = st.jobs.get_mut(&self.id) {
            e.job.record_progress(self.index, bytes, SystemTime::now());
        }
        self.shared.publish_progress(&mut st, self.id);
    }

    /// `missing`: empty for a file written front to back, else the ranges
    /// (of a file fetched over several connections) not yet durable.
    fn on_checkpoint(&mut self, bytes: u64, missing: &[ByteRange]) {
        self.with_file(|f| {
            // The offset and the ranges go together: the next attempt in this
            // process resumes from the same description the store holds.
            f.missing = missing.to_vec();
            let mut saved = f.clone();
            saved.bytes_transferred = bytes;
            if f.bytes_transferred < bytes {
                f.bytes_transferred = bytes;
            }
            Some(saved)
        });
        let mut st = self.shared.lock();
        self.shared.publish_progress(&mut st, self.id);
    }
}

impl UploadProgress for Sink {
    fn session(&mut self, session: &UploadSession, validator: &FileValidator, total: u64) {
        self.with_file(|f| {
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
        self.with_file(|f| {
            f.bytes_transferred = bytes;
            Some(f.clone())
        });
        let mut st = self.shared.lock();
        if let Some(e) = st.jobs.get_mut(&self.id) {
            // Progress resets the NoProgressTimeout clock.
            e.job.no_progress_since = None;
            e.job.modified = now;
        }
        self.shared.publish_progress(&mut st, self.id);
    }
}
