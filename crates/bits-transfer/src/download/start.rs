//! Where an attempt continues: the saved resume point, if the temporary
//! file still holds the bytes it vouches for (the very file, long enough)
//! and their version can be proven; else byte 0 in a fresh file.

use crate::error::{LocalOp, TransferError};
use crate::identity::Identity;
use crate::progress::FileTransfer;
use crate::ranges::RangeSet;
use crate::temp_file::{join_error, TempFile, Untrusted};
use bits_core::{ByteRange, FileValidator};
use std::path::Path;
use std::sync::Arc;
use tracing::info;

/// How many times one `download` call restarts from zero because the source
/// changed under it before giving up with [`TransferError::SourceChanged`]
/// (the daemon retries later). Guards against a file rewritten continuously.
pub(super) const MAX_RESTARTS: u32 = 3;

/// Where an attempt continues: the file to write and the bytes in it that
/// count.
pub(super) struct Start {
    pub(super) temp: Arc<TempFile>,
    /// Front to back: where writing continues.
    pub(super) offset: u64,
    /// The version of the bytes before `offset` (or outside `missing`).
    pub(super) stored: FileValidator,
    /// Several connections: the ranges still to fetch (empty otherwise).
    pub(super) missing: Vec<ByteRange>,
}

impl Start {
    fn fresh(path: &Path, owner: &Identity) -> Start {
        Start {
            temp: Arc::new(TempFile::fresh(path, owner)),
            offset: 0,
            stored: FileValidator::default(),
            missing: Vec::new(),
        }
    }
}

/// The record's resume point, if the temporary file still holds the bytes
/// it vouches for and their version can be proven; else byte 0 in a fresh
/// file. `validator` is the source's version for local files (it must
/// equal the record's), `None` for HTTP (the server checks `If-Range`).
pub(super) async fn start_point(
    file: &FileTransfer<'_>,
    shown: &str,
    local_version: Option<&FileValidator>,
) -> Result<Start, TransferError> {
    let r = file.resume;
    if r.is_empty() {
        return Ok(Start::fresh(file.temp, file.identity));
    }
    let size = r.validator.size;
    let why = if !r.validator.can_prove() {
        Some("its version cannot be proven (no strong ETag or date)")
    } else if local_version.is_some_and(|v| *v != r.validator) {
        Some("the source file changed")
    } else if size.is_none() {
        Some("the file's size was not known")
    } else if r.missing.is_empty() && size.is_some_and(|s| r.bytes > s) {
        Some("the checkpoint lies past the end of the file")
    } else if !r.missing.is_empty()
        && !size.is_some_and(|s| super::segmented::well_formed(&r.missing, s))
    {
        Some("the missing ranges do not describe the file")
    } else {
        None
    };
    if let Some(why) = why {
        info!(source = %shown, offset = r.bytes, reason = why, "cannot resume, restarting from 0");
        return Ok(Start::fresh(file.temp, file.identity));
    }
    let total = size.unwrap_or(0);
    let durable = if r.missing.is_empty() {
        RangeSet::prefix(r.bytes)
    } else {
        RangeSet::all_but(total, &r.missing)
    };
    let path = file.temp.to_path_buf();
    let expected = r.temp_id;
    let owner = file.identity.clone();
    let opened =
        tokio::task::spawn_blocking(move || TempFile::reopen(&path, expected, durable, &owner))
            .await
            .map_err(join_error)
            .and_then(|r| r)
            .map_err(|source| TransferError::LocalFile {
                op: LocalOp::Open,
                path: file.temp.to_path_buf(),
                written: 0,
                source,
            })?;
    let (temp, len) = match opened {
        Ok(found) => found,
        Err(Untrusted(why)) => {
            info!(path = %file.temp.display(), reason = %why, "the temporary file cannot be trusted; restarting from 0");
            return Ok(Start::fresh(file.temp, file.identity));
        }
    };
    let temp = Arc::new(temp);
    let short = if r.missing.is_empty() {
        // The checkpoint claims bytes the file does not hold (someone cut
        // it, or a power cut lost what was never synced): extending it
        // would write zeros into the file.
        (len < r.bytes).then_some("the temporary file is shorter than the checkpoint")
    } else {
        (len != total).then_some("the temporary file does not have the file's size")
    };
    if let Some(why) = short {
        info!(source = %shown, offset = r.bytes, reason = why, "cannot resume, restarting from 0");
        // Our own file: it is truncated when the new version begins.
        return Ok(Start {
            temp,
            offset: 0,
            stored: FileValidator::default(),
            missing: Vec::new(),
        });
    }
    Ok(Start {
        temp,
        offset: if r.missing.is_empty() { r.bytes } else { 0 },
        stored: r.validator.clone(),
        missing: r.missing.clone(),
    })
}
