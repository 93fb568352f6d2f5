//! The engine against a misbehaving loopback server and local files.
//!
//! Each test states the promise it checks. The central one: whatever the
//! server does, the temporary file only ever holds a prefix of one version of
//! the remote file, and a reported checkpoint is backed by those bytes.

use bits_core::error::codes;
use bits_core::{ByteRange, ErrorContext, FileValidator};
use bits_test_support::{content, Fault, TestServer};
use bits_transfer::{
    CheckpointPolicy, Class, Engine, EngineConfig, FileState, FileTransfer, Outcome, Progress,
    Saved, TransferError,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything the engine reported.
#[derive(Debug, Default)]
struct Recorder {
    /// Each `begin`: the total, the version and where writing continues.
    connected: Vec<(Option<u64>, FileValidator, u64)>,
    /// The missing ranges each `begin` announced (empty: front to back).
    connected_missing: Vec<Vec<ByteRange>>,
    progress: u64,
    /// Checkpoints of files written front to back.
    checkpoints: Vec<u64>,
    /// Checkpoints of files fetched over several connections.
    ranges: Vec<(u64, Vec<ByteRange>)>,
    /// Every state saved, in order.
    saved: Vec<FileState>,
    /// When set, the contents of this file at each `begin` (None: absent).
    watch: Option<PathBuf>,
    at_begin: Vec<Option<Vec<u8>>>,
}

fn ready<'a>() -> Saved<'a> {
    Box::pin(std::future::ready(Ok(())))
}

impl Progress for Recorder {
    fn begin<'a>(&'a mut self, state: &'a FileState, total: Option<u64>) -> Saved<'a> {
        self.connected
            .push((total, state.validator.clone(), state.bytes));
        self.connected_missing.push(state.missing.clone());
        self.saved.push(state.clone());
        if let Some(path) = &self.watch {
            self.at_begin.push(std::fs::read(path).ok());
        }
        ready()
    }
    fn progress(&mut self, bytes: u64) {
        self.progress = bytes;
    }
    fn checkpoint<'a>(&'a mut self, state: &'a FileState) -> Saved<'a> {
        if state.missing.is_empty() {
            self.checkpoints.push(state.bytes);
        } else {
            self.ranges.push((state.bytes, state.missing.clone()));
        }
        self.saved.push(state.clone());
        ready()
    }
}

impl Recorder {
    fn last_checkpoint(&self) -> u64 {
        *self.checkpoints.last().expect("a checkpoint was reported")
    }
    fn last_validator(&self) -> FileValidator {
        self.connected
            .last()
            .expect("connected was called")
            .1
            .clone()
    }
}

fn engine() -> Engine {
    engine_with(Duration::from_secs(10))
}

fn engine_with(read_timeout: Duration) -> Engine {
    Engine::new(EngineConfig {
        checkpoint: CheckpointPolicy {
            interval: Duration::from_millis(100),
            bytes: 64 * 1024,
        },
        read_timeout,
        connect_timeout: Duration::from_secs(5),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// One attempt: downloads `remote` into `temp` from `offset` of `validator`.
async fn attempt(
    engine: &Engine,
    remote: &str,
    temp: &Path,
    offset: u64,
    validator: &FileValidator,
    rec: &mut Recorder,
) -> Result<Outcome, TransferError> {
    let cancel = CancellationToken::new();
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote,
        credential: None,
        temp,
        resume: &FileState {
            validator: validator.clone(),
            bytes: offset,
            ..FileState::default()
        },
        sync_on_finish: true,
        connections: 1,
        pace: None,
    };
    engine.download(file, rec, &cancel).await
}

fn temp_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".a.bin.bits-test.tmp")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Runs a first attempt that the server cuts after `cut` bytes and returns
/// the durable offset and validator it reported.
async fn interrupted_first_attempt(
    engine: &Engine,
    server: &TestServer,
    temp: &Path,
    data: &[u8],
    cut: u64,
) -> (u64, FileValidator) {
    server.push_faults("/a.bin", [Fault::DropAfter(cut)]);
    let mut rec = Recorder::default();
    let err = attempt(
        engine,
        &server.url("a.bin"),
        temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.class(), Class::Transient { .. }),
        "{err:?} should be transient"
    );
    assert!(err.made_progress(), "{err:?} should report progress");
    let offset = rec.last_checkpoint();
    assert!(offset > 0 && offset <= cut, "checkpoint {offset} of {cut}");
    let on_disk = read(temp);
    assert!(on_disk.len() as u64 >= offset);
    assert_eq!(&on_disk[..offset as usize], &data[..offset as usize]);
    (offset, rec.last_validator())
}

/// A plain download writes the file byte for byte, reports the server's
/// validator and ends with a checkpoint of the whole size.
#[tokio::test]
async fn plain_download_is_byte_exact() {
    let server = TestServer::start();
    let data = content(3 * 1024 * 1024 + 17, 1);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    let out = attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();

    assert_eq!(read(&temp), data);
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(out.validator.etag, server.etag("/a.bin"));
    assert_eq!(out.validator.last_modified, server.last_modified("/a.bin"));
    assert_eq!(out.validator.size, Some(data.len() as u64));
    assert_eq!(rec.connected.len(), 1);
    assert_eq!(rec.connected[0].2, 0);
    assert_eq!(rec.last_checkpoint(), data.len() as u64);
    assert!(
        rec.checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "checkpoints only grow: {:?}",
        rec.checkpoints
    );
    let req = &server.requests_for("/a.bin")[0];
    assert_eq!(req.range, None);
    assert_eq!(req.header("accept-encoding"), Some("identity"));
}

/// The temp file's mtime is the server's Last-Modified, so the final file
/// keeps it after the daemon's rename.
#[tokio::test]
async fn mtime_is_set_from_last_modified() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 2));
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();

    let lm = httpdate::parse_http_date(&server.last_modified("/a.bin").unwrap()).unwrap();
    let mtime = std::fs::metadata(&temp).unwrap().modified().unwrap();
    assert_eq!(mtime, lm);
}

