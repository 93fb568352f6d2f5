//! The command line, declared with clap's derive API.
//!
//! This module only describes what the user may type; turning it into
//! [`bits_proto::Request`]s happens in `commands/`, so parsing and the
//! requests it leads to can change independently. The `///` comments on the
//! items below are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// bits: a Background Intelligent Transfer Service for Linux.
///
/// Every command except `serve` talks to the bitsd daemon over a local socket
/// (starting it when nobody answers, unless BITS_NO_AUTOSTART=1).
#[derive(Debug, Parser)]
#[command(name = "bits", version, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Talk to the system daemon, which serves every user of the machine
    /// (its socket: BITS_SYSTEM_SOCKET, else /run/bits/bits.sock). Without
    /// it, bits talks to the user's own daemon when BITS_HOME is set or that
    /// daemon's socket exists, else to the system daemon when it runs, else
    /// to the user's own daemon, started on demand.
    #[arg(long, global = true, env = "BITS_SYSTEM", value_parser = clap::builder::FalseyValueParser::new())]
    pub system: bool,

    /// Run the command on another machine, over ssh ([USER@]HOST; ssh's
    /// keys, agent and config apply), with `bits` there: its jobs go on
    /// after the connection closes. Paths are that machine's. Comes before
    /// the command. BITS_SSH: the ssh command (default ssh);
    /// BITS_REMOTE_BITS: the program there (default bits).
    #[arg(long, value_name = "[USER@]HOST")]
    pub host: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each has its own file under `commands/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a job, add files and resume it (Start-BitsTransfer).
    ///
    /// Synchronous by default: shows progress on a terminal, waits, completes
    /// the job on success (the files appear) and exits 0. When the job lands in
    /// Error it prints the error and exits 1, leaving the job in place.
    #[command(
        override_usage = "bits start [OPTIONS] <SOURCE>... <DESTINATION>\n       \
                                bits start [OPTIONS] <SOURCE>\n       \
                                bits start [OPTIONS] --from-csv <FILE>"
    )]
    Start(StartArgs),
    /// List your jobs that are not Acknowledged or Cancelled (Get-BitsTransfer).
    List(ListArgs),
    /// Show one job in full, files included.
    Info(InfoArgs),
    /// Add files to a job (Add-BitsFile).
    #[command(
        override_usage = "bits add [OPTIONS] <JOB> <SOURCE>... <DESTINATION>\n       \
                                bits add [OPTIONS] <JOB> --from-csv <FILE>"
    )]
    Add(AddArgs),
    /// Change job properties (Set-BitsTransfer).
    Set(SetArgs),
    /// Suspend a job (Suspend-BitsTransfer).
    Suspend(JobArgs),
    /// Resume a job (Resume-BitsTransfer); waits for it like `start`.
    Resume(ResumeArgs),
    /// Make a job's transferred files appear (Complete-BitsTransfer).
    Complete(JobArgs),
    /// Cancel a job and delete its files (Remove-BitsTransfer).
    #[command(visible_alias = "cancel")]
    Remove(JobArgs),
    /// Block until a job is Transferred, Acknowledged, Error or Cancelled.
    ///
    /// Exits 0 for Transferred or Acknowledged, 1 for Error or Cancelled,
    /// 4 when the job is Suspended, 5 when --timeout runs out.
    Wait(WaitArgs),
    /// Live view of the jobs (bitsadmin /monitor); Ctrl-C to quit.
    Monitor(MonitorArgs),
    /// Print a line per event of a job (or of every job): each change of
    /// state at once, progress at most every 500 ms; --json for programs.
    ///
    /// Follows the job across a restart of bitsd. With a JOB, ends (exit 0)
    /// when it is Acknowledged, Cancelled or removed; without, runs until
    /// Ctrl-C.
    Watch(WatchArgs),
    /// The daemon-wide transfer policy (BITS' Group Policy settings): caps
    /// and schedules for background jobs, quotas. Kept across restarts.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve a directory over HTTP with HEAD, Range, ETag and Last-Modified;
    /// with --upload, also accept BITS Upload Protocol uploads into it.
    Serve(ServeArgs),
    /// The Windows command names: `bits compat install` makes
    /// Start-BitsTransfer, Get-BitsTransfer, Add-BitsFile, Set-BitsTransfer,
    /// Suspend-BitsTransfer, Resume-BitsTransfer, Complete-BitsTransfer,
    /// Remove-BitsTransfer and bitsadmin links to bits, which acts by the
    /// name it is called with (`bits Start-BitsTransfer …` works without
    /// them).
    #[command(subcommand)]
    Compat(CompatCommand),
    /// Print the shell completions of bits: `bits completions bash >
    /// ~/.local/share/bash-completion/completions/bits` (the Debian package
    /// installs them).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// `bits compat`.
