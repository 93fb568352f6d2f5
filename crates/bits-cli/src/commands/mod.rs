//! One file per subcommand; each turns its parsed arguments into requests
//! to the daemon and prints the answer.
//!
//! The helpers here are shared by several commands: the job properties of
//! `start` and `set`, reading a `--from-csv` file, printing a job.

use std::path::Path;

use anyhow::Context;
use bits_proto::{ConnectionSpec, CredentialSpec, JobObject, JobProperties};

use crate::args::{Command, PropertyArgs, ProxyUsage};
use crate::connect::Connection;
use crate::failure::Failure;
use crate::render;
use crate::sources::{self, CsvRow};

mod add;
mod complete;
mod info;
mod list;
mod monitor;
mod policy;
mod proxy_env;
mod remove;
mod resume;
mod serve;
mod set;
pub(crate) mod start;
mod suspend;
mod wait;
mod watch;

/// Runs a subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => start::run(args).await,
        Command::List(args) => list::run(args).await,
        Command::Info(args) => info::run(args).await,
        Command::Add(args) => add::run(args).await,
        Command::Set(args) => set::run(args).await,
        Command::Suspend(args) => suspend::run(args).await,
        Command::Resume(args) => resume::run(args).await,
        Command::Complete(args) => complete::run(args).await,
        Command::Remove(args) => remove::run(args).await,
        Command::Wait(args) => wait::run(args).await,
        Command::Monitor(args) => monitor::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Policy(command) => policy::run(command).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Compat(crate::args::CompatCommand::Install { dir, force }) => {
            let made = crate::compat::install(dir.as_deref(), force)?;
            let text: String = made.iter().map(|p| format!("{}\n", p.display())).collect();
            crate::render::print(&text)
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::command(), "bits", &mut out);
            crate::render::print(&String::from_utf8_lossy(&out))
        }
    }
}

/// Connects to the daemon of this environment (`--system`, `BITS_HOME`...;
/// see [`crate::connect::daemon_paths`]).
pub(crate) async fn connect() -> anyhow::Result<Connection> {
    Connection::open(crate::connect::daemon_paths()).await
}

/// The current directory, against which relative paths are resolved.
pub(crate) fn cwd() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_dir().context("cannot determine the current directory")
}

/// The protocol's properties from the command line. The reply file is made
/// absolute here: the daemon does not know our current directory; the
/// passwords of `--credential` and `--proxy-credential` are read here too.
///
/// `creating`: for a new job, which keeps this command's proxy environment
/// (as does `set --proxy-usage system-default`).
pub(crate) fn properties(
    args: &PropertyArgs,
    cwd: &Path,
    creating: bool,
) -> anyhow::Result<JobProperties> {
    properties_with(args, cwd, creating, Passwords::new(args.password_stdin))
}