/// A body cut mid-way is a transient error that made progress; the next
/// attempt (after garbage appeared past the checkpoint, as after a power
/// loss) asks for exactly the checkpointed offset and the result is exact.
#[tokio::test]
async fn dropped_connection_resumes_from_checkpoint() {
    let server = TestServer::start();
    let data = content(1024 * 1024, 3);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();

    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 300_000).await;
    // As after a power loss: bytes past the checkpoint are garbage.
    let mut on_disk = read(&temp);
    on_disk.extend_from_slice(&[0xEE; 10_000]);
    std::fs::write(&temp, &on_disk).unwrap();

    let mut rec = Recorder::default();
    let out = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(rec.connected[0].2, offset, "resumed, not restarted");
    let reqs = server.requests_for("/a.bin");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range_start(), Some(offset));
    assert_eq!(reqs[1].if_range, server.etag("/a.bin"));
    assert_eq!(reqs[1].status, 206);
}

/// Several cuts in a row: each attempt resumes exactly where the previous
/// one's checkpoint left off, so no byte is downloaded twice.
#[tokio::test]
async fn repeated_drops_converge_without_redownloading() {
    let server = TestServer::start();
    let data = content(1_000_000, 18);
    server.put_file("/a.bin", data.clone());
    server.push_faults(
        "/a.bin",
        [
            Fault::DropAfter(100_000),
            Fault::DropAfter(250_000),
            Fault::DropAfter(1),
            Fault::DropAfter(300_000),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut offset = 0;
    let mut validator = FileValidator::default();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut rec = Recorder::default();
        let result = attempt(
            &engine,
            &server.url("a.bin"),
            &temp,
            offset,
            &validator,
            &mut rec,
        )
        .await;
        match result {
            Ok(out) => {
                assert_eq!(out.bytes, data.len() as u64);
                break;
            }
            Err(e) => {
                assert!(matches!(e.class(), Class::Transient { .. }), "{e:?}");
                offset = rec.last_checkpoint();
                validator = rec.last_validator();
            }
        }
        assert!(attempts < 10);
    }
    assert_eq!(attempts, 5);
    assert_eq!(read(&temp), data);
    assert_eq!(server.body_bytes_sent("/a.bin"), data.len() as u64);
}

/// When the remote file was replaced between attempts, the result is the
/// new version, complete and exact: never old bytes followed by new ones.
#[tokio::test]
async fn replaced_file_is_downloaded_anew_not_spliced() {
    let server = TestServer::start();
    let old = content(800_000, 4);
    let new = content(900_000, 5);
    server.put_file("/a.bin", old.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();

    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &old, 200_000).await;
    server.push_faults("/a.bin", [Fault::ReplaceWith(new.clone())]);

    let mut rec = Recorder::default();
    let out = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), new);
    assert_eq!(out.bytes, new.len() as u64);
    assert_eq!(out.validator.etag, server.etag("/a.bin"));
    assert_ne!(out.validator.etag, validator.etag);
    assert_eq!(rec.connected[0].2, 0, "the new version is written from 0");
}

/// A server that ignores Range but serves the same version: the engine
/// skips the bytes it has and appends the rest, without rewriting them.
#[tokio::test]
async fn ignored_range_with_same_version_is_exact() {
    let server = TestServer::start();
    let data = content(700_000, 6);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();

    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 250_000).await;
    server.push_faults("/a.bin", [Fault::IgnoreRange]);

    let mut rec = Recorder::default();
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected[0].2, offset, "kept the bytes on disk");
    assert_eq!(server.requests_for("/a.bin")[1].status, 200);
}

