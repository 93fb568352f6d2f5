//! The job object written straight from the daemon's view, for List.
//!
//! Building a [`bits_proto::JobObject`] copies every string of the job
//! (names, paths, URLs, dates) only to serialize and drop them, and
//! `serde_json` escapes each of some forty keys per job as it writes them;
//! for 10,000 jobs those were most of a List's time. [`JobJson`] writes the
//! same bytes from borrowed data, keys as the constants they are. What it
//! writes is checked against the `JobObject` of the same job (see the
//! tests), so the two cannot drift apart unnoticed.

use super::rfc3339;
use crate::state::Entry;
use bits_core::{CustomHeader, JobFile, JobId, JobState, JobType};
use chrono::{DateTime, Datelike, Timelike, Utc};
use std::fmt::{self, Write as _};
use std::time::SystemTime;

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

    /// Appends the job object, compact, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let entry = self.entry;
        let job = &entry.job;
        let props = &job.props;
        let err = job.error.as_ref();
        let transient = job.state() == JobState::TransientError;
        let transferred: u64 = (0..job.files.len()).map(|i| entry.shown_bytes(i)).sum();
        let mut m = Object::new(out);
        m.key("JobId").display(&job.id);
        m.key("DisplayName").str(&props.display_name);
        m.key("Description").str(&props.description);
        m.key("TransferType").str(job.job_type.as_str());
        m.key("JobState").str(job.state().as_str());
        m.key("Priority").str(props.priority.as_str());
        m.key("OwnerAccount").str(&job.owner);
        m.key("BytesTotal").opt_u64(job.bytes_total());
        m.key("BytesTransferred").u64(transferred);
        m.key("FilesTotal").u64(job.files.len() as u64);
        m.key("FilesTransferred")
            .u64(job.files_transferred() as u64);
        m.key("CreationTime").time(job.created);
        m.key("ModificationTime").time(entry.modified());
        match job.transfer_completed {
            Some(at) => m.key("TransferCompletionTime").time(at),
            None => m.key("TransferCompletionTime").null(),
        }
        m.key("TransientErrorCount")
            .u64(u64::from(job.transient_error_count));
        if let Some(at) = transient.then_some(job.retry_at).flatten() {
            m.key("NextRetryTime").time(at);
        }
        let give_up = transient
            .then_some(job.no_progress_since)
            .flatten()
            .and_then(|since| since.checked_add(props.no_progress_timeout));
        if let Some(at) = give_up {
            m.key("GiveUpTime").time(at);
        }
        m.key("MinimumRetryDelay")
            .u64(props.min_retry_delay.as_secs());
        m.key("NoProgressTimeout")
            .u64(props.no_progress_timeout.as_secs());
        m.key("MaxDownloadTime")
            .u64(props.max_download_time.as_secs());
        m.key("Connections").u64(u64::from(props.connections));
        m.key("ErrorContext")
            .opt_str(err.map(|e| e.context.as_str()));
        match err {
            Some(e) => m
                .key("ErrorCode")
                .display(&format_args!("0x{:08X}", e.code)),
            None => m.key("ErrorCode").null(),
        }
        m.key("ErrorDescription")
            .opt_str(err.map(|e| e.description.as_str()));
        m.key("FileList").raw("[");
        if self.files {
            for (index, f) in job.files.iter().enumerate() {
                if index > 0 {
                    m.raw(",");
                }
                file(m.out, f, job.id, entry.shown_bytes(index));
            }
        }
        m.raw("]");
        if job.job_type == JobType::UploadReply {
            if let Some(p) = &props.reply_file {
                m.key("ReplyFileName").str(&p.to_string_lossy());
            }
        }
        let c = &props.connection;
        m.key("ProxyUsage").str(c.proxy.usage.bits_name());
        m.key("ProxyList").strs(&c.proxy.list);
        m.key("ProxyBypass").strs(&c.proxy.bypass);
        m.key("ProxyUsed").opt_str(job.proxy_used.as_deref());
        m.key("SecurityFlags").strs(&c.security_flags.names());
        m.key("CaCertFile")
            .opt_str(c.ca_cert.as_ref().map(|p| p.to_string_lossy()).as_deref());
        if c.headers_write_only {
            m.key("CustomHeaders").null();
        } else {
            headers(m.key("CustomHeaders"), &c.headers);
        }
        m.key("CustomHeadersWriteOnly").bool(c.headers_write_only);
        m.key("NotifyCmdLine").opt_str(props.notify.cmd.as_deref());
        m.key("NotifyFlags").strs(&props.notify.flags.names());
        m.key("MaxBandwidth").opt_u64(props.max_bandwidth);
        m.end();
    }
}

/// One file object.
fn file(out: &mut Vec<u8>, f: &JobFile, job: JobId, shown: u64) {
    let mut m = Object::new(out);
    m.key("RemoteName").str(&f.remote);
    m.key("LocalName").str(&f.local.to_string_lossy());
    m.key("BytesTotal").opt_u64(f.bytes_total);
    m.key("BytesTransferred").u64(shown);
    m.key("IsTransferComplete").bool(f.complete);
    m.key("TemporaryName").display(&f.temp_text(job));
    m.end();
}

