//! A job's notification command (`--notify-cmd`): run by `sh -c`, as the
//! daemon's user (the job's owner), when the job becomes Transferred or
//! Error as its flags say, with `BITS_JOB_ID` and `BITS_JOB_STATE` in its
//! environment. As in BITS, a command that exits non-zero runs again after
//! the job's retry delay while the job is neither completed nor cancelled.
//!
//! Its standard output and error go to the daemon's log, the first
//! [`MAX_OUTPUT`] bytes of each; it may run [`MAX_RUN`] at most, then its
//! process group is killed. Nothing here holds a lock while it waits.

use crate::state::Shared;
use bits_core::{JobId, JobState};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{info, warn};

/// Output of each stream logged, at most.
const MAX_OUTPUT: usize = 16 * 1024;
/// The longest a notification command may run.
const MAX_RUN: Duration = Duration::from_secs(600);

/// Runs the command for job `id` until it succeeds or the job ends.
pub async fn run(shared: Arc<Shared>, id: JobId, cmd: String, retry_delay: Duration) {
    loop {
        let Some(state) = current_state(&shared, id) else {
            return;
        };
        match run_once(id, &cmd, state).await {
            Ok(()) => return,
            Err(why) => warn!(
                job = %id,
                cause = %why,
                retry_in_s = retry_delay.as_secs(),
                "the notification command failed; it runs again after the retry delay"
            ),
        }
        tokio::time::sleep(retry_delay.max(Duration::from_secs(1))).await;
    }
}

/// The job's state, while it is neither completed nor cancelled.
fn current_state(shared: &Shared, id: JobId) -> Option<JobState> {
    shared
        .read()
        .jobs
        .get(&id)
        .map(|e| e.job.state())
        .filter(|s| !s.is_final())
}

async fn run_once(id: JobId, cmd: &str, state: JobState) -> Result<(), String> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("BITS_JOB_ID", id.to_string())
        .env("BITS_JOB_STATE", state.as_str())
        .current_dir(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    info!(job = %id, state = state.as_str(), "running the notification command");
    let pid = child.id();
    let out = child.stdout.take().map(|s| log_output(id, "stdout", s));
    let err = child.stderr.take().map(|s| log_output(id, "stderr", s));
    let logs = async {
        if let Some(out) = out {
            out.await;
        }
        if let Some(err) = err {
            err.await;
        }
    };
    let waited = tokio::time::timeout(MAX_RUN, async {
        let (status, ()) = tokio::join!(child.wait(), logs);
        status
    })
    .await;
    match waited {
        Ok(Ok(status)) if status.success() => {
            info!(job = %id, "the notification command succeeded");
            Ok(())
        }
        Ok(Ok(status)) => Err(format!("it exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for it failed: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                // The whole group: `sh -c` may have started others. It
                // fails only if the group is already gone.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!(
                "it ran longer than {} seconds and was killed",
                MAX_RUN.as_secs()
            ))
        }
    }
}

/// Logs a stream's lines (the first [`MAX_OUTPUT`] bytes), then reads the
/// rest away so the command never blocks on a full pipe.
async fn log_output(id: JobId, stream: &'static str, mut from: impl AsyncRead + Unpin) {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut dropped = 0usize;
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
                dropped += n.saturating_sub(room);
            }
        }
    }
    for line in String::from_utf8_lossy(&kept).lines() {
        info!(job = %id, stream, "notification command: {line}");
    }
    if dropped > 0 {
        info!(job = %id, stream, dropped, "notification command: more output not logged");
    }
}