/// A 206 whose Content-Range does not start at the requested offset is
/// rejected before a single byte is written past the checkpoint.
#[tokio::test]
async fn wrong_content_range_writes_nothing() {
    let server = TestServer::start();
    let data = content(600_000, 7);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();

    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    server.push_faults("/a.bin", [Fault::WrongContentRange { delta: 5 }]);

    let mut rec = Recorder::default();
    let err = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TransferError::InvalidContentRange { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), Class::Transient { retry_after: None });
    assert!(!err.made_progress());
    let job = err.job_error();
    assert_eq!(job.code, codes::BG_E_INVALID_SERVER_RESPONSE);
    assert_eq!(job.context, ErrorContext::RemoteFile);
    assert!(rec.checkpoints.iter().all(|&c| c <= offset));
    let on_disk = read(&temp);
    assert_eq!(on_disk.len() as u64, offset, "nothing past the checkpoint");
    assert_eq!(on_disk, data[..offset as usize]);
}

/// 404 is fatal with BITS' code for it and a sentence naming the URL.
#[tokio::test]
async fn not_found_is_fatal() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let url = server.url("missing.bin");
    let mut rec = Recorder::default();

    let err = attempt(
        &engine(),
        &url,
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, 0x8019_0194);
    assert_eq!(job.context, ErrorContext::RemoteFile);
    assert_eq!(
        job.description,
        format!("The server returned HTTP 404 Not Found for {url}.")
    );
    assert!(rec.connected.is_empty());
}

/// 503 with Retry-After: 7 is transient and carries the 7 seconds.
#[tokio::test]
async fn unavailable_is_transient_with_retry_after() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 8));
    server.push_faults(
        "/a.bin",
        [Fault::Status {
            code: 503,
            retry_after: Some(7),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    let err = attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.class(),
        Class::Transient {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(err.job_error().code, codes::http_status(503));
    assert!(!err.made_progress());
}

/// Without ETag or Last-Modified nothing proves the server still has the
/// same version, so a resume restarts from 0 (no Range sent).
#[tokio::test]
async fn resume_without_validator_restarts_from_zero() {
    let server = TestServer::start();
    let data = content(500_000, 9);
    server.put_file_without_validators("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();

    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    assert!(!validator.can_prove());

    let mut rec = Recorder::default();
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected[0].2, 0);
    let reqs = server.requests_for("/a.bin");
    assert_eq!(reqs[1].range, None);
    assert_eq!(reqs[1].if_range, None);
}

/// A resume point already at the end of the file completes without
/// downloading again (the server answers 416).
#[tokio::test]
async fn resume_at_end_completes_without_body() {
    let server = TestServer::start();
    let data = content(100_000, 10);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut rec = Recorder::default();
    let first = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();

    let mut rec = Recorder::default();
    let again = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        first.bytes,
        &first.validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.bytes, &again.validator),
        (first.bytes, &first.validator)
    );
    assert_eq!(read(&temp), data);
    assert_eq!(server.body_bytes_sent("/a.bin"), data.len() as u64);
    assert_eq!(server.requests_for("/a.bin")[1].status, 416);
}

/// A checkpoint that claims more bytes than the temp file holds is not
/// trusted (extending the file would insert zeros): restart from 0.
#[tokio::test]
async fn checkpoint_beyond_file_length_restarts() {
    let server = TestServer::start();
    let data = content(300_000, 11);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    std::fs::write(&temp, &data[..1000]).unwrap();
    let validator = FileValidator {
        etag: server.etag("/a.bin"),
        last_modified: server.last_modified("/a.bin"),
        last_modified_strong: true,
        size: Some(data.len() as u64),
    };
    let mut rec = Recorder::default();

    attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        50_000,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected[0].2, 0);
    assert_eq!(server.requests_for("/a.bin")[0].range, None);
}

