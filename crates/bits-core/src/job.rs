//! A job, its files and its properties.

use crate::error::JobError;
use crate::file::JobFile;
use crate::state::{next_state, Event, InvalidTransition, JobState};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// A job's identity: a UUID, shown lowercase without braces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        JobId(Uuid::new_v4())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim_start_matches('{').trim_end_matches('}')).map(JobId)
    }
}

/// A value that is not one of an enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    /// What was being parsed ("priority", "transfer type").
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static str,
}

/// BITS `TransferType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobType {
    /// Files come from a server to the local disk.
    Download,
    /// One local file goes to a server.
    Upload,
    /// One local file goes to a server, and the server's reply comes back.
    UploadReply,
}

impl JobType {
    /// The BitsJob name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Download => "Download",
            JobType::Upload => "Upload",
            JobType::UploadReply => "UploadReply",
        }
    }
}

impl FromStr for JobType {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "download" => Ok(JobType::Download),
            "upload" => Ok(JobType::Upload),
            "uploadreply" => Ok(JobType::UploadReply),
            _ => Err(ParseEnumError {
                what: "transfer type",
                value: s.to_string(),
                expected: "download, upload, upload-reply",
            }),
        }
    }
}

/// BITS job priority. `Foreground` competes for bandwidth; the three others
/// are background priorities. The derived order is the queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Runs at once, alongside other foreground jobs.
    Foreground,
    /// Highest background priority.
    High,
    /// Default background priority.
    Normal,
    /// Lowest background priority.
    Low,
}

impl Priority {
    /// The BitsJob name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Foreground => "Foreground",
            Priority::High => "High",
            Priority::Normal => "Normal",
            Priority::Low => "Low",
        }
    }

    /// Whether this is one of the three background priorities.
    pub fn is_background(self) -> bool {
        self != Priority::Foreground
    }
}

impl FromStr for Priority {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "foreground" => Ok(Priority::Foreground),
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(ParseEnumError {
                what: "priority",
                value: s.to_string(),
                expected: "foreground, high, normal, low",
            }),
        }
    }
}

/// The properties a user sets on a job (`start` and `set` options).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProps {
    /// DisplayName: not unique.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Priority.
    pub priority: Priority,
    /// MinimumRetryDelay: how long a job waits in TransientError before it is
    /// retried.
    pub min_retry_delay: Duration,
    /// NoProgressTimeout: how long a job may make no progress in
    /// TransientError before it is put in Error. Zero: every error is final.
    pub no_progress_timeout: Duration,
    /// MaxDownloadTime: the most time the job may spend Connecting or
    /// Transferring since its last Resume.
    pub max_download_time: Duration,
    /// Upload-reply jobs: where the reply is saved.
    pub reply_file: Option<PathBuf>,
    /// How many connections one download file may use at once (ranges of
    /// the same version fetched side by side). 1: front to back, as BITS
    /// does.
    pub connections: u32,
    /// Proxies, TLS and redirect checks, custom headers.
    pub connection: crate::connection::ConnectionProps,
    /// The command run when the job is Transferred or in Error.
    pub notify: crate::notify::NotifySettings,
    /// The job's own bandwidth cap, bytes per second, whatever its
    /// priority.
    pub max_bandwidth: Option<u64>,
}

impl JobProps {
    /// BITS' default DisplayName for jobs made by Start-BitsTransfer.
    pub const DEFAULT_DISPLAY_NAME: &'static str = "BITS Transfer";
    /// BITS' default MinimumRetryDelay: 10 minutes.
    pub const DEFAULT_MIN_RETRY_DELAY: Duration = Duration::from_secs(600);
    /// BITS' default NoProgressTimeout: 14 days.
    pub const DEFAULT_NO_PROGRESS_TIMEOUT: Duration = Duration::from_secs(1_209_600);
    /// BITS' default MaxDownloadTime: 90 days.
    pub const DEFAULT_MAX_DOWNLOAD_TIME: Duration = Duration::from_secs(7_776_000);
    /// The most connections a file may use: more rarely helps and starts to
    /// look like abuse to a server.
    pub const MAX_CONNECTIONS: u32 = 16;
}

