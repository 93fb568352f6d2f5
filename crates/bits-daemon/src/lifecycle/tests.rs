//! The lifecycle owner on its own: a real store in a temporary directory,
//! no socket.

use super::*;
use crate::state::View;
use bits_core::{JobProps, JobType};
use bits_store::Store;

/// Regression (item 11): a task that panicked left its job Connecting for
/// ever. Now the owner sees the panic, and the job goes to Error with the
/// panic's message, saved.
#[tokio::test]
async fn a_runner_that_panics_leaves_its_job_in_error_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite3");
    let mut store = Store::open(&db).unwrap();
    let now = SystemTime::now();
    let id = JobId::new_random();
    let mut job = Job::new(
        id,
        JobType::Download,
        JobProps::default(),
        "u".into(),
        0,
        now,
    );
    job.files = vec![JobFile::new(
        "http://127.0.0.1:9/a".into(),
        dir.path().join("a"),
    )];
    job.apply(Event::Resume, now).unwrap();
    job.apply(Event::Start, now).unwrap();
    store.insert_job(&job).unwrap();
    let mut view = View::default();
    view.jobs.insert(id, Entry::new(job));
    let shared = Shared::for_tests(view, store);
    let (mut manager, _handle) = Manager::new(shared.clone(), Duration::from_secs(300));

    let task = manager.runners.spawn(async move {
        if id.0.is_nil() {
            return (id, 1, AttemptEnd::panicked(String::new()));
        }
        panic!("boom in a test")
    });
    manager.tasks.insert(task.id(), (id, 1));
    manager.owned(id).runner = Some(Slot {
        run: 1,
        cancel: CancellationToken::new(),
        started: now,
    });
    let joined = manager.runners.join_next_with_id().await.unwrap();
    manager.runner_ended(joined).await;

    let job = shared.read().jobs[&id].job.clone();
    assert_eq!(job.state(), JobState::Error);
    let error = job.error.unwrap();
    assert_eq!(error.code, bits_core::error::codes::E_UNEXPECTED);
    assert!(
        error.description.contains("boom in a test"),
        "{}",
        error.description
    );
    let saved = shared.store.call(|s| s.load_all()).await.unwrap();
    assert_eq!(saved[0].state(), JobState::Error, "the Error is saved");
}
