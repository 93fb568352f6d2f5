//! The one owner of every job's lifecycle.
//!
//! Handlers, timers and runners *ask*: a [`Command`], or a runner that ends.
//! This task alone decides (with `bits_core`'s transition table and
//! policies), saves the change, and only then publishes it to the view. One
//! task deciding is what makes lifecycle changes impossible to interleave
//! wrongly: a Complete that waits for a runner to stop holds the job
//! (`busy`), and every other request for that job waits in line behind it;
//! a job never has two runners; a runner's end is applied only if it is the
//! job's current runner. (pueue's task handler is the model.)
//!
//! Architecture invariant: a job's state changes only here, through
//! [`Manager::change`]: decided on a copy of the job's row, saved, then
//! published. A change the store refuses did not happen; the one exception
//! is a running job whose end could not be saved, which is held in memory
//! as TransientError (`hold`) so that it never looks Transferring with
//! nothing running.
//!
//! Parts: `command` (what may be asked), `ends` (a runner's end → an
//! event), `ops` (Complete's and Cancel's file work), this file (the loop,
//! transitions, scheduling).

mod command;
mod ends;
mod ops;
mod scheduling;

pub use command::{stopping, Action, Command, Done, Handle, Reply};

use crate::ipc::invalid;
use crate::runner::{self, AttemptEnd};
use crate::state::{store_failed, Entry, Shared};
use bits_core::{Event, Job, JobFile, JobId, JobState};
use bits_proto::{ApiError, ErrorKind};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// Without a schedule end to wait for, how soon a block is looked at again.
const POLICY_RECHECK: Duration = Duration::from_secs(60);

/// How long a change the store refused waits before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(30);

/// How long a stop waits for transfers to checkpoint.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running transfer of one job.
#[derive(Debug)]
struct Slot {
    run: u64,
    cancel: CancellationToken,
    /// When the job got its transfer slot (time slices count from here).
    started: SystemTime,
}

/// A long operation that holds a job: other commands for it wait.
enum Busy {
    /// Complete: waiting for the runner to stop, then for the file work.
    Completing(Reply<Done>),
    /// Cancel (already saved): waiting for the runner, then the file work.
    Cancelling(Reply<Done>),
}

/// What the owner keeps of a job beyond the view.
#[derive(Default)]
struct Owned {
    runner: Option<Slot>,
    busy: Option<Busy>,
    /// Commands that arrived while the job was busy, in order.
    parked: VecDeque<Command>,
    /// Since when the job waits for a slot: jobs of one priority take turns
    /// in this order.
    queued_since: Option<SystemTime>,
    /// Failures right after progress retried at once since the job started.
    immediate_retries: u32,
    /// Transfer time of attempts not yet saved with a change.
    unsaved_active: Duration,
    /// The store refused a change for this job: nothing is tried before.
    store_retry_at: Option<SystemTime>,
    /// The job's notification command, while it runs or waits to run
    /// again.
    notifier: Option<tokio::task::JoinHandle<()>>,
}

/// The end of a runner task: whose, which run, how.
type RunEnd = (JobId, u64, AttemptEnd);

/// The lifecycle owner.
pub struct Manager {
    shared: Arc<Shared>,
    handle: Handle,
    rx: mpsc::UnboundedReceiver<Command>,
    owned: HashMap<JobId, Owned>,
    runners: JoinSet<RunEnd>,
    /// Which job and run each runner task is (to name a panicked one).
    tasks: HashMap<tokio::task::Id, (JobId, u64)>,
    ops: JoinSet<ops::OpEnd>,
    /// Which job each operation task holds.
    op_tasks: HashMap<tokio::task::Id, JobId>,
    next_run: u64,
    time_slice: Duration,
    /// Something changed that scheduling depends on.
    dirty: bool,
    /// When to look again if nothing else happens.
    wake_at: Option<SystemTime>,
    /// Jobs whose server had no route at the last network change.
    offline: HashSet<JobId>,
    /// Jobs waiting for a network that is back: queued at the next pass.
    retry_now: HashSet<JobId>,
}

impl Manager {
    /// The owner of the jobs in `shared`'s view, and the handle to ask it.
    pub fn new(shared: Arc<Shared>, time_slice: Duration) -> (Manager, Handle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Handle { tx };
        let owned = shared
            .read()
            .jobs
            .values()
            .map(|e| {
                let owned = Owned {
                    queued_since: Some(e.job.modified),
                    ..Owned::default()
                };
                (e.job.id, owned)
            })
            .collect();
        let manager = Manager {
            shared,
            handle: handle.clone(),
            rx,
            owned,
            runners: JoinSet::new(),
            tasks: HashMap::new(),
            ops: JoinSet::new(),
            op_tasks: HashMap::new(),
            next_run: 0,
            time_slice,
            dirty: true,
            wake_at: None,
            offline: HashSet::new(),
            retry_now: HashSet::new(),
        };
        (manager, handle)
    }

