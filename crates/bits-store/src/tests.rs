//! Round trips through a real database file.

use super::*;
use bits_core::{ErrorContext, Event, JobError, JobProps, JobType, Priority};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn sample(now: SystemTime) -> Job {
    let id = JobId::new_random();
    let props = JobProps {
        display_name: "nightly".into(),
        priority: Priority::Low,
        connections: 4,
        ..JobProps::default()
    };
    let mut job = Job::new(id, JobType::Download, props, "alice".into(), 1000, now);
    job.files
        .push(JobFile::new("http://127.0.0.1:1/a".into(), "/tmp/a".into()));
    job.files
        .push(JobFile::new("http://127.0.0.1:1/b".into(), "/tmp/b".into()));
    job
}

/// What is written comes back identical after the database is reopened.
#[test]
fn jobs_survive_reopening_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let mut job = sample(now);
    {
        let mut store = Store::open(&path).unwrap();
        store.insert_job(&job).unwrap();
        job.apply(Event::Resume, now).unwrap();
        job.apply(Event::Start, now).unwrap();
        job.apply(
            Event::TransientFailure {
                error: JobError::new(ErrorContext::RemoteFile, 0x8019_01F7, "busy"),
                retry_at: now + Duration::from_secs(600),
            },
            now,
        )
        .unwrap();
        store.update_job(&job).unwrap();
        job.files[0].bytes_transferred = 4096;
        job.files[0].bytes_total = Some(10_000);
        let validator = bits_core::FileValidator {
            etag: Some("\"v1\"".into()),
            ..job.files[0].validator().clone()
        };
        job.files[0].set_validator(validator);
        job.files[0].set_missing(vec![
            bits_core::ByteRange {
                start: 100,
                end: 2_000,
            },
            bits_core::ByteRange {
                start: 6_000,
                end: 10_000,
            },
        ]);
        job.files[1].set_upload_session(bits_core::UploadSession {
            id: Some("{0f1e2d3c-0000-4000-8000-000000000001}".into()),
            host_id: Some("node7.example".into()),
            host_fallback_at: Some(now + Duration::from_secs(86_400)),
            reply_url: Some("/replies/1".into()),
        });
        store.save_file(job.id, 1, &job.files[1]).unwrap();
        store.save_file(job.id, 0, &job.files[0]).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded, vec![job]);
}

/// Files added later keep their order, and deleting a job deletes its files.
#[test]
fn appended_files_keep_order_and_delete_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db")).unwrap();
    let now = SystemTime::now();
    let job = sample(now);
    store.insert_job(&job).unwrap();
    let added = JobFile::new("file:///etc/hosts".into(), "/tmp/c".into());
    store.append_files(&job.row(), 2, &[added]).unwrap();
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded[0].files.len(), 3);
    assert_eq!(&*loaded[0].files[2].remote, "file:///etc/hosts");
    store.delete_job(job.id).unwrap();
    assert!(store.load_all().unwrap().is_empty());
}

/// A database from a newer bitsd is refused, not misread.
#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedSchema { .. }), "{err}");
}

/// A database written by schema version 1 (before uploads) opens, is
/// migrated, and its jobs load with empty upload sessions.
#[test]
fn version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO jobs VALUES ('5f0c1b2a-0000-4000-8000-000000000001', 'Download', \
             'Suspended', 'old', '', 'Normal', 'alice', 1000, 600, 1209600, 7776000, NULL, \
             NULL, NULL, NULL, NULL, 1700000000000, 1700000000000, NULL, 0, NULL, NULL, 0);
             INSERT INTO files VALUES ('5f0c1b2a-0000-4000-8000-000000000001', 0, \
             'http://127.0.0.1:1/a', '/tmp/a', '/tmp/.a.tmp', 10, 4, 0, '\"e\"', NULL, 10);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let jobs = store.load_all().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].props.display_name, "old");
    assert_eq!(jobs[0].files[0].bytes_transferred, 4);
    assert_eq!(
        jobs[0].files[0].upload_session(),
        &bits_core::UploadSession::NONE
    );
    assert_eq!(jobs[0].props.connections, 1);
    assert!(jobs[0].files[0].missing().is_empty());
    // Dates stored before strength was recorded count as weak; no temporary
    // file identity, no credential.
    assert!(!jobs[0].files[0].validator().last_modified_strong);
    assert_eq!(jobs[0].files[0].temp_id(), None);
    assert_eq!(jobs[0].files[0].credential(), None);
}

