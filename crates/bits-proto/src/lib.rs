//! The protocol between `bits` and `bitsd` over the local socket.
//!
//! One [`Request`] gets one [`Response`], except [`Request::ListAll`],
//! answered by pages of jobs one after the other. Frames are a 4-byte big-endian
//! length followed by that many bytes of JSON ([`codec`]). The first request
//! on a connection is [`Request::Hello`], which carries [`PROTOCOL_VERSION`]:
//! a daemon refuses a client of another version with a clear message rather
//! than misreading it.
//!
//! Architecture invariant: this crate does not depend on `bits-core`. The
//! [`JobObject`] is the JSON job object of the command-line contract, so the
//! CLI prints what it receives; the daemon converts its domain types into it
//! in one place.
#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod jobs_frame;
mod messages;
pub mod paths;
pub mod raw;
#[cfg(test)]
mod sample;

pub use client::Client;
pub use codec::ProtoError;
pub use jobs_frame::JobsFrame;
pub use messages::*;
pub use paths::Paths;
pub use raw::{has_more_files, JobTexts, PageEnd, RawJob};

/// The most files one job may hold (the daemon refuses more; the client
/// stops reading a file list past it).
pub const MAX_FILES_PER_JOB: usize = 100_000;

/// Bumped whenever a request or response changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 5;
