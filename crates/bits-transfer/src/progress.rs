//! What a download is given and what it reports: the file to move, where it
//! durably stands ([`FileState`]), and the [`Progress`] the engine tells
//! about every step.
//!
//! The engine never writes a byte that the caller's record does not cover:
//! before the first byte of a version that replaces what the record
//! describes, it waits for [`Progress::begin`] to have saved the new resume
//! point; after every `fdatasync` it waits for [`Progress::checkpoint`] to
//! have saved what is durable. A save that fails stops the transfer
//! ([`crate::TransferError::NotSaved`]): a result that could not be saved
//! did not happen.

use crate::finished::Finished;
use crate::identity::Identity;
use crate::pace::Pacer;
use bits_core::{ByteRange, Credential, FileId, FileValidator};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// Where a file durably stands: the resume point the caller keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileState {
    /// The version the bytes belong to.
    pub validator: FileValidator,
    /// Durable bytes. When `missing` is empty they are the file's first
    /// `bytes` bytes; otherwise every byte outside `missing` is durable and
    /// `bytes` counts them.
    pub bytes: u64,
    /// A file fetched over several connections: the ranges not yet durable,
    /// sorted. Empty for a file written front to back.
    pub missing: Vec<ByteRange>,
    /// The temporary file the bytes are in (device and inode): a file found
    /// under the same name later is trusted only if it is this one.
    pub temp_id: Option<FileId>,
}

impl FileState {
    /// Whether nothing is recorded: a transfer from it starts from byte 0
    /// and has nothing to protect.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.missing.is_empty()
    }
}

/// A failed save of a resume point (the caller's store could not be
/// written). The engine stops; the message says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SaveError {
    /// What failed, for people.
    pub message: String,
}

/// The future of a save the engine waits for.
pub type Saved<'a> = Pin<Box<dyn Future<Output = Result<(), SaveError>> + Send + 'a>>;

/// Receives a download's progress. Called from the transfer task.
pub trait Progress: Send {
    /// The source answered; `state` is the version being written and where
    /// writing continues (`bytes: 0` for a new version). Awaited before any
    /// byte of that version is written: save it as the resume point unless
    /// it is what is already saved. `total` is the file's size, if known.
    fn begin<'a>(&'a mut self, state: &'a FileState, total: Option<u64>) -> Saved<'a>;
    /// `received` bytes of the file have arrived (not all durable). Memory
    /// only: must be quick.
    fn progress(&mut self, received: u64);
    /// The bytes `state` describes are durable: save it as the resume point.
    fn checkpoint<'a>(&'a mut self, state: &'a FileState) -> Saved<'a>;
}

/// A [`Progress`] that keeps nothing: for a download fetched whole again if
/// interrupted (an upload's reply), and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin<'a>(&'a mut self, _: &'a FileState, _: Option<u64>) -> Saved<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn progress(&mut self, _: u64) {}
    fn checkpoint<'a>(&'a mut self, _: &'a FileState) -> Saved<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// One file to download.
#[derive(Debug, Clone)]
pub struct FileTransfer<'a> {
    /// http(s) URL, file:// URL or absolute local path, without userinfo.
    pub remote: &'a str,
    /// The server's credentials, if any: answered to the challenges of the
    /// URL's origin, never sent elsewhere.
    pub credential: Option<&'a Credential>,
    /// How the server is reached: proxies, TLS, redirect policy, custom
    /// headers.
    pub connection: crate::route::Connection<'a>,
    /// Where the bytes are written.
    pub temp: &'a Path,
    /// Whose rights every path of the transfer (the temporary file, a local
    /// source) is opened with: the job's owner.
    pub identity: &'a Identity,
    /// Where the last attempt durably stopped (default: nothing yet).
    pub resume: &'a FileState,
    /// Whether the engine makes the finished file durable itself (fsync,
    /// then a last [`Progress::checkpoint`]). A caller that moves many files
    /// passes `false` and makes a batch of them durable at once with the
    /// handle in [`Outcome::temp`] ([`Finished::write`], then a sync);
    /// until it has, the bytes past the last checkpoint are not promised to
    /// survive a power cut, and a small file's may not be on disk at all.
    pub sync_on_finish: bool,
    /// How many connections this file may use (ranges of one version side
    /// by side) when the server allows ranges. 1: front to back.
    pub connections: u32,
    /// For a background job: paces HTTP(S) reads to the bandwidth nobody
    /// else uses (see [`Pacer`]). `None`: as fast as the path allows.
    pub pace: Option<Arc<Pacer>>,
}

/// A finished file.
#[derive(Debug)]
pub struct Outcome {
    /// The file's size.
    pub bytes: u64,
    /// The version downloaded.
    pub validator: FileValidator,
    /// The temporary file: open, or (a small file the caller makes
    /// durable itself) still to be written.
    pub temp: Finished,
    /// With the redirect-allow-report flag, the URL the file came from
    /// after redirects (without userinfo), when it is not the one asked
    /// for: the file's new RemoteName.
    pub remote_name: Option<String>,
    /// The proxy the transfer went through (`None`: directly).
    pub via: Option<String>,
}
