//! Domain job -> the JSON job object of the contract. The only place that
//! sees both `bits_core` and `bits_proto` types.

use bits_core::Job;
use bits_proto::{FileObject, JobObject};
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::SystemTime;

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The JSON object for `job` without its `FileList` (totals only).
pub fn job_summary(job: &Job) -> JobObject {
    object(job, false)
}

/// The JSON object for `job`.
pub fn job_object(job: &Job) -> JobObject {
    object(job, true)
}

fn object(job: &Job, with_files: bool) -> JobObject {
    let err = job.error.as_ref();
    JobObject {
        job_id: job.id.to_string(),
        display_name: job.props.display_name.clone(),
        description: job.props.description.clone(),
        transfer_type: job.job_type.as_str().to_string(),
        job_state: job.state().as_str().to_string(),
        priority: job.props.priority.as_str().to_string(),
        owner_account: job.owner.clone(),
        bytes_total: job.bytes_total(),
        bytes_transferred: job.bytes_transferred(),
        files_total: job.files.len() as u64,
        files_transferred: job.files_transferred() as u64,
        creation_time: rfc3339(job.created),
        modification_time: rfc3339(job.modified),
        transfer_completion_time: job.transfer_completed.map(rfc3339),
        transient_error_count: u64::from(job.transient_error_count),
        minimum_retry_delay: job.props.min_retry_delay.as_secs(),
        no_progress_timeout: job.props.no_progress_timeout.as_secs(),
        max_download_time: job.props.max_download_time.as_secs(),
        connections: job.props.connections,
        error_context: err.map(|e| e.context.as_str().to_string()),
        error_code: err.map(|e| e.code_hex()),
        error_description: err.map(|e| e.description.clone()),
        file_list: job
            .files
            .iter()
            .take(if with_files { usize::MAX } else { 0 })
            .map(|f| FileObject {
                remote_name: f.remote.clone(),
                local_name: f.local.to_string_lossy().into_owned(),
                bytes_total: f.bytes_total,
                bytes_transferred: f.bytes_transferred,
                is_transfer_complete: f.complete,
                temporary_name: f.temp.to_string_lossy().into_owned(),
            })
            .collect(),
        reply_file_name: (job.job_type == bits_core::JobType::UploadReply)
            .then_some(job.props.reply_file.as_ref())
            .flatten()
            .map(|p| p.to_string_lossy().into_owned()),
    }
}
