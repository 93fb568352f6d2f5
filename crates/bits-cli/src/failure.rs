//! The ways a command can fail that decide its exit code.
//!
//! Commands return `anyhow::Result`; whatever error they return is printed by
//! `main`, and its exit code comes from the first [`Failure`] (or
//! [`SourceError`], a usage error) found in its chain. Everything else is
//! exit 1. Keeping the code in the error value, rather than calling
//! `process::exit` where the failure happens, lets every command clean up
//! (progress bars, the runtime) on the way out.

use bits_proto::{ApiError, ErrorKind, JobObject};
use std::fmt;
use std::time::Duration;

use crate::sources::SourceError;

/// Exit codes of the contract.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The job ended in Error or was cancelled; or something else failed.
    pub const FAILED: i32 = 1;
    /// Bad arguments (clap's own errors use 2 as well).
    pub const USAGE: i32 = 2;
    /// No daemon could be reached or started.
    pub const NO_DAEMON: i32 = 3;
    /// No such job, or the operation is not allowed in the job's state.
    pub const JOB: i32 = 4;
    /// `wait` timed out.
    pub const TIMED_OUT: i32 = 5;
    /// Interrupted by Ctrl-C: 128 + SIGINT, as shells report it.
    pub const INTERRUPTED: i32 = 130;
}

/// A failure with a defined exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The arguments are wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// No daemon answers and none could be started (the message says why).
    #[error("{0}")]
    Unreachable(String),
    /// The daemon refused the request.
    #[error("{}", daemon_message(.0))]
    Daemon(ApiError),
    /// The followed job landed in Error.
    #[error("{}", job_error_message(.0))]
    JobError(Box<JobObject>),
    /// The followed job was cancelled.
    #[error("job {0} was cancelled")]
    JobCancelled(String),
    /// The followed job was suspended, so it will not finish by itself.
    #[error("job {0} was suspended; 'bits resume {0}' to continue it")]
    JobSuspended(String),
    /// `wait --timeout` ran out.
    #[error("timed out after {} waiting for job {id} (state {state})", secs(.after))]
    TimedOut {
        /// The job.
        id: String,
        /// Its state when time ran out.
        state: String,
        /// The timeout.
        after: Duration,
    },
    /// Ctrl-C while following a job: the job stays, and the message says how
    /// to get back to it.
    #[error(
        "Stopped waiting. Job {id} is still queued (state {state}): 'bits resume {id}' \
         to wait for it again, 'bits remove {id}' to cancel it."
    )]
    Stopped {
        /// The job.
        id: String,
        /// Its last known state.
        state: String,
    },
    /// Whoever reads our stdout went away (`bits list | head -1`); not worth
    /// a message.
    #[error("stdout was closed")]
    StdoutClosed,
}

impl Failure {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Unreachable(_) => exit::NO_DAEMON,
            Failure::Daemon(e) => match e.kind {
                ErrorKind::BadRequest => exit::USAGE,
                ErrorKind::NotFound | ErrorKind::InvalidState | ErrorKind::Denied => exit::JOB,
                ErrorKind::Version | ErrorKind::Stopping => exit::NO_DAEMON,
                ErrorKind::Internal => exit::FAILED,
            },
            Failure::JobError(_) | Failure::JobCancelled(_) => exit::FAILED,
            Failure::JobSuspended(_) => exit::JOB,
            Failure::TimedOut { .. } => exit::TIMED_OUT,
            Failure::Stopped { .. } => exit::INTERRUPTED,
            Failure::StdoutClosed => exit::OK,
        }
    }
}

/// Prints `err` for people on stderr (after `program: ` when given, in
/// place of `error: `, as PowerShell names the cmdlet that failed) and
/// returns its exit code.
pub fn print_report(err: &anyhow::Error, program: Option<&str>) -> i32 {
    let (code, message) = report(err);
    if let Some(message) = message {
        match program {
            Some(name) => {
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                eprintln!("{name}: {message}");
            }
            None => eprintln!("{message}"),
        }
    }
    code
}

/// How `main` reports an error: the exit code, and the text for stderr
/// (`None`: say nothing).
pub fn report(err: &anyhow::Error) -> (i32, Option<String>) {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return match f {
                Failure::StdoutClosed => (f.exit_code(), None),
                // Not an error as such: the user asked to stop waiting.
                Failure::Stopped { .. } => (f.exit_code(), Some(f.to_string())),
                _ => (f.exit_code(), Some(format!("error: {err:#}"))),
            };
        }
        if cause.downcast_ref::<SourceError>().is_some() {
            return (exit::USAGE, Some(format!("error: {err:#}")));
        }
    }
    (exit::FAILED, Some(format!("error: {err:#}")))
}

fn daemon_message(e: &ApiError) -> String {
    match &e.code {
        Some(code) => format!("{} ({code})", e.message),
        None => e.message.clone(),
    }
}

fn job_error_message(job: &JobObject) -> String {
    let id = &job.job_id;
    let description = job
        .error_description
        .as_deref()
        .unwrap_or("the job failed without a description");
    let code = job.error_code.as_deref().unwrap_or("no code");
    let context = job.error_context.as_deref().unwrap_or("Unknown");
    format!(
        "{description} ({code}, context {context})\n\
         Job {id} is in Error; fix the cause and run 'bits resume {id}', or 'bits remove {id}'."
    )
}

/// `5 s`, `0.5 s`.
fn secs(d: &Duration) -> impl fmt::Display {
    format!("{} s", d.as_secs_f64())
}
