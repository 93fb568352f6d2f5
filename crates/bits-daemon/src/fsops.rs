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
    // Each directory is fsynced once, after all its renames: one journal
    // commit for a job of thousands of files, not one per file.
    let mut dirs = std::collections::BTreeSet::new();
    let mut result = Ok(());
    for f in files {
        if f.complete {
            match std::fs::rename(&f.temp, &f.local) {
                Ok(()) => {
                    if let Some(dir) = f.local.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && f.local.exists() => {}
                Err(e) => {
                    result = Err(format!(
                        "cannot move {} to {}: {e}",
                        f.temp.display(),
                        f.local.display()
                    ));
                    break;
                }
            }
        } else {
            remove(&f.temp);
        }
    }
    for dir in dirs {
        sync_dir(&dir);
    }
    result
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

/// Makes written files durable: each one fsynced when there are few, else
/// each file system holding them synced once (`syncfs`: one journal commit
/// for the lot, where per-file fsyncs would be one each). The file systems
/// are found through the files' directories (a file we created lives on its
/// directory's file system), so a batch of files in one directory costs one
/// open, not one per file. Returns the path that failed.
pub fn sync_files(paths: &[std::path::PathBuf]) -> Result<(), (std::path::PathBuf, io::Error)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    const FSYNC_EACH_UP_TO: usize = 4;
    if paths.len() <= FSYNC_EACH_UP_TO {
        for p in paths {
            std::fs::File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(|e| (p.clone(), e))?;
        }
        return Ok(());
    }
    let mut dirs = std::collections::HashSet::new();
    let mut synced = std::collections::HashSet::new();
    for p in paths {
        let dir = p.parent().unwrap_or(Path::new("/"));
        if !dirs.insert(dir) {
            continue;
        }
        let handle = std::fs::File::open(dir).map_err(|e| (p.clone(), e))?;
        let dev = handle.metadata().map_err(|e| (p.clone(), e))?.dev();
        if synced.insert(dev) {
            nix::unistd::syncfs(handle.as_raw_fd())
                .map_err(|errno| (p.clone(), io::Error::from(errno)))?;
        }
    }
    Ok(())
}

/// Makes renames durable: directory entries are written by fsyncing the
/// directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        if let Err(e) = d.sync_all() {
            tracing::warn!(dir = %dir.display(), cause = %e, "cannot fsync directory");
        }
    }
}
