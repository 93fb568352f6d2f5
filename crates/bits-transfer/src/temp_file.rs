//! The temporary file a download writes into, and the one path by which its
//! bytes become durable: write, `fdatasync`, then report what is durable.
//! Every download path (front to back, several connections, local copies,
//! upload replies) writes through it.
//!
//! **Opening safely.** A temporary file lives beside the user's
//! destination, often in a directory others may write to. Between two
//! attempts someone may put a symbolic link, a FIFO, a hard link to another
//! file or a file of their own under its name. So the file is opened with
//! `O_NOFOLLOW` (a link is not followed) and `O_NONBLOCK` (a FIFO does not
//! hang the open), and only ever used through that descriptor; a fresh one
//! is created with `O_EXCL` after whatever had its name is removed; an
//! existing one is trusted only if it is a regular file of ours with one
//! link, and the very file (device and inode) the last checkpoint was
//! written to. Anything else is removed and the download starts from byte 0.
//!
//! **Durability.** [`TempFile::write_at`] records the bytes it wrote;
//! [`TempFile::sync`] runs `fdatasync` and only then counts what was
//! written before it as durable. A failed sync counts nothing and cuts the
//! written bytes back to the durable ones: after a failed `fdatasync` Linux
//! may have dropped the pages it could not write and marked them clean, so
//! a later sync would "succeed" without them. Callers report only what
//! [`TempFile::durable`] says.
//!
//! Every method does blocking I/O: call them on the blocking pool.

use crate::error::LocalOp;
use crate::identity::Identity;
use crate::ranges::RangeSet;
use bits_core::FileId;
use filetime::FileTime;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why an existing temporary file is not trusted (said in the log when the
/// download starts again from byte 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Untrusted(pub(crate) String);

/// A write or sync that failed, and how far the bytes before it got.
#[derive(Debug)]
pub(crate) struct OpFailed {
    pub(crate) op: LocalOp,
    pub(crate) source: io::Error,
    /// Bytes before this position were written successfully.
    pub(crate) ok_until: u64,
}

/// The temporary file of one download.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    /// The open file; `None` until a fresh file is created by the first
    /// operation that needs it (a small download then costs one trip to the
    /// blocking pool in all).
    handle: Mutex<Option<(Arc<File>, FileId)>>,
    extents: Mutex<Extents>,
    /// Whose rights create, open and remove it (see `identity`).
    owner: Identity,
}

/// What is on the file.
#[derive(Debug, Default)]
struct Extents {
    /// Bytes written (a superset of `durable`).
    written: RangeSet,
    /// Bytes made durable by a successful sync.
    durable: RangeSet,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one short update: a panic inside one leaves
    // nothing half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn identity(meta: &std::fs::Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

impl TempFile {
    /// A file to start afresh. Nothing happens on disk until the first
    /// operation, which removes whatever has the name and creates the file
    /// empty with `O_EXCL`.
    pub(crate) fn fresh(path: &Path, owner: &Identity) -> TempFile {
        TempFile {
            path: path.to_path_buf(),
            handle: Mutex::new(None),
            extents: Mutex::new(Extents::default()),
            owner: owner.clone(),
        }
    }

