//! Requests, responses and the JSON job object.

use serde::{Deserialize, Serialize};

/// A JOB argument as the user typed it: a JobId, a unique prefix of one (at
/// least 4 characters), or a DisplayName that names exactly one job. The
/// daemon resolves it.
pub type JobRef = String;

/// One file to add: where from, where to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// An http(s) URL, a file:// URL or an absolute local path.
    pub remote: String,
    /// The absolute destination path.
    pub local: String,
}

/// Properties of a job; `None` leaves a property as it is (or at its default
/// when creating).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProperties {
    /// DisplayName.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Priority: foreground, high, normal or low.
    pub priority: Option<String>,
    /// MinimumRetryDelay, seconds.
    pub retry_interval: Option<u64>,
    /// NoProgressTimeout, seconds.
    pub retry_timeout: Option<u64>,
    /// MaxDownloadTime, seconds.
    pub max_download_time: Option<u64>,
    /// Where an upload-reply job saves the reply.
    pub reply_file: Option<String>,
    /// Connections one download file may use at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// The servers' credentials (replacing any the job has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialSpec>,
    /// The proxies' credentials (replacing any the job has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_credential: Option<CredentialSpec>,
    /// Remove the job's credentials, server and proxy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_credentials: bool,
    /// Make the caller the job's owner (administrators, system daemon):
    /// the job's credentials and notification command are dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub take_ownership: bool,
    /// Proxies, security flags, extra CA, custom headers.
    #[serde(default, flatten)]
    pub connection: ConnectionSpec,
    /// The command run when the job becomes Transferred or Error (empty:
    /// none any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_cmd: Option<String>,
    /// When it runs: comma-separated NotifyFlags names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_flags: Option<String>,
    /// The job's own bandwidth cap, bytes per second; 0: none any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
}

/// How a job reaches its servers, as requested (each `None`: unchanged,
/// or the default for a new job).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConnectionSpec {
    /// system-default, no-proxy, auto-detect or override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_usage: Option<String>,
    /// With override: the proxies, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_list: Option<Vec<String>>,
    /// With override: the hosts reached directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_bypass: Option<Vec<String>>,
    /// With system-default: the requesting command's proxy variables, as
    /// name and value, without userinfo (the client moves it to the proxy
    /// credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_environment: Option<Vec<(String, String)>>,
    /// Comma-separated security flag names (`none` clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_flags: Option<String>,
    /// A PEM file of authorities to trust besides the system's (absolute;
    /// empty: none any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Custom headers, `Name: value` each (replacing the job's; empty:
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Make the custom headers write-only (cannot be undone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headers_write_only: bool,
}

/// A user name, its password and the scheme to use them with (`None`:
/// the one the server's challenge offers). `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSpec {
    /// The user name (`DOMAIN\\user` allowed).
    pub user: String,
    /// The password.
    pub password: String,
    /// basic, digest, ntlm or negotiate.
    #[serde(default)]
    pub scheme: Option<String>,
}

impl std::fmt::Debug for CredentialSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSpec")
            .field("user", &self.user)
            .field("password", &"***")
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// Creates a job with its files, atomically: if any file is refused, no job
/// is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateJob {
    /// download, upload or upload-reply.
    pub transfer_type: String,
    /// The job's properties.
    pub properties: JobProperties,
    /// The files, in transfer order.
    pub files: Vec<FileSpec>,
    /// Resume the job once created (else it stays Suspended).
    pub resume: bool,
    /// Answer without the job's `FileList` (it stays empty): a client that
    /// only shows the JobId need not receive thousands of files.
    #[serde(default)]
    pub summary: bool,
}

