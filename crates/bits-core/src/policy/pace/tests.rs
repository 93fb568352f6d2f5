use super::*;

const MS: Duration = Duration::from_millis(1);

const PACED: Delivery = Delivery {
    achieved: 0,
    paced: true,
};

/// Feeds `n` samples of `rtt`, `every` apart; returns the time after them.
fn feed(p: &mut Pace, rtt: Duration, every: Duration, n: usize, mut now: Instant) -> Instant {
    for _ in 0..n {
        p.sample(rtt, PACED, now);
        now += every;
    }
    now
}

#[test]
fn on_an_empty_queue_the_rate_doubles_every_40_ms() {
    let mut p = Pace::new();
    let t = feed(&mut p, MS, 10 * MS, 1, Instant::now());
    assert_eq!(p.rate(), START_RATE);
    let t = feed(&mut p, MS, 10 * MS, 4, t);
    let r = p.rate() as f64 / START_RATE as f64;
    assert!((r - 2.0).abs() < 0.01, "x{r} in 40 ms");
    // From 512 KiB/s to a gigabyte per second in under half a second.
    feed(&mut p, MS, 10 * MS, 44, t);
    assert!(p.rate() > 1_000_000_000, "{}", p.rate());
}

#[test]
fn a_growing_queue_cuts_the_rate_within_a_few_samples() {
    let mut p = Pace::new();
    let t = feed(&mut p, MS, 10 * MS, 30, Instant::now());
    let before = p.rate();
    // Another flow fills the queue: 50 ms above the base. The current delay
    // is the lowest of the last two samples, so cuts begin with the second.
    let t = feed(&mut p, 51 * MS, 10 * MS, 2, t);
    let after_two = p.rate();
    assert!(after_two <= before * 6 / 10, "{before} then {after_two}");
    feed(&mut p, 51 * MS, 10 * MS, 4, t);
    assert!(p.rate() <= before / 10, "{before} then {}", p.rate());
}

#[test]
fn a_full_queue_leaves_a_trickle_not_zero() {
    let mut p = Pace::new();
    let t = feed(&mut p, MS, 10 * MS, 30, Instant::now());
    feed(&mut p, 101 * MS, 10 * MS, 200, t);
    assert_eq!(p.rate(), MIN_RATE);
}

#[test]
fn the_rate_holds_at_the_target() {
    let mut p = Pace::new();
    let t = feed(&mut p, MS, 10 * MS, 20, Instant::now());
    let t = feed(&mut p, MS + TARGET, 10 * MS, 2, t);
    let r = p.rate();
    feed(&mut p, MS + TARGET, 10 * MS, 10, t);
    assert!(p.rate().abs_diff(r) <= r / 1000, "{r} -> {}", p.rate());
}

#[test]
fn one_noisy_sample_does_not_cut_the_rate() {
    let mut p = Pace::new();
    let t = feed(&mut p, MS, 10 * MS, 20, Instant::now());
    let r = p.rate();
    feed(&mut p, 200 * MS, 10 * MS, 1, t);
    assert!(p.rate() >= r, "{r} -> {}", p.rate());
}

/// Feeds `n` samples of `rtt` from a transfer achieving `achieved`, 10 ms
/// apart.
fn feed_achieving(
    p: &mut Pace,
    rtt: Duration,
    achieved: u64,
    n: usize,
    mut now: Instant,
) -> Instant {
    for _ in 0..n {
        let d = Delivery {
            achieved,
            paced: true,
        };
        p.sample(rtt, d, now);
        now += 10 * MS;
    }
    now
}

#[test]
fn after_a_cut_growth_is_fast_up_to_near_the_rate_that_filled_the_queue_then_cautious() {
    let mut p = Pace::new();
    let t = feed_achieving(&mut p, MS, 10_000_000, 30, Instant::now());
    // The queue builds while the transfer gets 10 MB/s: the path's rate.
    let t = feed_achieving(&mut p, 31 * MS, 10_000_000, 20, t);
    assert_eq!(p.rate(), MIN_RATE);
    // Empty again: doubling every 40 ms up to near 10 MB/s...
    let mut t = t;
    let mut elapsed = 0;
    while p.rate() < 8_500_000 {
        t = feed_achieving(&mut p, MS, 1_000_000, 1, t);
        elapsed += 10;
    }
    assert!(elapsed <= 400, "{elapsed} ms back to near the path's rate");
    // ... then far less than a doubling in the next 40 ms...
    let r0 = p.rate() as f64;
    let t = feed_achieving(&mut p, MS, 8_000_000, 4, t);
    let first = p.rate() as f64 / r0;
    assert!(first < 1.35, "x{first} in the first 40 ms past it");
    // ... and once the queue has stayed empty for RECOVERY, 40 ms double it.
    let t = feed_achieving(&mut p, MS, 8_000_000, 30, t);
    let r1 = p.rate() as f64;
    feed_achieving(&mut p, MS, 8_000_000, 4, t);
    let later = p.rate() as f64 / r1;
    assert!(
        (later - 2.0).abs() < 0.05,
        "x{later} in 40 ms once recovered"
    );
}

