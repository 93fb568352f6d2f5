//! Length-prefixed JSON frames.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted. A job with 10,000 files is about 3 MiB of JSON;
/// the cap only stops a confused peer from making us allocate gigabytes.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Failures of reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The socket failed.
    #[error("local socket I/O failed")]
    Io(#[from] std::io::Error),
    /// A frame's length exceeds [`MAX_FRAME_LEN`].
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame is not a valid message.
    #[error("malformed message")]
    Decode(#[from] serde_json::Error),
    /// The peer closed the connection.
    #[error("the other side closed the connection")]
    Closed,
    /// The peer did not answer in time.
    #[error("no answer within {secs} s")]
    TimedOut {
        /// The bound, in seconds.
        secs: u64,
    },
}

/// Writes one message as a frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), ProtoError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    // The body is written after room for its length, which is filled in
    // once known: one buffer, no copy of a body that may be megabytes.
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Writes a frame already built (a [`crate::JobsFrame`]).
pub async fn write_frame_bytes<W>(w: &mut W, frame: &[u8]) -> Result<(), ProtoError>
where
    W: AsyncWrite + Unpin,
{
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame. `Ok(None)` when the peer closed the connection cleanly
/// between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, ProtoError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    match read_frame_body(r).await? {
        Some(body) => Ok(Some(serde_json::from_slice(&body)?)),
        None => Ok(None),
    }
}

/// Reads one frame's body, as it came (a List page kept as text, see
/// [`crate::raw::JobTexts`]). `Ok(None)` as for [`read_frame`].
pub async fn read_frame_body<R>(r: &mut R) -> Result<Option<Vec<u8>>, ProtoError>
where
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtoError::Closed
        } else {
            ProtoError::Io(e)
        }
    })?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let req = Request::Info {
            job: "abcd".into(),
            files_from: 0,
        };
        write_frame(&mut a, &req).await.unwrap();
        let got: Request = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(got, req);

        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        let err = read_frame::<_, Request>(&mut b).await.unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge { .. }));

        drop(a);
        assert!(read_frame::<_, Request>(&mut b).await.unwrap().is_none());
    }

    proptest::proptest! {
        /// Whatever a peer sends, reading a frame ends in a message or an
        /// error, never a panic, and never allocates past the limit.
        #[test]
        fn any_bytes_read_as_a_frame_decode_or_fail(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), json in "\\PC{0,40}") {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut input = bytes.as_slice();
                let _ = read_frame::<_, Request>(&mut input).await;
                let mut framed = (json.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(json.as_bytes());
                let mut input = framed.as_slice();
                let _ = read_frame::<_, crate::Response>(&mut input).await;
            });
        }

        /// Every request survives a frame round trip.
        #[test]
        fn requests_round_trip(job in "\\PC{0,30}", from in proptest::prelude::any::<u64>(), summary in proptest::prelude::any::<bool>()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for req in [
                Request::Info { job: job.clone(), files_from: from },
                Request::List { all_users: summary, name: Some(job.clone()), summary, after: Some(job.clone()) },
                Request::ListAll { all_users: summary, name: Some(job.clone()), summary },
                Request::Watch { job: job.clone(), after_revision: from, timeout_ms: from, summary },
                Request::Policy { change: None },
                Request::Policy { change: Some(crate::PolicyChange {
                    max_background_bandwidth: Some(from),
                    bandwidth_schedule: Some(job.clone()),
                    background_jobs: summary.then_some(2),
                    max_jobs_per_user: None,
                    max_files_per_job: Some(from),
                }) },
            ] {
                let got: Request = rt.block_on(async {
                    let mut buf = Vec::new();
                    write_frame(&mut buf, &req).await.unwrap();
                    read_frame(&mut buf.as_slice()).await.unwrap().unwrap()
                });
                proptest::prop_assert_eq!(got, req);
            }
        }
    }
}
