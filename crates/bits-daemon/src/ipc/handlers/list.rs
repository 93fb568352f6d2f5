//! List (Get-BitsTransfer): the jobs that are not final, oldest first.

use crate::convert::job_object;
use crate::shared::Shared;
use crate::validate::bad;
use bits_proto::{ApiError, ErrorKind, Response};
use std::sync::Arc;

pub fn handle(
    shared: &Arc<Shared>,
    all_users: bool,
    name: Option<String>,
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
    let st = shared.lock();
    let mut jobs: Vec<_> = st
        .jobs
        .values()
        .map(|e| &e.job)
        .filter(|j| !j.state().is_final())
        .filter(|j| all_users || j.owner_uid == uid || uid == 0)
        .filter(|j| {
            pattern
                .as_ref()
                .is_none_or(|p| p.matches(&j.props.display_name))
        })
        .collect();
    jobs.sort_by_key(|j| (j.created, j.id));
    Ok(Response::Jobs {
        jobs: jobs.into_iter().map(job_object).collect(),
    })
}