impl Default for JobProps {
    fn default() -> Self {
        JobProps {
            display_name: Self::DEFAULT_DISPLAY_NAME.to_string(),
            description: String::new(),
            priority: Priority::Foreground,
            min_retry_delay: Self::DEFAULT_MIN_RETRY_DELAY,
            no_progress_timeout: Self::DEFAULT_NO_PROGRESS_TIMEOUT,
            max_download_time: Self::DEFAULT_MAX_DOWNLOAD_TIME,
            reply_file: None,
            connections: 1,
            connection: Default::default(),
            notify: Default::default(),
            max_bandwidth: None,
        }
    }
}

/// What identifies one version of a remote file. A resumed transfer asks the
/// server for the rest of *this* version; if the server's answer names
/// another version, the file restarts from zero instead of splicing.
///
/// Only strong validators may prove that two sets of bytes belong to one
/// version (RFC 9110 §8.8.1): a strong ETag, or a date known to be strong.
/// Weak ones can still show that a version *changed*.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileValidator {
    /// The ETag, quotes included, as the server sent it (`W/` for a weak
    /// one); for a local source, a tag of its own made from the file's
    /// identity.
    pub etag: Option<String>,
    /// The Last-Modified header (HTTP date), or the local source's mtime as
    /// `seconds.nanoseconds`.
    pub last_modified: Option<String>,
    /// Whether `last_modified` may prove a version: an HTTP date at least a
    /// second older than the response's `Date` (RFC 9110 §8.8.2.2: a file
    /// changed twice within one second keeps its date), or a local mtime at
    /// the file system's full resolution.
    #[serde(default)]
    pub last_modified_strong: bool,
    /// The full size of the file.
    pub size: Option<u64>,
}

impl FileValidator {
    /// No validator yet (a file not started).
    pub const NONE: FileValidator = FileValidator {
        etag: None,
        last_modified: None,
        last_modified_strong: false,
        size: None,
    };

    /// The ETag, if it is strong.
    pub fn strong_etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|t| !t.starts_with("W/"))
    }

    /// The date, if it is strong.
    pub fn strong_date(&self) -> Option<&str> {
        self.last_modified
            .as_deref()
            .filter(|_| self.last_modified_strong)
    }

    /// Whether bytes of this version can later be proven to belong to it:
    /// only then may a transfer be resumed.
    pub fn can_prove(&self) -> bool {
        self.strong_etag().is_some() || self.strong_date().is_some()
    }
}

/// Which file a path named when it was opened: device and inode. A file
/// put in its place later (by a temp cleaner, another user, a restore) has
/// another identity, so bytes are never trusted, and no file is renamed
/// into place, on the strength of a path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// A secret (a password): kept and used, never shown. `Debug` prints
/// `***`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An HTTP authentication scheme (BITS' BG_AUTH_SCHEME).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthScheme {
    /// RFC 7617.
    Basic,
    /// RFC 7616.
    Digest,
    /// Microsoft's NTLM.
    Ntlm,
    /// SPNEGO (Kerberos or NTLM).
    Negotiate,
}

impl AuthScheme {
    /// The name used on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::Basic => "basic",
            AuthScheme::Digest => "digest",
            AuthScheme::Ntlm => "ntlm",
            AuthScheme::Negotiate => "negotiate",
        }
    }
}

impl FromStr for AuthScheme {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "basic" => Ok(AuthScheme::Basic),
            "digest" => Ok(AuthScheme::Digest),
            "ntlm" => Ok(AuthScheme::Ntlm),
            "negotiate" => Ok(AuthScheme::Negotiate),
            _ => Err(ParseEnumError {
                what: "authentication scheme",
                value: s.to_string(),
                expected: "basic, digest, ntlm, negotiate",
            }),
        }
    }
}

