use super::*;

fn at(start: Instant, ms: u64) -> Instant {
    start + Duration::from_millis(ms)
}

fn with(state: &str, bytes: u64) -> JobObject {
    let mut job = crate::sample::job();
    job.job_state = state.into();
    job.bytes_transferred = bytes;
    job
}

/// The first sight is reported, as the kind the caller gives.
#[test]
fn the_first_observation_is_reported() {
    let t0 = Instant::now();
    let mut t = Tracker::new();
    let (kind, job) = t.observe(with("Queued", 0), t0, Kind::Current).unwrap();
    assert_eq!(kind, Kind::Current);
    assert_eq!(job.job_state, "Queued");
    let mut t = Tracker::new();
    assert_eq!(
        t.observe(with("Queued", 0), t0, Kind::Created).unwrap().0,
        Kind::Created
    );
}

/// A state change goes out at once, however soon after the last event.
#[test]
fn state_changes_are_never_held_back() {
    let t0 = Instant::now();
    let mut t = Tracker::new();
    t.observe(with("Queued", 0), t0, Kind::Current);
    let (kind, _) = t
        .observe(with("Connecting", 0), at(t0, 1), Kind::Current)
        .unwrap();
    assert_eq!(kind, Kind::StateChanged);
    let (kind, job) = t
        .observe(with("Transferring", 10), at(t0, 2), Kind::Current)
        .unwrap();
    assert_eq!(kind, Kind::StateChanged);
    assert_eq!(job.bytes_transferred, 10);
}

/// Progress steps closer than 500 ms are held back; the latest held one
/// goes out when its time comes, and none is reported twice.
#[test]
fn progress_is_reported_at_most_every_500_ms_and_the_last_step_is_kept() {
    let t0 = Instant::now();
    let mut t = Tracker::new();
    t.observe(with("Transferring", 0), t0, Kind::Current);
    assert!(t
        .observe(with("Transferring", 100), at(t0, 100), Kind::Current)
        .is_none());
    assert!(t
        .observe(with("Transferring", 200), at(t0, 200), Kind::Current)
        .is_none());
    assert_eq!(t.next_due(), Some(at(t0, 500)));
    assert!(t.due(at(t0, 499)).is_none());
    let (kind, job) = t.due(at(t0, 500)).unwrap();
    assert_eq!((kind, job.bytes_transferred), (Kind::Progress, 200));
    assert!(t.due(at(t0, 2000)).is_none());
    assert_eq!(t.next_due(), None);
    // The same counts again are not a step.
    assert!(t
        .observe(with("Transferring", 200), at(t0, 1200), Kind::Current)
        .is_none());
    assert_eq!(t.next_due(), None);
    let (kind, _) = t
        .observe(with("Transferring", 300), at(t0, 1200), Kind::Current)
        .unwrap();
    assert_eq!(kind, Kind::Progress);
}

/// A state change replaces a held step: it carries the newer counts.
#[test]
fn a_state_change_drops_the_held_step() {
    let t0 = Instant::now();
    let mut t = Tracker::new();
    t.observe(with("Transferring", 0), t0, Kind::Current);
    assert!(t
        .observe(with("Transferring", 50), at(t0, 10), Kind::Current)
        .is_none());
    let (kind, job) = t
        .observe(with("Transferred", 99), at(t0, 20), Kind::Current)
        .unwrap();
    assert_eq!((kind, job.bytes_transferred), (Kind::StateChanged, 99));
    assert!(t.due(at(t0, 5000)).is_none());
}

/// A line is the job object's keys after Event and EventTime, on one line.
#[test]
fn a_line_is_the_job_object_with_its_event() {
    let job = with("Transferring", 7);
    let text = serde_json::to_string(&Line {
        kind: Kind::Progress,
        time: "2026-12-02T00:00:00.000Z".into(),
        job: &job,
    })
    .unwrap();
    assert!(
        text.starts_with(r#"{"Event":"Progress","EventTime":"2026-12-02T00:00:00.000Z","JobId":"#),
        "{text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let plain = serde_json::to_value(&job).unwrap();
    for (key, v) in plain.as_object().unwrap() {
        assert_eq!(&value[key], v, "{key}");
    }
    assert!(!text.contains('\n'));
}
