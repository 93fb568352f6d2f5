//! The nine BITS job states and the one table of transitions between them.
//!
//! The table follows "Life cycle of a BITS job": jobs start Suspended; the
//! four user actions (Resume, Suspend, Cancel, Complete) are accepted in any
//! state that is not final; the transfer engine moves a job through Queued,
//! Connecting and Transferring to Transferred, or to TransientError (retried)
//! and Error (held until the user acts). Acknowledged and Cancelled are final
//! and never left.

use crate::error::{codes, JobError};
use crate::file::JobFile;
use crate::job::JobType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// `BG_JOB_STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for the scheduler.
    Queued,
    /// Connecting to the server.
    Connecting,
    /// Moving bytes.
    Transferring,
    /// Created, or suspended by the user; nothing moves until Resume.
    Suspended,
    /// Failed in a way that needs the user: Resume retries, Cancel drops.
    Error,
    /// Failed in a way that is retried after MinimumRetryDelay.
    TransientError,
    /// Every file is on disk; Complete makes them appear.
    Transferred,
    /// Completed: final.
    Acknowledged,
    /// Cancelled: final.
    Cancelled,
}

/// Every state, in `BG_JOB_STATE` order (for tables and tests).
pub const ALL_STATES: [JobState; 9] = [
    JobState::Queued,
    JobState::Connecting,
    JobState::Transferring,
    JobState::Suspended,
    JobState::Error,
    JobState::TransientError,
    JobState::Transferred,
    JobState::Acknowledged,
    JobState::Cancelled,
];

impl JobState {
    /// The BitsJob name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "Queued",
            JobState::Connecting => "Connecting",
            JobState::Transferring => "Transferring",
            JobState::Suspended => "Suspended",
            JobState::Error => "Error",
            JobState::TransientError => "TransientError",
            JobState::Transferred => "Transferred",
            JobState::Acknowledged => "Acknowledged",
            JobState::Cancelled => "Cancelled",
        }
    }

    /// Acknowledged and Cancelled: never left, not listed.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Acknowledged | JobState::Cancelled)
    }

    /// Queued, Connecting, Transferring, TransientError: the daemon owes the
    /// job work, and picks it up again after a restart.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Queued
                | JobState::Connecting
                | JobState::Transferring
                | JobState::TransientError
        )
    }

    /// Connecting or Transferring: a transfer is running.
    pub fn is_running(self) -> bool {
        matches!(self, JobState::Connecting | JobState::Transferring)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

/// Something that happens to a job: a user action or a transfer outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// User: start or restart transferring.
    Resume,
    /// User: stop transferring, keep everything.
    Suspend,
    /// User: drop the job and its files.
    Cancel,
    /// User: make the transferred files appear, end the job.
    Complete,
    /// Scheduler: the job got a transfer slot. Queued -> Connecting.
    Start,
    /// Engine: the server answered. Connecting -> Transferring.
    Connected,
    /// Engine: every file is on disk.
    AllFilesTransferred,
    /// Engine: a recoverable failure; retry at `retry_at`.
    TransientFailure {
        /// What went wrong.
        error: JobError,
        /// When to retry.
        retry_at: SystemTime,
    },
    /// Engine or policy: a failure that needs the user.
    FatalFailure {
        /// What went wrong.
        error: JobError,
    },
    /// Scheduler: the retry delay has passed. TransientError -> Queued.
    RetryDue,
    /// Daemon: the transfer stopped for a reason of the daemon's own (shutdown,
    /// end of a time slice); the job waits for its turn again.
    Interrupted,
    /// Daemon: a file the job had transferred is gone or is no longer the
    /// file that was written (found by Complete). The file must be
    /// transferred again; the job waits in Error for the user.
    FileLost {
        /// What was found.
        error: JobError,
    },
}

impl Event {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Resume => "resume",
            Event::Suspend => "suspend",
            Event::Cancel => "cancel",
            Event::Complete => "complete",
            Event::Start => "start",
            Event::Connected => "connected",
            Event::AllFilesTransferred => "all files transferred",
            Event::TransientFailure { .. } => "transient failure",
            Event::FatalFailure { .. } => "fatal failure",
            Event::RetryDue => "retry",
            Event::Interrupted => "interrupt",
            Event::FileLost { .. } => "file lost",
        }
    }
}

/// An event the job's state does not allow. Carries the actual state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTransition {
    /// The event makes no sense in this state.
    #[error("cannot {event} a job that is {state}")]
    NotAllowed {
        /// The job's state.
        state: JobState,
        /// The event's name.
        event: &'static str,
    },
    /// Resume of a job that has no files (BG_E_EMPTY).
    #[error("the job has no files; add files before resuming it")]
    Empty,
}

impl InvalidTransition {
    /// The BITS code for this refusal.
    pub fn code(&self) -> u32 {
        match self {
            InvalidTransition::NotAllowed { .. } => codes::BG_E_INVALID_STATE,
            InvalidTransition::Empty => codes::BG_E_EMPTY,
        }
    }
}

/// The transition table: the state `event` leads to from `state`.
///
/// `files` decides the two transitions that depend on them: Resume of an
/// empty job is refused, and Resume of a Transferred job queues it again only
/// if files were added since.
pub fn next_state(
    state: JobState,
    event: &Event,
    job_type: JobType,
    files: &[JobFile],
) -> Result<JobState, InvalidTransition> {
    use JobState::*;
    let refuse = || InvalidTransition::NotAllowed {
        state,
        event: event.name(),
    };
    if state.is_final() {
        return Err(refuse());
    }
    let next = match (state, event) {
        (_, Event::Cancel) => Cancelled,
        (_, Event::Suspend) => Suspended,
        // Uploads can only be completed once the server has the whole file.
        (Transferred, Event::Complete) => Acknowledged,
        (_, Event::Complete) if job_type == JobType::Download => Acknowledged,
        (_, Event::Complete) => return Err(refuse()),

        (Suspended, Event::Resume) if files.is_empty() => return Err(InvalidTransition::Empty),
        (Suspended | Error | TransientError, Event::Resume) => Queued,
        (Transferred, Event::Resume) if files.iter().any(|f| !f.complete) => Queued,
        (Transferred | Queued | Connecting | Transferring, Event::Resume) => state,

        (Queued, Event::Start) => Connecting,
        (Connecting | Transferring, Event::Connected) => Transferring,
        (Queued | Connecting | Transferring, Event::AllFilesTransferred) => Transferred,
        (Queued | Connecting | Transferring, Event::TransientFailure { .. }) => TransientError,
        (Queued | Connecting | Transferring | TransientError, Event::FatalFailure { .. }) => Error,
        (TransientError, Event::RetryDue) => Queued,
        (Connecting | Transferring, Event::Interrupted) => Queued,
        (_, Event::FileLost { .. }) => Error,
        _ => return Err(refuse()),
    };
    Ok(next)
}

#[cfg(test)]
mod tests;