#[derive(Debug, Subcommand)]
pub enum CompatCommand {
    /// Install the command names as links to this bits.
    Install {
        /// Where (default: the directory of this bits).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace files of those names that are not links to bits.
        #[arg(long)]
        force: bool,
    },
}

/// TransferType of a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransferType {
    /// Files come from a server (or a local path) to local files.
    Download,
    /// One local file goes to a BITS upload server.
    Upload,
    /// As upload, and the server's reply is saved (see --reply-file).
    UploadReply,
}

impl TransferType {
    /// The name the protocol uses.
    pub fn as_protocol(self) -> &'static str {
        match self {
            TransferType::Download => "download",
            TransferType::Upload => "upload",
            TransferType::UploadReply => "upload-reply",
        }
    }

    /// Whether the job sends a local file to a server.
    pub fn is_upload(self) -> bool {
        !matches!(self, TransferType::Download)
    }
}

/// An authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthScheme {
    /// RFC 7617: the password is sent (use it over https).
    Basic,
    /// RFC 7616 (SHA-256 or MD5): the password is never sent.
    Digest,
    /// Not supported (refused with a message).
    Ntlm,
    /// Not supported (refused with a message).
    Negotiate,
}

impl AuthScheme {
    /// The name the protocol uses.
    pub fn as_protocol(self) -> &'static str {
        match self {
            AuthScheme::Basic => "basic",
            AuthScheme::Digest => "digest",
            AuthScheme::Ntlm => "ntlm",
            AuthScheme::Negotiate => "negotiate",
        }
    }
}

/// Priority of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Priority {
    /// Transfers at once, in the foreground.
    Foreground,
    /// Background, first.
    High,
    /// Background.
    Normal,
    /// Background, last.
    Low,
}

