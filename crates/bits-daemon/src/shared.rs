//! The daemon's shared state: every job in memory, the store behind it, and
//! the signals that wake the scheduler and the watchers.
//!
//! Architecture invariant: a job changes only here, through
//! [`Shared::mutate`], which applies the change to a copy, writes the copy to
//! the store, and only then makes it the job everyone sees. A change that
//! could not be saved did not happen.
//!
//! Locks: `state` before `store`, never the other way round, and neither is
//! held across an `.await` (both are `std` mutexes for that reason: every
//! operation under them is short).

use bits_core::{Job, JobId, JobState};
use bits_proto::{ApiError, ErrorKind};
use bits_store::Store;
use bits_transfer::Engine;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The user the daemon runs for.
#[derive(Debug, Clone)]
pub struct Owner {
    /// uid.
    pub uid: u32,
    /// User name (OwnerAccount).
    pub name: String,
}

/// A running transfer of one job.
#[derive(Debug)]
pub struct Runner {
    /// Stops the transfer (it checkpoints first).
    pub cancel: CancellationToken,
    /// The task; awaited by whoever stops it before touching the files.
    pub task: Option<JoinHandle<()>>,
    /// Tells this runner from a later one of the same job.
    pub run_id: u64,
    /// When the job got its transfer slot (time slices count from here).
    pub started: std::time::SystemTime,
}

/// One job as the daemon holds it.
#[derive(Debug)]
pub struct Entry {
    /// The job.
    pub job: Job,
    /// The daemon revision of the job's last change (for Watch).
    pub revision: u64,
    /// Its transfer, while one runs.
    pub runner: Option<Runner>,
    /// When progress was last published to watchers.
    pub last_publish: Option<std::time::Instant>,
    /// Since when the job waits for a slot (it last became Queued): jobs of
    /// one priority take turns in this order.
    pub queued_since: std::time::SystemTime,
}

impl Entry {
    /// A job the daemon has just created or loaded.
    pub fn new(job: Job) -> Entry {
        Entry {
            queued_since: job.modified,
            job,
            revision: 0,
            runner: None,
            last_publish: None,
        }
    }
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub struct State {
    /// Every job the user may still see, final ones included until restart.
    pub jobs: HashMap<JobId, Entry>,
    /// Increases with every change of any job.
    pub revision: u64,
    /// Source of `Runner::run_id`.
    pub next_run_id: u64,
}

/// Shared by the listener, the scheduler and the runners.
pub struct Shared {
    /// The jobs.
    pub state: Mutex<State>,
    /// The store.
    pub store: Mutex<Store>,
    /// The transfer engine.
    pub engine: Engine,
    /// Wakes the scheduler.
    pub wake: Notify,
    /// Carries the latest revision to watchers.
    pub changes: watch::Sender<u64>,
    /// The daemon's user.
    pub owner: Owner,
    /// Cancelled when the daemon stops.
    pub shutdown: CancellationToken,
    /// Runner tasks, awaited at shutdown.
    pub runners: TaskTracker,
    /// How long a background job keeps its slot while another of its
    /// priority waits.
    pub time_slice: std::time::Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// How often progress wakes watchers (see [`Shared::publish_progress`]).
pub const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The error for a store failure, as clients see it.
pub fn store_failed(e: bits_store::StoreError) -> ApiError {
    tracing::error!(cause = %error_chain(&e), "job store write failed");
    ApiError {
        kind: ErrorKind::Internal,
        message: format!("the job database could not be written: {}", error_chain(&e)),
        code: None,
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Shared {
    /// Locks the jobs.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks job `id` as changed: watchers wake.
    pub fn bump(&self, state: &mut State, id: JobId) {
        state.revision += 1;
        if let Some(e) = state.jobs.get_mut(&id) {
            e.revision = state.revision;
        }
        self.changes.send_replace(state.revision);
    }

    /// Publishes progress of job `id`, at most every [`PUBLISH_INTERVAL`]:
    /// progress arrives per network chunk, from several files at once, and
    /// a person watching a progress bar needs a few updates a second.
    pub fn publish_progress(&self, state: &mut State, id: JobId) {
        let now = std::time::Instant::now();
        let due = match state.jobs.get_mut(&id) {
            Some(e) => {
                let due = e
                    .last_publish
                    .is_none_or(|t| now.duration_since(t) >= PUBLISH_INTERVAL);
                if due {
                    e.last_publish = Some(now);
                }
                due
            }
            None => false,
        };
        if due {
            self.bump(state, id);
        }
    }

    /// Changes job `id` with `f`, saves the job row, publishes the change.
    /// `f` works on a copy; if it fails or the save fails nothing changes.
    pub fn mutate<T>(
        &self,
        state: &mut State,
        id: JobId,
        f: impl FnOnce(&mut Job) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let entry = state.jobs.get(&id).ok_or_else(|| ApiError {
            kind: ErrorKind::NotFound,
            message: format!("job {id} no longer exists"),
            code: None,
        })?;
        let mut job = entry.job.clone();
        let out = f(&mut job)?;
        if job.state().is_final() {
            // Final jobs leave the store; they stay in memory so that `info`
            // and `wait` can still report how they ended.
            self.store().delete_job(id).map_err(store_failed)?;
        } else {
            self.store().update_job(&job).map_err(store_failed)?;
        }
        if let Some(e) = state.jobs.get_mut(&id) {
            if job.state() == JobState::Queued && e.job.state() != JobState::Queued {
                e.queued_since = std::time::SystemTime::now();
            }
            e.job = job;
        }
        self.bump(state, id);
        self.wake.notify_one();
        Ok(out)
    }
}
