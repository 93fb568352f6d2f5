//! Set: changes job properties.

use super::job_response;
use crate::ipc::resolve;
use crate::shared::Shared;
use crate::validate;
use bits_proto::{ApiError, ErrorKind, JobProperties, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub fn handle(shared: &Arc<Shared>, job: &str, p: JobProperties) -> Result<Response, ApiError> {
    let mut st = shared.lock();
    let id = resolve(&st, job)?;
    shared.mutate(&mut st, id, |job| {
        if job.state().is_final() {
            return Err(ApiError {
                kind: ErrorKind::InvalidState,
                message: format!("cannot change a job that is {}", job.state()),
                code: None,
            });
        }
        validate::properties(&mut job.props, &p, job.job_type)?;
        job.modified = SystemTime::now();
        Ok(())
    })?;
    Ok(job_response(&st, id))
}