/// Cancelling mid-transfer returns promptly with `Cancelled`, after a
/// checkpoint whose bytes are really on disk.
#[tokio::test]
async fn cancel_checkpoints_and_returns_cancelled() {
    let server = TestServer::start();
    let data = content(2 * 1024 * 1024, 12);
    server.put_file("/a.bin", data.clone());
    server.set_default_fault(
        "/a.bin",
        Some(Fault::Slow {
            bytes_per_sec: 400_000,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let url = server.url("a.bin");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        trigger.cancel();
    });
    let mut rec = Recorder::default();
    let validator = FileValidator::default();
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote: &url,
        credential: None,
        temp: &temp,
        resume: &FileState {
            validator: validator.clone(),
            ..FileState::default()
        },
        sync_on_finish: true,
        connections: 1,
        pace: None,
    };

    let started = Instant::now();
    let err = engine()
        .download(file, &mut rec, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    assert_eq!(err.class(), Class::Cancelled);
    let cp = rec.last_checkpoint();
    assert!(cp > 0 && cp < data.len() as u64, "checkpoint {cp}");
    assert_eq!(cp, rec.progress, "everything received was checkpointed");
    let on_disk = read(&temp);
    assert!(on_disk.len() as u64 >= cp);
    assert_eq!(&on_disk[..cp as usize], &data[..cp as usize]);
    // The whole file would take 5 s at this rate; cancellation is prompt.
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A server that goes silent is a transient `Stalled` error after the read
/// timeout, with what arrived before checkpointed.
#[tokio::test]
async fn stalled_server_times_out_after_checkpoint() {
    let server = TestServer::start();
    let data = content(400_000, 13);
    server.put_file("/a.bin", data.clone());
    server.push_faults(
        "/a.bin",
        [Fault::Stall {
            after: 150_000,
            stall: Duration::from_secs(10),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let started = Instant::now();

    let err = attempt(
        &engine_with(Duration::from_millis(400)),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, TransferError::Stalled { .. }), "{err:?}");
    assert_eq!(err.class(), Class::Transient { retry_after: None });
    assert!(err.made_progress());
    assert_eq!(err.job_error().code, codes::E_TIMEOUT);
    assert_eq!(rec.last_checkpoint(), 150_000);
    assert_eq!(&read(&temp)[..150_000], &data[..150_000]);
}

/// Nothing listening: a transient connection error in the transport
/// context, with the URL's credentials left out of the description.
#[tokio::test]
async fn refused_connection_is_transient_without_credentials() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let url = format!("http://alice:s3cret@127.0.0.1:{port}/a.bin");

    let err = attempt(
        &engine(),
        &url,
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Transient { retry_after: None });
    let job = err.job_error();
    assert_eq!(job.context, ErrorContext::GeneralTransport);
    assert_eq!(job.code, codes::E_CANNOT_CONNECT);
    assert!(
        job.description
            .contains(&format!("http://127.0.0.1:{port}/a.bin")),
        "{}",
        job.description
    );
    assert!(!job.description.contains("s3cret"), "{}", job.description);
    assert!(!format!("{err:?}").contains("s3cret"));
}

/// A destination directory that does not exist is a fatal local-file error.
#[tokio::test]
async fn missing_destination_directory_is_fatal() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(10, 14));
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("no/such/dir/a.tmp");
    let mut rec = Recorder::default();

    let err = attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.context, ErrorContext::LocalFile);
    assert_eq!(job.code, codes::E_FILE_NOT_FOUND);
    assert!(job.description.contains(&temp.display().to_string()));
}

/// A local source is copied exactly (also given as a file:// URL), with its
/// mtime, and a copy resumes from a checkpoint of the same version.
#[tokio::test]
async fn local_copy_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source.bin");
    let data = content(2 * 1024 * 1024 + 5, 15);
    std::fs::write(&src, &data).unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut rec = Recorder::default();

    let out = attempt(
        &engine,
        src.to_str().unwrap(),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(out.validator.size, Some(data.len() as u64));
    assert!(out.validator.last_modified.is_some());
    assert_eq!(
        std::fs::metadata(&temp).unwrap().modified().unwrap(),
        std::fs::metadata(&src).unwrap().modified().unwrap()
    );

    // Simulate a crash after a checkpoint at 100 000 bytes, with garbage
    // after it that was never made durable.
    let mut partial = data[..100_000].to_vec();
    partial.extend_from_slice(&[0xAA; 5000]);
    std::fs::write(&temp, &partial).unwrap();
    let url = format!("file://{}", src.display());
    let mut rec = Recorder::default();
    attempt(&engine, &url, &temp, 100_000, &out.validator, &mut rec)
        .await
        .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected[0].2, 100_000, "resumed, not restarted");
}

/// A local source that changed since the checkpoint is copied from 0.
#[tokio::test]
async fn local_source_changed_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source.bin");
    std::fs::write(&src, content(300_000, 16)).unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut rec = Recorder::default();
    let out = attempt(
        &engine,
        src.to_str().unwrap(),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();

    let new = content(350_000, 17);
    std::fs::write(&src, &new).unwrap();
    let mut rec = Recorder::default();
    attempt(
        &engine,
        src.to_str().unwrap(),
        &temp,
        100_000,
        &out.validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), new);
    assert_eq!(rec.connected[0].2, 0);
}

/// A missing local source is fatal, in the remote-file context, naming it.
#[tokio::test]
async fn local_missing_source_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("nope.bin");
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    let err = attempt(
        &engine(),
        src.to_str().unwrap(),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TransferError::SourceMissing { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, codes::E_FILE_NOT_FOUND);
    assert_eq!(job.context, ErrorContext::RemoteFile);
    assert!(job.description.contains(&src.display().to_string()));
}

// ------------------------------------------------- several connections

/// One attempt over up to `connections` connections, resuming `missing`
/// (empty: from `offset`).
async fn attempt_ranges(
    engine: &Engine,
    remote: &str,
    temp: &Path,
    validator: &FileValidator,
    missing: &[ByteRange],
    connections: u32,
    rec: &mut Recorder,
) -> Result<Outcome, TransferError> {
    let cancel = CancellationToken::new();
    let total = validator.size.unwrap_or(0);
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote,
        credential: None,
        temp,
        resume: &FileState {
            validator: validator.clone(),
            bytes: total - total_len(missing).min(total),
            missing: missing.to_vec(),
            temp_id: None,
        },
        sync_on_finish: true,
        connections,
        pace: None,
    };
    engine.download(file, rec, &cancel).await
}