/// A request from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// First request of every connection.
    Hello {
        /// The client's [`crate::PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// Create a job.
    Create(CreateJob),
    /// Add files to a job.
    AddFiles {
        /// The job.
        job: JobRef,
        /// The files, appended in order.
        files: Vec<FileSpec>,
    },
    /// Change properties.
    Set {
        /// The job.
        job: JobRef,
        /// What to change.
        properties: JobProperties,
    },
    /// Suspend-BitsTransfer.
    Suspend {
        /// The job.
        job: JobRef,
    },
    /// Resume-BitsTransfer.
    Resume {
        /// The job.
        job: JobRef,
    },
    /// Remove-BitsTransfer: cancel and delete the files.
    Cancel {
        /// The job.
        job: JobRef,
    },
    /// Complete-BitsTransfer: make the files appear.
    Complete {
        /// The job.
        job: JobRef,
        /// Answer without the job's `FileList` (see [`CreateJob::summary`]).
        #[serde(default)]
        summary: bool,
    },
    /// Get-BitsTransfer. Answered a page at a time ([`Response::Jobs`]'s
    /// `next`), so that no answer outgrows a frame whatever the jobs hold.
    List {
        /// Every user's jobs (root only).
        all_users: bool,
        /// Only jobs whose DisplayName matches this wildcard pattern.
        name: Option<String>,
        /// Leave every `FileList` out (it stays empty).
        #[serde(default)]
        summary: bool,
        /// Continue after this job (the `next` of the previous page).
        #[serde(default)]
        after: Option<String>,
    },
    /// Every page List would give, streamed: the daemon answers with pages
    /// of [`Response::Jobs`] one after the other, without further
    /// requests, each but the last with `next` set. It writes the next
    /// page while the client reads this one.
    ListAll {
        /// Every user's jobs (root only).
        all_users: bool,
        /// Only jobs whose DisplayName matches this wildcard pattern.
        name: Option<String>,
        /// Leave every `FileList` out (it stays empty).
        #[serde(default)]
        summary: bool,
    },
    /// One job in full: its files from index `files_from` on, as many as
    /// fit one answer (the job object's `FileListNext` says where to go on).
    Info {
        /// The job.
        job: JobRef,
        /// The first file to include.
        #[serde(default)]
        files_from: u64,
    },
    /// Waits until the job changes after `revision`, or `timeout_ms` passes,
    /// then answers [`Response::Watch`]. Lets clients follow a job without
    /// polling.
    Watch {
        /// The job (a full JobId is best: a name may stop being unique).
        job: JobRef,
        /// The revision the client has seen; 0 answers at once.
        after_revision: u64,
        /// The longest wait.
        timeout_ms: u64,
        /// Leave `FileList` out of the answer (it stays empty): a client
        /// that follows totals need not receive thousands of files at every
        /// step.
        #[serde(default)]
        summary: bool,
    },
    /// The daemon-wide policy, after applying `change` if given (saved
    /// before it is answered).
    Policy {
        /// What to change; `None` only shows it.
        #[serde(default)]
        change: Option<PolicyChange>,
    },
}

/// Changes to the daemon-wide policy; each `None` is left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    /// All background transfers together, bytes per second; 0: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_background_bandwidth: Option<u64>,
    /// A weekly schedule of caps; empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_schedule: Option<String>,
    /// Background jobs that transfer at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_jobs: Option<u32>,
    /// Jobs one user may hold (not Acknowledged or Cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs_per_user: Option<u64>,
    /// Files one job may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files_per_job: Option<u64>,
}

/// The daemon-wide policy as `bits policy show --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyObject {
    /// All background transfers together, bytes per second (`null`: none).
    pub max_background_bandwidth: Option<u64>,
    /// The weekly schedule of caps, as written (`null`: none).
    pub bandwidth_schedule: Option<String>,
    /// Background jobs that transfer at once.
    pub background_jobs: u32,
    /// Jobs one user may hold.
    pub max_jobs_per_user: u64,
    /// Files one job may hold.
    pub max_files_per_job: u64,
    /// The cap background transfers are held to now, bytes per second
    /// (`null`: none).
    pub background_bandwidth_now: Option<u64>,
    /// Whether the schedule blocks background jobs now.
    pub background_blocked: bool,
    /// When the schedule's next window starts (RFC 3339), if there is one.
    pub next_schedule_change: Option<String>,
}

impl Request {
    /// The request's name, for logs (which must not show its arguments:
    /// URLs may carry credentials).
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Create(_) => "create",
            Request::AddFiles { .. } => "add_files",
            Request::Set { .. } => "set",
            Request::Suspend { .. } => "suspend",
            Request::Resume { .. } => "resume",
            Request::Cancel { .. } => "cancel",
            Request::Complete { .. } => "complete",
            Request::List { .. } | Request::ListAll { .. } => "list",
            Request::Info { .. } => "info",
            Request::Watch { .. } => "watch",
            Request::Policy { .. } => "policy",
        }
    }
}

/// What kind of failure an [`ApiError`] is; decides the CLI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request's arguments are wrong (exit 2).
    BadRequest,
    /// No such job, or the name matches several (exit 4).
    NotFound,
    /// The job's state does not allow the operation (exit 4).
    InvalidState,
    /// The caller may not do this (exit 4).
    Denied,
    /// The protocol versions differ (exit 3).
    Version,
    /// Something failed inside the daemon (exit 1).
    Internal,
    /// The daemon is stopping; a repeatable request may be sent again to the
    /// next daemon (exit 3 if none comes).
    Stopping,
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// A sentence for people, naming the argument at fault.
    pub message: String,
    /// The BITS code, when there is one (`0x80200002`).
    pub code: Option<String>,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// Answer to Hello.
    Hello {
        /// The daemon's protocol version.
        protocol: u32,
        /// The daemon's program version.
        version: String,
        /// The daemon's process id.
        pid: u32,
    },
    /// One job.
    Job {
        /// The job.
        job: Box<JobObject>,
    },
    /// Several jobs.
    Jobs {
        /// The jobs.
        jobs: Vec<JobObject>,
        /// More jobs follow: ask again with `after` set to this.
        #[serde(default)]
        next: Option<String>,
    },
    /// Answer to Policy.
    Policy {
        /// The policy in force.
        policy: Box<PolicyObject>,
    },
    /// Answer to Watch.
    Watch {
        /// Pass this as `after_revision` next time.
        revision: u64,
        /// The job as it is now.
        job: Box<JobObject>,
    },
    /// The request failed.
    Error(ApiError),
}

