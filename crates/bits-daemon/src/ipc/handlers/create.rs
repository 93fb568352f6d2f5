//! Create: a new job with its files, Suspended or resumed at once. Checked
//! whole before anything is stored: a job is created whole or not at all.

use super::job_reply;
use crate::access::Caller;
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
    caller: &Caller,
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
    // The system daemon's jobs are their creator's; a user's daemon's are
    // its user's, whoever (root) asks.
    let (owner, owner_uid) = if shared.mode.is_system() {
        (shared.account_of(caller.uid).await, caller.uid)
    } else {
        (shared.owner.name.clone(), shared.owner.uid)
    };
    let identity = super::identity_of(shared, owner_uid).await?;
    let mut job = Job::new(id, job_type, props, owner, owner_uid, now);
    validate::credentials(&mut job, &req.properties)?;
    let connection = req.properties.connection.clone();
    let as_owner = identity.clone();
    tokio::task::spawn_blocking(move || as_owner.run(|| Ok(validate::ca_file(&connection))))
        .await
        .map_err(|e| validate::bad(format!("checking --ca-cert failed: {e}")))?
        .map_err(super::as_owner_failed)??;
    // Checking files looks at the disk (sources, destination directories):
    // not on a runtime thread, and with the owner's rights (what the owner
    // cannot see, the daemon does not reveal).
    let specs = req.files;
    let files = tokio::task::spawn_blocking(move || {
        identity.run(|| Ok(validate::files(id, job_type, &specs, &[])))
    })
    .await
    .map_err(|e| validate::bad(format!("checking the files failed: {e}")))?
    .map_err(super::as_owner_failed)??;
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
    job_reply(&shared.read(), id, (!req.summary).then_some(0))
}
