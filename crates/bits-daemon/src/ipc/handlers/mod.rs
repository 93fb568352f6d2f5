//! One file per request; the four user actions share `act`.

pub mod act;
pub mod add_files;
pub mod create;
pub mod info;
pub mod list;
pub mod policy;
pub mod set;
pub mod watch;

use crate::convert::{job_object, REPLY_BUDGET};
use crate::state::View;
use bits_core::JobId;
use bits_proto::{ApiError, ErrorKind, Response};

/// The response carrying job `id` as it is now, its files from `from` on
/// (as many as fit one answer).
fn job_response(view: &View, id: JobId, from: usize) -> Result<Response, ApiError> {
    match view.jobs.get(&id) {
        Some(e) => Ok(Response::Job {
            job: Box::new(job_object(e, from, REPLY_BUDGET)),
        }),
        None => Err(ApiError {
            kind: ErrorKind::NotFound,
            message: format!("job {id} no longer exists"),
            code: None,
        }),
    }
}
