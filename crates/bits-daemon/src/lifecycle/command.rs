//! What may be asked of the lifecycle owner, and the handle to ask with.

use bits_core::{Job, JobFile, JobId};
use bits_proto::{ApiError, CompleteResult, ErrorKind, JobProperties};
use tokio::sync::{mpsc, oneshot};

/// Where the answer to a command goes.
pub type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// A user action on a job (the BITS verbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Suspend-BitsTransfer.
    Suspend,
    /// Resume-BitsTransfer.
    Resume,
    /// Remove-BitsTransfer: the job ends, its temporary files go.
    Cancel,
    /// Complete-BitsTransfer: the files appear under their names.
    Complete,
}

/// What an action did, beyond changing the job.
#[derive(Debug)]
pub enum Done {
    /// The job changed; nothing more to say.
    Changed,
    /// Complete: what became of the files.
    Completed(CompleteResult),
}

/// A request to the lifecycle owner.
#[derive(Debug)]
pub enum Command {
    /// A new job, validated, to save and publish.
    Create { job: Box<Job>, reply: Reply<JobId> },
    /// Files to append to a job (validated against the job's files as they
    /// were; checked again here).
    AddFiles {
        id: JobId,
        files: Vec<JobFile>,
        reply: Reply<()>,
    },
    /// Property changes.
    Set {
        id: JobId,
        properties: Box<JobProperties>,
        /// Take-ownership: the new owner (uid, account), checked by the
        /// request's handler to be an administrator.
        new_owner: Option<(u32, String)>,
        reply: Reply<()>,
    },
    /// Suspend, Resume, Cancel or Complete.
    Act {
        id: JobId,
        action: Action,
        reply: Reply<Done>,
    },
    /// A runner's transfer got its first answer: Connecting → Transferring.
    Connected { id: JobId, run: u64 },
    /// The daemon-wide policy changed (it is saved and in force): schedule
    /// again now.
    PolicyChanged,
    /// The network changed: which jobs' servers are reachable now.
    NetworkChanged(crate::network::Reachability),
}

impl Command {
    /// The job the command is about, if it exists already.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Command::Create { .. } | Command::PolicyChanged | Command::NetworkChanged(_) => None,
            Command::AddFiles { id, .. }
            | Command::Set { id, .. }
            | Command::Act { id, .. }
            | Command::Connected { id, .. } => Some(*id),
        }
    }
}

/// Asks the lifecycle owner; cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) tx: mpsc::UnboundedSender<Command>,
}

impl Handle {
    /// Sends a command built around its reply and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| stopping())?;
        answer.await.unwrap_or_else(|_| Err(stopping()))
    }

    /// Sends a command that has no answer.
    pub fn tell(&self, command: Command) {
        // Only fails once the owner has stopped, and then nobody listens.
        let _ = self.tx.send(command);
    }
}

/// The refusal while the daemon stops.
pub fn stopping() -> ApiError {
    ApiError {
        kind: ErrorKind::Stopping,
        message: "bitsd is stopping".into(),
        code: None,
    }
}