/// A user name and password for a server or a proxy: a job's
/// `--credential`, or the userinfo of a file's URL
/// (`http://user:password@host/`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credential {
    /// The user name (may be `DOMAIN\\user`).
    pub user: String,
    /// The password.
    pub password: Secret,
    /// The scheme to use; `None`: the one the server's challenge offers.
    pub scheme: Option<AuthScheme>,
}

/// A half-open range `[start, end)` of a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range holds.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an upload stands on the server: the BITS Upload Protocol session
/// the bytes went to. Kept so that an upload resumes in the same session
/// after a crash or a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    /// BITS-Session-Id, once Create-Session succeeded.
    pub id: Option<String>,
    /// BITS-Host-Id: the server the session lives on (web-farm affinity).
    pub host_id: Option<String>,
    /// When to give up on `host_id` and go back to the job's URL
    /// (from BITS-Host-Id-Fallback-Timeout); `None`: never.
    pub host_fallback_at: Option<std::time::SystemTime>,
    /// Upload-reply: BITS-Reply-URL, once the server sent it.
    pub reply_url: Option<String>,
}

impl UploadSession {
    /// No session (a download, or an upload not yet started).
    pub const NONE: UploadSession = UploadSession {
        id: None,
        host_id: None,
        host_fallback_at: None,
        reply_url: None,
    };
}

/// A BITS job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// JobId.
    pub id: JobId,
    /// TransferType.
    pub job_type: JobType,
    /// User-set properties.
    pub props: JobProps,
    /// OwnerAccount: the user name of the owner.
    pub owner: String,
    /// The owner's uid.
    pub owner_uid: u32,
    /// JobState. Changed only by [`Job::apply`].
    state: JobState,
    /// The files, transferred in order.
    pub files: Vec<JobFile>,
    /// The error of the last failure; `Some` in Error and TransientError.
    pub error: Option<JobError>,
    /// CreationTime.
    pub created: SystemTime,
    /// ModificationTime.
    pub modified: SystemTime,
    /// TransferCompletionTime: when the job became Transferred.
    pub transfer_completed: Option<SystemTime>,
    /// TransientErrorCount.
    pub transient_error_count: u32,
    /// In TransientError: when the job is retried.
    pub retry_at: Option<SystemTime>,
    /// Since when the job has failed without progress (the NoProgressTimeout
    /// clock); `None` after any progress.
    pub no_progress_since: Option<SystemTime>,
    /// Time spent Connecting or Transferring since the last Resume, counted
    /// against MaxDownloadTime.
    pub active_time: Duration,
    /// The servers' credentials (`--credential`): sent to the origins of the
    /// job's files, never elsewhere. A file's own URL userinfo comes first.
    pub server_credential: Option<Credential>,
    /// The proxies' credentials (`--proxy-credential`).
    pub proxy_credential: Option<Credential>,
    /// The proxy the last request went through (`None`: directly).
    pub proxy_used: Option<String>,
}

impl Job {
    /// A new job, Suspended, with no files.
    pub fn new(
        id: JobId,
        job_type: JobType,
        props: JobProps,
        owner: String,
        owner_uid: u32,
        now: SystemTime,
    ) -> Self {
        Job {
            id,
            job_type,
            props,
            owner,
            owner_uid,
            state: JobState::Suspended,
            files: Vec::new(),
            error: None,
            created: now,
            modified: now,
            transfer_completed: None,
            transient_error_count: 0,
            retry_at: None,
            no_progress_since: None,
            active_time: Duration::ZERO,
            server_credential: None,
            proxy_credential: None,
            proxy_used: None,
        }
    }

    /// Rebuilds a job read back from storage, in the state it was stored in.
    pub fn restore(mut job: Job, state: JobState) -> Self {
        job.state = state;
        job
    }

    /// JobState.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// Whether every file is on disk.
    pub fn all_files_complete(&self) -> bool {
        self.files.iter().all(|f| f.complete)
    }

    /// The first file still to transfer.
    pub fn next_file(&self) -> Option<usize> {
        self.files.iter().position(|f| !f.complete)
    }

    /// BytesTotal: `None` while any file's size is unknown.
    pub fn bytes_total(&self) -> Option<u64> {
        self.files.iter().map(|f| f.bytes_total).sum()
    }