impl Priority {
    /// The name the protocol uses.
    pub fn as_protocol(self) -> &'static str {
        match self {
            Priority::Foreground => "foreground",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// Job properties shared by `start` and `set`.
#[derive(Debug, Clone, Default, Args)]
pub struct PropertyArgs {
    /// DisplayName [default for new jobs: BITS Transfer].
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,

    /// Description [default for new jobs: empty].
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    /// Priority [default for new jobs: foreground].
    #[arg(long, value_enum)]
    pub priority: Option<Priority>,

    /// MinimumRetryDelay: seconds between retries after a transient error
    /// [default for new jobs: 600].
    #[arg(long, value_name = "SECONDS")]
    pub retry_interval: Option<u64>,

    /// NoProgressTimeout: seconds without progress before a transient error
    /// becomes an Error [default for new jobs: 1209600].
    #[arg(long, value_name = "SECONDS")]
    pub retry_timeout: Option<u64>,

    /// MaxDownloadTime: seconds the job may spend transferring
    /// [default for new jobs: 7776000].
    #[arg(long, value_name = "SECONDS")]
    pub max_download_time: Option<u64>,

    /// For upload-reply jobs: where the server's reply is saved.
    #[arg(long, value_name = "PATH")]
    pub reply_file: Option<PathBuf>,

    /// Downloads: connections one file may use at once, each fetching a
    /// range of the same version, when the server allows ranges; helps where
    /// a server limits each connection (1 to 16) [default for new jobs: 1].
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,

    /// Server credentials: the user name (DOMAIN\\user allowed). The password
    /// is asked on the terminal, or read from standard input with
    /// --password-stdin. Kept with the job, never shown, sent only to the
    /// job's servers.
    #[arg(long, value_name = "USER")]
    pub credential: Option<String>,

    /// The scheme for --credential [default: the one the server's challenge
    /// offers, digest before basic].
    #[arg(long, value_enum, requires = "credential")]
    pub auth: Option<AuthScheme>,

    /// Proxy credentials: the user name; the password as for --credential
    /// (with --password-stdin, the line after --credential's).
    #[arg(long, value_name = "USER")]
    pub proxy_credential: Option<String>,

    /// The scheme for --proxy-credential [default: the proxy's challenge].
    #[arg(long, value_enum, requires = "proxy_credential")]
    pub proxy_auth: Option<AuthScheme>,

    /// Read the passwords from standard input, one line each: first
    /// --credential's, then --proxy-credential's.
    #[arg(long)]
    pub password_stdin: bool,

    /// ProxyUsage: system-default (this command's http_proxy, https_proxy,
    /// all_proxy, no_proxy, kept with the job), no-proxy, auto-detect (no
    /// WPAD/PAC here: as system-default), override (--proxy-list)
    /// [default for new jobs: system-default].
    #[arg(long, value_enum)]
    pub proxy_usage: Option<ProxyUsage>,

    /// With --proxy-usage override: proxies tried in order (host, host:port
    /// or http(s)://host:port); an unreachable one moves on to the next.
    #[arg(long, value_name = "URL", value_delimiter = ',', num_args = 1..)]
    pub proxy_list: Option<Vec<String>>,

    /// With --proxy-usage override: hosts reached directly (<local>: dotless
    /// names and loopback; .example.com: a domain; addresses, a.b.c.d/n).
    #[arg(long, value_name = "HOST", value_delimiter = ',', num_args = 1..)]
    pub proxy_bypass: Option<Vec<String>>,

    /// Loosen one check each (comma-separated): ignore-cert-cn-invalid,
    /// ignore-cert-date-invalid, ignore-unknown-ca, ignore-cert-wrong-usage,
    /// redirect-allow-report, redirect-disallow, redirect-allow-https-to-http;
    /// `none` clears them.
    #[arg(long, value_name = "FLAG,...")]
    pub security_flags: Option<String>,

    /// Also trust the certificate authorities of this PEM file for the
    /// job's servers (`set --ca-cert ''` removes it).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// A custom request header 'Name: value', sent to the job's servers;
    /// repeat for more (with `set`: replaces them all).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// The custom headers cannot be read back (`info` shows none). Cannot
    /// be undone.
    #[arg(long)]
    pub header_write_only: bool,

    /// Run this with `sh -c` when the job becomes Transferred or Error
    /// (see --notify-flags), with BITS_JOB_ID and BITS_JOB_STATE set; a
    /// command that fails runs again after the retry delay while the job is
    /// neither completed nor cancelled. Its output goes to the daemon's
    /// log. `set --notify-cmd ''` removes it.
    #[arg(long, value_name = "CMD")]
    pub notify_cmd: Option<String>,

    /// When --notify-cmd runs: transferred, error (both by default),
    /// disable.
    #[arg(long, value_name = "FLAG,...")]
    pub notify_flags: Option<String>,

    /// A bandwidth cap for this job alone, whatever its priority: bytes per
    /// second, suffixes k, M, G (x1000); `off` removes it. Applies to a
    /// running transfer at once.
    #[arg(long, value_name = "RATE|off", value_parser = parse_job_rate)]
    pub max_bandwidth: Option<u64>,
}

/// ProxyUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyUsage {
    /// The proxy environment of the command that creates (or sets) the job.
    SystemDefault,
    /// Every server directly.
    NoProxy,
    /// As system-default (bits has no WPAD/PAC discovery), and says so.
    AutoDetect,
    /// --proxy-list and --proxy-bypass.
    Override,
}

impl ProxyUsage {
    /// The name the protocol uses.
    pub fn as_protocol(self) -> &'static str {
        match self {
            ProxyUsage::SystemDefault => "system-default",
            ProxyUsage::NoProxy => "no-proxy",
            ProxyUsage::AutoDetect => "auto-detect",
            ProxyUsage::Override => "override",
        }
    }
}

impl PropertyArgs {
    /// Whether no property was given.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.retry_interval.is_none()
            && self.retry_timeout.is_none()
            && self.max_download_time.is_none()
            && self.reply_file.is_none()
            && self.connections.is_none()
            && self.credential.is_none()
            && self.proxy_credential.is_none()
            && self.proxy_usage.is_none()
            && self.proxy_list.is_none()
            && self.proxy_bypass.is_none()
            && self.security_flags.is_none()
            && self.ca_cert.is_none()
            && self.headers.is_empty()
            && !self.header_write_only
            && self.notify_cmd.is_none()
            && self.notify_flags.is_none()
            && self.max_bandwidth.is_none()
    }
}

