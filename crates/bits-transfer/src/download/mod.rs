//! Downloads: one file from an HTTP(S) server or a local file into its
//! temporary file, resuming where a previous attempt durably stopped.
//!
//! The promises, in order of importance:
//!
//! 1. **Never splice two versions.** Bytes are appended only when the
//!    source proves they belong to the version already on disk (see
//!    `version`); the resume point of a new version is saved before its
//!    first byte is written.
//! 2. **Never write bytes we cannot vouch for.** A partial response whose
//!    `Content-Range` is not what was asked, a coded body, a body longer
//!    than announced: nothing of it reaches the file.
//! 3. **Survive kill -9 and power loss.** Only bytes made durable (see
//!    `temp_file`) are reported, and a resume starts from the saved point in
//!    the very file it was written to.
//! 4. **Always end.** Every wait on the network is bounded.
//!
//! The parts: `start` (where an attempt continues), `http` (the request
//! loop), `sink` (the front-to-back writer), `body` (reading a response
//! into it), `segmented` (ranges over several connections), `local` (local
//! files). This file only dispatches; no part depends on it.

mod body;
mod http;
mod local;
mod segmented;
mod sink;
mod start;

use crate::engine::Engine;
use crate::error::TransferError;
use crate::net::shown;
use crate::progress::{FileTransfer, Outcome, Progress};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Where the bytes come from.
enum Source {
    Http(Url),
    Local(PathBuf),
}

fn parse_source(remote: &str) -> Result<Source, TransferError> {
    if remote.starts_with('/') {
        return Ok(Source::Local(PathBuf::from(remote)));
    }
    let invalid = |remote: String| TransferError::InvalidSource { remote };
    let url = Url::parse(remote).map_err(|_| invalid(remote.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(Source::Http(url)),
        "file" => url
            .to_file_path()
            .map(Source::Local)
            .map_err(|()| invalid(shown(&url))),
        _ => Err(invalid(shown(&url))),
    }
}

impl Engine {
    /// Downloads one file into `file.temp`, resuming from `file.resume`.
    ///
    /// On success every byte is written (and, with `sync_on_finish`,
    /// fsynced and reported), and the temporary file's mtime is the
    /// source's; without `sync_on_finish`, a small fresh file's bytes may
    /// instead be held in [`Outcome::temp`], for the caller's
    /// [`crate::Finished::write`]. On failure (including [`TransferError::Cancelled`]) what
    /// arrived is made durable and reported first, so the next call resumes
    /// there.
    pub async fn download(
        &self,
        file: FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        match parse_source(file.remote)? {
            Source::Http(url) => self.download_http(&url, &file, progress, cancel).await,
            Source::Local(path) => local::copy(self, &path, &file, progress, cancel).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert!(matches!(parse_source("/srv/a.bin"), Ok(Source::Local(_))));
        assert!(matches!(
            parse_source("file:///srv/a%20b.bin"),
            Ok(Source::Local(p)) if p == std::path::Path::new("/srv/a b.bin")
        ));
        assert!(matches!(parse_source("https://h/a"), Ok(Source::Http(_))));
        assert!(matches!(
            parse_source("ftp://u:p@h/a"),
            Err(TransferError::InvalidSource { remote }) if remote == "ftp://h/a"
        ));
        assert!(parse_source("relative/path").is_err());
    }
}
