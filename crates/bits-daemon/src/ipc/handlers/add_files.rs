//! AddFiles: appends files to a job that is not final.

use super::job_response;
use crate::access::Caller;
use crate::ipc::resolve;
use crate::lifecycle::{Command, Handle};
use crate::state::Shared;
use crate::validate;
use bits_proto::{ApiError, FileSpec, Response};
use std::sync::Arc;

pub async fn handle(
    shared: &Arc<Shared>,
    manager: &Handle,
    job: &str,
    specs: Vec<FileSpec>,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let (id, job_type, existing, owner_uid) = {
        let view = shared.read();
        let id = resolve(&view, job, caller)?;
        let e = &view.jobs[&id];
        validate::quota(e.job.files.len(), specs.len(), shared.max_files_per_job())?;
        (id, e.job.job_type, e.job.files.clone(), e.job.owner_uid)
    };
    let identity = super::identity_of(shared, owner_uid).await?;
    let files = tokio::task::spawn_blocking(move || {
        identity.run(|| Ok(validate::files(id, job_type, &specs, &existing)))
    })
    .await
    .map_err(|e| validate::bad(format!("checking the files failed: {e}")))?
    .map_err(super::as_owner_failed)??;
    manager
        .ask(|reply| Command::AddFiles { id, files, reply })
        .await?;
    job_response(&shared.read(), id, 0)
}