/// `bits start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The sources, then the destination. Sources are http(s):// URLs,
    /// file:// URLs or local paths (which may hold the wildcards *, ? and
    /// [...]); several sources or a wildcard need a destination directory.
    /// One download source alone goes into the current directory. For
    /// uploads: the local file, then the URL.
    #[arg(
        value_name = "SOURCE",
        required_unless_present = "from_csv",
        conflicts_with = "from_csv"
    )]
    pub paths: Vec<String>,

    /// Return at once, printing the JobId (the job object with --json).
    #[arg(long = "async")]
    pub asynchronous: bool,

    /// Create the job Suspended and return, printing the JobId.
    #[arg(long)]
    pub suspended: bool,

    /// TransferType.
    #[arg(long = "type", value_enum, default_value_t = TransferType::Download)]
    pub transfer_type: TransferType,

    /// The job's properties.
    #[command(flatten)]
    pub properties: PropertyArgs,

    /// Read the files from a CSV file (`-` for stdin) whose header row names
    /// `Source` and `Destination` columns. Uploads make one job per row.
    #[arg(long, value_name = "FILE")]
    pub from_csv: Option<String>,

    /// Print the job object as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bits list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Every user's jobs (root only).
    #[arg(long)]
    pub all_users: bool,

    /// Only jobs whose DisplayName matches this wildcard pattern.
    #[arg(long, value_name = "PATTERN")]
    pub name: Option<String>,

    /// Print a JSON array of job objects.
    #[arg(long)]
    pub json: bool,
}

/// `bits info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// Print the job object as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bits add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// The sources, then the destination, as for `bits start`.
    #[arg(
        value_name = "SOURCE",
        required_unless_present = "from_csv",
        conflicts_with = "from_csv"
    )]
    pub paths: Vec<String>,

    /// Read the files from a CSV file (`-` for stdin) with `Source` and
    /// `Destination` columns.
    #[arg(long, value_name = "FILE")]
    pub from_csv: Option<String>,

    /// Print the job object as JSON afterwards.
    #[arg(long)]
    pub json: bool,
}

/// `bits set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// What to change (at least one).
    #[command(flatten)]
    pub properties: PropertyArgs,

    /// Remove the job's server and proxy credentials (before any new ones
    /// given with it are set).
    #[arg(long)]
    pub clear_credentials: bool,

    /// Make yourself the job's owner (root or an administrator, system
    /// daemon); its credentials and notification command are dropped, as
    /// BITS does.
    #[arg(long)]
    pub take_ownership: bool,

    /// Print the job object as JSON afterwards.
    #[arg(long)]
    pub json: bool,
}

/// A command that takes one job: `suspend`, `complete`, `remove`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// Print the job object as JSON afterwards.
    #[arg(long)]
    pub json: bool,
}

/// `bits resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// Return at once instead of waiting for the job.
    #[arg(long = "async")]
    pub asynchronous: bool,

    /// Print the job object as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bits wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a DisplayName.
    #[arg(value_name = "JOB")]
    pub job: String,

    /// Give up after this many seconds (exit 5). Fractions are allowed.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,

    /// Print the job object as JSON when the wait ends with the job
    /// Transferred, Acknowledged or in Error.
    #[arg(long)]
    pub json: bool,
}

/// `bits monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Seconds between refreshes. Fractions are allowed.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    pub refresh: Duration,

    /// Every user's jobs (root only).
    #[arg(long)]
    pub all_users: bool,

    /// One JSON array of job objects per refresh, a line each (no screen
    /// drawing).
    #[arg(long)]
    pub json: bool,
}

/// `bits policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the policy and what it means now.
    Show(PolicyShowArgs),
    /// Change settings; running transfers follow at once.
    Set(PolicySetArgs),
}

/// `bits policy show`.
#[derive(Debug, Args)]
pub struct PolicyShowArgs {
    /// Print the policy as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bits policy set`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("setting").multiple(true).required(true)))]
pub struct PolicySetArgs {
    /// All background jobs together at most RATE: bytes per second,
    /// suffixes k, M, G (x1000); `off` removes the cap.
    #[arg(long, value_name = "RATE|off", value_parser = parse_policy_rate, group = "setting")]
    pub max_background_bandwidth: Option<u64>,

    /// A weekly schedule of caps for background jobs:
    /// `[Day-]HH:MM,RATE ...` (`Mon-08:00,512k 18:00,off`); each entry
    /// lasts until the next; a rate of 0 blocks background jobs (they wait
    /// in TransientError). `off` removes the schedule.
    #[arg(long, value_name = "SPEC|off", value_parser = parse_schedule, group = "setting")]
    pub bandwidth_schedule: Option<String>,

    /// How many background jobs (High, Normal, Low) transfer at once
    /// (default 1, as BITS).
    #[arg(long, value_name = "N", group = "setting")]
    pub background_jobs: Option<u32>,

    /// Jobs one user may hold that are not Acknowledged or Cancelled
    /// (default 10000).
    #[arg(long, value_name = "N", group = "setting")]
    pub max_jobs_per_user: Option<u64>,

