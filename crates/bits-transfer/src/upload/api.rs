//! What an upload is given and what it reports.

use crate::identity::Identity;
use crate::pace::Pacer;
use crate::progress::Saved;
use bits_core::{Credential, FileValidator, UploadSession};
use std::path::Path;
use std::sync::Arc;

/// One upload to make.
#[derive(Debug, Clone)]
pub struct UploadTransfer<'a> {
    /// The local file to send.
    pub local: &'a Path,
    /// Whose rights the local file (and an upload-reply's reply file) is
    /// opened with: the job's owner.
    pub identity: &'a Identity,
    /// The job's remote URL (http or https), without userinfo.
    pub url: &'a str,
    /// The server's credentials, if any: answered to the challenges of the
    /// job URL's origin only, never to another host a server names.
    pub credential: Option<&'a Credential>,
    /// How the server is reached: proxies, TLS, custom headers.
    pub connection: crate::route::Connection<'a>,
    /// Size and mtime of the local file when the upload began; default (all
    /// None) the first time: the engine fills it in through
    /// [`UploadProgress::session`] before sending any byte.
    pub validator: &'a FileValidator,
    /// The server session so far (default: none yet).
    pub session: &'a UploadSession,
    /// Bytes the server has acknowledged so far (resume point).
    pub acknowledged: u64,
    /// Upload-reply jobs: where to write the reply (the daemon gives a
    /// temporary path; the engine writes it whole).
    pub reply_to: Option<&'a Path>,
    /// For a background job: paces the fragments' bytes to the bandwidth
    /// nobody else uses (see [`Pacer`]). `None`: as fast as the path allows.
    pub pace: Option<Arc<Pacer>>,
}

/// Receives upload progress; the daemon saves what it is told, and the
/// engine waits for each save: a session or resume point that could not be
/// saved stops the upload ([`TransferError::NotSaved`]).
pub trait UploadProgress: Send {
    /// The session (new or changed), the local file's validator and total
    /// size: save before fragments are sent. A new session is followed by
    /// `acknowledged(0)`.
    fn session<'a>(
        &'a mut self,
        session: &'a UploadSession,
        validator: &'a FileValidator,
        total: u64,
    ) -> Saved<'a>;
    /// The server has acknowledged `bytes`: save as the resume point.
    /// Called at the engine's checkpoint cadence (and at the end, and when
    /// the session changes), not for every fragment; see
    /// [`UploadProgress::moved`].
    fn acknowledged(&mut self, bytes: u64) -> Saved<'_>;
    /// The server has acknowledged `bytes`, not saved yet: for display.
    fn moved(&mut self, _bytes: u64) {}
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The file's size (every byte is on the server).
    pub bytes: u64,
    /// Upload-reply jobs: the size of the reply written to `reply_to`.
    pub reply_bytes: Option<u64>,
    /// The proxy the upload went through (`None`: directly).
    pub via: Option<String>,
}
