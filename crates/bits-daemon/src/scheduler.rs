//! Decides when jobs run: requeues TransientError jobs whose retry time has
//! come, and starts queued jobs as `bits_core::policy::schedule` allows.
//!
//! The loop sleeps until it is woken (a job changed) or the next retry is
//! due; it never polls.

use crate::runner;
use crate::shared::Shared;
use bits_core::policy::schedule::{pick, Candidate};
use bits_core::{Event, JobState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Runs until the daemon shuts down.
pub async fn run(shared: Arc<Shared>) {
    loop {
        let next_retry = tick(&shared);
        let sleep = match next_retry {
            Some(at) => at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
            // Nothing to wait for but a wake-up.
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

/// One pass: returns when the next retry is due.
fn tick(shared: &Arc<Shared>) -> Option<SystemTime> {
    if shared.shutdown.is_cancelled() {
        return None;
    }
    let now = SystemTime::now();
    let mut st = shared.lock();
    let due: Vec<_> = st
        .jobs
        .values()
        .filter(|e| e.job.state() == JobState::TransientError)
        .filter(|e| e.job.retry_at.is_none_or(|t| t <= now))
        .map(|e| e.job.id)
        .collect();
    for id in due {
        let _ = shared.mutate(&mut st, id, |job| {
            job.apply(Event::RetryDue, now)
                .map_err(crate::ipc::invalid)?;
            Ok(())
        });
    }

    let running_background = st
        .jobs
        .values()
        .filter(|e| e.runner.is_some() && e.job.props.priority.is_background())
        .count();
    // A job whose previous runner is still stopping waits for it, so that
    // two runners never write one temporary file.
    let queued: Vec<Candidate> = st
        .jobs
        .values()
        .filter(|e| e.job.state() == JobState::Queued && e.runner.is_none())
        .map(|e| Candidate {
            id: e.job.id,
            priority: e.job.props.priority,
            created: e.job.created,
        })
        .collect();
    for id in pick(queued, running_background) {
        let started = shared.mutate(&mut st, id, |job| {
            job.apply(Event::Start, now).map_err(crate::ipc::invalid)?;
            Ok(())
        });
        if started.is_ok() {
            runner::spawn(shared, &mut st, id);
        }
    }

    st.jobs
        .values()
        .filter(|e| e.job.state() == JobState::TransientError)
        .filter_map(|e| e.job.retry_at)
        .min()
}
