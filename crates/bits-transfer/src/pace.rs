//! Background transfers that use only idle bandwidth.
//!
//! A [`Pacer`] is a token bucket in front of the body reads of a background
//! download: reading slower than the data arrives fills the socket's receive
//! buffer, the advertised window shrinks, and the server sends no faster
//! than we read. The bucket's rate comes from the delay-based controller in
//! `bits_core::policy::pace`, fed by round-trip samples that a probe takes
//! while the transfer runs: the time a TCP handshake with the server takes.
//! The server's SYN-ACK waits in the same queues as the data it sends us, so
//! the handshake time grows with the queue that other traffic (and our own)
//! builds on the path; the controller keeps that queue near its target and
//! gives way to everything else.

use bits_core::policy::pace::Pace;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

/// How often the probe measures the round trip.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// A handshake slower than this is no sample (the server may be refusing
/// connections or the path is down; the transfer notices that on its own).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How far the bucket may run ahead: a burst of this long at the rate.
const BURST: Duration = Duration::from_millis(50);

/// The achieved rate is measured over windows this long (it caps how fast
/// the allowed rate may grow: twice the achieved rate).
const ACHIEVED_WINDOW: Duration = Duration::from_millis(250);

/// Paces the background transfers of one job (its files and ranges share
/// it). Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Pacer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    pace: Pace,
    /// Bytes that may pass now; negative: owed, to be waited for.
    tokens: f64,
    refilled: Instant,
    /// Bytes passed since `window`, to measure the achieved rate.
    window: Instant,
    window_bytes: u64,
    achieved: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// A pacer at the controller's starting rate.
    pub fn new() -> Pacer {
        let now = Instant::now();
        Pacer {
            inner: Mutex::new(Inner {
                pace: Pace::new(),
                tokens: 64.0 * 1024.0,
                refilled: now,
                window: now,
                window_bytes: 0,
                achieved: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rate allowed now, bytes per second.
    pub fn rate(&self) -> u64 {
        self.lock().pace.rate()
    }

    /// Accounts for `n` bytes that just arrived; returns how long to wait
    /// before reading more.
    pub(crate) fn take(&self, n: usize) -> Duration {
        let mut g = self.lock();
        let now = Instant::now();
        let rate = g.pace.rate() as f64;
        let elapsed = now.duration_since(g.refilled).as_secs_f64();
        let burst = (rate * BURST.as_secs_f64()).max(64.0 * 1024.0);
        g.tokens = (g.tokens + elapsed * rate).min(burst);
        g.refilled = now;
        g.tokens -= n as f64;
        g.window_bytes += n as u64;
        let span = now.duration_since(g.window);
        if span >= ACHIEVED_WINDOW {
            g.achieved = (g.window_bytes as f64 / span.as_secs_f64()) as u64;
            g.window = now;
            g.window_bytes = 0;
        }
        if g.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-g.tokens / rate)
        }
    }

    /// Feeds one round-trip sample to the controller.
    pub(crate) fn sample(&self, rtt: Duration) {
        let mut g = self.lock();
        let achieved = g.achieved;
        g.pace.sample(rtt, achieved, Instant::now().into_std());
    }

    /// Starts measuring round trips to `server` until the returned guard is
    /// dropped.
    pub(crate) fn probe(self: &Arc<Self>, server: SocketAddr) -> ProbeGuard {
        let pacer = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let started = Instant::now();
                let connected =
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(server))
                        .await;
                // A failed or slow handshake is no sample: the transfer
                // notices a dead path on its own.
                if let Ok(Ok(stream)) = connected {
                    let rtt = started.elapsed();
                    drop(stream);
                    pacer.sample(rtt);
                    debug!(%server, rtt_us = rtt.as_micros() as u64, rate = pacer.rate(), "pace");
                }
            }
        });
        ProbeGuard(task)
    }
}

/// Stops a probe when dropped.
pub(crate) struct ProbeGuard(JoinHandle<()>);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where to probe for a URL: its host and port, resolved.
pub(crate) async fn probe_target(url: &url::Url) -> Option<SocketAddr> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, port)).await.ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bucket_makes_readers_wait_for_the_rate() {
        let p = Pacer::new();
        let rate = p.rate() as f64;
        // Within the first burst nothing waits...
        assert_eq!(p.take(1024), Duration::ZERO);
        // ... but a second's worth of bytes at once is owed, less what the
        // first burst (64 KiB) covered.
        let wait = p.take(rate as usize);
        let expected = (rate - 63.0 * 1024.0) / rate;
        assert!(
            (wait.as_secs_f64() - expected).abs() < 0.02,
            "{wait:?}, expected {expected} s"
        );
    }
}