#[test]
fn a_transfer_limited_elsewhere_is_allowed_twice_what_it_achieves() {
    let mut p = Pace::new();
    let mut t = Instant::now();
    for _ in 0..100 {
        let limited = Delivery {
            achieved: 4_000_000,
            paced: false,
        };
        p.sample(MS, limited, t);
        t += 10 * MS;
    }
    assert_eq!(p.rate(), 8_000_000);
}

#[test]
fn the_base_delay_forgets_old_minima() {
    let mut p = Pace::new();
    let t = feed(&mut p, 5 * MS, 200 * MS, 1, Instant::now());
    assert_eq!(p.base_delay(), Some(5 * MS));
    // The route got longer: after BASE_HISTORY the old minimum is gone.
    feed(&mut p, 40 * MS, 200 * MS, 700, t);
    assert_eq!(p.base_delay(), Some(40 * MS));
}

/// A bottleneck with a drop-tail queue, as a fluid: what arrives beyond its
/// capacity waits in the queue, up to its size; the delay is the queue's
/// length in time.
struct Bottleneck {
    capacity: f64,
    queue: f64,
    max_queue: f64,
    base: Duration,
}

impl Bottleneck {
    fn new(bits_per_sec: f64, queue: Duration) -> Bottleneck {
        let capacity = bits_per_sec / 8.0;
        Bottleneck {
            capacity,
            queue: 0.0,
            max_queue: capacity * queue.as_secs_f64(),
            base: Duration::from_micros(200),
        }
    }

    fn rtt(&self) -> Duration {
        self.base + Duration::from_secs_f64(self.queue / self.capacity)
    }

    /// `dt` of a paced sender at `paced` bytes/s beside `other`; returns
    /// the bytes each got through.
    fn run(&mut self, dt: f64, paced: f64, other: Other) -> (f64, f64) {
        // What the other flow offers: enough to fill the link and bring the
        // queue to the length it keeps.
        let keeps = match other {
            Other::None => None,
            Other::Greedy => Some(self.max_queue),
            Other::SmallQueue(q) => Some(self.capacity * q.as_secs_f64()),
        };
        let other_offer = keeps.map_or(0.0, |keeps| {
            (self.capacity - paced + (keeps - self.queue) / dt).max(0.0)
        });
        let offered = paced + other_offer;
        let through = (self.queue / dt + offered).min(self.capacity) * dt;
        self.queue = (self.queue + offered * dt - through).clamp(0.0, self.max_queue);
        let share = if offered > 0.0 { paced / offered } else { 0.0 };
        (through * share, through * (1.0 - share))
    }
}

/// The traffic beside the paced transfer in a simulation.
#[derive(Clone, Copy)]
enum Other {
    None,
    /// A loss-based TCP that keeps the queue full.
    Greedy,
    /// A sender that takes the whole link but keeps its queue this short,
    /// as BBR does.
    SmallQueue(Duration),
}

/// How the paced transfer fares on a simulated path, sampled every 10 ms
/// as the probe does on a short path: 5 s alone, then 5 s beside `other`.
/// Returns its share of the link alone, how long it took to fall under a
/// tenth of the link once `other` started (in 50 ms windows), and the
/// other flow's share of the link.
fn simulate(bits_per_sec: f64, queue: Duration, other: Other) -> (f64, Option<Duration>, f64) {
    let mut path = Bottleneck::new(bits_per_sec, queue);
    let mut p = Pace::new();
    let start = Instant::now();
    let tick = Duration::from_millis(1);
    let mut alone = 0.0;
    let mut now = start;
    let mut since_sample = 0.0;
    let mut step = |p: &mut Pace, path: &mut Bottleneck, now: Instant, other: Other| {
        let (ours, theirs) = path.run(tick.as_secs_f64(), p.rate() as f64, other);
        since_sample += ours;
        if now.duration_since(start).as_millis().is_multiple_of(10) {
            let delivery = Delivery {
                achieved: (since_sample / 0.010) as u64,
                paced: true,
            };
            p.sample(path.rtt(), delivery, now);
            since_sample = 0.0;
        }
        (ours, theirs)
    };
    for _ in 0..5000 {
        alone += step(&mut p, &mut path, now, Other::None).0;
        now += tick;
    }
    let mut window = 0.0;
    let mut reacted = None;
    let mut theirs_total = 0.0;
    for i in 0..5000u64 {
        let (ours, theirs) = step(&mut p, &mut path, now, other);
        theirs_total += theirs;
        window += ours;
        if i % 50 == 49 {
            if reacted.is_none() && window / 0.05 < path.capacity / 10.0 {
                reacted = Some(Duration::from_millis(i + 1));
            }
            window = 0.0;
        }
        now += tick;
    }
    (
        alone / (path.capacity * 5.0),
        reacted,
        theirs_total / (path.capacity * 5.0),
    )
}

