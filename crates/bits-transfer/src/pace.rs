//! How fast a transfer may go, decided while it runs.
//!
//! A [`Pacer`] stands in front of the body reads of a download (and the
//! slices of an upload). What it allows comes from [`Limits`] that the
//! daemon changes while the transfer runs (a `bits set --priority` or
//! `--max-bandwidth`, a policy change), read at every step:
//!
//! - a **background** transfer goes at the rate of the delay-based
//!   controller in `bits_core::policy::pace`, fed by round-trip samples
//!   that a probe takes while the transfer runs: the time a TCP handshake
//!   with the server takes. The server's SYN-ACK waits in the same queues
//!   as the data it sends us, so the handshake time grows with the queue
//!   that other traffic (and our own) builds on the path;
//! - a **cap** (the job's own, and for background jobs the machine-wide
//!   one, a [`SharedCap`] all of them draw from) bounds any transfer;
//! - a foreground transfer without a cap is not paced at all.
//!
//! The actuator is the reader: reading slower than data arrives fills the
//! socket's receive buffer, the advertised window shrinks, and the server
//! sends no faster than we read (what rLEDBAT does with the window
//! directly). The segmented path also asks for short ranges ([`Pacer::chunk`])
//! so the server never runs far ahead of the pace.

use bits_core::policy::pace::{Delivery, Pace};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

/// The probe measures the round trip this often on a short path, and at
/// most [`PROBE_SLOWEST`] apart on a long one (4 base round trips).
pub const PROBE_FASTEST: Duration = Duration::from_millis(10);

/// See [`PROBE_FASTEST`].
pub const PROBE_SLOWEST: Duration = Duration::from_millis(100);

/// A handshake slower than this is no sample (the server may be refusing
/// connections or the path is down; the transfer notices that on its own).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How far a bucket may run ahead: a burst of this long at the rate.
const BURST: Duration = Duration::from_millis(50);

/// The smallest burst, whatever the rate: one read's worth.
const MIN_BURST: f64 = 64.0 * 1024.0;

/// The achieved rate is measured over windows this long: longer than the
/// pauses between paced chunks, so that a window is never only a pause.
const ACHIEVED_WINDOW: Duration = Duration::from_millis(100);

/// A paced request asks for about this much time's worth of the allowed
/// rate (more on a long path: [`Pacer::chunk`]). The server sends a chunk
/// at once, so it queues at the bottleneck for up to this long: short
/// enough to stay near the controller's target (20 ms chunks held a Low job
/// to 0.80 of a 10 Mbit link, 5 ms chunks to 0.98), long enough that the
/// round trip between two requests costs little.
const CHUNK_TIME: Duration = Duration::from_millis(5);

/// A paced request also asks for at least this many times what a request
/// takes to be answered (its response head), so that waiting for answers
/// costs at most about a fifth of the time. Without it a server slow to
/// answer (a CDN's 30 ms to first byte) held a transfer to a trickle: a
/// slow answer lowers the achieved rate, the rate allowed to a transfer
/// limited elsewhere, and so the next chunk, down to the smallest.
const CHUNK_PER_ANSWER: u32 = 4;

/// The longest a reader sleeps for the pace before looking at it again: a
/// wait computed at a trickle must not outlast the trickle. (A rate cut to
/// 16 KiB/s made the reader of a 1 MB chunk sleep for a minute, while the
/// controller, seeing an empty path, had long raised the rate again: a Low
/// job alone got 0.4 of a 10 Mbit link.)
const RECHECK: Duration = Duration::from_millis(50);

/// What a transfer may do now; changed by the daemon while it runs.
#[derive(Debug, Default)]
pub struct Limits {
    background: AtomicBool,
    /// Bytes per second; 0: none.
    max_rate: AtomicU64,
}

impl Limits {
    /// Limits for a job of this kind.
    pub fn new(background: bool, max_rate: Option<u64>) -> Limits {
        let l = Limits::default();
        l.set(background, max_rate);
        l
    }

