//! A fragment's bytes as an HTTP body: handed to the connection in slices,
//! paced for background uploads, watched for stalls.

use crate::pace::Pacer;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::time::Instant;

/// Slice of a fragment handed to the HTTP connection at a time; the watchdog
/// sees progress whenever the connection asks for the next one.
const BODY_CHUNK: usize = 64 << 10;
use std::task::{Context, Poll};

/// When the connection last took part of a fragment body, and whether it
/// has taken all of it: the stall watchdog of [`Engine::exchange`].
pub(super) struct Watch(Mutex<(Instant, bool)>);

impl Watch {
    pub(super) fn new(sent: bool) -> Watch {
        Watch(Mutex::new((Instant::now(), sent)))
    }

    pub(super) fn get(&self) -> (Instant, bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn touch(&self, sent: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), sent);
    }
}

/// A fragment's bytes as an HTTP body, handed over in [`BODY_CHUNK`]
/// slices. Each request for the next slice means the connection has taken
/// the previous one (hyper asks only when it can write), which is what the
/// stall watchdog needs and `Vec<u8>` bodies cannot tell.
pub(super) struct FragmentBody {
    pub(super) data: Bytes,
    pub(super) watch: Arc<Watch>,
    /// A background upload's pace, and the pause that pays for the next
    /// slice.
    pub(super) pace: Option<Arc<Pacer>>,
    pub(super) pause: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

/// A fragment's bytes and the pace to send them at.
#[derive(Clone)]
pub(super) struct Payload {
    pub(super) data: Bytes,
    pub(super) pace: Option<Arc<Pacer>>,
}

impl http_body::Body for FragmentBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            this.watch.touch(true);
            return Poll::Ready(None);
        }
        let n = this.data.len().min(BODY_CHUNK);
        // A background upload pays for each slice before handing it over:
        // the server has the whole length announced, so nothing may be
        // held back after the last byte.
        if let Some(pacer) = &this.pace {
            if this.pause.is_none() {
                let wait = pacer.take(n);
                if !wait.is_zero() {
                    let pacer = pacer.clone();
                    this.pause = Some(Box::pin(async move { pacer.pause(wait).await }));
                }
            }
            if let Some(pause) = &mut this.pause {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Waiting for the pace is not the connection stalling.
                this.watch.touch(false);
            }
            this.pause = None;
        }
        let chunk = this.data.split_to(n);
        this.watch.touch(this.data.is_empty());
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.len() as u64)
    }
}
