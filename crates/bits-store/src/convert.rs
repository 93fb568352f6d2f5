//! Rows <-> `bits_core` types. The only place that knows both.

use crate::error::StoreError;
use crate::sealed::Sealer;
use bits_core::{
    ByteRange, Credential, ErrorContext, FileId, FileValidator, Job, JobError, JobFile, JobId,
    JobProps, JobState, JobType, Priority, Secret, UploadSession,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

const JOB_COLUMNS: &str = "id, job_type, state, display_name, description, priority, owner, \
    owner_uid, min_retry_delay_s, no_progress_timeout_s, max_download_time_s, reply_file, \
    error_context, error_code, error_description, error_file, created_ms, modified_ms, \
    transfer_completed_ms, transient_error_count, retry_at_ms, no_progress_since_ms, active_time_ms, \
    connections, auth_user, auth_password, auth_scheme, proxy_auth_user, proxy_auth_password, \
    proxy_auth_scheme, connection, custom_headers, proxy_used, notify, max_bandwidth";

/// The job row's values, in `JOB_COLUMNS` order: the insert and the update
/// bind the same list, so the two can never disagree about a column.
fn job_values(job: &Job, sealer: &Sealer) -> Vec<Value> {
    let err = job.error.as_ref();
    let int = |n: i64| Value::Integer(n);
    let opt_int = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
    let text = |s: &str| Value::Text(s.to_string());
    let opt_text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
    vec![
        text(&job.id.to_string()),
        text(job.job_type.as_str()),
        text(job.state().as_str()),
        text(&job.props.display_name),
        text(&job.props.description),
        text(job.props.priority.as_str()),
        text(&job.owner),
        int(i64::from(job.owner_uid)),
        int(job.props.min_retry_delay.as_secs() as i64),
        int(job.props.no_progress_timeout.as_secs() as i64),
        int(job.props.max_download_time.as_secs() as i64),
        opt_text(
            job.props
                .reply_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
        opt_text(err.map(|e| e.context.as_str().to_string())),
        opt_int(err.map(|e| i64::from(e.code))),
        opt_text(err.map(|e| e.description.clone())),
        opt_int(err.and_then(|e| e.file_index).map(|i| i as i64)),
        int(ms(job.created)),
        int(ms(job.modified)),
        opt_int(job.transfer_completed.map(ms)),
        int(i64::from(job.transient_error_count)),
        opt_int(job.retry_at.map(ms)),
        opt_int(job.no_progress_since.map(ms)),
        int(job.active_time.as_millis() as i64),
        int(i64::from(job.props.connections)),
    ]
    .into_iter()
    .chain(credential_values(
        job.server_credential.as_ref(),
        sealer,
        &server_context(job.id),
    ))
    .chain(credential_values(
        job.proxy_credential.as_ref(),
        sealer,
        &proxy_context(job.id),
    ))
    .chain(connection_values(job, sealer))
    .chain([
        Value::Text(to_json(&job.props.notify)),
        job.props.max_bandwidth.map_or(Value::Null, |n| {
            Value::Integer(n.min(i64::MAX as u64) as i64)
        }),
    ])
    .collect()
}

/// The job's connection settings as JSON (a format with defaults, so a
/// later field needs no migration), its custom headers apart and sealed
/// (they often carry tokens), and the proxy last used.
fn connection_values(job: &Job, sealer: &Sealer) -> [Value; 3] {
    let mut settings = job.props.connection.clone();
    let headers = std::mem::take(&mut settings.headers);
    [
        Value::Text(to_json(&settings)),
        if headers.is_empty() {
            Value::Null
        } else {
            Value::Text(sealer.seal(&to_json(&headers), &headers_context(job.id)))
        },
        job.proxy_used
            .as_ref()
            .map_or(Value::Null, |p| Value::Text(p.clone())),
    ]
}

/// JSON of plain data (structs, strings, numbers): cannot fail.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

fn headers_context(id: impl fmt::Display) -> String {
    format!("job {id} headers")
}

/// What a job's server password is sealed for (see `sealed`).
fn server_context(id: impl fmt::Display) -> String {
    format!("job {id} server")
}

fn proxy_context(id: impl fmt::Display) -> String {
    format!("job {id} proxy")
}

fn file_context(id: impl fmt::Display, index: impl fmt::Display) -> String {
    format!("job {id} file {index}")
}

/// User, password (sealed) and scheme of a credential, as three column
/// values.
fn credential_values(c: Option<&Credential>, sealer: &Sealer, context: &str) -> [Value; 3] {
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_string()));
    [
        text(c.map(|c| c.user.as_str())),
        c.map_or(Value::Null, |c| {
            Value::Text(sealer.seal(c.password.expose(), context))
        }),
        text(c.and_then(|c| c.scheme).map(|s| s.as_str())),
    ]
}

