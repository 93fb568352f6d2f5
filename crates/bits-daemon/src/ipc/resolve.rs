//! Turns a JOB argument into a JobId: a full JobId, a unique prefix of one
//! (at least 4 characters), or a DisplayName that names exactly one job.
//! Only the jobs the caller may manage are candidates: a user's prefixes
//! and names never match another user's jobs, and another user's JobId is
//! refused.

use crate::access::Caller;
use crate::state::View;
use bits_core::JobId;
use bits_proto::{ApiError, ErrorKind};

/// The shortest JobId prefix accepted: shorter ones match too easily.
const MIN_PREFIX: usize = 4;

fn not_found(message: String) -> ApiError {
    ApiError {
        kind: ErrorKind::NotFound,
        message,
        code: Some(format!("0x{:08X}", bits_core::error::codes::BG_E_NOT_FOUND)),
    }
}

/// Finds the job `arg` names among those `caller` may manage.
pub fn resolve(state: &View, arg: &str, caller: &Caller) -> Result<JobId, ApiError> {
    if let Ok(id) = arg.parse::<JobId>() {
        if let Some(e) = state.jobs.get(&id) {
            caller.check(&e.job)?;
            return Ok(id);
        }
        return Err(not_found(format!("no job has the id {id}")));
    }
    let lower = arg.to_ascii_lowercase();
    if lower.len() >= MIN_PREFIX && lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        let mut hits: Vec<JobId> = state
            .jobs
            .values()
            .filter(|e| caller.may_manage(&e.job))
            .map(|e| e.job.id)
            .filter(|id| id.to_string().starts_with(&lower))
            .collect();
        match hits.len() {
            1 => return Ok(hits[0]),
            0 => {}
            n => {
                hits.sort();
                return Err(not_found(format!(
                    "'{arg}' is the start of {n} job ids ({}); give more characters",
                    hits.iter()
                        .map(|h| h.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let mut named: Vec<&crate::state::Entry> = state
        .jobs
        .values()
        .filter(|e| caller.may_manage(&e.job))
        .filter(|e| !e.job.state().is_final() && e.job.props.display_name == arg)
        .collect();
    match named.len() {
        1 => Ok(named[0].job.id),
        0 => Err(not_found(format!(
            "no job is named or identified by '{arg}'"
        ))),
        n => {
            named.sort_by_key(|e| e.job.created);
            Err(not_found(format!(
                "{n} jobs are named '{arg}' ({}); use a JobId",
                named
                    .iter()
                    .map(|e| e.job.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}
