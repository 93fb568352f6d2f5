//! Decides when jobs run: requeues TransientError jobs whose retry time has
//! come, starts queued jobs and takes slots back (preemption, time slices)
//! as `bits_core::policy::schedule` decides.
//!
//! The loop sleeps until it is woken (a job changed) or the next retry is
//! due; it never polls.

use crate::runner;
use crate::shared::Shared;
use bits_core::policy::schedule::{decide, Running, Waiting};
use bits_core::{Event, JobState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Runs until the daemon shuts down.
pub async fn run(shared: Arc<Shared>) {
    loop {
        let next = tick(&shared);
        let sleep = match next {
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

/// One pass: returns when to look again (a retry or the end of a time slice
/// is due) if nothing wakes the scheduler first.
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

    // A job whose previous runner is still stopping holds its slot until it
    // has stopped, so that two runners never write one temporary file.
    let running: Vec<Running> = st
        .jobs
        .values()
        .filter_map(|e| {
            let r = e.runner.as_ref()?;
            Some(Running {
                id: e.job.id,
                priority: e.job.props.priority,
                since: r.started,
                stopping: r.cancel.is_cancelled(),
            })
        })
        .collect();
    let waiting: Vec<Waiting> = st
        .jobs
        .values()
        .filter(|e| e.job.state() == JobState::Queued && e.runner.is_none())
        .map(|e| Waiting {
            id: e.job.id,
            priority: e.job.props.priority,
            since: e.queued_since,
        })
        .collect();
    let decision = decide(&waiting, &running, shared.time_slice, now);
    for id in &decision.stop {
        // The runner checkpoints, puts the job back to Queued and wakes us.
        if let Some(r) = st.jobs.get(id).and_then(|e| e.runner.as_ref()) {
            tracing::info!(job = %id, "giving the transfer slot to another job");
            r.cancel.cancel();
        }
    }
    for id in decision.start {
        let started = shared.mutate(&mut st, id, |job| {
            job.apply(Event::Start, now).map_err(crate::ipc::invalid)?;
            Ok(())
        });
        if started.is_ok() {
            runner::spawn(shared, &mut st, id);
        }
    }

    let next_retry = st
        .jobs
        .values()
        .filter(|e| e.job.state() == JobState::TransientError)
        .filter_map(|e| e.job.retry_at)
        .min();
    match (next_retry, decision.wake_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
