//! Loopback throughput, for comparison with curl. Ignored by default; run
//! with `cargo test --release -p bits-transfer --test throughput -- --ignored --nocapture`.

use bits_transfer::{Engine, EngineConfig, FileState, FileTransfer, NoProgress};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Measures MiB/s of a 512 MiB download from a minimal loopback server that
/// writes a static body as fast as the socket takes it (default checkpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn throughput_loopback() {
    const SIZE: usize = 512 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let body = bytes::Bytes::from(vec![0x5Au8; 4 << 20]);
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = vec![0u8; 4096];
        let _ = sock.read(&mut req).await.unwrap();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\nETag: \"x\"\r\n\r\n");
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(body.len());
            sock.write_all(&body[..n]).await.unwrap();
            left -= n;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("big.tmp");
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let url = format!("http://{addr}/big");
    let v = FileState::default();
    let file = FileTransfer {
        identity: &bits_transfer::Identity::own(),
        connection: Default::default(),
        remote: &url,
        credential: None,
        temp: &temp,
        resume: &v,
        sync_on_finish: true,
        connections: 1,
        pace: None,
    };
    let started = Instant::now();
    let out = engine
        .download(file, &mut NoProgress, &CancellationToken::new())
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(out.bytes, SIZE as u64);
    println!(
        "{} MiB in {secs:.2} s: {:.0} MiB/s",
        SIZE >> 20,
        (SIZE >> 20) as f64 / secs
    );
}
