//! The daemon's own file operations on users' files: making finished files
//! durable, committing a job's files at Complete, discarding temporary
//! files. Blocking: callers run them on the blocking pool, inside the job
//! owner's `Identity::run`, so that every path here is resolved with the
//! owner's rights in the system daemon. Keep every touch of a user's path
//! here (the transfer engine's temporary files and sources are the other
//! place, with the same identity).

use bits_core::error::codes;
use bits_core::{ErrorContext, FileId, Job, JobError, JobFile, JobId, JobType};
use bits_transfer::{Finished, LocalOp};
use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What Complete did.
#[derive(Debug, Default)]
pub struct Completed {
    /// Files now under their names.
    pub kept: Vec<PathBuf>,
    /// Files not fully transferred, whose partial data was deleted.
    pub discarded: Vec<PathBuf>,
}

/// Why Complete could not finish.
#[derive(Debug)]
pub enum CompleteError {
    /// A transferred file is gone or is not the file that was written: it
    /// must be transferred again.
    Lost { index: usize, error: JobError },
    /// Something failed (a rename, a directory sync); nothing is lost, and
    /// completing again picks up where this stopped.
    Failed(String),
}

/// How making a batch of finished files durable went.
#[derive(Debug, Default)]
pub struct BatchSync {
    /// The first file that could not be written out of memory: its place
    /// in the batch, what failed, and why. The others were written, and
    /// synced if `sync_failed` is `None`.
    pub unwritten: Option<(usize, LocalOp, io::Error)>,
    /// A sync that failed (and the file it was for): no file of the batch
    /// may be counted as durable.
    pub sync_failed: Option<(usize, io::Error)>,
}

/// Makes finished files durable. Those still in memory are written first
/// (created with their owner's rights, by the file's own [`Finished`]); a
/// file that cannot be written is left out and the rest go on. Then every
/// written file is made durable through its open descriptor: each one
/// fsynced when there are few, else each file system holding them synced
/// once (`syncfs`: one journal commit for the lot, where per-file fsyncs
/// would be one each), where that is known to make every file's data
/// durable.
pub fn sync_finished(files: &mut [&mut Finished]) -> BatchSync {
    const FSYNC_EACH_UP_TO: usize = 4;
    let mut report = BatchSync::default();
    let mut open = Vec::with_capacity(files.len());
    for (i, f) in files.iter_mut().enumerate() {
        match f.write() {
            Ok((file, id)) => open.push((i, file, id)),
            Err(e) => {
                report.unwritten.get_or_insert((i, e.op, e.source));
            }
        }
    }
    // Per file system: whether one syncfs stands for every file's fsync.
    let mut whole_fs = std::collections::BTreeMap::new();
    let mut synced = BTreeSet::new();
    for (i, file, id) in &open {
        let batch = open.len() > FSYNC_EACH_UP_TO
            && *whole_fs
                .entry(id.dev)
                .or_insert_with(|| syncfs_covers_data(file));
        let result = if !batch {
            file.sync_all()
        } else if synced.insert(id.dev) {
            nix::unistd::syncfs(file.as_raw_fd()).map_err(io::Error::from)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            report.sync_failed = Some((*i, e));
            break;
        }
    }
    report
}

/// Whether `syncfs` on the file system holding `file` writes back and
/// waits for the data of every file on it, as `fsync` of each would: true
/// for the local block file systems that implement it so. Not for FUSE
/// (the daemon behind it never hears of a `syncfs`, so nothing is made
/// durable: seen with LazyFS, and true of sshfs and the like), network
/// file systems, or anything not known: those get an `fsync` per file.
fn syncfs_covers_data(file: &std::fs::File) -> bool {
    use nix::sys::statfs::{
        fstatfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, XFS_SUPER_MAGIC,
    };
    // ext2 and ext3 share ext4's magic number.
    let local = [
        EXT4_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        F2FS_SUPER_MAGIC,
    ];
    fstatfs(file).is_ok_and(|fs| local.contains(&fs.filesystem_type()))
}

/// Completes a job's files (Complete-BitsTransfer): a download's transferred
/// files appear under their names and its partial ones are deleted; an
/// upload-reply job's reply appears at its reply file; an upload has nothing
/// local to commit.
///
/// Every transferred file is checked before anything is renamed: its
/// temporary file must be the very file that was written (or, after an
/// interrupted Complete, already be under its name), so Complete never
/// reports a file it does not have. The directories are fsynced after the
/// renames; only then may the job be called complete.
pub fn complete(job: &Job) -> Result<Completed, CompleteError> {
    match job.job_type {
        JobType::Download => commit_downloads(job.id, &job.files),
        JobType::Upload => Ok(Completed {
            kept: job.files.iter().map(|f| f.local.to_path_buf()).collect(),
            discarded: Vec::new(),
        }),
        JobType::UploadReply => commit_reply(job),
    }
}

/// Where a transferred file is: still to be renamed, or already renamed
/// by an earlier Complete that was interrupted.
enum Found {
    ToRename,
    InPlace,
}