    /// Opens the file a previous attempt wrote to, whose `durable` bytes the
    /// caller's record vouches for. `Ok(Err(why))`: the file cannot be
    /// trusted (gone, replaced, not ours); the caller starts afresh. Returns
    /// the file's length too.
    pub(crate) fn reopen(
        path: &Path,
        expected: Option<FileId>,
        durable: RangeSet,
        owner: &Identity,
    ) -> io::Result<Result<(TempFile, u64), Untrusted>> {
        let untrusted = |why: &str| Ok(Err(Untrusted(why.to_string())));
        let opened = owner.run(|| {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)
        });
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) => untrusted("it does not exist"),
                    Some(libc::ELOOP) => untrusted("it is a symbolic link"),
                    Some(libc::ENXIO) => untrusted("it is a FIFO"),
                    Some(libc::EISDIR) => untrusted("it is a directory"),
                    _ => Err(e),
                }
            }
        };
        let meta = file.metadata()?;
        let uid = owner.uid();
        if !meta.file_type().is_file() {
            return untrusted("it is not a regular file");
        }
        if meta.uid() != uid {
            return untrusted(&format!("it belongs to uid {}, not {uid}", meta.uid()));
        }
        if meta.nlink() != 1 {
            return untrusted(&format!("it has {} links", meta.nlink()));
        }
        let id = identity(&meta);
        if expected.is_some_and(|e| e != id) {
            return untrusted("it is not the file the last checkpoint was written to");
        }
        clear_nonblock(&file)?;
        let len = meta.len();
        let mut durable = durable;
        durable.truncate(len);
        let temp = TempFile {
            path: path.to_path_buf(),
            handle: Mutex::new(Some((Arc::new(file), id))),
            extents: Mutex::new(Extents {
                written: durable.clone(),
                durable,
            }),
            owner: owner.clone(),
        };
        Ok(Ok((temp, len)))
    }

    /// The path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, creating a fresh one first.
    pub(crate) fn file(&self) -> io::Result<(Arc<File>, FileId)> {
        let mut handle = lock(&self.handle);
        if let Some((file, id)) = &*handle {
            return Ok((file.clone(), *id));
        }
        let file = self.owner.run(|| create_fresh(&self.path))?;
        let id = identity(&file.metadata()?);
        let file = Arc::new(file);
        *handle = Some((file.clone(), id));
        Ok((file, id))
    }

    /// The file's identity, once it exists.
    pub(crate) fn id(&self) -> Option<FileId> {
        lock(&self.handle).as_ref().map(|(_, id)| *id)
    }

    /// Writes all of `buf` at `at`; on failure says how far it got. The
    /// bytes written count as written, not durable.
    pub(crate) fn write_at(&self, buf: &[u8], at: u64) -> Result<(), OpFailed> {
        let (file, _) = self.file().map_err(|source| OpFailed {
            op: LocalOp::Open,
            source,
            ok_until: at,
        })?;
        let mut done = 0usize;
        let result = loop {
            if done == buf.len() {
                break Ok(());
            }
            match file.write_at(&buf[done..], at + done as u64) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        lock(&self.extents).written.insert(at, at + done as u64);
        result.map_err(|source| OpFailed {
            op: LocalOp::Write,
            source,
            ok_until: at + done as u64,
        })
    }

    /// `fdatasync`: on success, everything written before the call is
    /// durable, and the durable set is returned. On failure nothing more is
    /// durable and the written bytes are cut back to the durable ones.
    pub(crate) fn sync(&self) -> io::Result<RangeSet> {
        let (file, _) = self.file()?;
        // Bytes whose write completes after this snapshot may or may not be
        // covered by the sync: they are not counted.
        let before = lock(&self.extents).written.clone();
        let synced = file.sync_data();
        let mut ext = lock(&self.extents);
        match synced {
            Ok(()) => {
                for r in before.ranges() {
                    ext.durable.insert(r.start, r.end);
                }
                Ok(ext.durable.clone())
            }
            Err(e) => {
                ext.written = ext.durable.clone();
                Err(e)
            }
        }
    }

    /// Asks the kernel to start writing `len` bytes at `at` to the disk now,
    /// without waiting for them. Left alone, they stay dirty in memory until
    /// the next checkpoint, whose `fdatasync` then writes up to a
    /// checkpoint's worth at once while the download's next write waits for
    /// it; started early, the disk writes beside the transfer and the sync
    /// finds little left to do. Only a hint: a failure here shows in that
    /// sync, which is what decides what is durable, so it is not reported.
    pub(crate) fn start_writeback(&self, at: u64, len: usize) {
        let Ok((file, _)) = self.file() else {
            return;
        };
        let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
            return;
        };
        // SAFETY: sync_file_range on a descriptor we own, with integer
        // arguments only; it reads and writes no memory of ours.
        let started = unsafe {
            libc::sync_file_range(file.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if started != 0 {
            tracing::debug!(
                cause = %io::Error::last_os_error(),
                "could not start writing a temporary file back early"
            );
        }
    }

    /// Sets the file's length (a truncate to a durable point, or the full
    /// size of a file fetched by ranges). Bytes past `len` no longer count.
    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        let (file, _) = self.file()?;
        file.set_len(len)?;
        let mut ext = lock(&self.extents);
        ext.written.truncate(len);
        ext.durable.truncate(len);
        Ok(())
    }

    /// The last operation of a download: the mtime, then, if `sync`, an
    /// `fsync` of data and metadata (so the mtime is durable too), after
    /// which every written byte is durable.
    pub(crate) fn finish(&self, mtime: Option<FileTime>, sync: bool) -> Result<(), OpFailed> {
        let failed = |op, source| OpFailed {
            op,
            source,
            ok_until: 0,
        };
        let (file, _) = self.file().map_err(|e| failed(LocalOp::Open, e))?;
        if let Some(t) = mtime {
            // Cosmetic: a file system that cannot store it should not fail a
            // complete download.
            if let Err(e) = filetime::set_file_handle_times(&file, None, Some(t)) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not set the modification time");
            }
        }
        if sync {
            let before = lock(&self.extents).written.clone();
            match file.sync_all() {
                Ok(()) => lock(&self.extents).durable = before,
                Err(e) => {
                    let mut ext = lock(&self.extents);
                    ext.written = ext.durable.clone();
                    return Err(failed(LocalOp::Sync, e));
                }
            }
        }
        Ok(())
    }

    /// The last write of a download: `buf` at `at`, then [`TempFile::finish`];
    /// gives the open file and its identity.
    pub(crate) fn write_last(
        &self,
        buf: &[u8],
        at: u64,
        mtime: Option<FileTime>,
        sync: bool,
    ) -> Result<(Arc<File>, FileId), OpFailed> {
        self.write_at(buf, at)?;
        self.finish(mtime, sync)?;
        self.file().map_err(|source| OpFailed {
            op: LocalOp::Open,
            source,
            ok_until: 0,
        })
    }

    /// The durable bytes.
    pub(crate) fn durable(&self) -> RangeSet {
        lock(&self.extents).durable.clone()
    }
}

