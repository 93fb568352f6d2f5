//! List (Get-BitsTransfer): the jobs that are not final, oldest first, a
//! page at a time so that no answer outgrows a frame.

use crate::access::Caller;
use crate::convert::{job_object, JobJson, REPLY_BUDGET};
use crate::state::Shared;
use crate::validate::bad;
use bits_core::JobId;
use bits_proto::{ApiError, ErrorKind, RawJob, Response};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn handle(
    shared: &Arc<Shared>,
    all_users: bool,
    name: Option<String>,
    summary: bool,
    after: Option<String>,
    caller: &Caller,
) -> Result<Response, ApiError> {
    if all_users && !caller.admin {
        return Err(ApiError {
            kind: ErrorKind::Denied,
            message: "only root or an administrator may list every user's jobs (--all-users)"
                .into(),
            code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
        });
    }
    let pattern = name
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .map_err(|e| bad(format!("--name: invalid pattern: {e}")))?;
    let view = shared.read();
    let mut entries: Vec<_> = view
        .jobs
        .values()
        .filter(|e| !e.job.state().is_final())
        .filter(|e| all_users || !shared.mode.is_system() || e.job.owner_uid == caller.uid)
        .filter(|e| {
            pattern
                .as_ref()
                .is_none_or(|p| p.matches(&e.job.props.display_name))
        })
        .collect();
    entries.sort_by_key(|e| (e.job.created, e.job.id));
    // The cursor is the sort key of the last job sent, so a page continues
    // after it even if that job has ended meanwhile.
    let start = match after.as_deref().map(parse_cursor) {
        Some(Some(key)) => entries.partition_point(|e| (e.job.created, e.job.id) <= key),
        Some(None) => return Err(bad("List: the page cursor is not one this bitsd gave")),
        None => 0,
    };
    let mut jobs = Vec::new();
    let mut used = 0usize;
    let mut next = None;
    let mut cursor = String::new();
    for e in &entries[start..] {
        let left = REPLY_BUDGET.saturating_sub(used);
        // Serialized once: measured here, sent as it is. A job of a few
        // files is written whole and measured after (its files cannot
        // outgrow a page: FILES_WHOLE URLs and paths of at most a few
        // kilobytes each); a larger one is measured file by file and its
        // list paged (see `job_object`).
        let job = if summary {
            raw(&JobJson::summary(e))?
        } else if e.job.files.len() <= FILES_WHOLE {
            raw(&JobJson::whole(e))?
        } else {
            raw(&job_object(e, 0, left))?
        };
        let len = job.json().len() + 1;
        if used + len > REPLY_BUDGET && !jobs.is_empty() {
            next = Some(cursor);
            break;
        }
        used += len;
        jobs.push(job);
        cursor = format!("{}:{}", nanos(e.job.created), e.job.id);
    }
    Ok(Response::RawJobs { jobs, next })
}

/// Files of a job above which its object is measured file by file.
const FILES_WHOLE: usize = 64;

fn raw<T: serde::Serialize>(object: &T) -> Result<RawJob, ApiError> {
    RawJob::of(object).map_err(|e| ApiError {
        kind: ErrorKind::Internal,
        message: format!("cannot write a job object: {e}"),
        code: None,
    })
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// `NANOS:JOBID` back into the sort key it was made from.
fn parse_cursor(text: &str) -> Option<(SystemTime, JobId)> {
    let (nanos, id) = text.split_once(':')?;
    let nanos: u64 = nanos.parse().ok()?;
    let at = UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))?;
    Some((at, id.parse().ok()?))
}
