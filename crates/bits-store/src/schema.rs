//! The schema and its migrations.
//!
//! `PRAGMA user_version` holds the schema version. Each migration moves the
//! database one version up inside one transaction; a database from a newer
//! bitsd is refused. Never edit a released migration: add the next one.

use crate::error::StoreError;
use rusqlite::Connection;

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 8;

/// Migrations; entry `i` moves version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: jobs and their files.
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY NOT NULL,
        job_type TEXT NOT NULL,
        state TEXT NOT NULL,
        display_name TEXT NOT NULL,
        description TEXT NOT NULL,
        priority TEXT NOT NULL,
        owner TEXT NOT NULL,
        owner_uid INTEGER NOT NULL,
        min_retry_delay_s INTEGER NOT NULL,
        no_progress_timeout_s INTEGER NOT NULL,
        max_download_time_s INTEGER NOT NULL,
        reply_file TEXT,
        error_context TEXT,
        error_code INTEGER,
        error_description TEXT,
        error_file INTEGER,
        created_ms INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        transfer_completed_ms INTEGER,
        transient_error_count INTEGER NOT NULL,
        retry_at_ms INTEGER,
        no_progress_since_ms INTEGER,
        active_time_ms INTEGER NOT NULL
    );
    CREATE TABLE files (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        remote TEXT NOT NULL,
        local TEXT NOT NULL,
        temp TEXT NOT NULL,
        bytes_total INTEGER,
        bytes_transferred INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        etag TEXT,
        last_modified TEXT,
        size INTEGER,
        PRIMARY KEY (job_id, idx)
    );",
    // 1 -> 2: uploads keep their BITS Upload Protocol session.
    "ALTER TABLE files ADD COLUMN upload_session_id TEXT;
    ALTER TABLE files ADD COLUMN upload_host_id TEXT;
    ALTER TABLE files ADD COLUMN upload_host_fallback_ms INTEGER;
    ALTER TABLE files ADD COLUMN upload_reply_url TEXT;",
    // 2 -> 3: downloads over several connections: the job's connection
    // count, and each file's missing ranges ("start-end,..."; NULL: none).
    "ALTER TABLE jobs ADD COLUMN connections INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE files ADD COLUMN missing TEXT;",
    // 3 -> 4: whether a file's Last-Modified may prove its version (rows
    // written before are taken as weak: such a download restarts rather
    // than trust a date that may not tell two versions apart); the identity
    // of the temporary file the bytes went to; credentials moved out of the
    // URL.
    "ALTER TABLE files ADD COLUMN last_modified_strong INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN temp_dev INTEGER;
    ALTER TABLE files ADD COLUMN temp_ino INTEGER;
    ALTER TABLE files ADD COLUMN auth_user TEXT;
    ALTER TABLE files ADD COLUMN auth_password TEXT;",
    // 4 -> 5: a job's credentials for its servers and its proxies.
    "ALTER TABLE jobs ADD COLUMN auth_user TEXT;
    ALTER TABLE jobs ADD COLUMN auth_password TEXT;
    ALTER TABLE jobs ADD COLUMN auth_scheme TEXT;
    ALTER TABLE jobs ADD COLUMN proxy_auth_user TEXT;
    ALTER TABLE jobs ADD COLUMN proxy_auth_password TEXT;
    ALTER TABLE jobs ADD COLUMN proxy_auth_scheme TEXT;",
    // 5 -> 6: how a job reaches its servers (JSON), its custom headers
    // (sealed) and the proxy it last used.
    "ALTER TABLE jobs ADD COLUMN connection TEXT;
    ALTER TABLE jobs ADD COLUMN custom_headers TEXT;
    ALTER TABLE jobs ADD COLUMN proxy_used TEXT;",
    // 6 -> 7: the job's notification command and flags (JSON).
    "ALTER TABLE jobs ADD COLUMN notify TEXT;",
    // 7 -> 8: a job's own bandwidth cap; the daemon-wide policy (one
    // versioned JSON document per key).
    "ALTER TABLE jobs ADD COLUMN max_bandwidth INTEGER;
     CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);",
];

/// Brings the schema to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(StoreError::sql("read schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn
            .transaction()
            .map_err(StoreError::sql("begin migration"))?;
        tx.execute_batch(sql).map_err(StoreError::sql("migrate"))?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .map_err(StoreError::sql("write schema version"))?;
        tx.commit().map_err(StoreError::sql("commit migration"))?;
    }
    Ok(())
}