    /// Changes them; running transfers follow at their next read.
    pub fn set(&self, background: bool, max_rate: Option<u64>) {
        self.background.store(background, Ordering::Relaxed);
        self.max_rate
            .store(max_rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// Whether the transfer uses only idle bandwidth.
    pub fn background(&self) -> bool {
        self.background.load(Ordering::Relaxed)
    }

    /// The job's cap, bytes per second.
    pub fn max_rate(&self) -> Option<u64> {
        match self.max_rate.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

/// A token bucket: bytes may pass at `rate`, `BURST` ahead at most.
#[derive(Debug)]
struct Bucket {
    /// Bytes that may pass now; negative: owed, to be waited for.
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tokens: MIN_BURST,
            refilled: Instant::now(),
        }
    }

    /// Takes `n` bytes at `rate`; how long to wait before the next ones.
    fn take(&mut self, n: usize, rate: f64, now: Instant) -> Duration {
        self.refill(rate, now);
        self.tokens -= n as f64;
        self.owed(rate)
    }

    /// How long what is owed takes at `rate`, as of `now`.
    fn owed_at(&mut self, rate: f64, now: Instant) -> Duration {
        self.refill(rate, now);
        self.owed(rate)
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        let burst = (rate * BURST.as_secs_f64()).max(MIN_BURST);
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = now;
    }

    fn owed(&self, rate: f64) -> Duration {
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// A cap that several transfers share (the machine-wide cap of background
/// jobs): one bucket they all draw from.
#[derive(Debug)]
pub struct SharedCap {
    /// Bytes per second; 0: none.
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
}

impl Default for SharedCap {
    fn default() -> Self {
        SharedCap::new(None)
    }
}

impl SharedCap {
    /// A shared cap of `rate` bytes per second (`None`: no cap).
    pub fn new(rate: Option<u64>) -> SharedCap {
        SharedCap {
            rate: AtomicU64::new(rate.unwrap_or(0)),
            bucket: Mutex::new(Bucket::new()),
        }
    }

    /// Changes the cap; transfers follow at their next read.
    pub fn set(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// The cap, bytes per second.
    pub fn rate(&self) -> Option<u64> {
        match self.rate.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn take(&self, n: usize, now: Instant) -> Duration {
        let Some(rate) = self.rate() else {
            return Duration::ZERO;
        };
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.take(n, rate as f64, now)
    }

    fn owed(&self, now: Instant) -> Duration {
        let Some(rate) = self.rate() else {
            return Duration::ZERO;
        };
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.owed_at(rate as f64, now)
    }
}

/// Paces the transfers of one job (its files and ranges share it). Cheap
/// to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Pacer {
    limits: Arc<Limits>,
    /// The machine-wide cap of background transfers.
    shared: Arc<SharedCap>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    pace: Pace,
    bucket: Bucket,
    /// Bytes passed since `window` began, to measure the achieved rate.
    window_bytes: u64,
    window: Instant,
    /// The rate achieved over the last whole window, bytes per second.
    achieved: u64,
    /// Readers waited for the bucket since the last sample.
    waited: bool,
    /// Until when the last wait holds a reader back: a sample taken while a
    /// reader sleeps for the pace is a paced one too.
    held_until: Instant,
    /// How long the server takes to answer a request beyond the path's
    /// round trip (its think time), smoothed.
    answer_time: Option<Duration>,
    /// The last round trip the probe measured (the path's, queue
    /// included).
    last_rtt: Option<Duration>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::background()
    }
}

impl Pacer {
    /// A pacer that follows `limits`, and `shared` while in the background.
    pub fn new(limits: Arc<Limits>, shared: Arc<SharedCap>) -> Pacer {
        let now = Instant::now();
        Pacer {
            limits,
            shared,
            inner: Mutex::new(Inner {
                pace: Pace::new(),
                bucket: Bucket::new(),
                window_bytes: 0,
                window: now,
                achieved: 0,
                waited: false,
                held_until: now,
                answer_time: None,
                last_rtt: None,
            }),
        }
    }

    /// A background pacer without caps.
    pub fn background() -> Pacer {
        Pacer::new(
            Arc::new(Limits::new(true, None)),
            Arc::new(SharedCap::new(None)),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether reads are held to a rate at all now.
    pub fn limited(&self) -> bool {
        self.limits.background() || self.limits.max_rate().is_some()
    }

    /// The rate allowed now, bytes per second; `None`: no limit.
    pub fn rate(&self) -> Option<u64> {
        let background = self.limits.background();
        let g = self.lock();
        self.rate_now(background, &g)
    }

    fn rate_now(&self, background: bool, g: &Inner) -> Option<u64> {
        let mut rate = self.limits.max_rate();
        if background {
            let paced = g.pace.rate();
            rate = Some(rate.map_or(paced, |r| r.min(paced)));
            if let Some(shared) = self.shared.rate() {
                rate = rate.map(|r| r.min(shared));
            }
        }
        rate
    }

    /// The bytes one paced request should ask for; `None` when unlimited.
    pub(crate) fn chunk(&self) -> Option<u64> {
        let background = self.limits.background();
        let g = self.lock();
        let rate = self.rate_now(background, &g)?;
        // At least two round trips' worth, so that the pause between one
        // answer and the next request does not dominate on a long path.
        let time = CHUNK_TIME
            .max(2 * g.pace.base_delay().unwrap_or_default())
            .max(CHUNK_PER_ANSWER * g.answer_time.unwrap_or_default());
        Some(((rate as f64 * time.as_secs_f64()) as u64).clamp(16 << 10, 64 << 20))
    }

    /// Notes how long a paced request took to be answered (from sending it
    /// to its response head); later chunks are sized so that the server's
    /// part of the wait costs little. The path's round trip (the probe's
    /// last, with whatever queue there is) is not the server's: counting it
    /// made chunks grow with the queue they built.
    pub(crate) fn answered_in(&self, took: Duration) {
        let mut g = self.lock();
        let think = took.saturating_sub(g.last_rtt.unwrap_or_default());
        // Smoothed by a quarter: one slow answer does not make the next
        // chunks huge, a server that stays slow is followed within a few.
        g.answer_time = Some(match g.answer_time {
            None => think,
            Some(t) => (t * 3 + think) / 4,
        });
    }

    /// Waits `wait` (what [`Pacer::take`] asked for), looking at the pace
    /// again every [`RECHECK`]: when the rate rises meanwhile, the wait
    /// ends sooner.
    pub(crate) async fn pause(&self, mut wait: Duration) {
        while !wait.is_zero() {
            tokio::time::sleep(wait.min(RECHECK)).await;
            wait = self.owed();
        }
    }

    /// How long readers still owe the pace at the rates allowed now.
    fn owed(&self) -> Duration {
        let background = self.limits.background();
        let now = Instant::now();
        let own = {
            let mut g = self.lock();
            let Some(rate) = self.rate_now(background, &g) else {
                return Duration::ZERO;
            };
            let owed = g.bucket.owed_at(rate as f64, now);
            if !owed.is_zero() {
                g.waited = true;
                g.held_until = now + owed;
            } else {
                g.held_until = now;
            }
            owed
        };
        if background {
            own.max(self.shared.owed(now))
        } else {
            own
        }
    }

    /// Accounts for `n` bytes that just arrived; returns how long to wait
    /// before reading more.
    pub(crate) fn take(&self, n: usize) -> Duration {
        let background = self.limits.background();
        let cap = self.limits.max_rate();
        if !background && cap.is_none() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let wait = {
            let mut g = self.lock();
            g.window_bytes += n as u64;
            let span = now.duration_since(g.window);
            if span >= ACHIEVED_WINDOW {
                g.achieved = (g.window_bytes as f64 / span.as_secs_f64()) as u64;
                g.window = now;
                g.window_bytes = 0;
            }
            let rate = self.rate_now(background, &g).unwrap_or(u64::MAX) as f64;
            let wait = g.bucket.take(n, rate, now);
            if !wait.is_zero() {
                g.waited = true;
                g.held_until = g.held_until.max(now + wait);
            }
            wait
        };
        if background {
            wait.max(self.shared.take(n, now))
        } else {
            wait
        }
    }

    /// Feeds one round-trip sample to the controller.
    pub(crate) fn sample(&self, rtt: Duration) {
        let mut g = self.lock();
        let now = Instant::now();
        let delivery = Delivery {
            achieved: g.achieved,
            paced: g.waited || now < g.held_until,
        };
        g.waited = false;
        g.last_rtt = Some(rtt);
        g.pace.sample(rtt, delivery, now.into_std());
        debug!(
            rtt_us = rtt.as_micros() as u64,
            achieved = delivery.achieved,
            paced = delivery.paced,
            rate = g.pace.rate(),
            "pace sample"
        );
    }

    /// How long until the next probe.
    fn probe_every(&self) -> Duration {
        let base = self.lock().pace.base_delay().unwrap_or_default();
        (4 * base).clamp(PROBE_FASTEST, PROBE_SLOWEST)
    }

    /// Starts measuring round trips to the host and port of `url` until the
    /// returned guard is dropped. It measures only while the transfer is in
    /// the background: a foreground transfer costs a task that looks at its
    /// limits every [`PROBE_SLOWEST`], and no name lookup until it is made
    /// a background one.
    pub(crate) fn probe(self: &Arc<Self>, url: url::Url) -> ProbeGuard {
        let pacer = self.clone();
        let task = tokio::spawn(async move {
            let mut resolved = None;
            loop {
                if !pacer.limits.background() {
                    tokio::time::sleep(PROBE_SLOWEST).await;
                    continue;
                }
                tokio::time::sleep(pacer.probe_every()).await;
                let server = match resolved {
                    Some(addr) => addr,
                    None => match probe_target(&url).await {
                        Some(addr) => *resolved.insert(addr),
                        // No address: no samples; the pace stays where it is.
                        None => return,
                    },
                };
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
async fn probe_target(url: &url::Url) -> Option<SocketAddr> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .ok()?
        .ok()?
        .next()
}

#[cfg(test)]
mod tests;
