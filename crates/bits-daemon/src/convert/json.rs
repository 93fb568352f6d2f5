//! The job object written straight from the daemon's view, for List.
//!
//! Building a [`bits_proto::JobObject`] copies every string of the job
//! (names, paths, URLs, dates) only to serialize and drop them; for 10,000
//! jobs that was a third of a List's time. [`JobJson`] writes the same
//! keys, in the same order, from borrowed data. What it writes is checked
//! against the `JobObject` of the same job (see the tests), so the two
//! cannot drift apart unnoticed.

use super::rfc3339;
use crate::state::Entry;
use bits_core::{CustomHeader, JobFile, JobId, JobState, JobType};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A job as the JSON job object with its whole `FileList` (or none, for a
/// summary).
pub struct JobJson<'a> {
    entry: &'a Entry,
    files: bool,
}

impl<'a> JobJson<'a> {
    /// With every file: for a job whose files are known to fit an answer.
    pub fn whole(entry: &'a Entry) -> JobJson<'a> {
        JobJson { entry, files: true }
    }

    /// Totals only, an empty `FileList`.
    pub fn summary(entry: &'a Entry) -> JobJson<'a> {
        JobJson {
            entry,
            files: false,
        }
    }
}

impl Serialize for JobJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry;
        let job = &entry.job;
        let props = &job.props;
        let err = job.error.as_ref();
        let transient = job.state() == JobState::TransientError;
        let transferred: u64 = (0..job.files.len()).map(|i| entry.shown_bytes(i)).sum();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("JobId", &Shown(&job.id))?;
        m.serialize_entry("DisplayName", &props.display_name)?;
        m.serialize_entry("Description", &props.description)?;
        m.serialize_entry("TransferType", job.job_type.as_str())?;
        m.serialize_entry("JobState", job.state().as_str())?;
        m.serialize_entry("Priority", props.priority.as_str())?;
        m.serialize_entry("OwnerAccount", &job.owner)?;
        m.serialize_entry("BytesTotal", &job.bytes_total())?;
        m.serialize_entry("BytesTransferred", &transferred)?;
        m.serialize_entry("FilesTotal", &(job.files.len() as u64))?;
        m.serialize_entry("FilesTransferred", &(job.files_transferred() as u64))?;
        m.serialize_entry("CreationTime", &rfc3339(job.created))?;
        m.serialize_entry("ModificationTime", &rfc3339(entry.modified()))?;
        m.serialize_entry(
            "TransferCompletionTime",
            &job.transfer_completed.map(rfc3339),
        )?;
        m.serialize_entry("TransientErrorCount", &u64::from(job.transient_error_count))?;
        if let Some(at) = transient.then_some(job.retry_at).flatten() {
            m.serialize_entry("NextRetryTime", &rfc3339(at))?;
        }
        let give_up = transient
            .then_some(job.no_progress_since)
            .flatten()
            .and_then(|since| since.checked_add(props.no_progress_timeout));
        if let Some(at) = give_up {
            m.serialize_entry("GiveUpTime", &rfc3339(at))?;
        }
        m.serialize_entry("MinimumRetryDelay", &props.min_retry_delay.as_secs())?;
        m.serialize_entry("NoProgressTimeout", &props.no_progress_timeout.as_secs())?;
        m.serialize_entry("MaxDownloadTime", &props.max_download_time.as_secs())?;
        m.serialize_entry("Connections", &props.connections)?;
        m.serialize_entry("ErrorContext", &err.map(|e| e.context.as_str()))?;
        m.serialize_entry("ErrorCode", &err.map(|e| e.code_hex()))?;
        m.serialize_entry("ErrorDescription", &err.map(|e| e.description.as_str()))?;
        if self.files {
            m.serialize_entry("FileList", &Files(entry))?;
        } else {
            m.serialize_entry("FileList", &[(); 0])?;
        }
        if job.job_type == JobType::UploadReply {
            if let Some(p) = &props.reply_file {
                m.serialize_entry("ReplyFileName", &*p.to_string_lossy())?;
            }
        }
        let c = &props.connection;
        m.serialize_entry("ProxyUsage", c.proxy.usage.bits_name())?;
        m.serialize_entry("ProxyList", &c.proxy.list)?;
        m.serialize_entry("ProxyBypass", &c.proxy.bypass)?;
        m.serialize_entry("ProxyUsed", &job.proxy_used)?;
        m.serialize_entry("SecurityFlags", &c.security_flags.names())?;
        m.serialize_entry(
            "CaCertFile",
            &c.ca_cert.as_ref().map(|p| p.to_string_lossy()),
        )?;
        if c.headers_write_only {
            m.serialize_entry("CustomHeaders", &None::<()>)?;
        } else {
            m.serialize_entry("CustomHeaders", &Headers(&c.headers))?;
        }
        m.serialize_entry("CustomHeadersWriteOnly", &c.headers_write_only)?;
        m.serialize_entry("NotifyCmdLine", &props.notify.cmd)?;
        m.serialize_entry("NotifyFlags", &props.notify.flags.names())?;
        m.serialize_entry("MaxBandwidth", &props.max_bandwidth)?;
        m.end()
    }
}

