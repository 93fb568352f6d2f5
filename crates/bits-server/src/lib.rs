//! `bits-server`: the engine behind `bits serve DIR`.
//!
//! A small static HTTP/1.1 file server whose job is to be a good far end for
//! resumable downloads: it answers `GET` and `HEAD`, single byte `Range`
//! requests (`206`/`416`), `If-Range`, and the usual cache validators
//! (`ETag`, `Last-Modified`, `If-None-Match`, `If-Modified-Since`,
//! `If-Match`, `If-Unmodified-Since`). Connections are kept alive so a
//! download client can reuse them, and file bodies are streamed in large
//! chunks straight from disk, so files of any size are served in constant
//! memory.
//!
//! The crate is laid out by concern:
//!
//! * [`serve`] (module `server`) owns the listening socket, the connection
//!   tasks and graceful shutdown;
//! * module `handler` dispatches each request on its method — the single place
//!   where new methods (e.g. the planned `BITS_POST` upload sessions) plug in;
//! * modules `static_files`, `resolve`, `range`, `conditional`, `listing` and
//!   `body` implement the static file logic piece by piece.
//!
//! Everything except [`ServeConfig`], [`serve`] and [`ServeError`] is private,
//! so the internals can change without touching the CLI.
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

pub use error::ServeError;
pub use server::serve;

/// Settings of `bits serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory whose contents are published. URL paths are resolved below
    /// it; nothing outside it (not even through symlinks) is ever served.
    pub root: std::path::PathBuf,
}
