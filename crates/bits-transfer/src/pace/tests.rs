use super::*;
use bits_core::policy::pace::START_RATE;

fn pacer(background: bool, cap: Option<u64>) -> (Pacer, Arc<Limits>) {
    let limits = Arc::new(Limits::new(background, cap));
    (
        Pacer::new(limits.clone(), Arc::new(SharedCap::new(None))),
        limits,
    )
}

#[tokio::test]
async fn the_bucket_makes_readers_wait_for_the_rate() {
    let (p, _) = pacer(true, None);
    let rate = p.rate().unwrap() as f64;
    assert_eq!(rate as u64, START_RATE);
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

#[tokio::test]
async fn a_foreground_transfer_without_a_cap_is_not_paced() {
    let (p, _) = pacer(false, None);
    assert!(!p.limited());
    assert_eq!(p.rate(), None);
    assert_eq!(p.chunk(), None);
    assert_eq!(p.take(1 << 30), Duration::ZERO);
}

#[tokio::test]
async fn a_priority_change_takes_effect_at_the_next_read() {
    let (p, limits) = pacer(true, None);
    p.take(64 * 1024);
    assert!(!p.take(10 << 20).is_zero(), "background: paced");
    limits.set(false, None);
    assert_eq!(p.take(10 << 20), Duration::ZERO, "foreground now");
    limits.set(true, None);
    assert!(!p.take(10 << 20).is_zero(), "background again");
}

#[tokio::test]
async fn a_cap_holds_a_foreground_transfer_too() {
    let (p, limits) = pacer(false, Some(1_000_000));
    assert!(p.limited());
    assert_eq!(p.rate(), Some(1_000_000));
    p.take(64 * 1024);
    let wait = p.take(1_000_000);
    assert!((wait.as_secs_f64() - 1.0).abs() < 0.02, "{wait:?}");
    // The cap lowered below the controller's rate bounds a background job.
    limits.set(true, Some(100_000));
    assert_eq!(p.rate(), Some(100_000));
}

#[tokio::test]
async fn the_machine_wide_cap_is_shared_by_background_jobs() {
    let shared = Arc::new(SharedCap::new(Some(1_000_000)));
    let a = Pacer::new(Arc::new(Limits::new(true, None)), shared.clone());
    let b = Pacer::new(Arc::new(Limits::new(true, None)), shared.clone());
    let fg = Pacer::new(Arc::new(Limits::new(false, None)), shared.clone());
    // Half a second's worth each: together a second's worth is owed.
    a.take(500_000);
    let wait = b.take(500_000);
    assert!(wait >= Duration::from_millis(900), "{wait:?}");
    // Foreground jobs do not draw from it.
    assert_eq!(fg.take(10 << 20), Duration::ZERO);
    shared.set(None);
    assert_eq!(shared.rate(), None);
}

#[tokio::test]
async fn chunks_are_5_ms_of_the_rate() {
    let (p, _) = pacer(false, Some(10_000_000));
    assert_eq!(p.chunk(), Some(50_000));
}

/// Regression: samples taken while a reader sleeps for the pace (between
/// paced chunks) once counted as "limited elsewhere", capping the rate at
/// twice an achieved rate measured over the pause: a Low job on loopback
/// stayed at the starting rate.
#[tokio::test(start_paused = true)]
async fn samples_taken_while_a_reader_waits_for_the_pace_let_the_rate_grow() {
    let (p, _) = pacer(true, None);
    // One chunk that owes about a second at the starting rate.
    p.take(64 * 1024);
    let wait = p.take(START_RATE as usize);
    assert!(wait > Duration::from_millis(500), "{wait:?}");
    // Samples every 10 ms of simulated time while the reader sleeps: the
    // queue is empty, so the rate doubles every 40 ms.
    for _ in 0..12 {
        tokio::time::advance(Duration::from_millis(10)).await;
        p.sample(Duration::from_micros(100));
    }
    assert!(p.rate().unwrap() > 4 * START_RATE, "{:?}", p.rate());
}

/// Regression (a reader asleep for a minute): the wait for a chunk taken at
/// a trickle was slept whole, although the rate had risen long before; a
/// Low job alone got 0.4 of a 10 Mbit link. The wait ends soon after the
/// rate rises.
#[tokio::test]
async fn a_wait_ends_soon_after_the_rate_rises() {
    let (p, limits) = pacer(false, Some(16 * 1024));
    let wait = p.take(1_000_000);
    assert!(wait > Duration::from_secs(50), "{wait:?}");
    let p = Arc::new(p);
    let sleeper = {
        let p = p.clone();
        tokio::spawn(async move { p.pause(wait).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    limits.set(false, Some(1_000_000_000));
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(2), sleeper)
        .await
        .expect("the wait outlasted the slow rate")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// The server's think time, not the path's queue, sizes chunks: answers
/// slowed by a queue as long as the probe's round trip do not grow them.
#[tokio::test]
async fn chunks_follow_the_servers_answer_time_not_the_queue() {
    let (p, _) = pacer(false, Some(1_000_000));
    p.sample(Duration::from_millis(1));
    // A queue of 89 ms; the server answers 5 ms after the round trip.
    p.sample(Duration::from_millis(90));
    p.answered_in(Duration::from_millis(95));
    assert!(p.chunk().unwrap() <= 25_000, "{}", p.chunk().unwrap());
    p.answered_in(Duration::from_millis(290));
    // About 200 ms of think time (smoothed): 4 x that at 1 MB/s.
    assert!(p.chunk().unwrap() > 100_000, "{}", p.chunk().unwrap());
}
