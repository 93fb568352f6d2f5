//! Cancel (Remove-BitsTransfer): the job ends, every temporary file goes.

use super::job_response;
use crate::fsops;
use crate::ipc::{invalid, resolve};
use crate::shared::Shared;
use bits_core::Event;
use bits_proto::{ApiError, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub async fn handle(shared: &Arc<Shared>, job: &str) -> Result<Response, ApiError> {
    let (id, task) = {
        let mut st = shared.lock();
        let id = resolve(&st, job)?;
        shared.mutate(&mut st, id, |job| {
            job.apply(Event::Cancel, SystemTime::now()).map_err(invalid)
        })?;
        let task = st.jobs.get_mut(&id).and_then(|e| {
            let r = e.runner.as_mut()?;
            r.cancel.cancel();
            r.task.take()
        });
        (id, task)
    };
    // The runner must be gone before its temporary file is deleted, or it
    // could write it again.
    if let Some(task) = task {
        let _ = task.await;
    }
    let st = shared.lock();
    if let Some(e) = st.jobs.get(&id) {
        fsops::discard(&e.job.files);
    }
    tracing::info!(job = %id, "job cancelled");
    Ok(job_response(&st, id))
}