/// A password column's value opened: sealed ones with the key, a value from
/// a bits that kept them in the clear as it is. One that does not open
/// (the key file was replaced) leaves the job without that credential: the
/// server's 401 then says so, and `bits set --credential` gives it again.
fn open_password(sealer: &Sealer, value: Option<String>, context: &str) -> Option<Secret> {
    let value = value.unwrap_or_default();
    if !Sealer::is_sealed(&value) {
        return Some(Secret::new(value));
    }
    match sealer.open(&value, context) {
        Ok(plain) => Some(Secret::new(plain)),
        Err(_) => {
            tracing::error!(
                what = context,
                "a stored password cannot be opened with the key file; it was dropped"
            );
            None
        }
    }
}

/// A credential back from its three columns (starting at `first`).
fn credential_from_row(
    row: &Row<'_>,
    first: usize,
    job: &str,
    sealer: &Sealer,
    context: &str,
) -> Result<Option<Credential>, StoreError> {
    let get = |i: usize| -> Result<Option<String>, StoreError> {
        row.get(i).map_err(StoreError::sql("read job row"))
    };
    let (Some(user), password, scheme) = (get(first)?, get(first + 1)?, get(first + 2)?) else {
        return Ok(None);
    };
    let scheme = scheme
        .map(|s| s.parse().map_err(|_| corrupt(job, "auth_scheme", &s)))
        .transpose()?;
    Ok(
        open_password(sealer, password, context).map(|password| Credential {
            user,
            password,
            scheme,
        }),
    )
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn insert_job_row(
    conn: &Connection,
    job: &Job,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({})",
        placeholders(JOB_COLUMNS.split(',').count())
    );
    conn.execute(&sql, params_from_iter(job_values(job, sealer)))
        .map_err(StoreError::sql("insert job"))?;
    Ok(())
}

/// Rewrites every column of an existing job row; returns the rows changed
/// (0: no such job).
pub(crate) fn update_job_row(
    conn: &Connection,
    job: &Job,
    sealer: &Sealer,
) -> Result<usize, StoreError> {
    let sql = format!(
        "UPDATE jobs SET {} WHERE id = ?1",
        assignments(JOB_COLUMNS, 1)
    );
    conn.execute(&sql, params_from_iter(job_values(job, sealer)))
        .map_err(StoreError::sql("update job"))
}

const FILE_COLUMNS: &str = "job_id, idx, remote, local, temp, bytes_total, bytes_transferred, \
    complete, etag, last_modified, size, upload_session_id, upload_host_id, \
    upload_host_fallback_ms, upload_reply_url, missing, last_modified_strong, temp_dev, temp_ino, \
    auth_user, auth_password";

/// The trailing columns of `FILE_COLUMNS` that progress updates leave
/// alone: a file's credential is written when it is added and removed only
/// by [`clear_credentials`], so a transfer saving its progress from an
/// older copy of the file cannot bring back a removed password.
const FILE_AUTH_COLUMNS: usize = 2;

/// A file row's values, in `FILE_COLUMNS` order but for the credential's
/// (see [`FILE_AUTH_COLUMNS`]), shared by insert and update.
fn file_values(id: JobId, index: usize, f: &JobFile) -> Vec<Value> {
    let opt_int = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
    let opt_text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
    vec![
        Value::Text(id.to_string()),
        Value::Integer(index as i64),
        Value::Text(f.remote.to_string()),
        Value::Text(f.local.to_string_lossy().into_owned()),
        Value::Text(f.temp(id).to_string_lossy().into_owned()),
        opt_int(f.bytes_total.map(|b| b as i64)),
        Value::Integer(f.bytes_transferred as i64),
        Value::Integer(i64::from(f.complete)),
        opt_text(&f.validator().etag),
        opt_text(&f.validator().last_modified),
        opt_int(f.validator().size.map(|b| b as i64)),
        opt_text(&f.upload_session().id),
        opt_text(&f.upload_session().host_id),
        opt_int(f.upload_session().host_fallback_at.map(ms)),
        opt_text(&f.upload_session().reply_url),
        if f.missing().is_empty() {
            Value::Null
        } else {
            Value::Text(encode_ranges(f.missing()))
        },
        Value::Integer(i64::from(f.validator().last_modified_strong)),
        // Device and inode numbers are stored as their bit patterns.
        opt_int(f.temp_id().map(|id| id.dev as i64)),
        opt_int(f.temp_id().map(|id| id.ino as i64)),
    ]
}