fn total_len(ranges: &[ByteRange]) -> u64 {
    ranges.iter().map(ByteRange::len).sum()
}

/// The file's bytes outside `missing` are the source's.
fn assert_outside_missing_matches(temp: &Path, data: &[u8], missing: &[ByteRange]) {
    let on_disk = read(temp);
    assert_eq!(
        on_disk.len(),
        data.len(),
        "a segmented file has its full size"
    );
    let mut at = 0usize;
    for r in missing.iter().chain([&ByteRange {
        start: data.len() as u64,
        end: data.len() as u64,
    }]) {
        let start = r.start as usize;
        assert!(
            on_disk[at..start] == data[at..start],
            "bytes {at}..{start} differ from the source"
        );
        at = r.end as usize;
    }
}

/// With four connections allowed, the file is fetched as ranges side by
/// side, every range request tied to the first answer's version by
/// If-Range, and the result is byte-exact with the source's mtime.
#[tokio::test]
async fn several_connections_fetch_ranges_of_one_version() {
    let server = TestServer::start();
    let data = content(8 * 1024 * 1024 + 123, 21);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    let out = attempt_ranges(
        &engine(),
        &server.url("a.bin"),
        &temp,
        &FileValidator::default(),
        &[],
        4,
        &mut rec,
    )
    .await
    .unwrap();

    assert_eq!(read(&temp), data);
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(out.validator.etag, server.etag("/a.bin"));
    assert_eq!(rec.last_checkpoint(), data.len() as u64);
    // The version was saved, at byte 0, before the first byte was written.
    assert_eq!(rec.connected[0].2, 0);
    assert_eq!(rec.connected[0].1.etag, server.etag("/a.bin"));
    let requests = server.requests_for("/a.bin");
    assert_eq!(requests[0].range, None, "the first request is a plain GET");
    let ranged: Vec<_> = requests[1..].iter().collect();
    assert!(ranged.len() >= 3, "{requests:?}");
    let starts: std::collections::BTreeSet<_> =
        ranged.iter().filter_map(|r| r.range_start()).collect();
    assert!(starts.len() >= 3, "three more connections: {starts:?}");
    for r in &ranged {
        assert!(r.range.as_deref().is_some_and(|v| v.contains('-')), "{r:?}");
        assert_eq!(
            r.header("if-range"),
            server.etag("/a.bin").as_deref(),
            "{r:?}"
        );
    }
    let mtime = std::fs::metadata(&temp).unwrap().modified().unwrap();
    let expected = httpdate::parse_http_date(&server.last_modified("/a.bin").unwrap()).unwrap();
    assert_eq!(mtime, expected);
}