fn lost(index: usize, f: &JobFile, what: String) -> CompleteError {
    CompleteError::Lost {
        index,
        error: JobError {
            file_index: Some(index),
            ..JobError::new(
                ErrorContext::LocalFile,
                codes::E_FILE_NOT_FOUND,
                format!(
                    "The transferred file {} cannot be completed: {what}. Resume the job to \
                     transfer it again.",
                    f.local.display()
                ),
            )
        },
    }
}

fn identity(meta: &std::fs::Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// Checks a transferred download before anything is renamed.
fn check(job: JobId, index: usize, f: &JobFile) -> Result<Found, CompleteError> {
    let failed = |what: &str, path: &Path, e: io::Error| {
        CompleteError::Failed(format!("cannot {what} {}: {e}", path.display()))
    };
    let temp = f.temp(job);
    match std::fs::symlink_metadata(&temp) {
        Ok(meta) => {
            let ours = meta.file_type().is_file()
                && meta.nlink() == 1
                && f.temp_id().is_none_or(|id| id == identity(&meta));
            if !ours {
                return Err(lost(
                    index,
                    f,
                    format!(
                        "its temporary file {} was replaced by another file",
                        temp.display()
                    ),
                ));
            }
            if f.bytes_total.is_some_and(|n| n != meta.len()) {
                return Err(lost(
                    index,
                    f,
                    format!(
                        "its temporary file {} holds {} bytes instead of {}",
                        temp.display(),
                        meta.len(),
                        f.bytes_total.unwrap_or(0)
                    ),
                ));
            }
            Ok(Found::ToRename)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Renamed by an earlier Complete that did not finish? Only if
            // the file under the name is the very file that was written.
            match std::fs::symlink_metadata(&f.local) {
                Ok(meta) if f.temp_id().is_some_and(|id| id == identity(&meta)) => {
                    Ok(Found::InPlace)
                }
                Ok(_) | Err(_) => Err(lost(
                    index,
                    f,
                    format!("its temporary file {} is gone", temp.display()),
                )),
            }
        }
        Err(e) => Err(failed("examine", &temp, e)),
    }
}

/// Makes the transferred files appear under their final names and deletes
/// the partial ones. Stops at the first failure, naming the file.
fn commit_downloads(job: JobId, files: &[JobFile]) -> Result<Completed, CompleteError> {
    let mut found = Vec::with_capacity(files.len());
    for (index, f) in files.iter().enumerate() {
        found.push(if f.complete {
            Some(check(job, index, f)?)
        } else {
            None
        });
    }
    // Each directory is fsynced once, after all its renames: one journal
    // commit for a job of thousands of files, not one per file.
    let mut dirs = BTreeSet::new();
    let mut done = Completed::default();
    for (f, found) in files.iter().zip(found) {
        match found {
            Some(found) => {
                if let Found::ToRename = found {
                    let temp = f.temp(job);
                    std::fs::rename(&temp, &f.local).map_err(|e| {
                        CompleteError::Failed(format!(
                            "cannot move {} to {}: {e}",
                            temp.display(),
                            f.local.display()
                        ))
                    })?;
                }
                if let Some(dir) = f.local.parent() {
                    dirs.insert(dir.to_path_buf());
                }
                done.kept.push(f.local.to_path_buf());
            }
            None => {
                remove(&f.temp(job));
                done.discarded.push(f.local.to_path_buf());
            }
        }
    }
    for dir in dirs {
        sync_dir(&dir).map_err(|e| {
            CompleteError::Failed(format!(
                "cannot make the completed files in {} durable (fsync of the directory: {e})",
                dir.display()
            ))
        })?;
    }
    Ok(done)
}

/// An upload-reply job: its reply appears at the reply file.
fn commit_reply(job: &Job) -> Result<Completed, CompleteError> {
    let (Some(reply), Some(f)) = (&job.props.reply_file, job.files.first()) else {
        return Ok(Completed::default());
    };
    let temp = f.temp(job.id);
    if !f.complete {
        remove(&temp);
        return Ok(Completed {
            kept: Vec::new(),
            discarded: vec![reply.clone()],
        });
    }
    match std::fs::rename(&temp, reply) {
        Ok(()) => {}
        // An earlier Complete that did not finish moved it already.
        Err(e) if e.kind() == io::ErrorKind::NotFound && reply.exists() => {}
        Err(e) => {
            return Err(CompleteError::Failed(format!(
                "cannot move {} to {}: {e}",
                temp.display(),
                reply.display()
            )))
        }
    }
    if let Some(dir) = reply.parent() {
        sync_dir(dir).map_err(|e| {
            CompleteError::Failed(format!(
                "cannot make the reply in {} durable (fsync of the directory: {e})",
                dir.display()
            ))
        })?;
    }
    Ok(Completed {
        kept: vec![reply.clone()],
        discarded: Vec::new(),
    })
}

/// Deletes every temporary file (Remove-BitsTransfer). Final names are never
/// touched: they are not the job's until Complete.
pub fn discard(job: JobId, files: &[JobFile]) {
    for f in files {
        remove(&f.temp(job));
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), cause = %e, "cannot delete temporary file");
        }
    }
}

/// Makes renames durable: directory entries are written by fsyncing the
/// directory.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
