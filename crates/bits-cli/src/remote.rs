//! Remote management: `bits --host [USER@]HOST …` (and the cmdlets'
//! `-ComputerName HOST`) runs the same command with `bits` on that machine,
//! over ssh.
//!
//! ssh does the rest: its keys, agent, known hosts and `~/.ssh/config`
//! apply, and the remote command runs as the remote user, against that
//! user's daemon (or the system daemon there). Jobs belong to the remote
//! daemon, so they go on after the connection closes, as jobs of a
//! disconnected PowerShell session do; list, complete or remove them later
//! from any connection. Paths in the command are the remote machine's.
//!
//! - `BITS_SSH`: the ssh command, run by `sh -c` with the destination and
//!   the remote command after it (like `GIT_SSH_COMMAND`); default `ssh`.
//! - `BITS_REMOTE_BITS`: the remote program; default `bits` (on the remote
//!   PATH).

use std::io::IsTerminal;
use std::process::Command;

use crate::failure::{exit, Failure};

/// Runs `args` (a command line of `bits`, without the program) on `host`;
/// returns the remote exit code.
pub fn run(host: &str, args: &[String]) -> anyhow::Result<i32> {
    check_host(host)?;
    let ssh = std::env::var("BITS_SSH").unwrap_or_else(|_| "ssh".into());
    let program = std::env::var("BITS_REMOTE_BITS").unwrap_or_else(|_| "bits".into());
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let remote = remote_command(&program, args);
    // -t: a terminal on the other side for the progress bar and password
    // prompts; -T: none, so the output stays clean for a pipe.
    let tty = if interactive { "-t" } else { "-T" };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{ssh} \"$@\""))
        .arg("bits-ssh")
        .arg(tty)
        .arg("--")
        .arg(host)
        .arg(remote)
        .status()
        .map_err(|e| Failure::Unreachable(format!("cannot run ssh ({ssh}): {e}")))?;
    match status.code() {
        // ssh's own failure: the host could not be reached or refused us.
        Some(255) => Err(Failure::Unreachable(format!(
            "ssh to {host} failed (its message is above); the job was not touched"
        ))
        .into()),
        Some(code) => Ok(code),
        None => Ok(exit::FAILED),
    }
}

/// A destination ssh takes as a destination, never as an option.
fn check_host(host: &str) -> anyhow::Result<()> {
    if host.is_empty() || host.starts_with('-') || host.chars().any(char::is_whitespace) {
        return Err(Failure::Usage(format!(
            "'{host}' is not a host: give [USER@]HOST (ssh's config names work too)"
        ))
        .into());
    }
    Ok(())
}

/// The command line the remote shell runs: every word quoted, so that it
/// arrives as the word given here.
pub fn remote_command(program: &str, args: &[String]) -> String {
    let mut words = vec![quote(program)];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ")
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// `--host HOST` or `--host=HOST` among the leading options of a `bits`
/// command line (before the command, as clap places it); returns the host
/// and the command line without it.
pub fn split_host(args: &[String]) -> Option<(String, Vec<String>)> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--host" {
            let host = args.get(i + 1)?.clone();
            let mut rest = args[..i].to_vec();
            rest.extend_from_slice(&args[i + 2..]);
            return Some((host, rest));
        }
        if let Some(host) = arg.strip_prefix("--host=") {
            let mut rest = args[..i].to_vec();
            rest.extend_from_slice(&args[i + 1..]);
            return Some((host.to_string(), rest));
        }
        // Only the global options come before the command.
        let global = arg == "--system"
            || arg == "--verbose"
            || (arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].chars().all(|c| c == 'v'));
        if !global {
            return None;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_host_is_taken_from_the_leading_options_only() {
        assert_eq!(
            split_host(&words("--host alice@server list --json")),
            Some(("alice@server".into(), words("list --json")))
        );
        assert_eq!(
            split_host(&words("-- --host server list")),
            None,
            "`--` is not a global option"
        );
        assert_eq!(
            split_host(&words("-vv --system --host=server list")),
            Some(("server".into(), words("-vv --system list")))
        );
        // After the command, --host is the command's business.
        assert_eq!(split_host(&words("start --host x y")), None);
        assert_eq!(split_host(&words("--host")), None);
    }

    #[test]
    fn remote_words_arrive_as_given() {
        let args = vec!["start".to_string(), "it's a file".into(), "$HOME;rm".into()];
        assert_eq!(
            remote_command("bits", &args),
            r#"'bits' 'start' 'it'\''s a file' '$HOME;rm'"#
        );
        assert!(check_host("-oProxyCommand=x").is_err());
        assert!(check_host("alice@server").is_ok());
    }
}