/// A connection cut mid-range ends the attempt with a transient error after
/// the other connections' bytes are made durable and reported as missing
/// ranges; the next attempt fetches exactly those ranges and nothing else.
#[tokio::test]
async fn a_cut_connection_keeps_the_other_ranges() {
    let server = TestServer::start();
    let data = content(8 * 1024 * 1024, 22);
    server.put_file("/a.bin", data.clone());
    // Slow enough that every connection is mid-range when one is cut.
    server.set_default_fault(
        "/a.bin",
        Some(Fault::Slow {
            bytes_per_sec: 4 * 1024 * 1024,
        }),
    );
    server.push_faults(
        "/a.bin",
        [
            Fault::Slow {
                bytes_per_sec: 4 * 1024 * 1024,
            },
            Fault::DropAfter(300_000),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let url = server.url("a.bin");

    let mut rec = Recorder::default();
    let err = attempt_ranges(
        &engine,
        &url,
        &temp,
        &FileValidator::default(),
        &[],
        4,
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err.class(), Class::Transient { .. }), "{err:?}");
    assert!(err.made_progress(), "{err:?}");
    let (durable, missing) = rec
        .ranges
        .last()
        .cloned()
        .expect("ranges were checkpointed");
    assert!(durable >= 300_000, "{durable}");
    assert_eq!(durable + total_len(&missing), data.len() as u64);
    assert!(!missing.is_empty());
    assert_outside_missing_matches(&temp, &data, &missing);
    let validator = rec.last_validator();

    // The next attempt, one connection, fetches exactly what is missing.
    server.set_default_fault("/a.bin", None);
    server.clear_requests();
    let sent_before = server.body_bytes_sent("/a.bin");
    let mut rec = Recorder::default();
    attempt_ranges(&engine, &url, &temp, &validator, &missing, 1, &mut rec)
        .await
        .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(
        server.body_bytes_sent("/a.bin") - sent_before,
        total_len(&missing),
        "only the missing ranges were fetched again"
    );
    for r in server.requests_for("/a.bin") {
        assert!(r.range.is_some(), "{r:?}");
    }
}

/// A file replaced while its ranges are being fetched is fetched anew: the
/// result is the new version, never ranges of both.
#[tokio::test]
async fn a_file_changed_between_ranges_is_fetched_anew() {
    let server = TestServer::start();
    let old = content(6 * 1024 * 1024, 23);
    let new = content(6 * 1024 * 1024, 24);
    server.put_file("/a.bin", old);
    server.push_faults("/a.bin", [Fault::Normal, Fault::ReplaceWith(new.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    let out = attempt_ranges(
        &engine(),
        &server.url("a.bin"),
        &temp,
        &FileValidator::default(),
        &[],
        4,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), new);
    assert_eq!(out.validator.etag, server.etag("/a.bin"));
    assert_eq!(rec.connected.last().unwrap().2, 0);
}

/// A server that advertises ranges but answers them with the whole file
/// gets the file over one connection, exact.
#[tokio::test]
async fn a_server_ignoring_ranges_gets_one_connection() {
    let server = TestServer::start();
    let data = content(4 * 1024 * 1024, 25);
    server.put_file("/a.bin", data.clone());
    server.set_default_fault("/a.bin", Some(Fault::IgnoreRange));
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();

    attempt_ranges(
        &engine(),
        &server.url("a.bin"),
        &temp,
        &FileValidator::default(),
        &[],
        4,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    let requests = server.requests_for("/a.bin").len();
    assert!(requests <= 6, "{requests} requests");
}

/// Missing ranges that the temporary file cannot back (it was truncated)
/// are not trusted: the file is fetched from byte 0.
#[tokio::test]
async fn missing_ranges_without_a_full_size_file_restart() {
    let server = TestServer::start();
    let data = content(4 * 1024 * 1024, 26);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    std::fs::write(&temp, &data[..1000]).unwrap();
    let validator = FileValidator {
        etag: server.etag("/a.bin"),
        last_modified: server.last_modified("/a.bin"),
        last_modified_strong: true,
        size: Some(data.len() as u64),
    };
    let missing = [ByteRange {
        start: 2_000_000,
        end: data.len() as u64,
    }];
    let mut rec = Recorder::default();
    attempt_ranges(
        &engine(),
        &server.url("a.bin"),
        &temp,
        &validator,
        &missing,
        2,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected.last().unwrap().2, 0);
}

/// Cancelling a segmented download makes what arrived durable, reports it
/// as ranges, and a later attempt completes the file exactly.
#[tokio::test]
async fn cancelled_ranges_resume_exactly() {
    let server = TestServer::start();
    let data = content(6 * 1024 * 1024, 27);
    server.put_file("/a.bin", data.clone());
    server.set_default_fault(
        "/a.bin",
        Some(Fault::Slow {
            bytes_per_sec: 2 * 1024 * 1024,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let url = server.url("a.bin");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        trigger.cancel();
    });
    let mut rec = Recorder::default();
    let none = FileValidator::default();
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote: &url,
        credential: None,
        temp: &temp,
        resume: &FileState {
            validator: none.clone(),
            ..FileState::default()
        },
        sync_on_finish: true,
        connections: 3,
        pace: None,
    };
    let err = engine.download(file, &mut rec, &cancel).await.unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    let (durable, missing) = rec
        .ranges
        .last()
        .cloned()
        .expect("ranges were checkpointed");
    assert!(durable > 0);
    assert_outside_missing_matches(&temp, &data, &missing);

    server.set_default_fault("/a.bin", None);
    let validator = rec.last_validator();
    let mut rec = Recorder::default();
    attempt_ranges(&engine, &url, &temp, &validator, &missing, 3, &mut rec)
        .await
        .unwrap();
    assert_eq!(read(&temp), data);
}

/// A fresh file is created by its first write: an answer that fails before
/// any byte (here a 404) leaves no temporary file behind, and an empty file
/// is still created (empty).
#[tokio::test]
async fn the_temporary_file_is_created_by_the_first_write() {
    let server = TestServer::start();
    server.put_file("/empty.bin", Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &server.url("missing.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err.class(), Class::Fatal), "{err:?}");
    assert!(
        !temp.exists(),
        "nothing was written, so nothing was created"
    );

    let out = attempt(
        &engine(),
        &server.url("empty.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(out.bytes, 0);
    assert_eq!(read(&temp), Vec::<u8>::new());
}

/// A background (paced) download asks for its file in chunks of ranges,
/// each tied to the version by If-Range, and the result is exact; the
/// missing ranges are what a checkpoint reports.
#[tokio::test]
async fn a_paced_download_goes_by_ranges_of_one_version() {
    let server = TestServer::start();
    let data = content(3 * 1024 * 1024, 28);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let cancel = CancellationToken::new();
    let none = FileValidator::default();
    let url = server.url("a.bin");
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote: &url,
        credential: None,
        temp: &temp,
        resume: &FileState {
            validator: none.clone(),
            ..FileState::default()
        },
        sync_on_finish: true,
        connections: 1,
        // Capped at 10 MB/s: 50 kB chunks, however fast the controller
        // finds loopback to be.
        pace: Some(std::sync::Arc::new(bits_transfer::Pacer::new(
            std::sync::Arc::new(bits_transfer::Limits::new(true, Some(10_000_000))),
            std::sync::Arc::new(bits_transfer::SharedCap::new(None)),
        ))),
    };
    let out = engine().download(file, &mut rec, &cancel).await.unwrap();
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(read(&temp), data);
    let requests = server.requests_for("/a.bin");
    assert!(requests.len() >= 40, "chunked: {} requests", requests.len());
    for r in &requests[1..] {
        assert!(r.range.is_some(), "{r:?}");
        assert_eq!(r.header("if-range"), server.etag("/a.bin").as_deref());
    }
}

/// Regression (a paced transfer held to a trickle by a server slow to
/// answer): chunks were 5 ms' worth of the allowed rate, the allowed rate
/// of a transfer limited elsewhere twice what it achieved, so a server
/// taking 200 ms per answer kept every chunk at the 16 KiB minimum: a
/// background job went at 80 kB/s from an idle server. Chunks are now at
/// least four answers' time worth.
#[tokio::test]
async fn a_server_slow_to_answer_does_not_hold_a_paced_download_to_a_trickle() {
    let server = TestServer::start();
    let data = content(2 * 1024 * 1024, 29);
    server.put_file("/slow.bin", data.clone());
    // Every response head a byte per millisecond: about 200 ms an answer.
    server.set_default_fault(
        "/slow.bin",
        Some(Fault::TrickleHeaders {
            every: Duration::from_millis(1),
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let cancel = CancellationToken::new();
    let none = FileValidator::default();
    let url = server.url("slow.bin");
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote: &url,
        credential: None,
        temp: &temp,
        resume: &FileState {
            validator: none.clone(),
            ..FileState::default()
        },
        sync_on_finish: true,
        connections: 1,
        pace: Some(std::sync::Arc::new(bits_transfer::Pacer::background())),
    };
    let out = engine().download(file, &mut rec, &cancel).await.unwrap();
    assert_eq!(out.bytes, data.len() as u64);
    assert_eq!(read(&temp), data);
    // 16 KiB chunks would be 128 requests (26 s).
    let requests = server.requests_for("/slow.bin").len();
    assert!(requests <= 24, "{requests} requests for 2 MiB");
}

// ------------------------------------------------------- trustworthy core

/// Regression (splice after a version change and a crash): a resumed
/// request answered 200 with a new version used to be written from byte 0
/// while the saved resume point still named the old version and offset. Now
/// the new version's resume point `(new, 0)` is saved before the first
/// byte of it reaches the file.
#[tokio::test]
async fn a_new_version_is_saved_before_its_first_byte_is_written() {
    let server = TestServer::start();
    let old = content(800_000, 41);
    let new = content(800_000, 42);
    server.put_file("/a.bin", old.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &old, 300_000).await;
    server.push_faults("/a.bin", [Fault::ReplaceWith(new.clone())]);

    let mut rec = Recorder {
        watch: Some(temp.clone()),
        ..Recorder::default()
    };
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), new);
    let first = &rec.saved[0];
    assert_eq!(first.bytes, 0, "the new version starts at byte 0");
    assert_eq!(first.validator.etag, server.etag("/a.bin"));
    assert_ne!(first.validator.etag, validator.etag);
    // When it was saved, the file held only the old version's bytes.
    let then = rec.at_begin[0].clone().expect("the file existed");
    assert!(then.len() as u64 >= offset);
    assert_eq!(&then[..offset as usize], &old[..offset as usize]);
    // Every later save is of the new version.
    assert!(rec
        .saved
        .iter()
        .all(|s| s.validator.etag == first.validator.etag));
}

/// Regression: a Range request without If-Range (the only validator was a
/// weak ETag) answered 206 with the same weak tag was appended. A weak tag
/// proves nothing: the download starts again from byte 0, without Range.
#[tokio::test]
async fn a_weak_etag_is_never_resumed() {
    let server = TestServer::start();
    let data = content(600_000, 43);
    server.put_file_with_weak_etag("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    assert!(validator
        .etag
        .as_deref()
        .is_some_and(|t| t.starts_with("W/")));
    assert!(!validator.can_prove());
    let mut rec = Recorder::default();
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    let second = &server.requests_for("/a.bin")[1];
    assert_eq!(second.range, None, "no range of an unprovable version");
    assert_eq!(second.if_range, None);
}

/// Regression: a Last-Modified within a second of the response's Date was
/// used as proof, though a file changed twice in that second keeps it.
#[tokio::test]
async fn a_last_modified_as_recent_as_the_response_is_not_proof() {
    let server = TestServer::start();
    let data = content(600_000, 44);
    server.put_file_with_recent_date("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    assert!(validator.last_modified.is_some());
    assert!(!validator.last_modified_strong);
    let mut rec = Recorder::default();
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), data);
    assert_eq!(server.requests_for("/a.bin")[1].range, None);
}

/// Regression: local sources were compared by mtime in whole seconds, so a
/// rewrite of the same size within the same second was resumed into.
#[tokio::test]
async fn a_local_source_rewritten_within_the_same_second_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source.bin");
    let old = content(400_000, 45);
    std::fs::write(&src, &old).unwrap();
    let t = filetime::FileTime::from_unix_time(1_700_000_000, 100);
    filetime::set_file_mtime(&src, t).unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut rec = Recorder::default();
    let out = attempt(
        &engine,
        src.to_str().unwrap(),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap();
    // A checkpoint at 100,000 bytes of the old version...
    std::fs::write(&temp, &old[..100_000]).unwrap();
    // ...then the source is rewritten, same size, in the same second.
    let new = content(400_000, 46);
    std::fs::write(&src, &new).unwrap();
    filetime::set_file_mtime(&src, filetime::FileTime::from_unix_time(1_700_000_000, 900)).unwrap();
    let mut rec = Recorder::default();
    attempt(
        &engine,
        src.to_str().unwrap(),
        &temp,
        100_000,
        &out.validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(read(&temp), new, "copied anew, not spliced");
    assert_eq!(rec.connected[0].2, 0);
}

/// Regression: a `200` with `Content-Encoding: gzip` was saved as the file,
/// and a gzip-coded `206` written at the offset. Now nothing of a coded
/// body is written, and the error says why.
#[tokio::test]
async fn a_coded_body_is_refused_and_nothing_is_written() {
    let server = TestServer::start();
    let data = content(500_000, 47);
    server.put_file("/a.bin", data.clone());
    server.push_faults("/a.bin", [Fault::Coded("gzip".into())]);
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Coded { .. }), "{err:?}");
    assert_eq!(err.class(), Class::Fatal);
    let job = err.job_error();
    assert_eq!(job.code, codes::BG_E_INVALID_SERVER_RESPONSE);
    assert!(
        job.description.contains("Content-Encoding \"gzip\""),
        "{}",
        job.description
    );
    assert!(
        read_opt(&temp).is_none_or(|d| d.is_empty()),
        "nothing was written"
    );

    // A coded partial response to a resume: nothing appended either.
    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    server.push_faults("/a.bin", [Fault::Coded("gzip".into())]);
    let mut rec = Recorder::default();
    let err = attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Coded { .. }), "{err:?}");
    assert_eq!(read(&temp).len() as u64, offset);
}

/// Regression: the temporary file was opened following links, so a link
/// put in its place between two attempts was written through. Now the link
/// is replaced by a fresh file of our own and the download starts over.
#[tokio::test]
async fn a_temporary_file_replaced_by_a_link_is_not_written_through() {
    let server = TestServer::start();
    let data = content(500_000, 48);
    server.put_file("/a.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let engine = engine();
    let (offset, validator) =
        interrupted_first_attempt(&engine, &server, &temp, &data, 200_000).await;
    let victim = dir.path().join("victim");
    std::fs::write(&victim, vec![7u8; 300_000]).unwrap();
    std::fs::remove_file(&temp).unwrap();
    std::os::unix::fs::symlink(&victim, &temp).unwrap();
    let mut rec = Recorder::default();
    attempt(
        &engine,
        &server.url("a.bin"),
        &temp,
        offset,
        &validator,
        &mut rec,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        vec![7u8; 300_000],
        "the link's target is untouched"
    );
    assert!(std::fs::symlink_metadata(&temp)
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(read(&temp), data);
    assert_eq!(rec.connected[0].2, 0);
}

/// Regression: waiting for response headers had no bound, so a server that
/// accepts and never answers kept a job Connecting for ever. Now the wait
/// ends after the read timeout with a transient error that says so.
#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 49));
    server.push_faults("/a.bin", [Fault::NoAnswer]);
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let started = Instant::now();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine_with(Duration::from_secs(1)),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TransferError::NoHeaders { secs: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(err.class(), Class::Transient { .. }));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.job_error().code, codes::E_TIMEOUT);
}

/// Regression: a server trickling its headers a byte at a time kept the
/// wait going: the bound is on the whole head, not between bytes.
#[tokio::test]
async fn a_server_trickling_its_headers_times_out() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 50));
    server.push_faults(
        "/a.bin",
        [Fault::TrickleHeaders {
            every: Duration::from_millis(100),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let started = Instant::now();
    let mut rec = Recorder::default();
    let err = attempt(
        &engine_with(Duration::from_secs(1)),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::NoHeaders { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Regression: `Retry-After: 18446744073709551615` overflowed. It is now a
/// delay capped at a year, and the engine reports it.
#[tokio::test]
async fn a_huge_retry_after_is_capped() {
    let server = TestServer::start();
    server.put_file("/a.bin", content(1000, 51));
    server.push_faults(
        "/a.bin",
        [Fault::Status {
            code: 503,
            retry_after: Some(u64::MAX),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let temp = temp_in(&dir);
    let mut rec = Recorder::default();
    let err = attempt(
        &engine(),
        &server.url("a.bin"),
        &temp,
        0,
        &FileValidator::default(),
        &mut rec,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.class(),
        Class::Transient {
            retry_after: Some(Duration::from_secs(365 * 24 * 3600))
        }
    );
}

fn read_opt(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}
