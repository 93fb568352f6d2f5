//! Info: one job in full, its files a page at a time.

use super::job_response;
use crate::access::Caller;
use crate::ipc::resolve;
use crate::state::Shared;
use bits_proto::{ApiError, Response};
use std::sync::Arc;

pub fn handle(
    shared: &Arc<Shared>,
    job: &str,
    files_from: u64,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let view = shared.read();
    let id = resolve(&view, job, caller)?;
    let from = usize::try_from(files_from).unwrap_or(usize::MAX);
    job_response(&view, id, from)
}
