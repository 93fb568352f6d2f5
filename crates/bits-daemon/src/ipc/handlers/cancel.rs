//! Cancel (Remove-BitsTransfer): the job ends, every temporary file goes.

use super::job_response;
use crate::fsops;
use crate::ipc::{invalid, resolve};
use crate::shared::Shared;
use bits_core::Event;
use bits_proto::{ApiError, Response};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a removal waits for the server to drop an upload session.
const CANCEL_SESSION_WAIT: Duration = Duration::from_secs(5);

pub async fn handle(shared: &Arc<Shared>, job: &str) -> Result<Response, ApiError> {
    let (id, task) = {
        let mut st = shared.lock();
        let id = resolve(&st, job)?;
        shared.mutate(&mut st, id, |job| {
            job.apply(Event::Cancel, SystemTime::now()).map_err(invalid)
        })?;
        let task = st.jobs.get_mut(&id).and_then(|e| {
            let r = e.runner.as_mut()?;
            r.cancel.cancel();
            r.task.take()
        });
        (id, task)
    };
    // The runner must be gone before its temporary file is deleted, or it
    // could write it again.
    if let Some(task) = task {
        let _ = task.await;
    }
    let files = {
        let st = shared.lock();
        let files = st
            .jobs
            .get(&id)
            .map(|e| e.job.files.clone())
            .unwrap_or_default();
        fsops::discard(&files);
        files
    };
    // An unfinished upload leaves a session on the server: tell it to drop
    // the partial file (Cancel-Session). Best effort, and bounded, so that
    // an unreachable server cannot hold up the user.
    for f in files
        .iter()
        .filter(|f| f.upload.id.is_some() && !f.complete)
    {
        let cancel = shared.engine.cancel_upload(&f.remote, &f.upload);
        match tokio::time::timeout(CANCEL_SESSION_WAIT, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(job = %id, cause = %e, "Cancel-Session failed"),
            Err(_) => tracing::warn!(job = %id, "Cancel-Session timed out"),
        }
    }
    tracing::info!(job = %id, "job cancelled");
    Ok(job_response(&shared.lock(), id))
}