    /// Runs until the daemon shuts down, then stops every transfer (each
    /// checkpoints first) and returns.
    pub async fn run(mut self) {
        loop {
            if self.dirty {
                self.schedule().await;
            }
            let sleep = self
                .wake_at
                .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(end) = self.runners.join_next_with_id(), if !self.runners.is_empty() => {
                    self.runner_ended(end).await;
                }
                Some(op) = self.ops.join_next_with_id(), if !self.ops.is_empty() => {
                    if let Some(op) = self.op_end(op) {
                        self.op_ended(op).await;
                    }
                }
                () = tokio::time::sleep(sleep) => self.dirty = true,
            }
        }
        self.stop().await;
    }

    fn owned(&mut self, id: JobId) -> &mut Owned {
        self.owned.entry(id).or_default()
    }

    /// One command; parked behind a long operation of its job, if any.
    async fn handle(&mut self, cmd: Command) {
        if let Some(id) = cmd.job() {
            let owned = self.owned(id);
            if owned.busy.is_some() {
                owned.parked.push_back(cmd);
                return;
            }
        }
        match cmd {
            Command::Create { job, reply } => {
                let _ = reply.send(self.create(*job).await);
            }
            Command::AddFiles { id, files, reply } => {
                let _ = reply.send(self.add_files(id, files).await);
            }
            Command::Set {
                id,
                properties,
                new_owner,
                reply,
            } => {
                let now = SystemTime::now();
                // Taking ownership drops the credentials (the job's and its
                // files') and the notification command: the new owner does
                // not act with the old owner's secrets or commands.
                let clear = properties.clear_credentials || new_owner.is_some();
                let notify_changed =
                    properties.notify_cmd.is_some() || properties.notify_flags.is_some();
                let result = self
                    .change_with(id, clear, |row, _| {
                        if row.state().is_final() {
                            return Err(ApiError {
                                kind: ErrorKind::InvalidState,
                                message: format!("cannot change a job that is {}", row.state()),
                                code: None,
                            });
                        }
                        crate::validate::properties(&mut row.props, &properties, row.job_type)?;
                        crate::validate::credentials(row, &properties)?;
                        if let Some((uid, account)) = &new_owner {
                            row.owner_uid = *uid;
                            row.owner = account.clone();
                            row.server_credential = None;
                            row.proxy_credential = None;
                            row.props.notify.cmd = None;
                        }
                        row.modified = now;
                        Ok(())
                    })
                    .await;
                if result.is_ok() && notify_changed {
                    self.notify_now_if_due(id);
                }
                let _ = reply.send(result);
            }
            Command::Act { id, action, reply } => self.act(id, action, reply).await,
            Command::Connected { id, run } => {
                let current = self.owned(id).runner.as_ref().is_some_and(|s| s.run == run);
                let connecting = self
                    .shared
                    .read()
                    .jobs
                    .get(&id)
                    .is_some_and(|e| e.job.state() == JobState::Connecting);
                if current && connecting {
                    if let Err(e) = self.transition(id, Event::Connected).await {
                        tracing::warn!(job = %id, cause = %e.message, "could not record that the server answered");
                    }
                }
            }
            Command::PolicyChanged => self.dirty = true,
            Command::NetworkChanged(found) => self.network_changed(found),
        }
    }

    /// A user action.
    async fn act(&mut self, id: JobId, action: Action, reply: Reply<Done>) {
        match action {
            Action::Suspend => {
                let result = self.transition(id, Event::Suspend).await;
                if result.is_ok() {
                    self.stop_runner(id);
                }
                let _ = reply.send(result.map(|_| Done::Changed));
            }
            Action::Resume => {
                let result = self.transition(id, Event::Resume).await;
                let _ = reply.send(result.map(|_| Done::Changed));
            }
            Action::Cancel => {
                if let Err(e) = self.transition(id, Event::Cancel).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.owned(id).busy = Some(Busy::Cancelling(reply));
                if !self.stop_runner(id) {
                    self.start_discard(id);
                }
            }
            Action::Complete => {
                let allowed = {
                    let view = self.shared.read();
                    match view.jobs.get(&id) {
                        None => Err(gone(id)),
                        Some(e) => bits_core::state::next_state(
                            e.job.state(),
                            &Event::Complete,
                            e.job.job_type,
                            &e.job.files,
                        )
                        .map(drop)
                        .map_err(invalid),
                    }
                };
                if let Err(e) = allowed {
                    let _ = reply.send(Err(e));
                    return;
                }
                // The runner stops (after a checkpoint) before any file is
                // touched; until the files are done the job is held.
                self.owned(id).busy = Some(Busy::Completing(reply));
                if !self.stop_runner(id) {
                    self.start_complete(id);
                }
            }
        }
    }

    /// Asks the job's runner, if any, to stop; true if there is one (its end
    /// arrives later).
    fn stop_runner(&mut self, id: JobId) -> bool {
        match &self.owned(id).runner {
            Some(slot) => {
                slot.cancel.cancel();
                true
            }
            None => false,
        }
    }

    async fn create(&mut self, job: Job) -> Result<JobId, ApiError> {
        // Checked here, where creations happen one at a time, so that two
        // at once cannot both take the last place.
        let max = self.shared.policy().max_jobs_per_user;
        let held = {
            let view = self.shared.read();
            view.jobs
                .values()
                .filter(|e| e.job.owner_uid == job.owner_uid && !e.job.state().is_final())
                .count() as u64
        };
        if held >= max {
            return Err(ApiError {
                kind: ErrorKind::Denied,
                message: format!(
                    "{} already has {held} jobs, the most the policy allows (MaxJobsPerUser {max}): complete or remove some first",
                    job.owner
                ),
                code: Some(format!("0x{:08X}", bits_core::error::codes::BG_E_TOO_MANY_JOBS_PER_USER)),
            });
        }
        let id = job.id;
        let queued = job.state() == JobState::Queued;
        // Lent to the store and handed back: no copy of every file.
        let job = self
            .shared
            .store
            .call(move |s| s.insert_job(&job).map(|()| job))
            .await
            .map_err(store_failed)?;
        tracing::info!(job = %id, files = job.files.len(), state = %job.state(), "job created");
        let entry = Entry::new(job);
        let revision = entry.revision.clone();
        self.shared.write().jobs.insert(id, entry);
        self.shared.bump(&revision);
        self.owned(id).queued_since = Some(SystemTime::now());
        self.dirty |= queued;
        Ok(id)
    }

    async fn add_files(&mut self, id: JobId, files: Vec<JobFile>) -> Result<(), ApiError> {
        let max = self.shared.max_files_per_job();
        let (mut row, first) = {
            let view = self.shared.read();
            let e = view.jobs.get(&id).ok_or_else(|| gone(id))?;
            if e.job.state().is_final() {
                return Err(ApiError {
                    kind: ErrorKind::InvalidState,
                    message: format!("cannot add files to a job that is {}", e.job.state()),
                    code: Some(format!(
                        "0x{:08X}",
                        bits_core::error::codes::BG_E_INVALID_STATE
                    )),
                });
            }
            crate::validate::quota(e.job.files.len(), files.len(), max)?;
            crate::validate::distinct_destinations(&e.job.files, &files)?;
            (e.job.row(), e.job.files.len())
        };
        row.modified = SystemTime::now();
        let (saved_row, saved_files) = (row.clone(), files.clone());
        self.shared
            .store
            .call(move |s| s.append_files(&saved_row, first, &saved_files))
            .await
            .map_err(store_failed)?;
        let mut view = self.shared.write();
        if let Some(e) = view.jobs.get_mut(&id) {
            e.job.set_row(row);
            e.received.extend(files.len());
            e.job.files.extend(files);
            self.shared.bump(&e.revision);
        }
        drop(view);
        self.dirty = true;
        Ok(())
    }

    /// Applies `event` to job `id` (see [`Manager::change`]).
    async fn transition(&mut self, id: JobId, event: Event) -> Result<JobState, ApiError> {
        let now = SystemTime::now();
        self.change(id, |row, files| {
            row.apply_given(event, now, files).map_err(invalid)
        })
        .await
    }

    /// Changes job `id`'s row with `f`: decided on a copy of the row (with
    /// the job's files to look at), saved, then published. Nothing changes
    /// if `f` refuses or the save fails. Unsaved transfer time is saved
    /// with it.
    async fn change<T>(
        &mut self,
        id: JobId,
        f: impl FnOnce(&mut Job, &[JobFile]) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.change_with(id, false, f).await
    }

    /// [`Self::change`], also removing the credentials of the job's files
    /// when `clear_file_credentials` (in the same transaction). A transfer
    /// already under way finishes its attempt with the credential it had.
    async fn change_with<T>(
        &mut self,
        id: JobId,
        clear_file_credentials: bool,
        f: impl FnOnce(&mut Job, &[JobFile]) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (mut row, out) = {
            let view = self.shared.read();
            let e = view.jobs.get(&id).ok_or_else(|| gone(id))?;
            let mut row = e.job.row();
            let out = f(&mut row, &e.job.files)?;
            (row, out)
        };
        let active = std::mem::take(&mut self.owned(id).unsaved_active);
        row.active_time += active;
        let saved = row.clone();
        let result = self
            .shared
            .store
            .call(move |s| {
                if saved.state().is_final() {
                    // Final jobs leave the store; they stay in the view so
                    // that `info` and `wait` can report how they ended.
                    s.delete_job(saved.id)
                } else if clear_file_credentials {
                    s.clear_credentials(&saved)
                } else {
                    s.update_job(&saved)
                }
            })
            .await;
        if let Err(e) = result {
            self.owned(id).unsaved_active += active;
            return Err(store_failed(e));
        }
        if clear_file_credentials {
            if let Some(e) = self.shared.write().jobs.get_mut(&id) {
                for file in &mut e.job.files {
                    file.set_credential(None);
                }
            }
        }
        self.publish(id, row);
        Ok(out)
    }

    /// Starts the job's notification command when it enters a state its
    /// flags name (ending any earlier run). A completed or cancelled job
    /// lets a running command finish (it may be the one that completed the
    /// job); it is not run again.
    fn state_changed(
        &mut self,
        id: JobId,
        state: JobState,
        notify: bits_core::NotifySettings,
        retry_delay: Duration,
    ) {
        if let (Some(cmd), true) = (notify.cmd, notify.flags.runs_for(state)) {
            self.start_notifier(id, cmd, retry_delay);
        }
    }

    fn start_notifier(&mut self, id: JobId, cmd: String, retry_delay: Duration) {
        let task = tokio::spawn(crate::notify::run(
            self.shared.clone(),
            id,
            cmd,
            retry_delay,
        ));
        if let Some(old) = self.owned(id).notifier.replace(task) {
            old.abort();
        }
    }

    /// A notification command set (or changed) on a job already in a state
    /// its flags name runs now, as BITS does.
    fn notify_now_if_due(&mut self, id: JobId) {
        let due = self.shared.read().jobs.get(&id).and_then(|e| {
            let n = &e.job.props.notify;
            let cmd = n.cmd.clone()?;
            n.flags
                .runs_for(e.job.state())
                .then_some((cmd, e.job.props.min_retry_delay))
        });
        match due {
            Some((cmd, retry_delay)) => self.start_notifier(id, cmd, retry_delay),
            None => {
                // Removed or disabled: a pending run again is dropped.
                if let Some(old) = self.owned(id).notifier.take() {
                    old.abort();
                }
            }
        }
    }

    /// Makes a saved (or held) row the one everybody sees.
    fn publish(&mut self, id: JobId, row: Job) {
        let now_queued = row.state() == JobState::Queued;
        let state = row.state();
        let notify = (row.props.notify.clone(), row.props.min_retry_delay);
        let (was_queued, was_state) = {
            let mut view = self.shared.write();
            let Some(e) = view.jobs.get_mut(&id) else {
                return;
            };
            let was = (e.job.state() == JobState::Queued, e.job.state());
            // Which proxy the transfers use is the runner's to say (it
            // sets it in the view); a row taken before that must not undo
            // it.
            let proxy_used = e.job.proxy_used.take();
            e.job.set_row(row);
            e.job.proxy_used = proxy_used;
            // A running transfer follows a new priority or cap at once.
            e.rate.set(
                e.job.props.priority.is_background(),
                e.job.props.max_bandwidth,
            );
            self.shared.bump(&e.revision);
            was
        };
        if now_queued && !was_queued {
            self.owned(id).queued_since = Some(SystemTime::now());
        }
        if state != was_state {
            self.state_changed(id, state, notify.0, notify.1);
        }
        self.dirty = true;
    }

    /// A running job whose end could not be saved: held in memory as
    /// TransientError (the store keeps its last saved state, from which a
    /// restart resumes) and tried again after [`STORE_RETRY`].
    fn hold(&mut self, id: JobId, why: &ApiError) {
        let now = SystemTime::now();
        let error = bits_core::JobError::new(
            bits_core::ErrorContext::GeneralQueueManager,
            bits_core::error::codes::E_FAIL,
            format!(
                "{}; bits tries again in {} seconds.",
                why.message.trim_end_matches('.'),
                STORE_RETRY.as_secs()
            ),
        );
        let held = {
            let view = self.shared.read();
            view.jobs.get(&id).and_then(|e| {
                let mut row = e.job.row();
                row.apply_given(
                    Event::TransientFailure {
                        error,
                        retry_at: now + STORE_RETRY,
                    },
                    now,
                    &e.job.files,
                )
                .ok()
                .map(|_| row)
            })
        };
        if let Some(row) = held {
            tracing::error!(job = %id, cause = %why.message, "job held until its state can be saved");
            self.publish(id, row);
        }
    }

    /// Starts a runner for job `id`, which has just become Connecting (or
    /// is retried at once).
    fn spawn_runner(&mut self, id: JobId) {
        self.next_run += 1;
        let run = self.next_run;
        let cancel = self.shared.shutdown.child_token();
        let attempt = runner::attempt(
            self.shared.clone(),
            self.handle.clone(),
            id,
            run,
            cancel.clone(),
        );
        let task = self.runners.spawn(async move { (id, run, attempt.await) });
        self.tasks.insert(task.id(), (id, run));
        self.owned(id).runner = Some(Slot {
            run,
            cancel,
            started: SystemTime::now(),
        });
    }

    /// A runner task ended (or panicked: its job goes to Error with the
    /// panic's message, which also reaches the log).
    async fn runner_ended(&mut self, joined: Result<(tokio::task::Id, RunEnd), JoinError>) {
        let (id, run, end) = match joined {
            Ok((task, end)) => {
                self.tasks.remove(&task);
                end
            }
            Err(e) => {
                let Some((id, run)) = self.tasks.remove(&e.id()) else {
                    return;
                };
                let message = panic_message(e);
                tracing::error!(job = %id, panic = %message, "a transfer task panicked");
                (id, run, AttemptEnd::panicked(message))
            }
        };
        let owned = self.owned(id);
        if owned.runner.as_ref().map(|s| s.run) != Some(run) {
            return;
        }
        owned.runner = None;
        owned.unsaved_active += end.elapsed;
        let busy = match owned.busy {
            Some(Busy::Completing(_)) => Some(true),
            Some(Busy::Cancelling(_)) => Some(false),
            None => None,
        };
        self.dirty = true;
        self.reset_received(id);
        match busy {
            Some(true) => self.start_complete(id),
            Some(false) => self.start_discard(id),
            None => self.apply_end(id, end).await,
        }
    }

    /// Once no transfer runs for the job, what it shows is what is durable.
    fn reset_received(&self, id: JobId) {
        if let Some(e) = self.shared.read().jobs.get(&id) {
            e.received.reset();
        }
    }

    /// Every runner stops (each checkpoints, and its job goes back to
    /// Queued), for at most [`STOP_GRACE`].
    async fn stop(&mut self) {
        for owned in self.owned.values() {
            if let Some(slot) = &owned.runner {
                slot.cancel.cancel();
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while !self.runners.is_empty() || !self.ops.is_empty() {
            tokio::select! {
                Some(end) = self.runners.join_next_with_id(), if !self.runners.is_empty() => {
                    self.runner_ended(end).await;
                }
                Some(op) = self.ops.join_next_with_id(), if !self.ops.is_empty() => {
                    if let Some(op) = self.op_end(op) {
                        self.op_ended(op).await;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("some transfers did not stop in time; they resume from their last checkpoint");
                    break;
                }
            }
        }
    }

    fn waits_for_store(&mut self, id: JobId, now: SystemTime) -> bool {
        self.owned(id).store_retry_at.is_some_and(|t| t > now)
    }

    /// The store refused a change the daemon wanted (a start, a retry):
    /// try again later rather than at once, in a loop.
    fn store_refused(&mut self, id: JobId, e: &ApiError, now: SystemTime) {
        tracing::warn!(job = %id, cause = %e.message, "could not save a change; trying again later");
        self.owned(id).store_retry_at = Some(now + STORE_RETRY);
    }

    /// Replays the commands that waited for job `id`'s long operation.
    async fn replay(&mut self, id: JobId) {
        let mut parked = std::mem::take(&mut self.owned(id).parked);
        while let Some(cmd) = parked.pop_front() {
            self.handle(cmd).await;
            if self.owned(id).busy.is_some() {
                // A replayed command started another long operation: the
                // rest wait for it, in order.
                let owned = self.owned(id);
                parked.append(&mut owned.parked);
                owned.parked = parked;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// The refusal for a job that is no longer there.
fn gone(id: JobId) -> ApiError {
    ApiError {
        kind: ErrorKind::NotFound,
        message: format!("job {id} no longer exists"),
        code: None,
    }
}

/// A panic's message, for the log and the job's error.
fn panic_message(e: JoinError) -> String {
    if !e.is_panic() {
        return "the transfer task was stopped".into();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
