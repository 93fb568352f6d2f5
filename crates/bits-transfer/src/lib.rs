//! Moves the bytes of one file: resumable, validated downloads over HTTP(S)
//! and from local files, and resumable uploads with the BITS Upload Protocol.
//!
//! Architecture invariant: this crate knows nothing of jobs, states, the
//! store or the scheduler. It is given one file to move, where the bytes go,
//! and where a previous attempt durably stood ([`FileState`]). It reports
//! through [`Progress`] (or [`UploadProgress`]), waits for each resume point
//! to be saved before it relies on it, and returns an [`Outcome`] or a
//! classified [`TransferError`]. The daemon turns those into job events.
//!
//! # Layout
//!
//! - `engine`: [`Engine`], its settings and the shared HTTP client.
//! - `progress`: what a download is given and reports.
//! - `version` (pure): which version bytes belong to and what a response
//!   means for them; `headers` (pure): the header parsers.
//! - `temp_file`: the temporary file, opened safely, and the one path by
//!   which bytes become durable; `ranges` (pure): byte-range sets.
//! - `download/`: the request loop, the front-to-back writer, ranges over
//!   several connections, local copies.
//! - `upload/`: the BITS Upload Protocol client.
//! - `pace`: background pacing; `net`: URLs as shown, bounded requests;
//!   `error`: failures, their classes and descriptions.

mod auth;
mod download;
mod engine;
mod error;
mod fetch;
mod finished;
mod headers;
mod identity;
mod local_source;
mod net;
mod pace;
mod progress;
mod ranges;
mod route;
mod temp_file;
mod upload;
mod version;

pub use auth::AuthProblem;
pub use engine::{CheckpointPolicy, Engine, EngineConfig, DEFAULT_UPLOAD_FRAGMENT};
pub use error::{Class, LocalOp, NetFailure, TransferError};
pub use fetch::{RedirectRefusal, Redirects};
pub use finished::{Finished, WriteFailed};
pub use identity::{Identity, IdentityError};
pub use net::split_credential;
pub use pace::{Limits, Pacer, SharedCap};
pub use progress::{FileState, FileTransfer, NoProgress, Outcome, Progress, SaveError, Saved};
pub use route::proxy::{parse_proxy, BadProxy};
pub use route::Connection;

/// Checks a PEM file of certificate authorities a job would trust: gives
/// how many it holds, or why it cannot be used.
pub fn check_ca_file(path: &std::path::Path) -> Result<usize, String> {
    route::tls::read_ca(path).map(|a| a.len()).map_err(|p| p.0)
}
pub use upload::{UploadOutcome, UploadProgress, UploadTransfer};