/// `start-end,start-end`: compact, and readable with the sqlite3 shell.
fn encode_ranges(ranges: &[ByteRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

/// The inverse of [`encode_ranges`]; `None` if the text is not such a list
/// of non-empty ranges.
fn decode_ranges(text: &str) -> Option<Vec<ByteRange>> {
    text.split(',')
        .map(|part| {
            let (a, b) = part.split_once('-')?;
            let r = ByteRange {
                start: a.trim().parse().ok()?,
                end: b.trim().parse().ok()?,
            };
            (r.start < r.end).then_some(r)
        })
        .collect()
}

/// The statements written once per file, built once: a job of 100,000
/// files would otherwise build each statement's text 100,000 times.
static INSERT_FILE_SQL: LazyLock<String> = LazyLock::new(|| {
    let n = FILE_COLUMNS.split(',').count();
    format!(
        "INSERT INTO files ({FILE_COLUMNS}) VALUES ({})",
        placeholders(n)
    )
});
static UPDATE_FILE_SQL: LazyLock<String> = LazyLock::new(|| {
    let n = FILE_COLUMNS.split(',').count() - FILE_AUTH_COLUMNS;
    let columns: Vec<&str> = FILE_COLUMNS.split(',').take(n).collect();
    format!(
        "UPDATE files SET {} WHERE job_id = ?1 AND idx = ?2",
        assignments(&columns.join(","), 2)
    )
});

pub(crate) fn insert_file_row(
    conn: &Connection,
    id: JobId,
    index: usize,
    f: &JobFile,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let mut values = file_values(id, index, f);
    let [user, password] = match f.credential() {
        None => [Value::Null, Value::Null],
        Some(c) => {
            let [user, password, _] = credential_values(Some(c), sealer, &file_context(id, index));
            [user, password]
        }
    };
    values.extend([user, password]);
    conn.prepare_cached(&INSERT_FILE_SQL)
        .and_then(|mut st| st.execute(params_from_iter(values)))
        .map_err(StoreError::sql("insert file"))?;
    Ok(())
}

pub(crate) fn update_file_row(
    conn: &Connection,
    id: JobId,
    index: usize,
    f: &JobFile,
) -> Result<(), StoreError> {
    conn.prepare_cached(&UPDATE_FILE_SQL)
        .and_then(|mut st| st.execute(params_from_iter(file_values(id, index, f))))
        .map_err(StoreError::sql("save file progress"))?;
    Ok(())
}

/// Seals the passwords a bits that kept them in the clear left in the
/// database (schema 4 files, if any); returns how many there were.
pub(crate) fn seal_plaintext(conn: &Connection, sealer: &Sealer) -> Result<usize, StoreError> {
    let mut sealed = 0;
    let mut st = conn
        .prepare(
            "SELECT id, auth_password, proxy_auth_password FROM jobs \
             WHERE auth_password IS NOT NULL OR proxy_auth_password IS NOT NULL",
        )
        .map_err(StoreError::sql("read passwords"))?;
    let rows: Vec<(String, Option<String>, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(StoreError::sql("read passwords"))?;
    for (id, server, proxy) in rows {
        for (column, value, context) in [
            ("auth_password", server, server_context(&id)),
            ("proxy_auth_password", proxy, proxy_context(&id)),
        ] {
            let Some(plain) = value.filter(|v| !Sealer::is_sealed(v)) else {
                continue;
            };
            conn.execute(
                &format!("UPDATE jobs SET {column} = ?1 WHERE id = ?2"),
                params![sealer.seal(&plain, &context), id],
            )
            .map_err(StoreError::sql("seal passwords"))?;
            sealed += 1;
        }
    }
    let mut st = conn
        .prepare("SELECT job_id, idx, auth_password FROM files WHERE auth_password IS NOT NULL")
        .map_err(StoreError::sql("read passwords"))?;
    let rows: Vec<(String, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(StoreError::sql("read passwords"))?;
    for (id, index, plain) in rows.into_iter().filter(|r| !Sealer::is_sealed(&r.2)) {
        conn.execute(
            "UPDATE files SET auth_password = ?1 WHERE job_id = ?2 AND idx = ?3",
            params![sealer.seal(&plain, &file_context(&id, index)), id, index],
        )
        .map_err(StoreError::sql("seal passwords"))?;
        sealed += 1;
    }
    Ok(sealed)
}

/// Removes the credentials of every file of job `id`.
pub(crate) fn clear_credentials(conn: &Connection, id: JobId) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE files SET auth_user = NULL, auth_password = NULL WHERE job_id = ?1",
    )
    .and_then(|mut st| st.execute(params![id.to_string()]))
    .map_err(StoreError::sql("remove file credentials"))?;
    Ok(())
}

/// `col = ?N` for every column after the first `key` ones (the row's key).
fn assignments(columns: &str, key: usize) -> String {
    columns
        .split(',')
        .map(str::trim)
        .enumerate()
        .skip(key)
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn corrupt(job: &str, field: &'static str, value: impl ToString) -> StoreError {
    StoreError::Corrupt {
        job: job.to_string(),
        field,
        value: value.to_string(),
    }
}

/// The connection settings back from their two columns. Headers that do
/// not open (the key file was replaced) are dropped, as passwords are.
fn connection_from_row(
    settings: Option<String>,
    headers: Option<String>,
    job: &str,
    sealer: &Sealer,
) -> Result<bits_core::ConnectionProps, StoreError> {
    let mut props: bits_core::ConnectionProps = match settings {
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt(job, "connection", &text))?,
        None => Default::default(),
    };
    if let Some(sealed) = headers {
        match sealer.open(&sealed, &headers_context(job)) {
            Ok(text) => {
                props.headers =
                    serde_json::from_str(&text).map_err(|_| corrupt(job, "custom_headers", "…"))?;
            }
            Err(_) => tracing::error!(
                job,
                "the job's custom headers cannot be opened with the key file; they were dropped"
            ),
        }
    }
    Ok(props)
}

fn job_from_row(row: &Row<'_>, sealer: &Sealer) -> Result<Job, StoreError> {
    let get = |i: usize| -> Result<rusqlite::types::Value, StoreError> {
        row.get(i).map_err(StoreError::sql("read job row"))
    };
    use rusqlite::types::Value as V;
    let text = |i: usize| -> Result<Option<String>, StoreError> {
        Ok(match get(i)? {
            V::Text(s) => Some(s),
            _ => None,
        })
    };
    let int = |i: usize| -> Result<Option<i64>, StoreError> {
        Ok(match get(i)? {
            V::Integer(n) => Some(n),
            _ => None,
        })
    };
    let id_s = text(0)?.unwrap_or_default();
    let id: JobId = id_s.parse().map_err(|_| corrupt(&id_s, "id", &id_s))?;
    let job_type: JobType = text(1)?
        .unwrap_or_default()
        .parse()
        .map_err(|e: bits_core::ParseEnumError| corrupt(&id_s, "job_type", e.value))?;
    let state_s = text(2)?.unwrap_or_default();
    let state: JobState = state_s
        .parse()
        .map_err(|_| corrupt(&id_s, "state", &state_s))?;
    let priority: Priority = text(5)?
        .unwrap_or_default()
        .parse()
        .map_err(|e: bits_core::ParseEnumError| corrupt(&id_s, "priority", e.value))?;
    let secs = |i| -> Result<Duration, StoreError> {
        Ok(Duration::from_secs(int(i)?.unwrap_or(0).max(0) as u64))
    };
    let props = JobProps {
        display_name: text(3)?.unwrap_or_default(),
        description: text(4)?.unwrap_or_default(),
        priority,
        min_retry_delay: secs(8)?,
        no_progress_timeout: secs(9)?,
        max_download_time: secs(10)?,
        reply_file: text(11)?.map(PathBuf::from),
        connections: int(23)?.unwrap_or(1).clamp(1, i64::from(u32::MAX)) as u32,
        connection: connection_from_row(text(30)?, text(31)?, &id_s, sealer)?,
        notify: match text(33)? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|_| corrupt(&id_s, "notify", &json))?
            }
            None => Default::default(),
        },
        max_bandwidth: int(34)?
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0),
    };
    let error = match (text(12)?, int(13)?) {
        (Some(ctx), Some(code)) => Some(JobError {
            context: ErrorContext::parse(&ctx)
                .ok_or_else(|| corrupt(&id_s, "error_context", &ctx))?,
            code: code as u32,
            description: text(14)?.unwrap_or_default(),
            file_index: int(15)?.map(|i| i as usize),
        }),
        _ => None,
    };
    let mut job = Job::new(
        id,
        job_type,
        props,
        text(6)?.unwrap_or_default(),
        int(7)?.unwrap_or(0) as u32,
        time(int(16)?.unwrap_or(0)),
    );
    job.error = error;
    job.modified = time(int(17)?.unwrap_or(0));
    job.transfer_completed = int(18)?.map(time);
    job.transient_error_count = int(19)?.unwrap_or(0) as u32;
    job.retry_at = int(20)?.map(time);
    job.no_progress_since = int(21)?.map(time);
    job.active_time = Duration::from_millis(int(22)?.unwrap_or(0).max(0) as u64);
    job.proxy_used = text(32)?;
    job.server_credential = credential_from_row(row, 24, &id_s, sealer, &server_context(&id_s))?;
    job.proxy_credential = credential_from_row(row, 27, &id_s, sealer, &proxy_context(&id_s))?;
    Ok(Job::restore(job, state))
}

