//! AddFiles: appends files to a job that is not final.

use super::job_response;
use crate::ipc::resolve;
use crate::shared::{store_failed, Shared};
use crate::validate;
use bits_core::error::codes;
use bits_proto::{ApiError, ErrorKind, FileSpec, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub fn handle(shared: &Arc<Shared>, job: &str, specs: Vec<FileSpec>) -> Result<Response, ApiError> {
    let mut st = shared.lock();
    let id = resolve(&st, job)?;
    let entry = &st.jobs[&id];
    if entry.job.state().is_final() {
        return Err(ApiError {
            kind: ErrorKind::InvalidState,
            message: format!("cannot add files to a job that is {}", entry.job.state()),
            code: Some(format!("0x{:08X}", codes::BG_E_INVALID_STATE)),
        });
    }
    let new = validate::files(id, entry.job.job_type, &specs, &entry.job.files)?;
    let mut updated = entry.job.clone();
    let first = updated.files.len();
    updated.files.extend(new);
    updated.modified = SystemTime::now();
    shared
        .store()
        .append_files(&updated, first)
        .map_err(store_failed)?;
    if let Some(e) = st.jobs.get_mut(&id) {
        e.job = updated;
    }
    shared.bump(&mut st, id);
    Ok(job_response(&st, id))
}
