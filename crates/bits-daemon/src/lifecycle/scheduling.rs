//! The scheduling pass of the lifecycle owner, and the policy and the
//! network's say in it: retries that are due, jobs a blocking window or a
//! lost network holds in TransientError, then who transfers, as
//! `bits_core::policy::schedule` decides.

use super::{Manager, POLICY_RECHECK};
use bits_core::policy::bandwidth::Cap;
use bits_core::policy::schedule::{decide_with, Running, Waiting};
use bits_core::{Event, Job, JobId, JobState};
use std::time::SystemTime;

impl Manager {
    /// One pass of scheduling: retries that are due, then who runs, as
    /// `bits_core::policy::schedule` decides. Sets when to look again.
    pub(super) async fn schedule(&mut self) {
        self.dirty = false;
        let now = SystemTime::now();
        let policy = self.shared.policy();
        let (week, seconds) = crate::clock::week_time(now);
        let cap = policy.background_cap(week);
        self.shared.background_cap.set(match cap {
            Cap::Rate(r) => Some(r),
            Cap::Unlimited | Cap::Blocked => None,
        });
        let blocked = cap == Cap::Blocked;
        let window_ends = policy.next_change(week, seconds).map(|d| now + d);
        let due: Vec<JobId> = {
            let view = self.shared.read();
            view.jobs
                .values()
                .filter(|e| e.job.state() == JobState::TransientError)
                .filter(|e| {
                    e.job.retry_at.is_none_or(|t| t <= now)
                        // Held by a window that is over (or a policy that
                        // changed): at once, not at the window's old end.
                        || (!blocked && blocked_by_policy(&e.job))
                        || self.retry_now.contains(&e.job.id)
                })
                .map(|e| e.job.id)
                .collect()
        };
        self.retry_now.clear();
        for id in due {
            if self.owned(id).busy.is_some() || self.waits_for_store(id, now) {
                continue;
            }
            if let Err(e) = self.transition(id, Event::RetryDue).await {
                self.store_refused(id, &e, now);
            }
        }

        let running: Vec<Running> = {
            let view = self.shared.read();
            self.owned
                .iter()
                .filter_map(|(id, o)| {
                    let slot = o.runner.as_ref()?;
                    Some(Running {
                        id: *id,
                        priority: view.jobs.get(id)?.job.props.priority,
                        since: slot.started,
                        stopping: slot.cancel.is_cancelled(),
                    })
                })
                .collect()
        };
        let waiting: Vec<Waiting> = {
            let view = self.shared.read();
            view.jobs
                .values()
                .filter(|e| e.job.state() == JobState::Queued)
                .filter_map(|e| {
                    let o = self.owned.get(&e.job.id);
                    let free = o.is_none_or(|o| {
                        o.runner.is_none()
                            && o.busy.is_none()
                            && o.store_retry_at.is_none_or(|t| t <= now)
                    });
                    free.then(|| Waiting {
                        id: e.job.id,
                        priority: e.job.props.priority,
                        since: o.and_then(|o| o.queued_since).unwrap_or(e.job.modified),
                    })
                })
                .collect()
        };
        let (waiting, held): (Vec<Waiting>, Vec<Waiting>) = waiting
            .into_iter()
            .partition(|w| !(blocked && w.priority.is_background()));
        if blocked {
            self.hold_for_policy(&running, &held, window_ends, now)
                .await;
        }
        let (waiting, unreachable): (Vec<Waiting>, Vec<Waiting>) = waiting
            .into_iter()
            .partition(|w| !self.offline.contains(&w.id));
        self.hold_for_network(&unreachable, now).await;
        let max_background = policy.background_jobs as usize;
        let decision = decide_with(&waiting, &running, self.time_slice, now, max_background);
        for id in &decision.stop {
            tracing::info!(job = %id, "giving the transfer slot to another job");
            self.stop_runner(*id);
        }
        for id in decision.start {
            match self.transition(id, Event::Start).await {
                Ok(_) => {
                    self.owned(id).immediate_retries = 0;
                    self.spawn_runner(id);
                }
                Err(e) => self.store_refused(id, &e, now),
            }
        }

        let view = self.shared.read();
        let next_retry = view
            .jobs
            .values()
            .filter(|e| e.job.state() == JobState::TransientError)
            .filter_map(|e| e.job.retry_at)
            .min();
        let next_store = self.owned.values().filter_map(|o| o.store_retry_at).min();
        self.wake_at = [next_retry, decision.wake_at, next_store, window_ends]
            .into_iter()
            .flatten()
            .min();
    }

