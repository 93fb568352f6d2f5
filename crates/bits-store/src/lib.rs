//! The durable job store: SQLite in WAL mode, one row per job and one per
//! file, with a versioned schema.
//!
//! Every call is one transaction, committed with `synchronous=FULL`: when a
//! call returns, what it wrote survives a crash or a power cut. That is what
//! lets the daemon tell a user that a job exists, and what makes a progress
//! checkpoint a promise.
//!
//! Architecture invariant: the rows are this crate's own record format, not
//! `bits_core` types; `convert` is the only place that maps between them, so
//! the domain model can change without silently changing what is on disk.
#![deny(missing_docs)]

mod convert;
mod error;
mod schema;
mod sealed;

pub use error::StoreError;
pub use schema::SCHEMA_VERSION;

use bits_core::policy::machine::MachinePolicy;
use bits_core::{Job, JobFile, JobId};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// An open job database.
pub struct Store {
    conn: Connection,
    /// Seals the passwords the rows hold (see `sealed`).
    sealer: sealed::Sealer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema
    /// up to date. A database written by a newer version is refused rather
    /// than misread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        make_private(path, true)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::sql("set busy timeout"))?;
        // The first statement reads the file: a file that is not a database
        // (or a corrupt one) shows here, and says so in plain words.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|source| damaged_or(path, "enable WAL", source))?;
        // FULL: the WAL is fsynced at every commit, so a committed job or
        // checkpoint survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::sql("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(StoreError::sql("enable foreign keys"))?;
        let sealer = sealed::Sealer::for_database(path)?;
        let mut store = Store { conn, sealer };
        schema::migrate(&mut store.conn).map_err(|e| match e {
            StoreError::Sql { op, source } => damaged_or(path, op, source),
            other => other,
        })?;
        store.seal_plaintext()?;
        // SQLite creates the WAL and shared-memory files with the database's
        // mode; files left by an older bitsd may still be readable by others.
        for companion in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(companion);
            make_private(Path::new(&name), false)?;
        }
        Ok(store)
    }

    /// Every job, with its files in order.
    pub fn load_all(&self) -> Result<Vec<Job>, StoreError> {
        let jobs = convert::load_all(&self.conn, &self.sealer)?;
        // Reading every row filled SQLite's page cache (up to 2 MB) with
        // pages the daemon now holds as jobs; the cache refills from what
        // requests actually touch. A failure only leaves memory in use.
        if let Err(e) = self.conn.execute_batch("PRAGMA shrink_memory") {
            tracing::debug!(cause = %e, "cannot shrink the store's page cache");
        }
        Ok(jobs)
    }

    /// Seals, in one transaction, the passwords an older bits left in the
    /// clear.
    fn seal_plaintext(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin seal passwords"))?;
        convert::seal_plaintext(&tx, &self.sealer)?;
        tx.commit()
            .map_err(StoreError::sql("commit seal passwords"))?;
        Ok(())
    }

    /// Inserts a new job with all its files, in one transaction.
    pub fn insert_job(&mut self, job: &Job) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin insert"))?;
        convert::insert_job_row(&tx, job, &self.sealer)?;
        for (i, f) in job.files.iter().enumerate() {
            convert::insert_file_row(&tx, job.id, i, f, &self.sealer)?;
        }
        tx.commit().map_err(StoreError::sql("commit insert"))?;
        Ok(())
    }

    /// Saves the job's own fields (state, properties, error, times); not its
    /// files.
    pub fn update_job(&mut self, job: &Job) -> Result<(), StoreError> {
        let n = convert::update_job_row(&self.conn, job, &self.sealer)?;
        if n == 0 {
            return Err(StoreError::NoSuchJob(job.id.to_string()));
        }
        Ok(())
    }

    /// Saves the job row (whose own credentials the caller removed) and
    /// removes the credentials of its files, in one transaction.
    pub fn clear_credentials(&mut self, job: &Job) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin remove credentials"))?;
        if convert::update_job_row(&tx, job, &self.sealer)? == 0 {
            return Err(StoreError::NoSuchJob(job.id.to_string()));
        }
        convert::clear_credentials(&tx, job.id)?;
        tx.commit()
            .map_err(StoreError::sql("commit remove credentials"))?;
        Ok(())
    }

    /// Saves the job row and adds `files` as files `first..` of the job, in
    /// one transaction.
    pub fn append_files(
        &mut self,
        job: &Job,
        first: usize,
        files: &[JobFile],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin add files"))?;
        if convert::update_job_row(&tx, job, &self.sealer)? == 0 {
            return Err(StoreError::NoSuchJob(job.id.to_string()));
        }
        for (i, f) in files.iter().enumerate() {
            convert::insert_file_row(&tx, job.id, first + i, f, &self.sealer)?;
        }
        tx.commit().map_err(StoreError::sql("commit add files"))?;
        Ok(())
    }

    /// Saves one file's progress and validator: a checkpoint. A job that
    /// is no longer stored (cancelled meanwhile) is not an error: there is
    /// nothing left to resume.
    pub fn save_file(&mut self, id: JobId, index: usize, file: &JobFile) -> Result<(), StoreError> {
        convert::update_file_row(&self.conn, id, index, file)
    }

    /// Saves the job row and one file in one transaction (a file found lost
    /// and the Error it puts the job in).
    pub fn save_job_and_file(
        &mut self,
        job: &Job,
        index: usize,
        file: &JobFile,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin save job"))?;
        if convert::update_job_row(&tx, job, &self.sealer)? == 0 {
            return Err(StoreError::NoSuchJob(job.id.to_string()));
        }
        convert::update_file_row(&tx, job.id, index, file)?;
        tx.commit().map_err(StoreError::sql("commit save job"))?;
        Ok(())
    }

    /// Saves several files of one job in one transaction: a batch of
    /// completions costs one commit (one WAL fsync), not one per file.
    pub fn save_files<'a>(
        &mut self,
        id: JobId,
        files: impl IntoIterator<Item = (usize, &'a JobFile)>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(StoreError::sql("begin save files"))?;
        for (index, file) in files {
            convert::update_file_row(&tx, id, index, file)?;
        }
        tx.commit().map_err(StoreError::sql("commit save files"))?;
        Ok(())
    }

    /// The daemon-wide policy as last saved (the defaults if none was).
    pub fn load_policy(&self) -> Result<MachinePolicy, StoreError> {
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'policy'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sql("load policy"))?;
        let Some(json) = value else {
            return Ok(MachinePolicy::default());
        };
        let policy: MachinePolicy =
            serde_json::from_str(&json).map_err(|e| StoreError::BadPolicy {
                reason: e.to_string(),
            })?;
        if policy.version > MachinePolicy::VERSION {
            return Err(StoreError::BadPolicy {
                reason: format!(
                    "format version {} is newer than this bitsd's {}",
                    policy.version,
                    MachinePolicy::VERSION
                ),
            });
        }
        policy
            .check()
            .map_err(|reason| StoreError::BadPolicy { reason })?;
        Ok(policy)
    }

    /// Saves the daemon-wide policy (durably, as every write here).
    pub fn save_policy(&mut self, policy: &MachinePolicy) -> Result<(), StoreError> {
        let json = serde_json::to_string(policy).map_err(|e| StoreError::BadPolicy {
            reason: e.to_string(),
        })?;
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES ('policy', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![json],
            )
            .map_err(StoreError::sql("save policy"))?;
        Ok(())
    }

    /// Deletes a job and its files.
    pub fn delete_job(&mut self, id: JobId) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM jobs WHERE id = ?1", params![id.to_string()])
            .map_err(StoreError::sql("delete job"))?;
        Ok(())
    }
}

/// A SQLite failure that means the file is not (or no longer) a database
/// becomes [`StoreError::Damaged`]; others keep what was being done.
fn damaged_or(path: &Path, op: &'static str, source: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match source.sqlite_error_code() {
        Some(NotADatabase | DatabaseCorrupt) => StoreError::Damaged {
            path: path.to_path_buf(),
            source,
        },
        _ => StoreError::Sql { op, source },
    }
}

/// Restricts `path` to its owner (0600), creating it empty first when
/// `create` is set and it does not exist: jobs hold credentials and the
/// names of users' files.
fn make_private(path: &Path, create: bool) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |source| StoreError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(failed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests;
