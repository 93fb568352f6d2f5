//! Moves the bytes of one file: resumable, validated downloads over HTTP(S)
//! and from local files.
//!
//! Architecture invariant: this crate knows nothing of jobs, states, the
//! store or the scheduler. It is given one file to move, where the bytes go,
//! how far a previous attempt durably got and which version of the remote
//! file those bytes belong to. It reports progress and checkpoints through
//! [`Progress`] and returns an [`Outcome`] or a classified [`TransferError`].
//! The daemon turns those into job events.

mod engine;
mod error;

pub use engine::{CheckpointPolicy, Engine, EngineConfig, FileTransfer, Outcome, Progress};
pub use error::{Class, LocalOp, NetFailure, TransferError};
