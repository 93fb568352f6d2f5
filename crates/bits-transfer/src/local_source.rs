//! Opening a local file to read from (a local download source, a file to
//! upload): on the blocking pool, since it may sit on a slow or network file
//! system, and refusing a directory.

use crate::identity::Identity;
use crate::temp_file::join_error;
use std::fs::File;
use std::io;
use std::path::Path;

/// The file at `path`, open for reading, and what it is.
pub(crate) async fn open(path: &Path, owner: &Identity) -> io::Result<(File, std::fs::Metadata)> {
    let p = path.to_path_buf();
    let owner = owner.clone();
    tokio::task::spawn_blocking(move || {
        // With the owner's rights: a file the owner could not read is not
        // read for them.
        let f = owner.run(|| File::open(&p))?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok((f, meta))
    })
    .await
    .unwrap_or_else(|e| Err(join_error(e)))
}
