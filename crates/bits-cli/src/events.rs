//! The events of `bits watch`: which observations of a job are worth a line.
//!
//! A [`Tracker`] follows one job. Given the job as last observed and the
//! time, it says whether to report it now: a change of state always, at
//! once; a change of the byte or file counts (a progress step) at most once
//! per [`PROGRESS_EVERY`], the last step of a burst held back until its time
//! comes rather than lost. Pure: the caller supplies the time, so the policy
//! is tested without a clock.

use std::time::{Duration, Instant};

use bits_proto::JobObject;
use serde::Serialize;

/// The shortest time between two progress events of one job.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What an event says about the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// The job as it was when watching began.
    Current,
    /// A job that appeared after watching began (watching every job).
    Created,
    /// The job's state changed.
    StateChanged,
    /// Bytes or files moved; the state is the same.
    Progress,
    /// The daemon no longer knows the job; the object is the last one seen.
    Removed,
}

/// One line of `bits watch --json`: the job object's keys, after the
/// event's kind and time.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// The kind of event.
    #[serde(rename = "Event")]
    pub kind: Kind,
    /// When the change was seen, RFC 3339 with milliseconds, UTC.
    #[serde(rename = "EventTime")]
    pub time: String,
    /// The job as it is now.
    #[serde(flatten)]
    pub job: &'a JobObject,
}

/// What a progress step compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    bytes_transferred: u64,
    bytes_total: Option<u64>,
    files_transferred: u64,
    files_total: u64,
}

impl Counts {
    fn of(job: &JobObject) -> Counts {
        Counts {
            bytes_transferred: job.bytes_transferred,
            bytes_total: job.bytes_total,
            files_transferred: job.files_transferred,
            files_total: job.files_total,
        }
    }
}

/// Follows one job's observations; see the module documentation.
#[derive(Debug)]
pub struct Tracker {
    /// The state and counts last reported.
    reported: Option<(String, Counts)>,
    /// When the last event went out (a state change resets the progress
    /// interval: it carried the counts too).
    last_event: Option<Instant>,
    /// A progress step held back until [`PROGRESS_EVERY`] has passed.
    held: Option<JobObject>,
    /// The job as last observed, reported or not.
    latest: Option<JobObject>,
}

impl Tracker {
    /// A tracker for a job not yet seen.
    pub fn new() -> Tracker {
        Tracker {
            reported: None,
            last_event: None,
            held: None,
            latest: None,
        }
    }

    /// The job as seen at `now`: the event to report now, if any. `first`
    /// is the kind a first observation gets (Current or Created).
    pub fn observe(
        &mut self,
        job: JobObject,
        now: Instant,
        first: Kind,
    ) -> Option<(Kind, JobObject)> {
        let counts = Counts::of(&job);
        self.latest = Some(job.clone());
        let kind = match &self.reported {
            None => first,
            Some((state, _)) if *state != job.job_state => Kind::StateChanged,
            Some((_, seen)) if *seen != counts => {
                if self.progress_due(now) {
                    Kind::Progress
                } else {
                    self.held = Some(job);
                    return None;
                }
            }
            // Nothing a watcher follows changed; a step held back stays
            // held (it is still the latest count).
            Some(_) => return None,
        };
        Some(self.report(kind, job, now))
    }

    /// The job as last observed.
    pub fn latest(&self) -> Option<&JobObject> {
        self.latest.as_ref()
    }

    /// A held-back progress step whose time has come.
    pub fn due(&mut self, now: Instant) -> Option<(Kind, JobObject)> {
        if self.held.is_some() && self.progress_due(now) {
            let job = self.held.take()?;
            return Some(self.report(Kind::Progress, job, now));
        }
        None
    }

    /// When [`Tracker::due`] will have something, if a step is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.as_ref()?;
        Some(self.last_event? + PROGRESS_EVERY)
    }

    fn progress_due(&self, now: Instant) -> bool {
        self.last_event
            .is_none_or(|at| now.duration_since(at) >= PROGRESS_EVERY)
    }

    fn report(&mut self, kind: Kind, job: JobObject, now: Instant) -> (Kind, JobObject) {
        self.reported = Some((job.job_state.clone(), Counts::of(&job)));
        self.last_event = Some(now);
        self.held = None;
        (kind, job)
    }
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests;
