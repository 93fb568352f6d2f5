//! One attempt at a job's files: they move through the engine (several at
//! once for downloads), finished files are made durable in batches, and the
//! attempt ends with an [`AttemptEnd`] that the lifecycle owner turns into
//! the job's next state.
//!
//! A runner decides nothing about its job's state. It owns its files'
//! progress while it runs: every resume point is saved to the store (and
//! awaited) before the view shows it, and before the engine relies on it.
//!
//! Parts: `sink` (what the engine reports, saved and shown), `batch`
//! (finished files made durable together), this file (the attempt).

mod batch;
mod sink;

use crate::lifecycle::Handle;
use crate::state::Shared;
use batch::Batch;
use bits_core::{JobError, JobFile, JobId, JobType};
use bits_transfer::{
    Class, FileState, FileTransfer, Identity, Pacer, TransferError, UploadTransfer,
};
use sink::{Connected, FileSink, Publisher};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How one attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every file is on disk, durable, and saved as complete.
    AllDone,
    /// Stopped on request (a user action, the end of a slot, shutdown).
    Stopped,
    /// MaxDownloadTime ran out.
    TimedOut,
    /// A file failed; the other transfers of the attempt were stopped.
    Failed { error: JobError, class: Class },
    /// The runner's task panicked (a bug).
    Panicked(String),
}

/// The end of an attempt.
#[derive(Debug)]
pub struct AttemptEnd {
    /// How it ended.
    pub outcome: Outcome,
    /// Whether bytes were made durable (or acknowledged) during it.
    pub made_progress: bool,
    /// Time spent (counted against MaxDownloadTime).
    pub elapsed: Duration,
}

impl AttemptEnd {
    /// The end of a runner whose task panicked.
    pub fn panicked(message: String) -> AttemptEnd {
        AttemptEnd {
            outcome: Outcome::Panicked(message),
            made_progress: false,
            elapsed: Duration::ZERO,
        }
    }
}

/// Files a download job moves at the same time. BITS transfers a job's
/// files one after another and reports them in order; for small files the
/// time goes to round trips and file creation, so a few run at once under
/// the hood. The job's state rules are unchanged: one failure stops the
/// others and holds the job.
const PARALLEL_FILES: usize = 8;

/// What the runner needs to move the next file.
struct NextFile {
    index: usize,
    file: JobFile,
    /// Where its bytes are written until the job is completed.
    temp: std::path::PathBuf,
    job_type: JobType,
    /// Connections the file may use.
    connections: u32,
    /// The server's credential for it: its URL's own, else the job's.
    credential: Option<bits_core::Credential>,
    /// How the job reaches its servers, and its proxy credential.
    connection: Arc<bits_core::ConnectionProps>,
    proxy_credential: Option<bits_core::Credential>,
    received: crate::counters::Counter,
}

/// A file that has been moved (not yet durable, for a download).
pub(crate) struct Done {
    index: usize,
    bytes: u64,
    /// The version downloaded and the temporary file (open, or a small
    /// file still in memory, written by the batch); uploads report theirs
    /// through the sink.
    download: Option<(bits_core::FileValidator, bits_transfer::Finished)>,
    /// The file's new RemoteName (a redirect-allow-report job redirected).
    remote_name: Option<String>,
    /// The proxy it went through.
    via: Option<String>,
}

/// Runs one attempt at job `id`'s remaining files.
#[tracing::instrument(skip(shared, manager, cancel), fields(job = %id))]
pub async fn attempt(
    shared: Arc<Shared>,
    manager: Handle,
    id: JobId,
    run: u64,
    cancel: CancellationToken,
) -> AttemptEnd {
    let started = tokio::time::Instant::now();
    let (outcome, made_progress) = files(&shared, &manager, id, run, &cancel).await;
    AttemptEnd {
        outcome,
        made_progress,
        elapsed: started.elapsed(),
    }
}

