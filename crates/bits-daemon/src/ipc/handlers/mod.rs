//! One file per request; the four user actions share `act`.

pub mod act;
pub mod add_files;
pub mod create;
pub mod info;
pub mod list;
pub mod policy;
pub mod set;
pub mod watch;

use crate::convert::{job_object, job_summary, REPLY_BUDGET};
use crate::state::{Shared, View};
use bits_core::JobId;
use bits_proto::{ApiError, ErrorKind, Response};

/// The response carrying job `id` as it is now, its files from `from` on
/// (as many as fit one answer).
fn job_response(view: &View, id: JobId, from: usize) -> Result<Response, ApiError> {
    job_reply(view, id, Some(from))
}

/// A job's object: with its files from index `from` on, or without any
/// (`None`: the client asked for a summary).
fn job_reply(view: &View, id: JobId, from: Option<usize>) -> Result<Response, ApiError> {
    match view.jobs.get(&id) {
        Some(e) => Ok(Response::Job {
            job: Box::new(match from {
                Some(from) => job_object(e, from, REPLY_BUDGET),
                None => job_summary(e),
            }),
        }),
        None => Err(ApiError {
            kind: ErrorKind::NotFound,
            message: format!("job {id} no longer exists"),
            code: None,
        }),
    }
}

/// Whose rights the files of a job owned by `owner_uid` are looked at
/// with; a refusal when that user is gone from the user database.
async fn identity_of(shared: &Shared, owner_uid: u32) -> Result<bits_transfer::Identity, ApiError> {
    shared.identity_for(owner_uid).await.map_err(|e| ApiError {
        kind: ErrorKind::Denied,
        message: format!("cannot act for the job's owner: {e}"),
        code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
    })
}

/// The refusal when the daemon cannot take the owner's rights to look at
/// their files.
fn as_owner_failed(e: std::io::Error) -> ApiError {
    ApiError {
        kind: ErrorKind::Denied,
        message: format!("cannot look at the files with their owner's rights: {e}"),
        code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
    }
}
