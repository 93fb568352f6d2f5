//! Info: one job in full.

use super::job_response;
use crate::ipc::resolve;
use crate::shared::Shared;
use bits_proto::{ApiError, Response};
use std::sync::Arc;

pub fn handle(shared: &Arc<Shared>, job: &str) -> Result<Response, ApiError> {
    let st = shared.lock();
    let id = resolve(&st, job)?;
    Ok(job_response(&st, id))
}
