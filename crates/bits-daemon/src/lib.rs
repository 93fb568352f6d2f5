//! `bitsd`, the transfer daemon, as a library: [`run`] is the whole daemon
//! and tests call it like `main` does.
//!
//! # Layout
//!
//! - `lifecycle`: the one owner of every job's lifecycle: decides, saves,
//!   publishes; schedules; starts and stops runners.
//! - `runner`: one attempt at a job's files through `bits_transfer`.
//! - `state`: what readers see (the jobs as saved, live progress).
//! - `store`: the job store on a thread of its own.
//! - `ipc`: the Unix socket, its clients, and one handler per request.
//! - `validate`: checks of client input; `convert`: job -> JSON object;
//!   `fsops`: committing, syncing and discarding users' files.
//!
//! Architecture invariant: this is the only crate that spawns tasks, owns
//! the socket and holds the store.

mod access;
mod clock;
mod convert;
mod counters;
mod fsops;
mod ipc;
mod lifecycle;
mod memory;
mod network;
mod notify;
mod runner;
mod startup;
mod state;
mod store;
mod validate;

use anyhow::Context;
use bits_proto::Paths;
use bits_transfer::{CheckpointPolicy, EngineConfig};
use clap::Parser;
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use access::Mode;
pub use startup::{run, DETACHED_ENV};

/// How often a running download makes its progress durable. A crash or a
/// power cut costs at most this much downloading again; each checkpoint
/// costs one fdatasync of the data and one small SQLite commit, which at
/// once a second is noise next to the transfer itself.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// ... or after this many bytes, whichever comes first, so that on a very
/// fast link the page cache does not pile up gigabytes of unsynced data that
/// the next fsync would have to write in one stall.
pub const CHECKPOINT_BYTES: u64 = 256 * 1024 * 1024;

/// What the daemon needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// State and runtime directories.
    pub paths: Paths,
    /// Transfer engine settings.
    pub engine: EngineConfig,
    /// How long a background job keeps its slot while another job of the
    /// same priority waits.
    pub time_slice: Duration,
    /// One user's daemon, or the machine's.
    pub mode: Mode,
}

impl Config {
    /// The defaults for `paths`.
    pub fn new(paths: Paths) -> Config {
        Config {
            paths,
            engine: EngineConfig {
                checkpoint: CheckpointPolicy {
                    interval: CHECKPOINT_INTERVAL,
                    bytes: CHECKPOINT_BYTES,
                },
                read_timeout: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(30),
                upload_fragment: bits_transfer::DEFAULT_UPLOAD_FRAGMENT,
            },
            time_slice: bits_core::policy::schedule::DEFAULT_TIME_SLICE,
            mode: Mode::User,
        }
    }
}

/// bitsd: the Background Intelligent Transfer Service daemon. Holds transfer
/// jobs that survive crashes and reboots. Runs in the foreground; `bits`
/// starts a user's daemon on demand; `bitsd --system` (as root, from its
/// systemd unit) serves every user of the machine.
#[derive(Debug, Parser)]
#[command(name = "bitsd", version)]
struct Args {
    /// State directory (job database, log). Default: $BITS_HOME, else
    /// $XDG_STATE_HOME/bits, else ~/.local/state/bits.
    #[arg(long, value_name = "DIR", conflicts_with = "system")]
    home: Option<std::path::PathBuf>,
    /// Directory for the socket and pid file. Default: $BITS_RUNTIME_DIR, else
    /// the state directory.
    #[arg(long, value_name = "DIR", conflicts_with = "system")]
    runtime_dir: Option<std::path::PathBuf>,
    /// Serve every user of the machine (run as root): state in
    /// /var/lib/bits, socket /run/bits/bits.sock, each job run with its
    /// owner's rights.
    #[arg(long)]
    system: bool,
    /// The system daemon's state directory.
    #[arg(long, value_name = "DIR", requires = "system", default_value = bits_proto::paths::SYSTEM_STATE_DIR)]
    state_dir: std::path::PathBuf,
    /// The system daemon's socket (its directory holds the pid file).
    #[arg(long, value_name = "PATH", requires = "system", default_value = bits_proto::paths::SYSTEM_SOCKET)]
    socket: std::path::PathBuf,
    /// Members of this group may see and manage every user's jobs, as root
    /// may (system daemon).
    #[arg(long, value_name = "GROUP", requires = "system")]
    admin_group: Option<String>,
    /// Seconds a background job keeps its transfer slot while another job
    /// of the same priority waits for it.
    #[arg(long, value_name = "SECONDS", env = "BITS_TIME_SLICE", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    time_slice: u64,
    /// Seconds a server may take to send its response head, or stay silent
    /// during a body, before the attempt fails as a transient error.
    #[arg(long, value_name = "SECONDS", env = "BITS_NETWORK_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    network_timeout: u64,
}

/// The command line of `bitsd`, for its manual page.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// The `bitsd` program. Returns the exit code.
pub fn main() -> i32 {
    report_panics();
    let args = Args::parse();
    let mut paths = Paths::from_env();
    let mut mode = Mode::User;
    if args.system {
        paths = Paths::system(Some(&args.state_dir), Some(&args.socket));
        let admin_group = match args.admin_group.as_deref().map(group_id).transpose() {
            Ok(g) => g,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "bitsd: {e:#}");
                return 2;
            }
        };
        mode = Mode::System { admin_group };
    } else if let Some(h) = &args.home {
        paths = Paths::new(h, args.runtime_dir.as_deref().or(Some(&paths.runtime_dir)));
        if std::env::var_os("BITS_RUNTIME_DIR").is_none() && args.runtime_dir.is_none() {
            paths.runtime_dir = h.clone();
        }
    } else if let Some(r) = &args.runtime_dir {
        paths.runtime_dir = r.clone();
    }
    let mut config = Config::new(paths);
    config.mode = mode;
    config.time_slice = Duration::from_secs(args.time_slice);
    config.engine.read_timeout = Duration::from_secs(args.network_timeout);
    match run_main(config) {
        Ok(()) => 0,
        Err(e) => {
            // Not eprintln!: the reader of a detached daemon's standard
            // error (the `bits` that started it) may be gone.
            let _ = writeln!(std::io::stderr(), "bitsd: {e:#}");
            tracing::error!("bitsd stopped: {e:#}");
            1
        }
    }
}

/// The gid of group `name` (or a number).
fn group_id(name: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => anyhow::bail!("--admin-group: no group is named '{name}'"),
        Err(e) => anyhow::bail!("--admin-group: cannot look up '{name}': {e}"),
    }
}

/// A panic anywhere (a task's included) reaches the log with its place, not
/// only a standard error nobody reads; the task's owner then deals with
/// its job (see `lifecycle`). Written straight to the log file, not through
/// `tracing`: the panicking thread may be inside the logger, holding its
/// lock. Failures to write are ignored: there is nowhere left to say so.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        let text = format!(
            "{} ERROR bitsd panicked: {info}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        // A panic hook has nowhere to report its own failure to write: the
        // panic still unwinds or aborts as it would have.
        match startup::panic_log() {
            Some(mut log) => {
                let _ = log.write_all(text.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
        }
    }));
}

fn run_main(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
            signals.cancel();
        });
        run(config, shutdown).await
    })
}
