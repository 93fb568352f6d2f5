//! How fast a background transfer may go: a delay-based controller in the
//! spirit of LEDBAT (RFC 6817) and rLEDBAT (RFC 9840), so that background
//! jobs use only the bandwidth nobody else is using, however fast it is.
//!
//! The signal is queueing delay on the path: the round-trip time measured
//! now minus the lowest one seen recently (the path's base delay). The
//! rules, in order:
//!
//! - **The target follows the link.** A queue costs the traffic behind it
//!   the time it takes to drain, but what can be seen of it depends on the
//!   link: a sender that keeps its queue small (BBR, any paced sender)
//!   holds a few hundred kilobytes there, 1–2 ms at a gigabit and far under
//!   a fixed 5 ms target. So the target is [`TARGET_BYTES`] at the fastest
//!   rate the transfer has had lately (the link's rate, or a lower bound of
//!   it), between [`MIN_TARGET`] and [`TARGET`].
//! - **Empty queue: grow multiplicatively**, as TCP's slow start does: the
//!   rate doubles every [`DOUBLING`] while the queue stays under half the
//!   target. Until the first time the queue reaches the target this is
//!   the start-up; after a cut, growth starts [`CAUTIOUS`] times slower and
//!   speeds up back to a doubling per [`DOUBLING`] the longer the queue
//!   stays empty, so a brief dip in other traffic's queue (a TCP sender
//!   backing off after a loss) is not taken for an idle path, while a path
//!   that really went idle is filled again within about half a second.
//! - **Near the target: hold**, growing gently as the queue approaches it.
//! - **Above the target: cut** in proportion to the excess, to at most a
//!   quarter per [`CUT_TIME`], down to a trickle ([`MIN_RATE`]) that keeps
//!   the job making progress. A foreground flow that fills a bottleneck's
//!   queue gets the path back within a few samples.
//! - A transfer whose rate is limited by something else (the server, the
//!   disk), not by the pace, may not be allowed more than twice what it
//!   achieves: it would otherwise build up a rate it then dumps on the path
//!   at once.
//!
//! Pure: the caller supplies the samples and the time.

use std::time::{Duration, Instant};

/// The queueing delay a background transfer aims for. LEDBAT allows up to
/// 100 ms; a low target gives way as soon as other traffic starts to queue
/// (a download limited by its receive window, common on short paths, queues
/// only 10–20 ms), and an idle link is still filled because a paced
/// transfer asks for its bytes in chunks that queue only a few milliseconds
/// themselves.
pub const TARGET: Duration = Duration::from_millis(5);

/// The queue a background transfer aims for, in bytes: the delay target is
/// this much at the fastest rate the transfer has had lately, so that on a
/// fast link the queue a competing flow keeps is seen. 64 KiB is 5 ms at
/// 105 Mbit/s and half a millisecond at a gigabit.
pub const TARGET_BYTES: f64 = 64.0 * 1024.0;

/// The lowest delay target, whatever the link: a handshake's time varies
/// by a few hundred microseconds on an idle path (scheduling, the probe's
/// own timer), and a target in that noise would be reached by noise alone.
pub const MIN_TARGET: Duration = Duration::from_millis(1);

/// The slowest a background transfer goes, however busy the path: enough to
/// make progress, too little to matter to anyone else.
pub const MIN_RATE: u64 = 16 * 1024;

/// Where a transfer starts, before any delay sample: a few packets per
/// millisecond, under what any link a job runs on carries.
pub const START_RATE: u64 = 512 * 1024;

/// While the queue is empty the rate doubles in this long.
pub const DOUBLING: Duration = Duration::from_millis(40);

/// Right after a cut, growth is this many times slower than [`DOUBLING`];
/// it speeds up as the queue stays empty.
pub const CAUTIOUS: u32 = 4;

/// Growth is at full speed up to this fraction of the rate at which the
/// queue last built up.
const NEAR: f64 = 0.85;

/// How long the queue must stay empty after a cut for growth to be back at
/// full speed.
pub const RECOVERY: Duration = Duration::from_millis(300);

/// Above the target the rate falls by the excess, at most to a quarter per
/// this long.
pub const CUT_TIME: Duration = Duration::from_millis(20);

/// How long the base delay remembers a minimum: long enough to outlast a
/// busy period, short enough to follow a route change.
pub const BASE_HISTORY: Duration = Duration::from_secs(120);

/// Base-delay minima are kept per bucket of this length.
const BUCKET: Duration = Duration::from_secs(10);

/// The rate that sets the target is the achieved rate smoothed over about
/// this long: a reader catching up on its socket buffer gets a megabyte in
/// a millisecond, which says nothing of the link (at 10 Mbit/s such bursts
/// in 100 ms windows made the target 1 ms, under one packet's time, and
/// held a Low job to 0.39 of the link).
const RATE_SMOOTHING: Duration = Duration::from_secs(1);

/// The current delay is the lowest of this many recent samples (one noisy
/// sample must not cut the rate).
const CURRENT_SAMPLES: usize = 2;

/// Samples further apart than this count as this far apart: after a pause
/// (a chunk's wait, a stalled probe) growth does not jump.
const MAX_STEP: Duration = Duration::from_millis(100);

/// What the transfer did since the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The rate it reached, bytes per second.
    pub achieved: u64,
    /// Whether the pace held it back (readers waited for the bucket): if
    /// not, something else limits it, and the rate may not run far ahead.
    pub paced: bool,
}

