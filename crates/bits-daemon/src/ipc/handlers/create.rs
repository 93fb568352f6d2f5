//! Create: a new job with its files, Suspended or resumed at once.

use super::job_response;
use crate::ipc::invalid;
use crate::shared::{store_failed, Entry, Shared};
use crate::validate;
use bits_core::{Event, Job, JobId, JobProps, JobType};
use bits_proto::{ApiError, CreateJob, Response};
use std::sync::Arc;
use std::time::SystemTime;

pub fn handle(shared: &Arc<Shared>, req: CreateJob) -> Result<Response, ApiError> {
    let job_type: JobType = req
        .transfer_type
        .parse()
        .map_err(|e| validate::bad(format!("--type: {e}")))?;
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
    job.files = validate::files(id, job_type, &req.files, &[])?;
    if job_type == JobType::UploadReply && job.props.reply_file.is_none() {
        job.props.reply_file = job
            .files
            .first()
            .map(|f| validate::default_reply_file(&f.local));
    }
    if req.resume {
        // Refused before anything is stored: a job is created whole or not
        // at all.
        job.apply(Event::Resume, now).map_err(invalid)?;
    }
    let mut st = shared.lock();
    shared.store().insert_job(&job).map_err(store_failed)?;
    tracing::info!(job = %id, files = job.files.len(), state = %job.state(), "job created");
    st.jobs.insert(id, Entry::new(job));
    shared.bump(&mut st, id);
    shared.wake.notify_one();
    Ok(job_response(&st, id))
}
