//! Reading one response body into the front-to-back writer: skipping what a
//! server that ignored `Range` sent again, stopping at the announced end,
//! checkpointing on time, pacing a background transfer, and giving up on a
//! server that stops sending.

use super::sink::Sink;
use crate::error::TransferError;
use crate::pace::Pacer;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// How to read one response body.
pub(crate) struct Body<'a> {
    /// Bytes to drop first (a server that ignored Range).
    pub(crate) skip: u64,
    /// The absolute position the body must end at, if known.
    pub(crate) end: Option<u64>,
    /// The URL for messages.
    pub(crate) shown: &'a str,
    /// The background pace, if any.
    pub(crate) pace: Option<&'a Pacer>,
    /// A server that sends nothing for this long has stalled.
    pub(crate) read_timeout: Duration,
}

/// Streams a response body into the sink. Returns when the body ended
/// exactly where it should; on any failure, checkpoints what arrived first.
pub(crate) async fn stream(
    response: &mut reqwest::Response,
    sink: &mut Sink<'_>,
    body: Body<'_>,
    cancel: &CancellationToken,
) -> Result<(), TransferError> {
    let Body {
        mut skip,
        end,
        shown,
        pace,
        read_timeout,
    } = body;
    enum Step<D> {
        Cancel,
        Reaped(D),
        Chunk(reqwest::Result<Option<Bytes>>),
        Tick,
        Stall,
    }
    let interval = sink.interval();
    // Timers are armed once and re-armed lazily when they fire, rather than
    // re-created per chunk: a fast download sees tens of thousands of chunks
    // per second.
    let mut last_data = Instant::now();
    let stall = sleep(read_timeout);
    let tick = sleep(interval);
    tokio::pin!(stall, tick);

    loop {
        let busy = sink.busy();
        let step = tokio::select! {
            biased;
            _ = cancel.cancelled() => Step::Cancel,
            r = sink.next_done(), if busy => Step::Reaped(r),
            r = response.chunk() => Step::Chunk(r),
            () = &mut tick => Step::Tick,
            () = &mut stall => Step::Stall,
        };
        match step {
            Step::Cancel => return Err(sink.cancel().await),
            Step::Reaped(r) => sink.complete(r).await?,
            Step::Tick => {
                // A slow trickle fills the buffer slowly: make it durable on
                // time anyway.
                if sink.checkpoint_due() {
                    sink.start_checkpoint().await?;
                }
                let soonest = Instant::now() + (interval / 8).max(Duration::from_millis(10));
                let next = (sink.cp_at + interval).max(soonest);
                tick.as_mut().reset(next);
            }
            Step::Stall => {
                if last_data.elapsed() < read_timeout {
                    stall.as_mut().reset(last_data + read_timeout);
                    continue;
                }
                sink.checkpoint().await?;
                return Err(TransferError::Stalled {
                    url: shown.to_string(),
                    secs: read_timeout.as_secs_f64().ceil() as u64,
                    written: sink.written(),
                });
            }
            Step::Chunk(Err(e)) => {
                sink.checkpoint().await?;
                return Err(TransferError::BodyCut {
                    url: shown.to_string(),
                    received: sink.pos(),
                    expected: end,
                    written: sink.written(),
                    source: Some(e.without_url()),
                });
            }
            Step::Chunk(Ok(None)) => {
                if skip > 0 || end.is_some_and(|end| sink.pos() < end) {
                    sink.checkpoint().await?;
                    return Err(TransferError::BodyCut {
                        url: shown.to_string(),
                        received: sink.pos(),
                        expected: end,
                        written: sink.written(),
                        source: None,
                    });
                }
                return Ok(());
            }
            Step::Chunk(Ok(Some(mut data))) => {
                last_data = Instant::now();
                if skip > 0 {
                    let n = skip.min(data.len() as u64);
                    // n <= data.len(), so the cast cannot truncate.
                    drop(data.split_to(n as usize));
                    skip -= n;
                }
                if data.is_empty() {
                    continue;
                }
                if let Some(end) = end {
                    if sink.pos() + data.len() as u64 > end {
                        sink.checkpoint().await?;
                        return Err(TransferError::Overrun {
                            url: shown.to_string(),
                            expected: end,
                            written: sink.written(),
                        });
                    }
                }
                sink.write(&data).await?;
                if let Some(pacer) = pace {
                    let wait = pacer.take(data.len());
                    if !wait.is_zero() {
                        tokio::select! {
                            biased;
                            _ = cancel.cancelled() => return Err(sink.cancel().await),
                            () = pacer.pause(wait) => {}
                        }
                        // Waiting for the pace is not the server stalling.
                        last_data = Instant::now();
                    }
                }
            }
        }
    }
}
