//! How fast a background transfer may go: a delay-based controller in the
//! spirit of LEDBAT (RFC 6817), so that background jobs use only the
//! bandwidth nobody else is using.
//!
//! The signal is queueing delay on the path: the round-trip time measured
//! now minus the lowest one seen recently (the path's base delay). A
//! background transfer that is alone fills the bottleneck until the queue
//! holds about [`TARGET`] of delay, and no more; when other traffic (which
//! does not back off for delay) fills the queue further, the delay rises
//! past the target and the background rate falls at once, down to a trickle
//! ([`MIN_RATE`]) that keeps the job making progress.
//!
//! Pure: the caller supplies the samples and the time.

use std::time::{Duration, Instant};

/// The queueing delay a background transfer aims for. LEDBAT allows up to
/// 100 ms; a low target gives way as soon as other traffic starts to queue
/// (a download that is limited by its receive window, common on short
/// paths, queues only 10–20 ms), and an idle link is still filled because a
/// paced transfer asks for its bytes in small chunks that queue only a few
/// milliseconds themselves (measured: `bench/background.sh`).
pub const TARGET: Duration = Duration::from_millis(5);

/// The slowest a background transfer goes, however busy the path: enough to
/// make progress, too little to matter to anyone else.
pub const MIN_RATE: u64 = 16 * 1024;

/// Where a transfer starts, before any delay sample.
pub const START_RATE: u64 = 256 * 1024;

/// How long the base delay remembers a minimum: long enough to outlast a
/// busy period, short enough to follow a route change.
pub const BASE_HISTORY: Duration = Duration::from_secs(120);

/// Base-delay minima are kept per bucket of this length.
const BUCKET: Duration = Duration::from_secs(10);

/// The current delay is the lowest of this many recent samples (one noisy
/// sample must not halve the rate).
const CURRENT_SAMPLES: usize = 2;

/// The most the rate grows per sample, as a fraction of itself: slow
/// enough that a dip in other traffic's queue (a TCP sender backing off
/// after a loss) is not taken as an idle path; from the start rate to
/// 5 MB/s in about 3 s of samples.
const MAX_GROWTH: f64 = 0.1;

/// The controller's state. Start with [`Pace::new`], feed every delay sample
/// to [`Pace::sample`], read [`Pace::rate`].
#[derive(Debug, Clone)]
pub struct Pace {
    rate: f64,
    /// (bucket start, lowest delay in it), oldest first.
    base: Vec<(Instant, Duration)>,
    recent: Vec<Duration>,
}

impl Pace {
    /// A controller at [`START_RATE`].
    pub fn new() -> Pace {
        Pace {
            rate: START_RATE as f64,
            base: Vec::new(),
            recent: Vec::new(),
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

    /// Takes one round-trip sample taken at `now`. `achieved` is the rate
    /// the transfer really reached lately (bytes per second): the allowed
    /// rate does not run ahead of it by more than a factor of two, so that
    /// a transfer limited by something else (the server, the disk) does not
    /// build up a rate it would then dump on the path at once.
    pub fn sample(&mut self, rtt: Duration, achieved: u64, now: Instant) {
        match self.base.last_mut() {
            Some((start, min)) if now.duration_since(*start) < BUCKET => {
                *min = (*min).min(rtt);
            }
            _ => self.base.push((now, rtt)),
        }
        self.base
            .retain(|(start, _)| now.duration_since(*start) < BASE_HISTORY);
        self.recent.push(rtt);
        if self.recent.len() > CURRENT_SAMPLES {
            self.recent.remove(0);
        }
        let current = self.recent.iter().copied().min().unwrap_or(rtt);
        let base = self.base_delay().unwrap_or(rtt);
        let queueing = current.saturating_sub(base);
        // 1 with an empty queue, 0 at the target, negative above it.
        let off_target = 1.0 - queueing.as_secs_f64() / TARGET.as_secs_f64();
        if off_target >= 0.0 {
            self.rate *= 1.0 + MAX_GROWTH * off_target;
            let ceiling = (2 * achieved).max(START_RATE) as f64;
            self.rate = self.rate.min(ceiling.max(MIN_RATE as f64));
        } else {
            // Above the target: give way in proportion to the excess, at
            // most halving per sample.
            self.rate *= (1.0 + 0.5 * off_target).max(0.5);
        }
        self.rate = self.rate.max(MIN_RATE as f64);
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` samples 200 ms apart; returns the time after them.
    fn feed(p: &mut Pace, rtt: Duration, achieved: u64, n: usize, mut now: Instant) -> Instant {
        for _ in 0..n {
            p.sample(rtt, achieved, now);
            now += Duration::from_millis(200);
        }
        now
    }

    #[test]
    fn an_idle_path_lets_the_rate_grow_up_to_twice_what_is_achieved() {
        let mut p = Pace::new();
        let t = Instant::now();
        let t = feed(&mut p, 10 * MS, 100_000_000, 80, t);
        assert!(p.rate() > 20_000_000, "{}", p.rate());
        // Capped by what the transfer achieves.
        feed(&mut p, 10 * MS, 1_000_000, 5, t);
        assert!(p.rate() <= 2_000_000, "{}", p.rate());
    }

    #[test]
    fn queueing_past_the_target_cuts_the_rate_to_a_trickle() {
        let mut p = Pace::new();
        let t = Instant::now();
        let t = feed(&mut p, 10 * MS, 100_000_000, 80, t);
        let before = p.rate();
        // Foreground traffic fills the queue: 80 ms above the base.
        // The current delay is the lowest of the last three samples, so the
        // cuts begin with the third one.
        let t = feed(&mut p, 90 * MS, 100_000_000, 5, t);
        assert!(p.rate() <= before / 4, "{} then {}", before, p.rate());
        feed(&mut p, 90 * MS, 100_000_000, 30, t);
        assert_eq!(p.rate(), MIN_RATE);
    }

    #[test]
    fn the_rate_settles_where_the_queue_is_at_the_target() {
        let mut p = Pace::new();
        let t = Instant::now();
        let t = feed(&mut p, 10 * MS, 100_000_000, 20, t);
        // Exactly at the target (once the last three samples say so): no
        // change.
        let t = feed(&mut p, 10 * MS + TARGET, 100_000_000, 3, t);
        let r = p.rate();
        feed(&mut p, 10 * MS + TARGET, 100_000_000, 1, t);
        let after = p.rate();
        assert!(after.abs_diff(r) <= 1, "{r} -> {after}");
    }

    #[test]
    fn one_noisy_sample_does_not_cut_the_rate() {
        let mut p = Pace::new();
        let t = Instant::now();
        let t = feed(&mut p, 10 * MS, 100_000_000, 20, t);
        let r = p.rate();
        feed(&mut p, 200 * MS, 100_000_000, 1, t);
        assert!(p.rate() >= r, "{r} -> {}", p.rate());
    }

    #[test]
    fn the_base_delay_forgets_old_minima() {
        let mut p = Pace::new();
        let t = Instant::now();
        let t = feed(&mut p, 5 * MS, 0, 1, t);
        assert_eq!(p.base_delay(), Some(5 * MS));
        // The route got longer: after BASE_HISTORY the old minimum is gone.
        feed(&mut p, 40 * MS, 0, 700, t);
        assert_eq!(p.base_delay(), Some(40 * MS));
    }
}
