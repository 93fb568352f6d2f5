//! Complete: the transferred files appear under their final names, partial
//! ones are deleted, and the job ends Acknowledged.

use super::job_response;
use crate::fsops;
use crate::ipc::{invalid, resolve};
use crate::shared::Shared;
use bits_core::state::next_state;
use bits_core::Event;
use bits_proto::{ApiError, ErrorKind, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub async fn handle(shared: &Arc<Shared>, job: &str) -> Result<Response, ApiError> {
    let (id, task) = {
        let mut st = shared.lock();
        let id = resolve(&st, job)?;
        let e = &st.jobs[&id];
        next_state(
            e.job.state(),
            &Event::Complete,
            e.job.job_type,
            &e.job.files,
        )
        .map_err(invalid)?;
        // A running job is suspended first, so that its runner stops (after a
        // checkpoint) before its files are moved. A runner whose job has just
        // become Transferred is only finishing: wait for it, and leave the
        // state alone (an upload can only be completed from Transferred).
        let running = e.job.state().is_running() || e.job.state() == bits_core::JobState::Queued;
        let task = if e.runner.is_some() {
            if running {
                shared.mutate(&mut st, id, |job| {
                    job.apply(Event::Suspend, SystemTime::now())
                        .map_err(invalid)
                })?;
            }
            st.jobs.get_mut(&id).and_then(|e| {
                let r = e.runner.as_mut()?;
                if running {
                    r.cancel.cancel();
                }
                r.task.take()
            })
        } else {
            None
        };
        (id, task)
    };
    if let Some(task) = task {
        let _ = task.await;
    }
    let mut st = shared.lock();
    let job = st
        .jobs
        .get(&id)
        .map(|e| e.job.clone())
        .ok_or_else(|| ApiError {
            kind: ErrorKind::NotFound,
            message: format!("job {id} disappeared"),
            code: None,
        })?;
    fsops::commit_job(&job).map_err(|message| ApiError {
        kind: ErrorKind::Internal,
        message: format!("{message}; the job is kept, fix the cause and complete it again"),
        code: None,
    })?;
    shared.mutate(&mut st, id, |job| {
        job.apply(Event::Complete, SystemTime::now())
            .map_err(invalid)
    })?;
    tracing::info!(job = %id, "job completed");
    Ok(job_response(&st, id))
}