/// The controller's state. Start with [`Pace::new`], feed every delay sample
/// to [`Pace::sample`], read [`Pace::rate`].
#[derive(Debug, Clone)]
pub struct Pace {
    rate: f64,
    /// (bucket start, lowest delay in it), oldest first.
    base: Vec<(Instant, Duration)>,
    recent: Vec<Duration>,
    /// The achieved rate, smoothed over [`RATE_SMOOTHING`] (from 0).
    smoothed: f64,
    /// (bucket start, highest smoothed rate in it), oldest first: the
    /// fastest the path has carried this transfer lately.
    fastest: Vec<(Instant, f64)>,
    last_sample: Option<Instant>,
    /// What the transfer achieved when the queue last went past the
    /// target (about the bottleneck's rate, or our share of it): growth is
    /// fast up to near it, cautious beyond. `None` during start-up.
    known_max: Option<f64>,
    /// The last sample was above the target.
    cutting: bool,
    /// Since when the rate has been past near [`Pace::known_max`] with the
    /// queue empty: the careful probing of a rate the path may not carry.
    probing_since: Option<Instant>,
}

impl Pace {
    /// A controller at [`START_RATE`].
    pub fn new() -> Pace {
        Pace {
            rate: START_RATE as f64,
            base: Vec::new(),
            recent: Vec::new(),
            smoothed: 0.0,
            fastest: Vec::new(),
            last_sample: None,
            known_max: None,
            cutting: false,
            probing_since: None,
        }
    }

    /// The allowed rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// The path's base delay: the lowest sample of the last
    /// [`BASE_HISTORY`].
    pub fn base_delay(&self) -> Option<Duration> {
        self.base.iter().map(|b| b.1).min()
    }

    /// The queueing delay aimed for now: [`TARGET_BYTES`] at the fastest
    /// rate achieved (smoothed over [`RATE_SMOOTHING`]) in the last
    /// [`BASE_HISTORY`], within [`MIN_TARGET`] and [`TARGET`]; [`TARGET`]
    /// before any rate is known.
    pub fn target(&self) -> Duration {
        let fastest = self.fastest.iter().map(|b| b.1).fold(0.0, f64::max);
        if fastest <= 0.0 {
            return TARGET;
        }
        Duration::from_secs_f64((TARGET_BYTES / fastest).min(TARGET.as_secs_f64())).max(MIN_TARGET)
    }

    /// Takes one round-trip sample taken at `now`, with what the transfer
    /// did since the previous one.
    pub fn sample(&mut self, rtt: Duration, delivery: Delivery, now: Instant) {
        let step = self
            .last_sample
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(MAX_STEP);
        self.last_sample = Some(now);
        match self.base.last_mut() {
            Some((start, min)) if now.saturating_duration_since(*start) < BUCKET => {
                *min = (*min).min(rtt);
            }
            _ => self.base.push((now, rtt)),
        }
        self.base
            .retain(|(start, _)| now.saturating_duration_since(*start) < BASE_HISTORY);
        let achieved = delivery.achieved as f64;
        let weight = (step.as_secs_f64() / RATE_SMOOTHING.as_secs_f64()).min(1.0);
        self.smoothed += (achieved - self.smoothed) * weight;
        let achieved = self.smoothed;
        match self.fastest.last_mut() {
            Some((start, max)) if now.saturating_duration_since(*start) < BUCKET => {
                *max = max.max(achieved);
            }
            _ => self.fastest.push((now, achieved)),
        }
        self.fastest
            .retain(|(start, _)| now.saturating_duration_since(*start) < BASE_HISTORY);
        self.recent.push(rtt);
        if self.recent.len() > CURRENT_SAMPLES {
            self.recent.remove(0);
        }
        let current = self.recent.iter().copied().min().unwrap_or(rtt);
        let base = self.base_delay().unwrap_or(rtt);
        // 0 with an empty queue, 1 at the target.
        let load = current.saturating_sub(base).as_secs_f64() / self.target().as_secs_f64();
        let step = step.as_secs_f64();

        if load <= 1.0 {
            self.cutting = false;
        }
        if load < 0.5 {
            let doubling = self.doubling(now);
            self.rate *= 2f64.powf(step / doubling.as_secs_f64());
        } else if load <= 1.0 {
            // Approaching the target: grow at most a tenth as fast as on an
            // empty queue, not at all at the target.
            self.probing_since = None;
            let gentle = (1.0 - load) * 2.0 * 0.1;
            self.rate *= 2f64.powf(gentle * step / DOUBLING.as_secs_f64());
        } else {
            self.probing_since = None;
            if !self.cutting {
                self.cutting = true;
                self.known_max = Some(if delivery.achieved > 0 {
                    delivery.achieved as f64
                } else {
                    self.rate
                });
            }
            // Just above the target the cut is gentle (the queue drains
            // on its own as soon as the rate is under the link's); far
            // above it, another flow is queueing: a quarter per CUT_TIME.
            let factor = (1.0 - 0.5 * (load - 1.0)).max(0.25);
            self.rate *= factor.powf(step / CUT_TIME.as_secs_f64());
        }
        if !delivery.paced {
            let ceiling = (2 * delivery.achieved).max(START_RATE) as f64;
            self.rate = self.rate.min(ceiling);
        }
        self.rate = self.rate.max(MIN_RATE as f64);
    }

    /// How long the rate takes to double now, on an empty queue.
    fn doubling(&mut self, now: Instant) -> Duration {
        match self.known_max {
            Some(max) if self.rate >= NEAR * max => {}
            _ => {
                self.probing_since = None;
                return DOUBLING;
            }
        }
        let since = *self.probing_since.get_or_insert(now);
        let probing = now.saturating_duration_since(since);
        let slow = DOUBLING * CAUTIOUS;
        let recovered = probing.as_secs_f64() / RECOVERY.as_secs_f64();
        let doubling = slow.as_secs_f64() - (slow - DOUBLING).as_secs_f64() * recovered.min(1.0);
        Duration::from_secs_f64(doubling)
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

#[cfg(test)]
mod tests;
