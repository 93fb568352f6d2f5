//! Every (state, event) pair of the transition table, written out.

use super::*;
use crate::error::ErrorContext;
use crate::file::JobFile;
use crate::job::JobId;
use std::time::{Duration, SystemTime};

fn events() -> Vec<Event> {
    let err = JobError::new(ErrorContext::RemoteFile, 0x8019_01F7, "503");
    vec![
        Event::Resume,
        Event::Suspend,
        Event::Cancel,
        Event::Complete,
        Event::Start,
        Event::Connected,
        Event::AllFilesTransferred,
        Event::TransientFailure {
            error: err.clone(),
            retry_at: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        },
        Event::FatalFailure { error: err.clone() },
        Event::RetryDue,
        Event::Interrupted,
        Event::FileLost { error: err },
    ]
}

/// The expected outcome for a download job with one unfinished file.
/// `None`: refused. Written as a table so that a reader can check it against
/// "Life cycle of a BITS job" line by line.
fn expected(state: JobState, event: &Event) -> Option<JobState> {
    use JobState::*;
    let e = event.name();
    let table: &[(JobState, &str, Option<JobState>)] = &[
        (Queued, "resume", Some(Queued)),
        (Queued, "suspend", Some(Suspended)),
        (Queued, "cancel", Some(Cancelled)),
        (Queued, "complete", Some(Acknowledged)),
        (Queued, "start", Some(Connecting)),
        (Queued, "connected", None),
        (Queued, "all files transferred", Some(Transferred)),
        (Queued, "transient failure", Some(TransientError)),
        (Queued, "fatal failure", Some(Error)),
        (Queued, "retry", None),
        (Queued, "interrupt", None),
        (Queued, "file lost", Some(Error)),
        (Connecting, "resume", Some(Connecting)),
        (Connecting, "suspend", Some(Suspended)),
        (Connecting, "cancel", Some(Cancelled)),
        (Connecting, "complete", Some(Acknowledged)),
        (Connecting, "start", None),
        (Connecting, "connected", Some(Transferring)),
        (Connecting, "all files transferred", Some(Transferred)),
        (Connecting, "transient failure", Some(TransientError)),
        (Connecting, "fatal failure", Some(Error)),
        (Connecting, "retry", None),
        (Connecting, "interrupt", Some(Queued)),
        (Connecting, "file lost", Some(Error)),
        (Transferring, "resume", Some(Transferring)),
        (Transferring, "suspend", Some(Suspended)),
        (Transferring, "cancel", Some(Cancelled)),
        (Transferring, "complete", Some(Acknowledged)),
        (Transferring, "start", None),
        (Transferring, "connected", Some(Transferring)),
        (Transferring, "all files transferred", Some(Transferred)),
        (Transferring, "transient failure", Some(TransientError)),
        (Transferring, "fatal failure", Some(Error)),
        (Transferring, "retry", None),
        (Transferring, "interrupt", Some(Queued)),
        (Transferring, "file lost", Some(Error)),
        (Suspended, "resume", Some(Queued)),
        (Suspended, "suspend", Some(Suspended)),
        (Suspended, "cancel", Some(Cancelled)),
        (Suspended, "complete", Some(Acknowledged)),
        (Suspended, "start", None),
        (Suspended, "connected", None),
        (Suspended, "all files transferred", None),
        (Suspended, "transient failure", None),
        (Suspended, "fatal failure", None),
        (Suspended, "retry", None),
        (Suspended, "interrupt", None),
        (Suspended, "file lost", Some(Error)),
        (Error, "resume", Some(Queued)),
        (Error, "suspend", Some(Suspended)),
        (Error, "cancel", Some(Cancelled)),
        (Error, "complete", Some(Acknowledged)),
        (Error, "start", None),
        (Error, "connected", None),
        (Error, "all files transferred", None),
        (Error, "transient failure", None),
        (Error, "fatal failure", None),
        (Error, "retry", None),
        (Error, "interrupt", None),
        (Error, "file lost", Some(Error)),
        (TransientError, "resume", Some(Queued)),
        (TransientError, "suspend", Some(Suspended)),
        (TransientError, "cancel", Some(Cancelled)),
        (TransientError, "complete", Some(Acknowledged)),
        (TransientError, "start", None),
        (TransientError, "connected", None),
        (TransientError, "all files transferred", None),
        (TransientError, "transient failure", None),
        (TransientError, "fatal failure", Some(Error)),
        (TransientError, "retry", Some(Queued)),
        (TransientError, "interrupt", None),
        (TransientError, "file lost", Some(Error)),
        (Transferred, "resume", Some(Queued)),
        (Transferred, "suspend", Some(Suspended)),
        (Transferred, "cancel", Some(Cancelled)),
        (Transferred, "complete", Some(Acknowledged)),
        (Transferred, "start", None),
        (Transferred, "connected", None),
        (Transferred, "all files transferred", None),
        (Transferred, "transient failure", None),
        (Transferred, "fatal failure", None),
        (Transferred, "retry", None),
        (Transferred, "interrupt", None),
        (Transferred, "file lost", Some(Error)),
    ];
    if state.is_final() {
        return None;
    }
    table
        .iter()
        .find(|(s, ev, _)| *s == state && *ev == e)
        .unwrap_or_else(|| panic!("table misses ({state}, {e})"))
        .2
}

