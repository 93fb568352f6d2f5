//! The temporary file of a finished download, as the caller gets it: open
//! on disk, or, for a small file whose caller makes it durable itself,
//! still in memory.
//!
//! Why in memory: a caller that moves thousands of small files makes them
//! durable in batches (one `syncfs` for hundreds of files). Creating each
//! file the moment its body arrived cost a trip to the blocking pool per
//! file, two thread wake-ups and a context switch each way, more than
//! the create and the write themselves. Left in memory, the files of a
//! batch are created and written by the batch's one trip, just before its
//! sync, while the next files download.

use crate::error::LocalOp;
use crate::temp_file::TempFile;
use bits_core::FileId;
use filetime::FileTime;
use std::fs::File;
use std::io;
use std::sync::Arc;

/// A file whose bytes are at most this long is left in memory when its
/// caller makes it durable itself (`sync_on_finish: false`). With a batch
/// of a few hundred files, a few MiB of memory per running job.
pub(crate) const IN_MEMORY_MAX: usize = 64 * 1024;

/// The temporary file of a finished download.
#[derive(Debug)]
pub struct Finished(State);

#[derive(Debug)]
enum State {
    /// On disk, still open, so that a caller syncing many files at once
    /// never has to find them again by name.
    Open { file: Arc<File>, id: FileId },
    /// Not created yet: the whole body is here.
    InMemory(Box<Unwritten>),
}

struct Unwritten {
    temp: Arc<TempFile>,
    bytes: Vec<u8>,
    mtime: Option<FileTime>,
}

impl std::fmt::Debug for Unwritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unwritten")
            .field("path", &self.temp.path())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A file that could not be written out: what failed, and why.
#[derive(Debug)]
pub struct WriteFailed {
    /// The operation that failed (creating, writing).
    pub op: LocalOp,
    /// Why.
    pub source: io::Error,
}

impl Finished {
    pub(crate) fn open(file: Arc<File>, id: FileId) -> Finished {
        Finished(State::Open { file, id })
    }

    /// A fresh file never created on disk, whose every byte is `bytes`.
    pub(crate) fn unwritten(
        temp: Arc<TempFile>,
        bytes: Vec<u8>,
        mtime: Option<FileTime>,
    ) -> Finished {
        Finished(State::InMemory(Box::new(Unwritten { temp, bytes, mtime })))
    }

    /// The open file and its identity, created and written first (with its
    /// mtime) if its bytes are still in memory; not yet durable. Blocking:
    /// run it on the blocking pool. After a failure the bytes are still
    /// here, and calling again starts the file afresh.
    pub fn write(&mut self) -> Result<(Arc<File>, FileId), WriteFailed> {
        let u = match &self.0 {
            State::Open { file, id } => return Ok((file.clone(), *id)),
            State::InMemory(u) => u,
        };
        let (file, id) = u
            .temp
            .write_last(&u.bytes, 0, u.mtime, false)
            .map_err(|f| WriteFailed {
                op: f.op,
                source: f.source,
            })?;
        self.0 = State::Open {
            file: file.clone(),
            id,
        };
        Ok((file, id))
    }

    /// How many of its bytes are held in memory (none once it is on disk).
    pub fn in_memory(&self) -> usize {
        match &self.0 {
            State::Open { .. } => 0,
            State::InMemory(u) => u.bytes.len(),
        }
    }

    /// The file's identity (device and inode), once it is on disk.
    pub fn id(&self) -> Option<FileId> {
        match &self.0 {
            State::Open { id, .. } => Some(*id),
            State::InMemory(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn a_file_left_in_memory_is_created_by_write_with_its_bytes_and_mtime() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(".a.bits.tmp");
        let temp = Arc::new(TempFile::fresh(&path, &Identity::own()));
        let mtime = FileTime::from_unix_time(1_000_000_000, 0);
        let mut f = Finished::unwritten(temp, b"hello".to_vec(), Some(mtime));
        assert!(!path.exists(), "nothing is created before write");
        assert_eq!((f.id(), f.in_memory()), (None, 5));
        let (_, written) = f.write().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(FileTime::from_last_modification_time(&meta), mtime);
        let id = f.id().unwrap();
        assert_eq!(written, id);
        use std::os::unix::fs::MetadataExt;
        assert_eq!((id.dev, id.ino), (meta.dev(), meta.ino()));
        // Written once: a second call changes nothing.
        assert_eq!(f.write().unwrap().1, id);
        assert_eq!((f.id(), f.in_memory()), (Some(id), 0));
    }

    #[test]
    fn a_file_that_cannot_be_created_says_so_and_keeps_its_bytes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("gone").join(".a.bits.tmp");
        let temp = Arc::new(TempFile::fresh(&path, &Identity::own()));
        let mut f = Finished::unwritten(temp, b"hello".to_vec(), None);
        let e = f.write().unwrap_err();
        assert_eq!(e.op, LocalOp::Open);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        std::fs::create_dir(d.path().join("gone")).unwrap();
        f.write().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }
}