    /// A schedule window blocks background jobs: the running ones give up
    /// their transfer (they come back Queued, then wait here), the waiting
    /// ones wait in TransientError until the window ends.
    async fn hold_for_policy(
        &mut self,
        running: &[Running],
        waiting: &[Waiting],
        until: Option<SystemTime>,
        now: SystemTime,
    ) {
        for r in running
            .iter()
            .filter(|r| r.priority.is_background() && !r.stopping)
        {
            tracing::info!(job = %r.id, "the policy blocks background jobs now: stopping");
            self.stop_runner(r.id);
        }
        let retry_at = until.unwrap_or(now + POLICY_RECHECK);
        let when = match until {
            Some(t) => format!(
                "until {}",
                chrono::DateTime::<chrono::Local>::from(t).format("%a %H:%M")
            ),
            None => "for now".to_string(),
        };
        for w in waiting {
            let error = bits_core::JobError::new(
                bits_core::ErrorContext::GeneralQueueManager,
                bits_core::error::codes::BG_E_BLOCKED_BY_POLICY,
                format!(
                    "Blocked by policy: background jobs do not transfer {when} \
                     (bits policy show)."
                ),
            );
            self.wait_in_transient_error(w.id, error, retry_at, now)
                .await;
        }
    }

    /// The network changed: transfers whose server has no route any more
    /// stop (and then wait in TransientError, see `hold_for_network`); jobs
    /// that waited for the network are queued at once if it is back.
    pub(super) fn network_changed(&mut self, found: crate::network::Reachability) {
        for id in &found.unreachable {
            if self.stop_runner(*id) {
                tracing::info!(job = %id, "no route to the server any more: stopping the transfer");
            }
        }
        {
            let view = self.shared.read();
            for id in &found.reachable {
                let waits = view.jobs.get(id).is_some_and(|e| {
                    e.job.state() == JobState::TransientError && waits_for_network(&e.job)
                });
                if waits {
                    self.retry_now.insert(*id);
                }
            }
        }
        self.offline = found.unreachable;
        self.dirty = true;
    }

    /// Jobs ready to run whose server has no route wait in TransientError
    /// until the network changes (or their retry delay passes).
    async fn hold_for_network(&mut self, waiting: &[Waiting], now: SystemTime) {
        for w in waiting {
            let delay = self
                .shared
                .read()
                .jobs
                .get(&w.id)
                .map_or(POLICY_RECHECK, |e| e.job.props.min_retry_delay);
            let error = bits_core::JobError::new(
                bits_core::ErrorContext::GeneralTransport,
                bits_core::error::codes::BG_E_NETWORK_DISCONNECTED,
                "The network is disconnected: there is no route to the server. The job \
                 resumes as soon as the network is back.",
            );
            self.wait_in_transient_error(w.id, error, now + delay, now)
                .await;
        }
    }

    /// A job ready to run waits in TransientError with `error` until
    /// `retry_at` (a store that refuses the change is tried again later).
    async fn wait_in_transient_error(
        &mut self,
        id: JobId,
        error: bits_core::JobError,
        retry_at: SystemTime,
        now: SystemTime,
    ) {
        let event = Event::TransientFailure { error, retry_at };
        if let Err(e) = self.transition(id, event).await {
            self.store_refused(id, &e, now);
        }
    }
}

/// Whether the job waits because the policy blocked background jobs.
fn blocked_by_policy(job: &Job) -> bool {
    job.error
        .as_ref()
        .is_some_and(|e| e.code == bits_core::error::codes::BG_E_BLOCKED_BY_POLICY)
}

/// Whether the job's last failure was the network's: it is worth trying
/// again as soon as the network changes.
fn waits_for_network(job: &Job) -> bool {
    use bits_core::error::codes::*;
    job.error.as_ref().is_some_and(|e| {
        matches!(
            e.code,
            BG_E_NETWORK_DISCONNECTED
                | E_CANNOT_CONNECT
                | E_TIMEOUT
                | E_NAME_NOT_RESOLVED
                | E_CONNECTION_RESET
        )
    })
}