/// One file of the JSON job object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileObject {
    /// Where the file comes from.
    pub remote_name: String,
    /// Where it goes.
    pub local_name: String,
    /// Its size, `null` while unknown.
    pub bytes_total: Option<u64>,
    /// Bytes on disk.
    pub bytes_transferred: u64,
    /// Whether every byte is on disk.
    pub is_transfer_complete: bool,
    /// The temporary file the bytes are written to.
    pub temporary_name: String,
}

/// The JSON job object of the contract: keys are BitsJob property names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobObject {
    /// JobId, lowercase, no braces.
    pub job_id: String,
    /// DisplayName.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Download, Upload or UploadReply.
    pub transfer_type: String,
    /// One of the nine states.
    pub job_state: String,
    /// Foreground, High, Normal or Low.
    pub priority: String,
    /// The owner's user name.
    pub owner_account: String,
    /// `null` while any file's size is unknown.
    pub bytes_total: Option<u64>,
    /// Bytes on disk.
    pub bytes_transferred: u64,
    /// Number of files.
    pub files_total: u64,
    /// Files completely transferred.
    pub files_transferred: u64,
    /// RFC 3339, UTC.
    pub creation_time: String,
    /// RFC 3339, UTC.
    pub modification_time: String,
    /// RFC 3339, UTC, once Transferred.
    pub transfer_completion_time: Option<String>,
    /// Transient errors so far.
    pub transient_error_count: u64,
    /// In TransientError: when the job is tried again (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<String>,
    /// In TransientError: when the job goes to Error if it makes no
    /// progress before (NoProgressTimeout after its last progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_time: Option<String>,
    /// Seconds.
    pub minimum_retry_delay: u64,
    /// Seconds.
    pub no_progress_timeout: u64,
    /// Seconds.
    pub max_download_time: u64,
    /// Connections one download file may use at once (not a BITS
    /// property: bits fetches ranges side by side when this is above 1).
    #[serde(default = "one")]
    pub connections: u32,
    /// On Error or TransientError: where it happened.
    pub error_context: Option<String>,
    /// On Error or TransientError: the BITS code, `0x80190194`.
    pub error_code: Option<String>,
    /// On Error or TransientError: a sentence for people.
    pub error_description: Option<String>,
    /// The files.
    pub file_list: Vec<FileObject>,
    /// The daemon sent only part of `FileList`: the rest starts at this
    /// index (ask with [`Request::Info`]'s `files_from`). The client fills
    /// the list in before showing it, so this never reaches a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_list_next: Option<u64>,
    /// The answer to Complete: what was kept and what was discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_result: Option<CompleteResult>,
    /// Upload-reply jobs: where the server's reply is saved (it appears
    /// there on Complete). Absent for other jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_file_name: Option<String>,
    /// How the job reaches its servers.
    #[serde(default, flatten)]
    pub connection: ConnectionObject,
    /// NotifyCmdLine: the command run when the job becomes Transferred or
    /// Error.
    #[serde(default)]
    pub notify_cmd_line: Option<String>,
    /// NotifyFlags, by name.
    #[serde(default)]
    pub notify_flags: Vec<String>,
    /// The job's own bandwidth cap, bytes per second (`null`: none).
    #[serde(default)]
    pub max_bandwidth: Option<u64>,
}

/// The connection properties of a job object (BITS' names where BITS has
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionObject {
    /// SystemDefault, NoProxy, AutoDetect or Override.
    #[serde(default)]
    pub proxy_usage: String,
    /// With Override: the proxies, in order.
    #[serde(default)]
    pub proxy_list: Vec<String>,
    /// With Override: the hosts reached directly.
    #[serde(default)]
    pub proxy_bypass: Vec<String>,
    /// The proxy the job's last transfer went through (`null`: directly,
    /// or none yet).
    #[serde(default)]
    pub proxy_used: Option<String>,
    /// The security flags set, by name.
    #[serde(default)]
    pub security_flags: Vec<String>,
    /// The extra certificate authority file (`--ca-cert`).
    #[serde(default)]
    pub ca_cert_file: Option<String>,
    /// The custom headers, `Name: value`; `null` when write-only.
    #[serde(default)]
    pub custom_headers: Option<Vec<String>>,
    /// CustomHeadersWriteOnly.
    #[serde(default)]
    pub custom_headers_write_only: bool,
}

fn one() -> u32 {
    1
}

/// What Complete did with a job's files (Complete-BitsTransfer's result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteResult {
    /// `0x00000000` (S_OK) when every file was kept, `0x00200017`
    /// (BG_S_PARTIAL_COMPLETE) when some were discarded.
    pub code: String,
    /// The files that appeared under their names.
    pub kept: Vec<String>,
    /// The files that were not fully transferred: their partial data was
    /// deleted.
    pub discarded: Vec<String>,
}
