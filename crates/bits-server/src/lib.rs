//! `bits-server`: the engine behind `bits serve DIR [--upload]`.
//!
//! A small HTTP/1.1 server whose job is to be a good far end for BITS:
//!
//! * **downloads**: a static file server for resumable downloads. It answers
//!   `GET` and `HEAD`, single byte `Range` requests (`206`/`416`),
//!   `If-Range`, and the usual cache validators (`ETag`, `Last-Modified`,
//!   `If-None-Match`, `If-Modified-Since`, `If-Match`,
//!   `If-Unmodified-Since`). Connections are kept alive so a download client
//!   can reuse them, and file bodies are streamed in large chunks straight
//!   from disk, so files of any size are served in constant memory;
//! * **uploads** (when [`ServeConfig::upload`] is set): the BITS Upload
//!   Protocol (`BITS_POST` with Ping, Create-Session, Fragment,
//!   Close-Session, Cancel-Session), the role of IIS' BITS server extension,
//!   with sessions persisted under `DIR/.bits-sessions/` so a restart
//!   between fragments loses nothing; optionally the upload-reply back-end
//!   notification; and plain `PUT` of whole files.
//!
//! The crate is laid out by concern:
//!
//! * [`serve`] (module `server`) owns the listening socket, the connection
//!   tasks, the session sweeper and graceful shutdown;
//! * module `handler` dispatches each request on its method;
//! * modules `static_files`, `resolve`, `range`, `conditional`, `listing` and
//!   `body` implement the static file logic piece by piece;
//! * module `upload` implements uploads (its own module doc has the map).
//!
//! Everything except [`ServeConfig`], [`UploadConfig`], [`Notify`],
//! [`NotifyKind`], [`serve`] and [`ServeError`] is private, so the internals
//! can change without touching the CLI.
#![deny(missing_docs)]

mod body;
mod conditional;
mod error;
mod handler;
mod listing;
mod range;
mod resolve;
mod server;
mod static_files;
mod upload;

pub use error::ServeError;
pub use server::serve;
pub use upload::{Notify, NotifyKind, UploadConfig};

/// Settings of `bits serve`.
///
/// Build it with [`ServeConfig::new`] (downloads only) and set
/// [`upload`](Self::upload) to accept uploads, or with a struct literal and
/// `..Default::default()`.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// Directory whose contents are published (and that uploads go into).
    /// URL paths are resolved below it; nothing outside it (not even through
    /// symlinks) is ever served or written. The default, an empty path, is
    /// not a usable root: [`serve`] reports it.
    pub root: std::path::PathBuf,
    /// Upload settings; `None` (the default) refuses uploads: `BITS_POST` and
    /// `PUT` get `405 Method Not Allowed` like any unknown method.
    pub upload: Option<UploadConfig>,
}

impl ServeConfig {
    /// Serves `root` for downloads only.
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        Self {
            root: root.into(),
            upload: None,
        }
    }
}