/// `["Name: value", …]`.
fn headers(m: &mut Object<'_>, headers: &[CustomHeader]) {
    m.raw("[");
    for (i, h) in headers.iter().enumerate() {
        if i > 0 {
            m.raw(",");
        }
        m.display(&format_args!("{}: {}", h.name, h.value));
    }
    m.raw("]");
}

/// A JSON object being written: keys are written as they are (they are
/// constants of this file, none in need of escaping), values as
/// `serde_json` writes them.
struct Object<'a> {
    /// Where the object is written.
    out: &'a mut Vec<u8>,
    /// No key written yet (none needs a comma before it).
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// `"key":`, after a comma unless it is the first.
    fn key(&mut self, key: &'static str) -> &mut Self {
        debug_assert!(!key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self
    }

    fn end(self) {
        self.out.push(b'}');
    }

    fn raw(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn null(&mut self) {
        self.raw("null");
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    fn u64(&mut self, n: u64) {
        self.raw(itoa::Buffer::new().format(n));
    }

    fn opt_u64(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.u64(n),
            None => self.null(),
        }
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'"');
        escape(self.out, s);
        self.out.push(b'"');
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    fn strs<S: AsRef<str>>(&mut self, items: &[S]) {
        self.raw("[");
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.str(s.as_ref());
        }
        self.raw("]");
    }

    /// A value's `Display` text as a string, escaped as it is written.
    fn display(&mut self, value: &dyn fmt::Display) {
        self.out.push(b'"');
        // Writing into a Vec cannot fail; a Display impl that fails would
        // only leave its text short.
        let _ = write!(Escaped(self.out), "{value}");
        self.out.push(b'"');
    }

    /// `"YYYY-MM-DDTHH:MM:SSZ"`, as [`rfc3339`] writes it.
    fn time(&mut self, t: SystemTime) {
        let at = DateTime::<Utc>::from(t);
        if !(0..=9999).contains(&at.year()) {
            return self.str(&rfc3339(t));
        }
        let mut text = *b"\"0000-00-00T00:00:00Z\"";
        let mut put = |at: usize, n: u32, width: usize| {
            let mut n = n;
            for i in (0..width).rev() {
                text[at + i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(1, at.year() as u32, 4);
        put(6, at.month(), 2);
        put(9, at.day(), 2);
        put(12, at.hour(), 2);
        put(15, at.minute(), 2);
        // A leap second shows as :60, as chrono writes it.
        put(18, at.second() + at.nanosecond() / 1_000_000_000, 2);
        self.out.extend_from_slice(&text);
    }
}

/// Writes text into a JSON string, escaped.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// `s` as the inside of a JSON string, escaped as `serde_json` escapes it:
/// `"` and `\`, the short forms of `\b \f \n \r \t`, `\u00XX` for the
/// other control characters, everything else as it is.
fn escape(out: &mut Vec<u8>, s: &str) {
    /// Bytes looked at together: a stretch with nothing to escape (nearly
    /// every name, path and URL) is checked without a branch per byte.
    const STRETCH: usize = 16;
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(stretch) = bytes.get(i..i + STRETCH) {
            if !stretch.iter().fold(false, |any, &b| any | needs_escape(b)) {
                i += STRETCH;
                continue;
            }
        }
        let b = bytes[i];
        if needs_escape(b) {
            out.extend_from_slice(&bytes[start..i]);
            write_escape(out, b);
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The escape of one byte that [`needs_escape`].
fn write_escape(out: &mut Vec<u8>, b: u8) {
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0C => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => b'u',
    };
    out.push(b'\\');
    out.push(short);
    if short == b'u' {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xF)],
        ]);
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

    fn text(json: JobJson<'_>) -> String {
        let mut out = Vec::new();
        json.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn same(entry: &Entry) {
        let whole = text(JobJson::whole(entry));
        let object = serde_json::to_string(&job_object_whole(entry)).unwrap();
        assert_eq!(whole, object);
        let summary = text(JobJson::summary(entry));
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

    /// The escaping is serde_json's for every ASCII character at every
    /// place in a string longer than the stretches checked at once, and
    /// for non-ASCII text.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let check = |s: &str| {
            let mut out = Vec::new();
            escape(&mut out, s);
            let expected = serde_json::to_string(s).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected[1..expected.len() - 1],
                "{s:?}"
            );
        };
        for c in (0u8..128)
            .map(char::from)
            .chain(['\u{e9}', '\u{2028}', '\u{1f600}'])
        {
            for at in 0..40 {
                let mut s: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".into();
                s.insert(at, c);
                check(&s);
                check(&s[..at + c.len_utf8()]);
            }
        }
        check("");
        check("\"\"\"\\\\\n\u{0}\u{1f}\u{7f}");
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
        j.props.description = "d \u{1}\u{8}\u{c}\r\u{1f}\u{7f} \"q\"".into();
        j.created = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400 * 400);
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
