//! Domain job -> the JSON job object of the contract. The only place that
//! sees both `bits_core` and `bits_proto` types.
//!
//! Answers are bounded whatever a job holds: a job's `FileList` is sent a
//! page at a time, as many files as fit [`REPLY_BUDGET`] bytes, and the
//! object says where the rest begins (`FileListNext`); the client fills the
//! list in before showing it.

mod json;

pub use json::JobJson;

use crate::state::Entry;
use bits_proto::{FileObject, JobObject};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::time::SystemTime;

/// The most bytes of JSON one answer carries: far below the 64 MiB frame
/// limit, large enough that a job of 10,000 files goes in one or two.
pub const REPLY_BUDGET: usize = 8 << 20;

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The size of `value` as JSON.
pub fn json_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serialising these types cannot fail (no maps with non-string keys).
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The JSON object for a job without its `FileList` (totals only).
pub fn job_summary(entry: &Entry) -> JobObject {
    object(entry)
}

/// The JSON object for a job with its files from index `from` on, as many
/// as fit `budget` bytes with the rest of the object (at least one, so that
/// a client paging through always moves on).
pub fn job_object(entry: &Entry, from: usize, budget: usize) -> JobObject {
    let mut job = object(entry);
    let mut used = json_len(&job);
    for (index, f) in entry.job.files.iter().enumerate().skip(from) {
        let file = file_object(entry, index, f);
        let len = json_len(&file) + 1;
        if used + len > budget && !job.file_list.is_empty() {
            job.file_list_next = Some(index as u64);
            break;
        }
        used += len;
        job.file_list.push(file);
    }
    job
}

/// The JSON object for a job with all its files, unmeasured: what
/// [`JobJson::whole`] must write.
#[cfg(test)]
pub fn job_object_whole(entry: &Entry) -> JobObject {
    let mut job = object(entry);
    job.file_list = (entry.job.files.iter().enumerate())
        .map(|(index, f)| file_object(entry, index, f))
        .collect();
    job
}

fn file_object(entry: &Entry, index: usize, f: &bits_core::JobFile) -> FileObject {
    FileObject {
        remote_name: f.remote.to_string(),
        local_name: f.local.to_string_lossy().into_owned(),
        bytes_total: f.bytes_total,
        bytes_transferred: entry.shown_bytes(index),
        is_transfer_complete: f.complete,
        temporary_name: f.temp_text(entry.job.id).to_string(),
    }
}

fn object(entry: &Entry) -> JobObject {
    let job = &entry.job;
    let err = job.error.as_ref();
    let transferred = (0..job.files.len()).map(|i| entry.shown_bytes(i)).sum();
    let transient = job.state() == bits_core::JobState::TransientError;
    JobObject {
        job_id: job.id.to_string(),
        display_name: job.props.display_name.clone(),
        description: job.props.description.clone(),
        transfer_type: job.job_type.as_str().to_string(),
        job_state: job.state().as_str().to_string(),
        priority: job.props.priority.as_str().to_string(),
        owner_account: job.owner.clone(),
        bytes_total: job.bytes_total(),
        bytes_transferred: transferred,
        files_total: job.files.len() as u64,
        files_transferred: job.files_transferred() as u64,
        creation_time: rfc3339(job.created),
        modification_time: rfc3339(entry.modified()),
        transfer_completion_time: job.transfer_completed.map(rfc3339),
        transient_error_count: u64::from(job.transient_error_count),
        next_retry_time: transient.then_some(job.retry_at).flatten().map(rfc3339),
        give_up_time: transient
            .then_some(job.no_progress_since)
            .flatten()
            .and_then(|since| since.checked_add(job.props.no_progress_timeout))
            .map(rfc3339),
        minimum_retry_delay: job.props.min_retry_delay.as_secs(),
        no_progress_timeout: job.props.no_progress_timeout.as_secs(),
        max_download_time: job.props.max_download_time.as_secs(),
        connections: job.props.connections,
        error_context: err.map(|e| e.context.as_str().to_string()),
        error_code: err.map(|e| e.code_hex()),
        error_description: err.map(|e| e.description.clone()),
        file_list: Vec::new(),
        file_list_next: None,
        complete_result: None,
        reply_file_name: (job.job_type == bits_core::JobType::UploadReply)
            .then_some(job.props.reply_file.as_ref())
            .flatten()
            .map(|p| p.to_string_lossy().into_owned()),
        connection: connection_object(job),
        notify_cmd_line: job.props.notify.cmd.clone(),
        notify_flags: job
            .props
            .notify
            .flags
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
        max_bandwidth: job.props.max_bandwidth,
    }
}

/// The job's connection properties as shown: custom headers only when
/// they are not write-only; credentials never.
fn connection_object(job: &bits_core::Job) -> bits_proto::ConnectionObject {
    let c = &job.props.connection;
    bits_proto::ConnectionObject {
        proxy_usage: c.proxy.usage.bits_name().to_string(),
        proxy_list: c.proxy.list.clone(),
        proxy_bypass: c.proxy.bypass.clone(),
        proxy_used: job.proxy_used.clone(),
        security_flags: c
            .security_flags
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
        ca_cert_file: c.ca_cert.as_ref().map(|p| p.to_string_lossy().into_owned()),
        custom_headers: (!c.headers_write_only).then(|| {
            c.headers
                .iter()
                .map(|h| format!("{}: {}", h.name, h.value))
                .collect()
        }),
        custom_headers_write_only: c.headers_write_only,
    }
}