/// A file's strong date, its temporary file's identity and its credential
/// come back as written; the password is stored but never in `Debug`.
#[test]
fn identity_strength_and_credentials_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let mut job = sample(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let validator = bits_core::FileValidator {
        last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        last_modified_strong: true,
        ..job.files[0].validator().clone()
    };
    job.files[0].set_validator(validator);
    job.files[0].set_temp_id(Some(bits_core::FileId {
        dev: u64::MAX - 3,
        ino: 1 << 40,
    }));
    job.files[0].set_credential(Some(bits_core::Credential {
        user: "DOMAIN\\alice".into(),
        password: bits_core::Secret::new("s3cret"),
        scheme: None,
    }));
    job.server_credential = Some(bits_core::Credential {
        user: "bob".into(),
        password: bits_core::Secret::new("j0bpw"),
        scheme: Some(bits_core::AuthScheme::Digest),
    });
    job.proxy_credential = Some(bits_core::Credential {
        user: "proxyuser".into(),
        password: bits_core::Secret::new("pr0xypw"),
        scheme: None,
    });
    job.props.connection = bits_core::ConnectionProps {
        proxy: bits_core::ProxySettings {
            usage: bits_core::ProxyUsage::Override,
            list: vec!["https://proxy1".into(), "123.24.21.23".into()],
            bypass: vec!["<local>".into()],
            environment: vec![("no_proxy".into(), "localhost".into())],
        },
        security_flags: "ignore-unknown-ca,redirect-allow-report".parse().unwrap(),
        ca_cert: Some("/etc/corp-ca.pem".into()),
        headers: vec![bits_core::CustomHeader {
            name: "X-Token".into(),
            value: "tok3n-secret".into(),
        }],
        headers_write_only: true,
    };
    job.proxy_used = Some("http://123.24.21.23:80".into());
    job.props.notify = bits_core::NotifySettings {
        cmd: Some("echo done".into()),
        flags: "error".parse().unwrap(),
    };
    Store::open(&path).unwrap().insert_job(&job).unwrap();
    let loaded = Store::open(&path).unwrap().load_all().unwrap();
    assert_eq!(loaded[0].props, job.props);
    assert_eq!(loaded[0].proxy_used, job.proxy_used);
    assert_eq!(loaded[0].files, job.files);
    assert_eq!(loaded[0].server_credential, job.server_credential);
    assert_eq!(loaded[0].proxy_credential, job.proxy_credential);
    let shown = format!("{:?}", loaded[0]);
    for secret in ["s3cret", "j0bpw", "pr0xypw"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_no_password_on_disk(dir.path(), &["s3cret", "j0bpw", "pr0xypw", "tok3n-secret"]);
}

/// No file of the store (database, WAL, key) holds a password's bytes.
fn assert_no_password_on_disk(dir: &std::path::Path, secrets: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret}",
                path.display()
            );
        }
    }
}

/// A password an older bits stored in the clear is sealed when the store
/// opens, and still works.
#[test]
fn passwords_left_in_the_clear_are_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let mut job = sample(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    job.files[0].set_credential(Some(bits_core::Credential {
        user: "alice".into(),
        password: bits_core::Secret::new("oldfilepw"),
        scheme: None,
    }));
    job.server_credential = Some(bits_core::Credential {
        user: "bob".into(),
        password: bits_core::Secret::new("oldjobpw"),
        scheme: None,
    });
    Store::open(&path).unwrap().insert_job(&job).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE jobs SET auth_password = 'oldjobpw'", [])
            .unwrap();
        conn.execute("UPDATE files SET auth_password = 'oldfilepw'", [])
            .unwrap();
        conn.execute_batch("VACUUM").unwrap();
    }
    let loaded = Store::open(&path).unwrap().load_all().unwrap();
    assert_eq!(loaded[0].server_credential, job.server_credential);
    assert_eq!(loaded[0].files[0].credential(), job.files[0].credential());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stored: String = conn
        .query_row("SELECT auth_password FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    let stored: String = conn
        .query_row("SELECT auth_password FROM files", [], |r| r.get(0))
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
}

/// A key file replaced by another leaves the jobs, without the passwords
/// it cannot open.
#[test]
fn a_replaced_key_drops_the_passwords_and_keeps_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let mut job = sample(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    job.server_credential = Some(bits_core::Credential {
        user: "bob".into(),
        password: bits_core::Secret::new("pw"),
        scheme: None,
    });
    Store::open(&path).unwrap().insert_job(&job).unwrap();
    std::fs::remove_file(dir.path().join("jobs.sqlite3.key")).unwrap();
    let loaded = Store::open(&path).unwrap().load_all().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].server_credential, None);
}

/// Regression: the store and its WAL were readable by everyone (0644).
#[test]
fn the_database_and_its_companions_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    // An older bitsd's file, world-readable.
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut store = Store::open(&path).unwrap();
    store.insert_job(&sample(SystemTime::now())).unwrap();
    for name in ["jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}

/// Regression: a damaged database made bitsd exit with a bare SQLite
/// message; now the error says the file is damaged and what to do.
#[test]
fn a_damaged_database_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    std::fs::write(&path, vec![0x5Au8; 8192]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("is damaged"), "{err}");
}

/// A missing-range list that is not one is reported as corruption, naming
/// the field, instead of resuming into the wrong bytes.
#[test]
fn garbled_missing_ranges_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let job = sample(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    Store::open(&path).unwrap().insert_job(&job).unwrap();
    for bad in ["", "5", "9-3", "1-2,x-4", "1-2,,3-4"] {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE files SET missing = ?1 WHERE idx = 0", [bad])
            .unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap().load_all().unwrap_err();
        assert!(err.to_string().contains("missing"), "{bad:?}: {err}");
    }
}

/// The policy is kept across a reopen; a damaged one is a clear error.
#[test]
fn the_policy_survives_a_reopen_and_a_bad_one_is_named() {
    use bits_core::policy::machine::MachinePolicy;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite3");
    let policy = MachinePolicy {
        max_background_bandwidth: Some(512_000),
        bandwidth_schedule: Some("08:00,1M 18:00,off".into()),
        background_jobs: 2,
        ..MachinePolicy::default()
    };
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.load_policy().unwrap(), MachinePolicy::default());
        store.save_policy(&policy).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load_policy().unwrap(), policy);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE settings SET value = '{\"version\":1,\"background_jobs\":0}' WHERE key = 'policy'",
        [],
    )
    .unwrap();
    drop(conn);
    let e = Store::open(&path).unwrap().load_policy().unwrap_err();
    assert!(e.to_string().contains("--background-jobs"), "{e}");
}
