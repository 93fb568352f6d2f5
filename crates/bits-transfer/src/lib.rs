//! Moves the bytes of one file: resumable, validated downloads over HTTP(S)
//! and from local files, and resumable uploads with the BITS Upload Protocol
//! (module `upload`).
//!
//! Architecture invariant: this crate knows nothing of jobs, states, the
//! store or the scheduler. It is given one file to move, where the bytes go,
//! how far a previous attempt durably got and which version of the remote
//! file those bytes belong to. It reports progress and checkpoints through
//! [`Progress`] and returns an [`Outcome`] or a classified [`TransferError`].
//! An upload is given the local file, the URL, the server session so far and
//! the bytes the server acknowledged; it reports through [`UploadProgress`]
//! and returns an [`UploadOutcome`].
//! The daemon turns those into job events.

mod engine;
mod error;
mod pace;
mod segmented;
mod upload;

pub use engine::{CheckpointPolicy, Engine, EngineConfig, FileTransfer, Outcome, Progress};
pub use error::{Class, LocalOp, NetFailure, TransferError};
pub use pace::Pacer;
pub use upload::{UploadOutcome, UploadProgress, UploadTransfer, DEFAULT_UPLOAD_FRAGMENT};