fn one_file() -> Vec<JobFile> {
    vec![JobFile::new("http://127.0.0.1/a".into(), "/tmp/a".into())]
}

#[test]
fn every_state_event_pair_matches_the_table() {
    let files = one_file();
    let mut checked = 0;
    for state in ALL_STATES {
        for event in events() {
            let got = next_state(state, &event, JobType::Download, &files).ok();
            assert_eq!(
                got,
                expected(state, &event),
                "({state}, {}) for a download with one unfinished file",
                event.name()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * 12);
}

#[test]
fn final_states_are_never_left() {
    for state in [JobState::Acknowledged, JobState::Cancelled] {
        for event in events() {
            let err = next_state(state, &event, JobType::Download, &one_file()).unwrap_err();
            assert!(matches!(err, InvalidTransition::NotAllowed { state: s, .. } if s == state));
        }
    }
}

#[test]
fn resume_of_an_empty_job_is_bg_e_empty() {
    let err = next_state(JobState::Suspended, &Event::Resume, JobType::Download, &[]).unwrap_err();
    assert_eq!(err, InvalidTransition::Empty);
    assert_eq!(err.code(), codes::BG_E_EMPTY);
}

#[test]
fn resume_of_a_transferred_job_without_new_files_keeps_it_transferred() {
    let mut files = one_file();
    files[0].complete = true;
    let got = next_state(
        JobState::Transferred,
        &Event::Resume,
        JobType::Download,
        &files,
    );
    assert_eq!(got, Ok(JobState::Transferred));
}

#[test]
fn uploads_complete_only_when_transferred() {
    for state in ALL_STATES.into_iter().filter(|s| !s.is_final()) {
        let got = next_state(state, &Event::Complete, JobType::Upload, &one_file()).ok();
        let want = (state == JobState::Transferred).then_some(JobState::Acknowledged);
        assert_eq!(got, want, "complete of an upload in {state}");
    }
}

#[test]
fn state_names_round_trip() {
    for s in ALL_STATES {
        assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
    }
}

mod model {
    //! Random event sequences applied to a real `Job`: the invariants hold
    //! after every step, whatever the order.
    use super::*;
    use crate::job::{Job, JobProps};
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = Event> {
        let err = JobError::new(ErrorContext::GeneralTransport, 0x8007_2EFD, "refused");
        prop_oneof![
            Just(Event::Resume),
            Just(Event::Suspend),
            Just(Event::Cancel),
            Just(Event::Complete),
            Just(Event::Start),
            Just(Event::Connected),
            Just(Event::AllFilesTransferred),
            Just(Event::TransientFailure {
                error: err.clone(),
                retry_at: SystemTime::UNIX_EPOCH + Duration::from_secs(99),
            }),
            Just(Event::FatalFailure { error: err.clone() }),
            Just(Event::RetryDue),
            Just(Event::Interrupted),
            Just(Event::FileLost { error: err }),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_after_every_event(events in proptest::collection::vec(event(), 1..60)) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
            let id = JobId::new_random();
            let mut job = Job::new(id, JobType::Download, JobProps::default(), "u".into(), 1, now);
            job.files = one_file();
            for ev in events {
                let before = job.state();
                let result = job.apply(ev.clone(), now);
                let expect = next_state(before, &ev, JobType::Download, &job.files);
                prop_assert_eq!(result.clone(), expect);
                if result.is_err() {
                    prop_assert_eq!(job.state(), before, "a refused event changes nothing");
                }
                if before.is_final() {
                    prop_assert_eq!(job.state(), before, "final states are absorbing");
                }
                let s = job.state();
                prop_assert_eq!(
                    job.error.is_some(),
                    matches!(s, JobState::Error | JobState::TransientError),
                    "error present exactly in Error and TransientError (state {})", s
                );
                prop_assert_eq!(job.retry_at.is_some(), s == JobState::TransientError);
                if s == JobState::Transferred {
                    prop_assert!(job.transfer_completed.is_some());
                }
            }
        }
    }
}