/// Creates the file empty, exclusively; if something has the name (a
/// file, a link, a FIFO), removes it first (`unlink` never follows a link)
/// and tries again, twice at most (someone racing us).
fn create_fresh(path: &Path) -> io::Result<File> {
    let mut tries = 0;
    loop {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o666)
            .open(path);
        match created {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => {
                tries += 1;
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            other => return other,
        }
    }
}

fn clear_nonblock(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A blocking-pool task ended without a result: re-raise its panic (the
/// caller's task then ends with it, and the daemon reports it), or, when the
/// runtime is shutting down, report an I/O error.
pub(crate) fn join_error(e: tokio::task::JoinError) -> io::Error {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    io::Error::other("the runtime shut down during a file operation")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// Regression: the temporary file was opened following links, so
    /// another user could point it at a file of the victim's between two
    /// attempts; now a link, a FIFO or a hard-linked file is never written
    /// through, and the download starts afresh in a file of its own.
    #[test]
    fn a_link_fifo_or_hard_link_in_place_of_the_temporary_file_is_not_trusted() {
        let d = dir();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let temp = d.path().join(".a.bits.tmp");

        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        let got = TempFile::reopen(&temp, None, RangeSet::prefix(4), &Identity::own()).unwrap();
        assert_eq!(got.unwrap_err(), Untrusted("it is a symbolic link".into()));
        std::fs::remove_file(&temp).unwrap();

        nix::unistd::mkfifo(&temp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let got = TempFile::reopen(&temp, None, RangeSet::prefix(4), &Identity::own()).unwrap();
        assert!(got.is_err(), "a FIFO must not be trusted");
        std::fs::remove_file(&temp).unwrap();

        std::fs::hard_link(&victim, &temp).unwrap();
        let got = TempFile::reopen(&temp, None, RangeSet::prefix(4), &Identity::own()).unwrap();
        assert_eq!(got.unwrap_err(), Untrusted("it has 2 links".into()));

        // Starting afresh removes the name, never the file it pointed to.
        let fresh = TempFile::fresh(&temp, &Identity::own());
        fresh.write_at(b"new", 0).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&temp).unwrap(), b"new");
        let meta = std::fs::symlink_metadata(&temp).unwrap();
        assert!(meta.file_type().is_file() && meta.nlink() == 1);
    }

    #[test]
    fn a_replaced_file_is_not_the_one_written_before() {
        let d = dir();
        let temp = d.path().join(".a.bits.tmp");
        let first = TempFile::fresh(&temp, &Identity::own());
        first.write_at(b"abcd", 0).unwrap();
        let id = first.id().unwrap();
        drop(first);
        let (again, len) = TempFile::reopen(&temp, Some(id), RangeSet::prefix(4), &Identity::own())
            .unwrap()
            .unwrap();
        assert_eq!((again.id(), len), (Some(id), 4));
        drop(again);
        let other = d.path().join("other");
        std::fs::write(&other, b"abcd").unwrap();
        std::fs::rename(&other, &temp).unwrap();
        let got = TempFile::reopen(&temp, Some(id), RangeSet::prefix(4), &Identity::own()).unwrap();
        assert!(got.is_err());
    }

    #[test]
    fn only_synced_bytes_are_durable() {
        let d = dir();
        let t = TempFile::fresh(&d.path().join("t"), &Identity::own());
        t.write_at(&[1; 10], 0).unwrap();
        assert_eq!(t.durable().len(), 0);
        assert_eq!(t.sync().unwrap().as_prefix(), Some(10));
        t.write_at(&[2; 5], 20).unwrap();
        t.set_len(22).unwrap();
        assert_eq!(t.sync().unwrap().ranges().len(), 2);
        assert_eq!(t.durable().len(), 12);
    }
}