/// A value written as its `Display` text, without an intermediate string.
struct Shown<'a, T: std::fmt::Display>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

struct Files<'a>(&'a Entry);

impl Serialize for Files<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let files = &self.0.job.files;
        let mut seq = s.serialize_seq(Some(files.len()))?;
        for (index, f) in files.iter().enumerate() {
            seq.serialize_element(&FileJson {
                file: f,
                job: self.0.job.id,
                shown: self.0.shown_bytes(index),
            })?;
        }
        seq.end()
    }
}

struct FileJson<'a> {
    file: &'a JobFile,
    job: JobId,
    shown: u64,
}

impl Serialize for FileJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.file;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("RemoteName", &*f.remote)?;
        m.serialize_entry("LocalName", &*f.local.to_string_lossy())?;
        m.serialize_entry("BytesTotal", &f.bytes_total)?;
        m.serialize_entry("BytesTransferred", &self.shown)?;
        m.serialize_entry("IsTransferComplete", &f.complete)?;
        m.serialize_entry("TemporaryName", &Shown(&f.temp_text(self.job)))?;
        m.end()
    }
}

struct Headers<'a>(&'a [CustomHeader]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for h in self.0 {
            seq.serialize_element(&Header(h))?;
        }
        seq.end()
    }
}

struct Header<'a>(&'a CustomHeader);

impl Serialize for Header<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}: {}", self.0.name, self.0.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{job_object_whole, job_summary};
    use bits_core::{
        CustomHeader, ErrorContext, Event, Job, JobError, JobFile, JobId, JobProps, Priority,
        SecurityFlags,
    };
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    fn same(entry: &Entry) {
        let whole = serde_json::to_string(&JobJson::whole(entry)).unwrap();
        let object = serde_json::to_string(&job_object_whole(entry)).unwrap();
        assert_eq!(whole, object);
        let summary = serde_json::to_string(&JobJson::summary(entry)).unwrap();
        let object = serde_json::to_string(&job_summary(entry)).unwrap();
        assert_eq!(summary, object);
    }

    fn job(job_type: JobType, files: usize) -> Job {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        let id = JobId::new_random();
        let mut job = Job::new(
            id,
            job_type,
            JobProps::default(),
            "alice \"quoted\"".into(),
            1000,
            now,
        );
        job.files = (0..files)
            .map(|i| {
                JobFile::new(
                    format!("http://127.0.0.1:9/dir/f{i}?q=\"x\"&\u{e9}"),
                    PathBuf::from(format!("/tmp/out/f{i}\tname")),
                )
            })
            .collect();
        job
    }

    #[test]
    fn a_new_job_is_written_as_its_job_object() {
        same(&Entry::new(job(JobType::Download, 0)));
        same(&Entry::new(job(JobType::Download, 3)));
    }

    #[test]
    fn every_optional_part_is_written_as_its_job_object() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_100);
        let mut j = job(JobType::Download, 2);
        j.props.display_name = "name with \\ and \n".into();
        j.props.description = "d".into();
        j.props.priority = Priority::Low;
        j.props.max_bandwidth = Some(12_345);
        j.props.notify.cmd = Some("/bin/true".into());
        j.props.connection.ca_cert = Some("/etc/ca.pem".into());
        j.props.connection.security_flags = SecurityFlags::from_bits(0x1);
        j.props.connection.headers = vec![CustomHeader {
            name: "X-A".into(),
            value: "b: c".into(),
        }];
        j.proxy_used = Some("http://proxy:3128".into());
        j.files[0].bytes_total = Some(10);
        j.files[0].bytes_transferred = 10;
        j.files[0].complete = true;
        j.apply(Event::Resume, now).unwrap();
        j.apply(Event::Start, now).unwrap();
        j.apply(
            Event::TransientFailure {
                error: JobError::new(ErrorContext::RemoteFile, 0x8019_01F7, "503"),
                retry_at: now + Duration::from_secs(60),
            },
            now,
        )
        .unwrap();
        j.no_progress_since = Some(now);
        let entry = Entry::new(j);
        entry.received.get(1).unwrap().store(5);
        same(&entry);

        let mut write_only = job(JobType::Download, 1);
        write_only.props.connection.headers_write_only = true;
        write_only.props.connection.headers = vec![CustomHeader {
            name: "Authorization".into(),
            value: "secret".into(),
        }];
        same(&Entry::new(write_only));

        let mut reply = job(JobType::UploadReply, 1);
        reply.props.reply_file = Some("/tmp/out/reply".into());
        same(&Entry::new(reply));
        same(&Entry::new(job(JobType::UploadReply, 1)));
    }
}
