//! The `bits` command line: the client of `bitsd`, modelled on PowerShell's
//! BitsTransfer cmdlets (Start-BitsTransfer and friends).
//!
//! # Layout
//!
//! - [`args`]: what the user may type (clap derive; the doc comments are the
//!   `--help`).
//! - `commands/<verb>.rs`: one file per subcommand, turning parsed arguments
//!   into [`bits_proto::Request`]s and printing the answers.
//! - [`sources`]: `SOURCE... DESTINATION` and `--from-csv` into the files of
//!   a job; pure, unit tested.
//! - [`connect`]: the socket connection, starting `bitsd` when nobody
//!   answers.
//! - [`follow`]: waiting for a job, with a progress bar on a terminal.
//! - [`render`]: the table, the Format-List view and JSON.
//! - [`failure`]: the failures that decide the exit code.
//! - [`compat`]: the same as Start-BitsTransfer & co. and bitsadmin, by
//!   the name `bits` is called with.
//! - [`remote`]: `--host`, the command run on another machine over ssh.
//!
//! Architecture invariant: this crate talks to the daemon only through
//! `bits-proto`; it does not depend on `bits-core`, `bits-daemon` or
//! `bits-store`, so the client cannot reach into the daemon's state.
//!
//! Data (job ids, tables, JSON) goes to stdout; messages to stderr. Exit
//! codes: 0 success, 1 the job ended in Error or was cancelled, 2 bad
//! arguments, 3 no daemon, 4 no such job or not allowed in its state,
//! 5 `wait` timed out, 130 interrupted while following a job.

pub mod args;
mod commands;
pub mod compat;
pub mod connect;
pub mod events;
pub mod failure;
pub mod follow;
pub mod remote;
pub mod render;
#[cfg(test)]
mod sample;
pub mod sources;

use clap::Parser;

use crate::args::{Cli, Command};

/// The command line of `bits`, for its manual page and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs `bits` with the process's arguments and returns the exit code.
///
/// Called as `Start-BitsTransfer`, `bitsadmin`, … (the links of `bits
/// compat install`), or with such a name as its first argument, it is that
/// program; with `--host` before the command it runs the command on
/// another machine.
pub fn main() -> i32 {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<String> = match argv.map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!(
                "error: an argument is not valid UTF-8: {}",
                bad.to_string_lossy()
            );
            return failure::exit::USAGE;
        }
    };
    if let Some(program) = compat::program_named(&argv0.to_string_lossy()) {
        return compat::main(program, args);
    }
    if let Some(program) = args.first().and_then(|a| compat::program_named(a)) {
        return compat::main(program, args[1..].to_vec());
    }
    if let Some((host, rest)) = remote::split_host(&args) {
        return remote::run(&host, &rest).unwrap_or_else(|err| failure::print_report(&err, None));
    }
    let cli = match Cli::try_parse_from(std::iter::once("bits".to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version end here too, with exit code 0.
            let _ = e.print();
            return e.exit_code();
        }
    };
    install_tracing(cli.verbose);
    connect::use_system_daemon(cli.system);

    let runtime = match runtime_for(&cli.command) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return failure::exit::FAILED;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => failure::exit::OK,
        Err(err) => failure::print_report(&err, None),
    }
}

/// A client command does one thing at a time, so one thread is enough;
/// `serve` answers many downloads at once and gets worker threads.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// Logs to stderr: warnings by default, more with each `-v`; `RUST_LOG`
/// overrides both.
pub(crate) fn install_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