/// As [`properties`], with the passwords from `passwords`.
pub(crate) fn properties_with(
    args: &PropertyArgs,
    cwd: &Path,
    creating: bool,
    mut passwords: Passwords,
) -> anyhow::Result<JobProperties> {
    let credential = match &args.credential {
        Some(user) => Some(CredentialSpec {
            user: user.clone(),
            password: passwords.next(&format!("Password for {user}: "))?,
            scheme: args.auth.map(|a| a.as_protocol().to_string()),
        }),
        None => None,
    };
    let proxy_credential = match &args.proxy_credential {
        Some(user) => Some(CredentialSpec {
            user: user.clone(),
            password: passwords.next(&format!("Proxy password for {user}: "))?,
            scheme: args.proxy_auth.map(|a| a.as_protocol().to_string()),
        }),
        None => None,
    };
    let usage = args.proxy_usage;
    let environment_kept = matches!(
        usage,
        Some(ProxyUsage::SystemDefault | ProxyUsage::AutoDetect)
    ) || (creating && usage.is_none());
    let (proxy_environment, env_credential) = if environment_kept {
        let (vars, credential) = proxy_env::capture();
        (Some(vars), credential)
    } else {
        (None, None)
    };
    if usage == Some(ProxyUsage::AutoDetect) {
        eprintln!(
            "bits: --proxy-usage auto-detect: bits has no WPAD/PAC discovery; the job uses \
             this command's proxy environment, as system-default does"
        );
    }
    let proxy_credential = proxy_credential.or(env_credential);
    let connection = ConnectionSpec {
        proxy_usage: usage.map(|u| u.as_protocol().to_string()),
        proxy_list: args.proxy_list.clone(),
        proxy_bypass: args.proxy_bypass.clone(),
        proxy_environment,
        security_flags: args.security_flags.clone(),
        ca_cert: args.ca_cert.as_deref().map(|p| {
            if p.as_os_str().is_empty() {
                String::new()
            } else {
                sources::absolute(p, cwd).to_string_lossy().into_owned()
            }
        }),
        headers: (!args.headers.is_empty()).then(|| args.headers.clone()),
        headers_write_only: args.header_write_only,
    };
    Ok(JobProperties {
        display_name: args.name.clone(),
        description: args.description.clone(),
        priority: args.priority.map(|p| p.as_protocol().to_string()),
        retry_interval: args.retry_interval,
        retry_timeout: args.retry_timeout,
        max_download_time: args.max_download_time,
        reply_file: args
            .reply_file
            .as_deref()
            .map(|p| sources::absolute(p, cwd).to_string_lossy().into_owned()),
        connections: args.connections,
        credential,
        proxy_credential,
        clear_credentials: false,
        take_ownership: false,
        connection,
        notify_cmd: args.notify_cmd.clone(),
        notify_flags: args.notify_flags.clone(),
        max_bandwidth: args.max_bandwidth,
    })
}

/// Where passwords come from: the terminal (no echo), standard input's
/// lines with `--password-stdin`, or the command line (bitsadmin
/// /setcredentials has them there).
pub(crate) struct Passwords {
    stdin: Option<std::io::Lines<std::io::StdinLock<'static>>>,
    given: Option<std::collections::VecDeque<String>>,
}

impl Passwords {
    /// From the terminal, or from stdin's lines when `from_stdin`.
    pub(crate) fn new(from_stdin: bool) -> Passwords {
        use std::io::BufRead;
        Passwords {
            stdin: from_stdin.then(|| std::io::stdin().lock().lines()),
            given: None,
        }
    }

    /// These, in order.
    pub(crate) fn given(passwords: Vec<String>) -> Passwords {
        Passwords {
            stdin: None,
            given: Some(passwords.into()),
        }
    }

    /// The next password.
    fn next(&mut self, prompt: &str) -> anyhow::Result<String> {
        if let Some(given) = &mut self.given {
            return given
                .pop_front()
                .ok_or_else(|| Failure::Usage("no password was given".into()).into());
        }
        match &mut self.stdin {
            Some(lines) => match lines.next() {
                Some(line) => Ok(line.context("cannot read a password from standard input")?),
                None => Err(Failure::Usage(
                    "--password-stdin: standard input has no line for this password".into(),
                )
                .into()),
            },
            None => rpassword::prompt_password(prompt).map_err(|e| {
                Failure::Usage(format!(
                    "cannot ask for the password on a terminal ({e}); give it with --password-stdin"
                ))
                .into()
            }),
        }
    }
}

/// Reads and parses a `--from-csv` file, `-` being stdin. `max_rows`: the
/// most rows accepted (one job's files); reading stops past it.
pub(crate) fn read_csv(file: &str, max_rows: usize) -> anyhow::Result<Vec<CsvRow>> {
    if file == "-" {
        return sources::parse_csv(std::io::stdin().lock(), max_rows)
            .context("in the file list read from stdin");
    }
    // A file list that cannot be opened is a bad argument, like a missing source.
    let input = std::fs::File::open(file)
        .map_err(|e| Failure::Usage(format!("cannot read the file list {file}: {e}")))?;
    sources::parse_csv(std::io::BufReader::new(input), max_rows)
        .with_context(|| format!("in the file list {file}"))
}

/// Prints a job as JSON when asked; otherwise nothing.
fn print_job_if(json: bool, job: &JobObject) -> anyhow::Result<()> {
    if json {
        render::print(&render::json(job)?)?;
    }
    Ok(())
}
