//! The BITS job model, with no I/O.
//!
//! # Layout
//!
//! - [`job`]: a job (`Job`), its properties and identifiers.
//! - [`file`]: one file of a job (`JobFile`), kept small.
//! - [`state`]: the nine BITS job states and the one function that moves a job
//!   between them ([`state::next_state`]), applied by [`Job::apply`].
//! - [`connection`]: how a job reaches its servers: proxies, security flags,
//!   custom headers.
//! - [`notify`]: the command a job runs when it is Transferred or in Error.
//! - [`error`]: what a job reports when it fails: the BITS error context, the
//!   HRESULT-style code and a sentence for people.
//! - [`policy`]: pure decisions (retry timing, which jobs may run) taking `now`
//!   as an argument, so that they are testable without clocks.
//!
//! Architecture invariant: nothing here touches the network, the disk, a
//! clock or an async runtime. Time comes in as `now: SystemTime`.
#![deny(missing_docs)]

pub mod connection;
pub mod error;
pub mod file;
pub mod job;
pub mod notify;
pub mod policy;
pub mod state;

pub use connection::{
    ConnectionProps, CustomHeader, ProxySettings, ProxyUsage, SecurityFlags, PROXY_ENVIRONMENT,
};
pub use error::{ErrorContext, JobError};
pub use file::JobFile;
pub use job::{
    AuthScheme, ByteRange, Credential, FileId, FileValidator, Job, JobId, JobProps, JobType,
    ParseEnumError, Priority, Secret, UploadSession,
};
pub use notify::{NotifyFlags, NotifySettings};
pub use state::{Event, InvalidTransition, JobState};
