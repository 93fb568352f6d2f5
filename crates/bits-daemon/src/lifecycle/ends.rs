//! What a runner's end means for its job: the event it leads to, decided
//! with the retry policy (`bits_core::policy::retry`), or an immediate new
//! attempt.

use super::Manager;
use crate::runner::{AttemptEnd, Outcome};
use bits_core::error::codes;
use bits_core::policy::retry::{decide, RetryDecision, RetryInput};
use bits_core::{ErrorContext, Event, JobError, JobId};
use bits_transfer::Class;
use std::time::SystemTime;

impl Manager {
    /// Applies the end of job `id`'s current runner (its slot is already
    /// free).
    pub(super) async fn apply_end(&mut self, id: JobId, end: AttemptEnd) {
        let now = SystemTime::now();
        let snapshot = {
            let view = self.shared.read();
            view.jobs.get(&id).map(|e| {
                (
                    e.job.state(),
                    e.job.no_progress_since,
                    e.job.props.min_retry_delay,
                    e.job.props.no_progress_timeout,
                    e.job.props.max_download_time.as_secs(),
                )
            })
        };
        let Some((state, no_progress_since, min_retry_delay, no_progress_timeout, max_secs)) =
            snapshot
        else {
            return;
        };
        if !state.is_running() {
            // A user action (suspend, cancel) has already moved the job.
            return;
        }
        let made_progress = end.made_progress;
        let event = match end.outcome {
            Outcome::AllDone => {
                tracing::info!(job = %id, "all files transferred");
                Event::AllFilesTransferred
            }
            Outcome::TimedOut => Event::FatalFailure {
                error: JobError::new(
                    ErrorContext::GeneralQueueManager,
                    codes::BG_E_MAXDOWNLOAD_TIMEOUT,
                    format!(
                        "The job did not finish within its maximum download time of {max_secs} \
                         seconds (time spent connecting and transferring since the last resume)."
                    ),
                ),
            },
            Outcome::Panicked(message) => Event::FatalFailure {
                error: JobError::new(
                    ErrorContext::GeneralQueueManager,
                    codes::E_UNEXPECTED,
                    format!(
                        "bitsd hit an internal error while transferring ({message}); \
                         resume the job to try again."
                    ),
                ),
            },
            // The daemon is stopping or the slot went to another job.
            Outcome::Stopped => Event::Interrupted,
            Outcome::Failed { error, class } => match class {
                Class::Cancelled => Event::Interrupted,
                Class::Fatal => {
                    tracing::warn!(job = %id, error = %error, "transfer failed");
                    Event::FatalFailure { error }
                }
                Class::Transient { retry_after } => {
                    let input = RetryInput {
                        made_progress,
                        immediate_retries: self.owned(id).immediate_retries,
                        no_progress_since: if made_progress {
                            None
                        } else {
                            no_progress_since
                        },
                        min_retry_delay,
                        no_progress_timeout,
                        retry_after,
                    };
                    match decide(input, now) {
                        RetryDecision::Immediately => {
                            tracing::info!(job = %id, error = %error, "transfer interrupted after progress; resuming");
                            self.owned(id).immediate_retries += 1;
                            if made_progress && no_progress_since.is_some() {
                                self.forget_no_progress(id).await;
                            }
                            self.spawn_runner(id);
                            return;
                        }
                        RetryDecision::At(retry_at) => {
                            tracing::info!(job = %id, error = %error, "transient error; retrying later");
                            Event::TransientFailure { error, retry_at }
                        }
                        RetryDecision::GiveUp => {
                            tracing::warn!(job = %id, error = %error, "no progress within the retry period; giving up");
                            Event::FatalFailure { error }
                        }
                    }
                }
            },
        };
        let result = self
            .change(id, |row, files| {
                if made_progress {
                    // Progress resets the NoProgressTimeout clock.
                    row.no_progress_since = None;
                }
                row.apply_given(event, now, files)
                    .map_err(crate::ipc::invalid)
            })
            .await;
        if let Err(e) = result {
            self.hold(id, &e);
        }
    }

    /// Saves that the job made progress (its NoProgressTimeout clock
    /// restarts) before an immediate retry.
    async fn forget_no_progress(&mut self, id: JobId) {
        let result = self
            .change(id, |row, _| {
                row.no_progress_since = None;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(job = %id, cause = %e.message, "could not save the job's progress time");
        }
    }
}