/// Moves the job's remaining files until all are done, one fails, the
/// attempt is stopped, or MaxDownloadTime runs out. Finished files are made
/// durable in batches while the next ones move.
async fn files(
    shared: &Arc<Shared>,
    manager: &Handle,
    id: JobId,
    run: u64,
    cancel: &CancellationToken,
) -> (Outcome, bool) {
    let Some((job_type, remaining, rate, live, owner_uid)) = ({
        let view = shared.read();
        view.jobs.get(&id).map(|e| {
            (
                e.job.job_type,
                e.job
                    .props
                    .max_download_time
                    .saturating_sub(e.job.active_time),
                e.rate.clone(),
                (e.revision.clone(), e.progressed_ms.clone()),
                e.job.owner_uid,
            )
        })
    }) else {
        return (Outcome::Stopped, false);
    };
    // Every path of the job is opened with its owner's rights.
    let identity = match shared.identity_for(owner_uid).await {
        Ok(identity) => identity,
        Err(e) => {
            let error = bits_core::JobError::new(
                bits_core::ErrorContext::LocalFile,
                bits_core::error::codes::E_ACCESSDENIED,
                format!("The job's files cannot be opened for its owner: {e}."),
            );
            return (
                Outcome::Failed {
                    error,
                    class: Class::Fatal,
                },
                false,
            );
        }
    };
    if remaining.is_zero() {
        return (Outcome::TimedOut, false);
    }
    // One pace for all the files of the attempt: background transfers use
    // only the bandwidth nobody else uses, caps hold any transfer, and both
    // follow the job's priority and cap while it runs.
    let pace = Some(Arc::new(Pacer::new(rate, shared.background_cap.clone())));
    let publisher = Arc::new(Publisher::new(shared.clone(), live.0, live.1));
    let connected = Arc::new(Connected::new(manager.clone(), id, run));
    let width = if job_type == JobType::Download {
        PARALLEL_FILES
    } else {
        1
    };
    let deadline = tokio::time::Instant::now() + remaining;
    let files_cancel = cancel.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    // Files are started in list order: every file before `cursor` is
    // complete or already started by this attempt.
    let mut cursor = 0;
    let mut batch = Batch::default();
    let mut failure: Option<(usize, TransferError)> = None;
    let mut timed_out = false;
    let mut made_progress = false;

    loop {
        while failure.is_none()
            && !files_cancel.is_cancelled()
            && tasks.len() < width
            && !batch.holds_back()
        {
            let Some(next) = next_file(shared, id, cursor) else {
                break;
            };
            cursor = next.index + 1;
            let sink = FileSink::new(
                shared.clone(),
                id,
                next.index,
                next.file.clone(),
                next.received.clone(),
                publisher.clone(),
                connected.clone(),
            );
            let engine = shared.engine.clone();
            let token = files_cancel.clone();
            let pace = pace.clone();
            let identity = identity.clone();
            tasks.spawn(async move {
                let index = next.index;
                let moved = move_file(&engine, sink, &next, &identity, pace, &token).await;
                (index, moved)
            });
        }
        if tasks.is_empty() && !batch.syncing() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { continue };
                let (index, result) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                match result {
                    Ok(done) => {
                        note_proxy(shared, id, &done.via);
                        batch.push(done);
                    }
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
            _ = sleep_until_opt(batch.due_at()) => batch.start_sync(shared, id),
            saved = batch.synced(), if batch.syncing() => {
                made_progress = true;
                if let Err((index, e)) = saved {
                    failure.get_or_insert((index.unwrap_or(usize::MAX), e));
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
    if batch.has_files() {
        made_progress = true;
        batch.start_sync(shared, id);
        if let Err((index, e)) = batch.synced().await {
            failure.get_or_insert((index.unwrap_or(usize::MAX), e));
        }
    }

    if timed_out {
        return (Outcome::TimedOut, made_progress);
    }
    if let Some((index, err)) = failure {
        let mut error = err.job_error();
        error.file_index = (index != usize::MAX).then_some(index);
        let class = err.class();
        let made_progress = made_progress || err.made_progress();
        if class == Class::Cancelled {
            return (Outcome::Stopped, made_progress);
        }
        return (Outcome::Failed { error, class }, made_progress);
    }
    if cancel.is_cancelled() {
        return (Outcome::Stopped, made_progress);
    }
    let all_done = shared
        .read()
        .jobs
        .get(&id)
        .is_some_and(|e| e.job.all_files_complete());
    if all_done {
        (Outcome::AllDone, made_progress)
    } else {
        // Files were added while this attempt ran: the next one takes them.
        (Outcome::Stopped, made_progress)
    }
}

/// Shows which proxy the job's transfers go through (saved with the job's
/// next row).
fn note_proxy(shared: &Shared, id: JobId, via: &Option<String>) {
    let same = shared
        .read()
        .jobs
        .get(&id)
        .is_none_or(|e| e.job.proxy_used == *via);
    if !same {
        if let Some(e) = shared.write().jobs.get_mut(&id) {
            e.job.proxy_used = via.clone();
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Moves one file: a download, or an upload (with its reply).
async fn move_file(
    engine: &bits_transfer::Engine,
    mut sink: FileSink,
    next: &NextFile,
    identity: &Identity,
    pace: Option<Arc<Pacer>>,
    cancel: &CancellationToken,
) -> Result<Done, TransferError> {
    let f = &next.file;
    let temp = &next.temp;
    if next.job_type == JobType::Download {
        let resume = FileState {
            validator: f.validator().clone(),
            bytes: f.bytes_transferred,
            missing: f.missing().to_vec(),
            temp_id: f.temp_id(),
        };
        let outcome = engine
            .download(
                FileTransfer {
                    remote: &f.remote,
                    credential: next.credential.as_ref(),
                    connection: bits_transfer::Connection {
                        props: &next.connection,
                        proxy_credential: next.proxy_credential.as_ref(),
                    },
                    temp,
                    identity,
                    resume: &resume,
                    // Made durable in batches (see `batch`).
                    sync_on_finish: false,
                    connections: next.connections,
                    pace,
                },
                &mut sink,
                cancel,
            )
            .await?;
        return Ok(Done {
            index: next.index,
            bytes: outcome.bytes,
            download: Some((outcome.validator, outcome.temp)),
            remote_name: outcome.remote_name,
            via: outcome.via,
        });
    }
    let outcome = engine
        .upload(
            UploadTransfer {
                local: &f.local,
                identity,
                url: &f.remote,
                credential: next.credential.as_ref(),
                connection: bits_transfer::Connection {
                    props: &next.connection,
                    proxy_credential: next.proxy_credential.as_ref(),
                },
                validator: f.validator(),
                session: f.upload_session(),
                acknowledged: f.bytes_transferred,
                reply_to: (next.job_type == JobType::UploadReply).then_some(temp.as_path()),
                pace,
            },
            &mut sink,
            cancel,
        )
        .await?;
    Ok(Done {
        index: next.index,
        bytes: outcome.bytes,
        download: None,
        remote_name: None,
        via: outcome.via,
    })
}

/// The next file to start: the first incomplete one from `from` on.
fn next_file(shared: &Shared, id: JobId, from: usize) -> Option<NextFile> {
    let view = shared.read();
    let e = view.jobs.get(&id)?;
    if !e.job.state().is_running() {
        return None;
    }
    let index = from + e.job.files.get(from..)?.iter().position(|f| !f.complete)?;
    Some(NextFile {
        index,
        job_type: e.job.job_type,
        connections: e.job.props.connections,
        credential: e.job.files[index]
            .credential()
            .or(e.job.server_credential.as_ref())
            .cloned(),
        connection: Arc::new(e.job.props.connection.clone()),
        proxy_credential: e.job.proxy_credential.clone(),
        file: e.job.files[index].clone(),
        temp: e.job.files[index].temp(id),
        received: e.received.get(index)?,
    })
}