pub(crate) fn load_all(conn: &Connection, sealer: &Sealer) -> Result<Vec<Job>, StoreError> {
    let mut jobs = Vec::new();
    let mut index = HashMap::new();
    {
        let mut st = conn
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_ms, id"
            ))
            .map_err(StoreError::sql("read jobs"))?;
        let mut rows = st.query([]).map_err(StoreError::sql("read jobs"))?;
        while let Some(row) = rows.next().map_err(StoreError::sql("read jobs"))? {
            let job = job_from_row(row, sealer)?;
            index.insert(job.id.to_string(), jobs.len());
            jobs.push(job);
        }
    }
    let mut st = conn
        .prepare(&format!(
            "SELECT {FILE_COLUMNS} FROM files ORDER BY job_id, idx"
        ))
        .map_err(StoreError::sql("read files"))?;
    let mut rows = st.query([]).map_err(StoreError::sql("read files"))?;
    while let Some(row) = rows.next().map_err(StoreError::sql("read files"))? {
        let r = |e| StoreError::sql("read file row")(e);
        let job_id: String = row.get(0).map_err(r)?;
        let Some(&ji) = index.get(&job_id) else {
            continue;
        };
        let temp_id = match (
            row.get::<_, Option<i64>>(17).map_err(r)?,
            row.get::<_, Option<i64>>(18).map_err(r)?,
        ) {
            (Some(dev), Some(ino)) => Some(FileId {
                dev: dev as u64,
                ino: ino as u64,
            }),
            _ => None,
        };
        let index_in_job: i64 = row.get(1).map_err(r)?;
        let credential = match (
            row.get::<_, Option<String>>(19).map_err(r)?,
            row.get::<_, Option<String>>(20).map_err(r)?,
        ) {
            (Some(user), password) => {
                open_password(sealer, password, &file_context(&job_id, index_in_job)).map(
                    |password| Credential {
                        user,
                        password,
                        scheme: None,
                    },
                )
            }
            _ => None,
        };
        let mut file = JobFile::new(
            row.get(2).map_err(r)?,
            PathBuf::from(row.get::<_, String>(3).map_err(r)?),
        );
        file.bytes_total = row.get::<_, Option<i64>>(5).map_err(r)?.map(|b| b as u64);
        file.bytes_transferred = row.get::<_, i64>(6).map_err(r)? as u64;
        file.complete = row.get(7).map_err(r)?;
        file.set_validator(FileValidator {
            etag: row.get(8).map_err(r)?,
            last_modified: row.get(9).map_err(r)?,
            last_modified_strong: row.get::<_, i64>(16).map_err(r)? != 0,
            size: row.get::<_, Option<i64>>(10).map_err(r)?.map(|b| b as u64),
        });
        file.set_upload_session(UploadSession {
            id: row.get(11).map_err(r)?,
            host_id: row.get(12).map_err(r)?,
            host_fallback_at: row.get::<_, Option<i64>>(13).map_err(r)?.map(time),
            reply_url: row.get(14).map_err(r)?,
        });
        if let Some(text) = row.get::<_, Option<String>>(15).map_err(r)? {
            let missing = decode_ranges(&text).ok_or_else(|| corrupt(&job_id, "missing", &text))?;
            file.set_missing(missing);
        }
        file.set_temp_id(temp_id);
        file.set_credential(credential);
        // The row holds the path (the format predates naming rules); a
        // derived one is kept as its rule.
        file.set_temp(
            jobs[ji].id,
            PathBuf::from(row.get::<_, String>(4).map_err(r)?),
        );
        jobs[ji].files.push(file);
    }
    // Pushing doubles a job's capacity as it goes: up to half as many slots
    // again as files, each the size of a file, for the daemon's lifetime.
    for job in &mut jobs {
        job.files.shrink_to_fit();
    }
    Ok(jobs)
}
