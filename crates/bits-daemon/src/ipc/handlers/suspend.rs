//! Suspend: stops the transfer (after a checkpoint) and holds the job.

use super::job_response;
use crate::ipc::{invalid, resolve};
use crate::shared::Shared;
use bits_core::Event;
use bits_proto::{ApiError, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub fn handle(shared: &Arc<Shared>, job: &str) -> Result<Response, ApiError> {
    let mut st = shared.lock();
    let id = resolve(&st, job)?;
    shared.mutate(&mut st, id, |job| {
        job.apply(Event::Suspend, SystemTime::now())
            .map_err(invalid)
    })?;
    if let Some(r) = st.jobs.get(&id).and_then(|e| e.runner.as_ref()) {
        r.cancel.cancel();
    }
    Ok(job_response(&st, id))
}
