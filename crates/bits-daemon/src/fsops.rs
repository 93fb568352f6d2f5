//! The daemon's own file operations on users' files: committing and
//! discarding temporary files.
//!
//! This is the seam where a system-wide daemon will later act with the job
//! owner's rights; keep every touch of a user's path here (the transfer
//! engine's writes to the temporary file are the other one).

use bits_core::{Job, JobFile, JobType};
use std::io;
use std::path::Path;

/// Completes a job's files: a download's files appear under their names; an
/// upload-reply job's reply appears at its reply file; an upload has nothing
/// local to commit.
pub fn commit_job(job: &Job) -> Result<(), String> {
    match job.job_type {
        JobType::Download => commit(&job.files),
        JobType::Upload => Ok(()),
        JobType::UploadReply => match (&job.props.reply_file, job.files.first()) {
            (Some(reply), Some(f)) if f.complete => {
                let staged = JobFile {
                    local: reply.clone(),
                    ..f.clone()
                };
                commit(std::slice::from_ref(&staged))
            }
            (_, Some(f)) => {
                remove(&f.temp);
                Ok(())
            }
            _ => Ok(()),
        },
    }
}

/// Makes the complete files appear under their final names and deletes the
/// partial ones (Complete-BitsTransfer). A file already moved by an earlier,
/// interrupted attempt counts as done. Stops at the first failure, naming the
/// file, so the user can fix the cause and complete again.
fn commit(files: &[JobFile]) -> Result<(), String> {
    for f in files {
        if f.complete {
            match std::fs::rename(&f.temp, &f.local) {
                Ok(()) => sync_parent(&f.local),
                Err(e) if e.kind() == io::ErrorKind::NotFound && f.local.exists() => {}
                Err(e) => {
                    return Err(format!(
                        "cannot move {} to {}: {e}",
                        f.temp.display(),
                        f.local.display()
                    ))
                }
            }
        } else {
            remove(&f.temp);
        }
    }
    Ok(())
}

/// Deletes every temporary file (Remove-BitsTransfer). Final names are never
/// touched: they are not the job's until Complete.
pub fn discard(files: &[JobFile]) {
    for f in files {
        remove(&f.temp);
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), cause = %e, "cannot delete temporary file");
        }
    }
}

/// Makes a rename durable: the directory entry is written by fsyncing the
/// directory.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
