//! The error type of [`crate::serve`].
//!
//! Only failures that stop the server as a whole end up here: problems with a
//! single request become an HTTP status for that request, and problems with a
//! single connection are logged and only end that connection.

use std::path::PathBuf;

/// Why `bits serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The directory to publish does not exist or cannot be accessed.
    #[error("cannot serve {}: {source}", root.display())]
    RootUnavailable {
        /// The directory as it was given.
        root: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The path to publish exists but is not a directory.
    #[error("cannot serve {}: it is not a directory", root.display())]
    RootNotADirectory {
        /// The path as it was given.
        root: PathBuf,
    },
    /// Uploads are on but their session directory (`DIR/.bits-sessions`)
    /// cannot be created, is not a private directory, or cannot be read.
    #[error("cannot use the upload session directory {}: {source}", path.display())]
    SessionStore {
        /// The session directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// An upload setting has a value the server cannot work with.
    #[error("invalid upload setting {setting}: {reason}")]
    InvalidUploadConfig {
        /// The setting, named as in [`crate::UploadConfig`].
        setting: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
}