    /// BytesTransferred.
    pub fn bytes_transferred(&self) -> u64 {
        self.files.iter().map(|f| f.bytes_transferred).sum()
    }

    /// FilesTransferred.
    pub fn files_transferred(&self) -> usize {
        self.files.iter().filter(|f| f.complete).count()
    }

    /// Applies an event: the only way a job changes state. Also keeps the
    /// fields that belong to states (error, retry time, counters) in step.
    pub fn apply(&mut self, event: Event, now: SystemTime) -> Result<JobState, InvalidTransition> {
        let to = next_state(self.state, &event, self.job_type, &self.files)?;
        self.enter(to, event, now);
        Ok(to)
    }

    /// [`Job::apply`] on a copy of the job's row (see [`Job::row`]) whose
    /// files are `files`: the daemon decides a transition on the row alone
    /// and publishes it once it is saved, while the files stay where they
    /// are.
    pub fn apply_given(
        &mut self,
        event: Event,
        now: SystemTime,
        files: &[JobFile],
    ) -> Result<JobState, InvalidTransition> {
        let to = next_state(self.state, &event, self.job_type, files)?;
        self.enter(to, event, now);
        Ok(to)
    }

    /// The job without its files: what the store's job row holds.
    pub fn row(&self) -> Job {
        Job {
            id: self.id,
            job_type: self.job_type,
            props: self.props.clone(),
            owner: self.owner.clone(),
            owner_uid: self.owner_uid,
            state: self.state,
            files: Vec::new(),
            error: self.error.clone(),
            created: self.created,
            modified: self.modified,
            transfer_completed: self.transfer_completed,
            transient_error_count: self.transient_error_count,
            retry_at: self.retry_at,
            no_progress_since: self.no_progress_since,
            active_time: self.active_time,
            server_credential: self.server_credential.clone(),
            proxy_credential: self.proxy_credential.clone(),
            proxy_used: self.proxy_used.clone(),
        }
    }

    /// Takes every field but the files from `row`.
    pub fn set_row(&mut self, row: Job) {
        let files = std::mem::take(&mut self.files);
        *self = Job { files, ..row };
    }

    /// The state `to` that `event` led to, with the fields that go with it.
    fn enter(&mut self, to: JobState, event: Event, now: SystemTime) {
        match event {
            Event::Resume => {
                if to != self.state {
                    self.error = None;
                    self.retry_at = None;
                    self.no_progress_since = None;
                    // MaxDownloadTime counts from the last Resume.
                    self.active_time = Duration::ZERO;
                }
            }
            Event::Suspend | Event::Cancel | Event::Complete => {
                // The error belongs to the Error and TransientError states;
                // leaving them clears it.
                self.error = None;
                self.retry_at = None;
            }
            Event::Start | Event::Connected | Event::RetryDue | Event::Interrupted => {
                self.error = None;
                self.retry_at = None;
            }
            Event::AllFilesTransferred => {
                self.error = None;
                self.retry_at = None;
                self.no_progress_since = None;
                self.transfer_completed = Some(now);
            }
            Event::TransientFailure { error, retry_at } => {
                self.error = Some(error);
                self.retry_at = Some(retry_at);
                self.transient_error_count += 1;
                self.no_progress_since.get_or_insert(now);
            }
            Event::FatalFailure { error } | Event::FileLost { error } => {
                self.error = Some(error);
                self.retry_at = None;
            }
        }
        self.state = to;
        self.modified = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_prints_lowercase_without_braces() {
        let id: JobId = "{5F0C1B2A-0000-4000-8000-000000000001}".parse().unwrap();
        assert_eq!(id.to_string(), "5f0c1b2a-0000-4000-8000-000000000001");
    }

    #[test]
    fn priority_parses_case_insensitively() {
        assert_eq!("LOW".parse::<Priority>().unwrap(), Priority::Low);
        assert!("urgent".parse::<Priority>().is_err());
        assert!(Priority::Foreground < Priority::Low);
    }
}
