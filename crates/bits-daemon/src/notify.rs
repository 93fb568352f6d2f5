//! A job's notification command (`--notify-cmd`): run by `sh -c` as the
//! job's owner when the job becomes Transferred or Error as its flags say,
//! with `BITS_JOB_ID` and `BITS_JOB_STATE` in its environment. A user's
//! daemon runs it as itself, in its own environment; the system daemon runs
//! it as the owner (uid, primary group, supplementary groups), from the
//! owner's home, with the owner's `HOME`, `USER`, `LOGNAME`, `SHELL` and a
//! standard `PATH`, and nothing of root's environment. As in BITS, a command that exits non-zero runs again after
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

/// Who a system daemon's notification command runs as.
#[derive(Debug, Clone)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    groups: Vec<nix::unistd::Gid>,
    name: String,
    home: std::path::PathBuf,
    shell: std::path::PathBuf,
}

impl RunAs {
    /// The owner of the job, from the user database; `None` for a user's
    /// daemon (the command runs as the daemon runs).
    fn owner(shared: &Shared, id: JobId) -> Result<Option<RunAs>, String> {
        if !shared.mode.is_system() {
            return Ok(None);
        }
        let uid = shared
            .read()
            .jobs
            .get(&id)
            .map(|e| e.job.owner_uid)
            .ok_or("the job is gone")?;
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| format!("cannot look up uid {uid}: {e}"))?
            .ok_or(format!("uid {uid} is not a user of this machine"))?;
        let name = std::ffi::CString::new(user.name.as_bytes())
            .map_err(|_| format!("uid {uid} has an unusable name"))?;
        let groups = nix::unistd::getgrouplist(&name, user.gid)
            .map_err(|e| format!("cannot look up the groups of uid {uid}: {e}"))?;
        Ok(Some(RunAs {
            uid: user.uid,
            gid: user.gid,
            groups,
            name: user.name,
            home: user.dir,
            shell: user.shell,
        }))
    }
}

/// Runs the command for job `id` until it succeeds or the job ends.
pub async fn run(shared: Arc<Shared>, id: JobId, cmd: String, retry_delay: Duration) {
    loop {
        let Some(state) = current_state(&shared, id) else {
            return;
        };
        // The user database may be a network service: not on a runtime
        // thread.
        let owner = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || RunAs::owner(&shared, id))
                .await
                .unwrap_or_else(|e| Err(format!("looking up the job's owner failed: {e}")))
        };
        let attempt = match owner {
            Ok(run_as) => run_once(id, &cmd, state, run_as).await,
            Err(why) => Err(why),
        };
        match attempt {
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

async fn run_once(
    id: JobId,
    cmd: &str,
    state: JobState,
    run_as: Option<RunAs>,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(cmd);
    match run_as {
        None => {
            command.current_dir(std::env::var_os("HOME").unwrap_or_else(|| "/".into()));
        }
        Some(user) => {
            command
                .env_clear()
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name)
                .env("SHELL", &user.shell)
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .current_dir("/");
            let home = std::ffi::CString::new(user.home.as_os_str().as_encoded_bytes()).ok();
            // SAFETY: runs in the child between fork and exec, where only
            // async-signal-safe work is allowed: these are system calls on
            // values prepared before the fork, no allocation. Groups, then
            // group, then user (after setuid nothing could be changed).
            unsafe {
                command.pre_exec(move || {
                    nix::unistd::setgroups(&user.groups)?;
                    nix::unistd::setgid(user.gid)?;
                    nix::unistd::setuid(user.uid)?;
                    // The home with the owner's rights; "/" if it cannot be
                    // entered.
                    if let Some(home) = &home {
                        libc::chdir(home.as_ptr());
                    }
                    Ok(())
                });
            }
        }
    }
    command
        .env("BITS_JOB_ID", id.to_string())
        .env("BITS_JOB_STATE", state.as_str())
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