/// Alone the controller fills the link; when a greedy flow starts, it falls
/// under a tenth of the link within 500 ms and leaves the flow at least
/// 90 % of it.
#[test]
fn on_a_simulated_bottleneck_it_fills_an_idle_link_and_gives_it_back_at_once() {
    let links = [(10e6, 100 * MS), (80e6, 100 * MS), (1e9, 20 * MS)];
    for (bits_per_sec, queue) in links {
        let (alone, reacted, theirs) = simulate(bits_per_sec, queue, Other::Greedy);
        assert!(alone >= 0.85, "{bits_per_sec} bit/s alone: {alone:.2}");
        let reacted = reacted.unwrap_or_else(|| panic!("{bits_per_sec} bit/s: never gave way"));
        assert!(reacted <= 500 * MS, "{bits_per_sec} bit/s: {reacted:?}");
        assert!(
            theirs >= 0.90,
            "{bits_per_sec} bit/s: the flow kept {theirs:.2}"
        );
    }
}

/// A BBR sender on a gigabit link keeps its queue at 1.5–2 ms, under a
/// fixed 5 ms target's "empty": a Low job beside such a curl kept half the
/// link (curl 0.62 of its rate alone). The target in bytes sees it.
#[test]
fn a_flow_that_keeps_its_queue_short_on_a_fast_link_is_given_way_to() {
    for keeps in [Duration::from_micros(1500), 2 * MS] {
        let (alone, reacted, theirs) = simulate(1e9, 20 * MS, Other::SmallQueue(keeps));
        assert!(alone >= 0.85, "alone: {alone:.2}");
        let reacted = reacted.unwrap_or_else(|| panic!("{keeps:?}: never gave way"));
        assert!(reacted <= 500 * MS, "{keeps:?}: {reacted:?}");
        assert!(theirs >= 0.90, "{keeps:?}: the flow kept {theirs:.2}");
    }
}

#[test]
fn the_target_is_64_kib_at_the_fastest_rate_within_1_and_5_ms() {
    let mut p = Pace::new();
    assert_eq!(p.target(), TARGET);
    // 10 ms samples: 600 of them are 6 s, far past the smoothing.
    let t = feed_achieving(&mut p, MS, 1_250_000, 600, Instant::now());
    assert_eq!(p.target(), TARGET, "10 Mbit/s");
    let t = feed_achieving(&mut p, MS, 26_214_400, 600, t);
    let at_200 = p.target().as_secs_f64() * 1e3;
    assert!((at_200 - 2.5).abs() < 0.05, "{at_200} ms at 200 Mbit/s");
    // A slower moment does not raise it: the fastest counts.
    let t = feed_achieving(&mut p, MS, 1_000_000, 300, t);
    assert!((p.target().as_secs_f64() * 1e3 - 2.5).abs() < 0.05);
    feed_achieving(&mut p, MS, 125_000_000, 600, t);
    assert_eq!(p.target(), MIN_TARGET, "a gigabit");
}

/// Regression (a 10 Mbit link taken for a fast one): a reader catching up
/// on its socket buffer measured 100 ms windows of 15 MB/s on a 10 Mbit/s
/// link; the target fell to 1 ms, under one packet's time there, and a Low
/// job alone got 0.39 of the link.
#[test]
fn bursts_of_reading_do_not_lower_the_target() {
    let mut p = Pace::new();
    let mut t = Instant::now();
    for i in 0..500 {
        // One window in ten reads a burst of 1.5 MB; the others 1 MB/s.
        let achieved = if i % 10 == 0 { 15_000_000 } else { 1_000_000 };
        t = feed_achieving(&mut p, MS, achieved, 1, t);
    }
    assert_eq!(p.target(), TARGET);
}
