//! Create: a new job with its files, Suspended or resumed at once. Checked
//! whole before anything is stored: a job is created whole or not at all.

use super::job_response;
use crate::ipc::invalid;
use crate::lifecycle::{Command, Handle};
use crate::state::Shared;
use crate::validate;
use bits_core::{Event, Job, JobId, JobProps, JobType};
use bits_proto::{ApiError, CreateJob, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub async fn handle(
    shared: &Arc<Shared>,
    manager: &Handle,
    req: CreateJob,
) -> Result<Response, ApiError> {
    let job_type: JobType = req
        .transfer_type
        .parse()
        .map_err(|e| validate::bad(format!("--type: {e}")))?;
    validate::quota(0, req.files.len(), shared.max_files_per_job())?;
    let mut props = JobProps::default();
    validate::properties(&mut props, &req.properties, job_type)?;
    let id = JobId::new_random();
    let now = SystemTime::now();
    let mut job = Job::new(
        id,
        job_type,
        props,
        shared.owner.name.clone(),
        shared.owner.uid,
        now,
    );
    validate::credentials(&mut job, &req.properties)?;
    let connection = req.properties.connection.clone();
    tokio::task::spawn_blocking(move || validate::ca_file(&connection))
        .await
        .map_err(|e| validate::bad(format!("checking --ca-cert failed: {e}")))??;
    // Checking files looks at the disk (sources, destination directories):
    // not on a runtime thread.
    let specs = req.files;
    let files = tokio::task::spawn_blocking(move || validate::files(id, job_type, &specs, &[]))
        .await
        .map_err(|e| validate::bad(format!("checking the files failed: {e}")))??;
    job.files = files;
    if job_type == JobType::UploadReply && job.props.reply_file.is_none() {
        job.props.reply_file = job
            .files
            .first()
            .map(|f| validate::default_reply_file(&f.local));
    }
    if req.resume {
        job.apply(Event::Resume, now).map_err(invalid)?;
    }
    let id = manager
        .ask(|reply| Command::Create {
            job: Box::new(job),
            reply,
        })
        .await?;
    job_response(&shared.read(), id, 0)
}
