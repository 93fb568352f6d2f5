//! Copies from a local file (an absolute path or a `file://` URL), with the
//! same promises as a download: the version of the source is its size and
//! its modification time at full resolution, checked before a resume and
//! after the last byte is read; a change restarts the copy from byte 0.

use super::sink::Sink;
use super::start::{start_point, MAX_RESTARTS};
use crate::engine::Engine;
use crate::error::TransferError;
use crate::identity::Identity;
use crate::progress::{FileTransfer, Outcome, Progress};
use crate::temp_file::join_error;
use crate::version;
use filetime::FileTime;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Size of one read from the source.
const READ_BUF: usize = super::sink::BUF_CAP;

/// How a copy ended.
enum Copied {
    Complete,
    /// The source changed size or mtime while being read.
    Changed,
}

/// Copies `path` into `file.temp`, resuming from `file.resume` if the
/// source is still the version it describes.
pub(crate) async fn copy(
    engine: &Engine,
    path: &Path,
    file: &FileTransfer<'_>,
    progress: &mut dyn Progress,
    cancel: &CancellationToken,
) -> Result<Outcome, TransferError> {
    let shown = path.display().to_string();
    let (mut source, mut meta) = open_source(path, file.identity, 0).await?;
    let mut version = version::of_local_file(&meta);
    let start = start_point(file, &shown, Some(&version)).await?;
    // A local copy goes front to back; a record of ranges starts again.
    let mut offset = if start.missing.is_empty() {
        start.offset
    } else {
        0
    };
    let mut sink = Sink::new(start.temp, engine.config.checkpoint, progress);
    let mut restarts = 0u32;
    loop {
        let size = meta.len();
        let mtime = FileTime::from_last_modification_time(&meta);
        sink.begin(&version, offset, offset == 0).await?;
        sink.expect(Some(size - offset.min(size)));
        match copy_body(source, path, size, mtime, &mut sink, cancel).await? {
            Copied::Complete => {
                return sink
                    .finish(Some(mtime), file.sync_on_finish, version, size)
                    .await;
            }
            Copied::Changed => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(TransferError::SourceChanged {
                        source_name: shown,
                        restarts: MAX_RESTARTS,
                    });
                }
                info!(path = %shown, "source file changed during the copy, restarting from 0");
                (source, meta) = open_source(path, file.identity, sink.written()).await?;
                version = version::of_local_file(&meta);
                offset = 0;
            }
        }
    }
}

async fn open_source(
    path: &Path,
    owner: &Identity,
    written: u64,
) -> Result<(File, std::fs::Metadata), TransferError> {
    crate::local_source::open(path, owner)
        .await
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TransferError::SourceMissing {
                    path: path.to_path_buf(),
                }
            } else {
                TransferError::SourceRead {
                    path: path.to_path_buf(),
                    written,
                    source,
                }
            }
        })
}

/// Copies a local source from the sink's position to `size`. Reports
/// [`Copied::Changed`] if the source is not exactly `size` bytes with mtime
/// `mtime` throughout (the bytes would mix versions otherwise).
async fn copy_body(
    source: File,
    path: &Path,
    size: u64,
    mtime: FileTime,
    sink: &mut Sink<'_>,
    cancel: &CancellationToken,
) -> Result<Copied, TransferError> {
    let mut source = Some(source);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let pos = sink.pos();
        let src = source.take().expect("the source is back after each read");
        let mut read_buf = std::mem::take(&mut buf);
        // Reads go to the blocking pool too: a local source may be on a slow
        // or network file system.
        let read = tokio::task::spawn_blocking(move || {
            let r = src.read_at(&mut read_buf, pos);
            (src, read_buf, r)
        });
        let (src, read_buf, result) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(sink.cancel().await),
            r = read => r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
        };
        source = Some(src);
        buf = read_buf;
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                sink.checkpoint().await?;
                return Err(TransferError::SourceRead {
                    path: path.to_path_buf(),
                    written: sink.written(),
                    source: e,
                });
            }
        };
        if n == 0 {
            break;
        }
        if pos + n as u64 > size {
            // Grew: the bytes past `size` belong to another version.
            return Ok(Copied::Changed);
        }
        sink.write(&buf[..n]).await?;
        if cancel.is_cancelled() {
            return Err(sink.cancel().await);
        }
    }
    if sink.pos() != size {
        return Ok(Copied::Changed);
    }
    // Same size at the end; also check the mtime to catch a rewrite in place.
    let src = source.take().expect("the source is back after each read");
    let meta = tokio::task::spawn_blocking(move || src.metadata())
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
    match meta {
        Ok(m) if m.len() == size && FileTime::from_last_modification_time(&m) == mtime => {
            Ok(Copied::Complete)
        }
        Ok(_) => Ok(Copied::Changed),
        Err(e) => Err(TransferError::SourceRead {
            path: path.to_path_buf(),
            written: sink.written(),
            source: e,
        }),
    }
}
