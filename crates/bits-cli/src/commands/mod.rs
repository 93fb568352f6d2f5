//! One file per subcommand; each turns its parsed arguments into requests
//! to the daemon and prints the answer.
//!
//! The helpers here are shared by several commands: the job properties of
//! `start` and `set`, reading a `--from-csv` file, printing a job.

use std::path::Path;

use anyhow::Context;
use bits_proto::{JobObject, JobProperties, Paths};

use crate::args::{Command, PropertyArgs};
use crate::connect::Connection;
use crate::failure::Failure;
use crate::render;
use crate::sources::{self, CsvRow};

mod add;
mod complete;
mod info;
mod list;
mod monitor;
mod remove;
mod resume;
mod serve;
mod set;
mod start;
mod suspend;
mod wait;

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
        Command::Serve(args) => serve::run(args).await,
    }
}

/// Connects to the daemon of this environment (`BITS_HOME`...).
async fn connect() -> anyhow::Result<Connection> {
    Connection::open(Paths::from_env()).await
}

/// The current directory, against which relative paths are resolved.
fn cwd() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_dir().context("cannot determine the current directory")
}

/// The protocol's properties from the command line. The reply file is made
/// absolute here: the daemon does not know our current directory.
fn properties(args: &PropertyArgs, cwd: &Path) -> JobProperties {
    JobProperties {
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
    }
}

/// Reads and parses a `--from-csv` file, `-` being stdin. `max_rows`: the
/// most rows accepted (one job's files); reading stops past it.
fn read_csv(file: &str, max_rows: usize) -> anyhow::Result<Vec<CsvRow>> {
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
