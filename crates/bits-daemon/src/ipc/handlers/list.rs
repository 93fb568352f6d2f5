//! List (Get-BitsTransfer): the jobs that are not final, oldest first, a
//! page at a time so that no answer outgrows a frame.

use crate::convert::{job_object, job_summary, json_len, REPLY_BUDGET};
use crate::state::Shared;
use crate::validate::bad;
use bits_proto::{ApiError, ErrorKind, Response};
use std::sync::Arc;

pub fn handle(
    shared: &Arc<Shared>,
    all_users: bool,
    name: Option<String>,
    summary: bool,
    after: Option<String>,
    uid: u32,
) -> Result<Response, ApiError> {
    if all_users && uid != 0 {
        return Err(ApiError {
            kind: ErrorKind::Denied,
            message: "only root may list every user's jobs (--all-users)".into(),
            code: None,
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
        .filter(|e| all_users || e.job.owner_uid == uid || uid == 0)
        .filter(|e| {
            pattern
                .as_ref()
                .is_none_or(|p| p.matches(&e.job.props.display_name))
        })
        .collect();
    entries.sort_by_key(|e| (e.job.created, e.job.id));
    let start = match &after {
        Some(cursor) => entries
            .iter()
            .position(|e| e.job.id.to_string() == *cursor)
            .map_or(0, |i| i + 1),
        None => 0,
    };
    let mut jobs = Vec::new();
    let mut used = 0usize;
    let mut next = None;
    for e in &entries[start..] {
        let left = REPLY_BUDGET.saturating_sub(used);
        let job = if summary {
            job_summary(e)
        } else {
            job_object(e, 0, left)
        };
        let len = json_len(&job) + 1;
        if used + len > REPLY_BUDGET && !jobs.is_empty() {
            next = jobs
                .last()
                .map(|j: &bits_proto::JobObject| j.job_id.clone());
            break;
        }
        used += len;
        jobs.push(job);
    }
    Ok(Response::Jobs { jobs, next })
}