    /// Files one job may hold (default and at most 100000).
    #[arg(long, value_name = "N", group = "setting")]
    pub max_files_per_job: Option<u64>,

    /// Print the resulting policy as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bits watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A JobId, a unique prefix of one (4 characters or more), or a
    /// DisplayName; every job when left out.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,

    /// One JSON object per line: the job object's keys, after "Event"
    /// (Current, Created, StateChanged, Progress, Removed) and "EventTime".
    #[arg(long)]
    pub json: bool,

    /// Every user's jobs (root only; without JOB).
    #[arg(long, conflicts_with = "job")]
    pub all_users: bool,
}

/// `bits serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory to serve.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Accept uploads (the BITS Upload Protocol, BITS_POST) into DIR.
    #[arg(long)]
    pub upload: bool,

    /// Largest upload accepted, in bytes (BITSMaximumUploadSize).
    #[arg(long, value_name = "BYTES", requires = "upload")]
    pub max_upload_size: Option<u64>,

    /// Let uploads replace existing files (BITSAllowOverwrites); otherwise
    /// an upload to an existing name is refused with 409.
    #[arg(long, requires = "upload")]
    pub allow_overwrite: bool,

    /// Delete upload sessions idle for this many seconds
    /// (BITSSessionTimeout; default 14 days).
    #[arg(long, value_name = "SECONDS", requires = "upload")]
    pub session_timeout: Option<u64>,

    /// Most upload sessions open at once (BITSNumberOfSessionsLimit; default 50).
    #[arg(long, value_name = "N", requires = "upload", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: Option<u64>,

    /// Web-farm affinity: clients send every packet of a session to this
    /// host (BITSHostId).
    #[arg(long, value_name = "HOST[:PORT]", requires = "upload")]
    pub host_id: Option<String>,

    /// Seconds after which clients that cannot reach --host-id go back to
    /// the original host (BITSHostIdFallbackTimeout).
    #[arg(long, value_name = "SECONDS", requires = "host_id")]
    pub host_id_fallback_timeout: Option<u64>,

    /// Upload-reply: hand each completed upload to this server application
    /// (an http:// URL; BITSServerNotificationURL) and return its answer to
    /// the client as the reply.
    #[arg(long, value_name = "URL", requires = "upload")]
    pub notify_url: Option<String>,

    /// How uploads reach --notify-url: `file` posts the file in the body
    /// (type 2), `location` posts its path (type 1).
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        default_value = "file",
        requires = "notify_url"
    )]
    pub notify_type: NotifyType,
}

/// How `bits serve` hands a completed upload to the server application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyType {
    /// The file in the request body (BITSServerNotificationType 2).
    File,
    /// The file's path in the request headers (BITSServerNotificationType 1).
    Location,
}

/// Parses a positive number of seconds, fractions allowed (`0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!(
            "'{text}' is out of range: give a positive number of seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--max-background-bandwidth RATE`: `off` is 0 (no cap, as the daemon
/// reads it).
fn parse_policy_rate(text: &str) -> Result<u64, String> {
    match bits_core::policy::bandwidth::parse_rate(text).map_err(|e| e.to_string())? {
        bits_core::policy::bandwidth::Cap::Unlimited => Ok(0),
        bits_core::policy::bandwidth::Cap::Rate(r) => Ok(r),
        bits_core::policy::bandwidth::Cap::Blocked => Err(
            "a cap of 0 would stop background jobs for good: give a rate, `off`, or a \
             --bandwidth-schedule window of 0"
                .into(),
        ),
    }
}

/// `--bandwidth-schedule SPEC`: checked here so that a mistake is named at
/// once; `off` passes as it is.
fn parse_schedule(text: &str) -> Result<String, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok("off".into());
    }
    bits_core::policy::bandwidth::Schedule::parse(text).map_err(|e| e.to_string())?;
    Ok(text.trim().to_string())
}

/// `--max-bandwidth RATE`: `off` is 0 (no cap, as the daemon reads it).
fn parse_job_rate(text: &str) -> Result<u64, String> {
    match bits_core::policy::bandwidth::parse_rate(text).map_err(|e| e.to_string())? {
        bits_core::policy::bandwidth::Cap::Unlimited => Ok(0),
        bits_core::policy::bandwidth::Cap::Rate(r) => Ok(r),
        bits_core::policy::bandwidth::Cap::Blocked => {
            Err("a job's cap of 0 would stop it for good: give a rate, or `off`".into())
        }
    }
}

#[cfg(test)]
mod tests;
