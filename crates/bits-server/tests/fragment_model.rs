//! Fragments against a reference model: whatever order, overlap, repetition
//! and gaps a client's fragments come in, the server answers exactly as the
//! protocol's one-number model says (`received`; 416 on a gap; overlaps add
//! only new bytes) and the stored file is byte-exact.
//!
//! The overlapping part of every fragment is garbled on purpose: if the
//! server ever wrote over bytes it already had, the final comparison fails.

use std::time::Duration;

use bits_server::{serve, ServeConfig, UploadConfig};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// One BITS_POST on `conn`; returns (status, BITS-Received-Content-Range,
/// BITS-Session-Id).
async fn post(
    conn: &mut BufReader<TcpStream>,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Option<u64>, Option<String>) {
    let mut head = String::from("BITS_POST /model.bin HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("send");
    conn.get_mut().write_all(body).await.expect("send");
    let mut line = String::new();
    conn.read_line(&mut line).await.expect("status");
    let status = line
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .expect("number");
    let (mut received, mut session, mut length) = (None, None, 0usize);
    loop {
        line.clear();
        conn.read_line(&mut line).await.expect("header");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').expect("header");
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "bits-received-content-range" => received = Some(value.parse().expect("offset")),
            "bits-session-id" => session = Some(value.to_owned()),
            "content-length" => length = value.parse().expect("length"),
            _ => {}
        }
    }
    let mut rest = vec![0; length];
    conn.read_exact(&mut rest).await.expect("body");
    (status, received, session)
}

/// A fragment as the test generates it: a start offset chosen relative to
/// the model's `received` (behind it, at it, or past it) and a length.
#[derive(Debug, Clone)]
struct Step {
    /// `received - back` (saturating) when `gap` is 0, else
    /// `received + gap`.
    back: u64,
    gap: u64,
    len: u64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        prop_oneof![3 => Just(0u64), 1 => 1..50u64],
        prop_oneof![4 => Just(0u64), 1 => 1..50u64],
        1..400u64,
    )
        .prop_map(|(back, gap, len)| Step { back, gap, len });
    prop::collection::vec(step, 1..25)
}

async fn run(total: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let config = ServeConfig {
        root: dir.path().to_path_buf(),
        upload: Some(UploadConfig::default()),
    };
    let server = tokio::spawn(serve(listener, config, shutdown.clone()));
    let content: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    let mut conn = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let (status, _, session) = post(
        &mut conn,
        &[
            ("BITS-Packet-Type", "Create-Session".into()),
            ("BITS-Supported-Protocols", GUID.into()),
        ],
        b"",
    )
    .await;
    prop_assert_eq!(status, 200);
    let session = session.expect("session id");

    // The model: bytes 0..received are on the server.
    let mut received = 0u64;
    let send = |first: u64, len: u64, received: u64| {
        let last = (first + len).min(total) - 1;
        let mut body = content[first as usize..=last as usize].to_vec();
        // Garble what the server already has: it must never be written.
        let old = received.saturating_sub(first).min(body.len() as u64) as usize;
        body[..old].fill(b'#');
        (
            vec![
                ("BITS-Packet-Type", "Fragment".to_owned()),
                ("BITS-Session-Id", session.clone()),
                ("Content-Range", format!("bytes {first}-{last}/{total}")),
            ],
            body,
            last,
        )
    };
    for step in steps {
        if received == total {
            break;
        }
        let first = if step.gap > 0 {
            (received + step.gap).min(total - 1)
        } else {
            received.saturating_sub(step.back)
        };
        let (headers, body, last) = send(first, step.len, received);
        let (status, got, _) = post(&mut conn, &headers, &body).await;
        if first > received {
            prop_assert_eq!(status, 416);
            prop_assert_eq!(got, Some(received));
        } else {
            prop_assert_eq!(status, 200);
            received = received.max(last + 1);
            prop_assert_eq!(got, Some(received));
        }
    }
    if received < total {
        let (headers, body, _) = send(received, total - received, received);
        let (status, got, _) = post(&mut conn, &headers, &body).await;
        prop_assert_eq!(status, 200);
        prop_assert_eq!(got, Some(total));
    }
    let stored = std::fs::read(dir.path().join("model.bin")).expect("stored");
    prop_assert!(stored == content, "stored file differs from the upload");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .expect("task")
        .expect("serve");
    Ok(())
}

proptest! {
    // Each case starts a server and uploads through real sockets and fsyncs:
    // sixteen cases cover the shapes without slowing the suite down.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn fragments_follow_the_model(total in 1..3000u64, steps in steps()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(total, steps))?;
    }
}
