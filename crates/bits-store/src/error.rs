//! Store failures, named for what was being done.

use std::path::PathBuf;

/// A failure of the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened.
    #[error("cannot open the job database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is not a SQLite database, or is corrupt.
    #[error("the job database {path} is damaged; move it away to start bitsd with no jobs")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite found.
        #[source]
        source: rusqlite::Error,
    },
    /// The database or one of its companion files could not be made
    /// private to its owner.
    #[error("cannot make {path} private to its owner")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key that seals the stored passwords could not be read or
    /// created.
    #[error("cannot read or create the job database's key file {path}; if it is damaged, move it away (the jobs' passwords are then lost and must be given again)")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A statement failed.
    #[error("job database: {op} failed")]
    Sql {
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer bits.
    #[error("the job database has schema version {found}, newer than this bitsd understands ({supported}); run a newer bitsd")]
    UnsupportedSchema {
        /// Version on disk.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
    /// A row holds a value that cannot be read back.
    #[error("job database: job {job} holds an invalid {field}: {value}")]
    Corrupt {
        /// The job.
        job: String,
        /// The column.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The saved policy cannot be read back.
    #[error(
        "job database: the saved policy is invalid ({reason}); set it again with `bits policy set`"
    )]
    BadPolicy {
        /// What is wrong.
        reason: String,
    },
    /// The store's thread is gone (it stopped after a panic, or the daemon
    /// is stopping): nothing was read or written.
    #[error("the job database is not available (its thread stopped)")]
    Unavailable,
    /// An update named a job that is not stored.
    #[error("bug: job {0} is not in the job database")]
    NoSuchJob(String),
}

impl StoreError {
    /// Wraps a rusqlite error with what was being done.
    pub(crate) fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sql { op, source }
    }
}
