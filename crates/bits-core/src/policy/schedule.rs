//! Which jobs hold a transfer slot, as BITS schedules them:
//!
//! - every Foreground job transfers at once;
//! - of the background jobs (High, Normal, Low) only [`MAX_BACKGROUND`]
//!   transfers at a time: the highest priority first, and a job of higher
//!   priority that becomes ready takes the slot from a lower one at once;
//! - jobs of the same priority take turns: one that has held the slot for a
//!   time slice while another of its priority waits goes back to the queue
//!   (Queued), behind it, and the waiting one runs.
//!
//! Within a priority the job that has waited longest goes first: a job that
//! just lost its slot queues behind the others, so the turns go round.

use crate::job::{JobId, Priority};
use std::time::{Duration, SystemTime};

/// Background jobs that transfer at the same time: BITS runs all foreground
/// jobs and one background job.
pub const MAX_BACKGROUND: usize = 1;

/// How long a background job keeps the slot while another job of the same
/// priority waits. BITS does not document its slice; a few minutes keeps the
/// cost of a switch (a reconnect, a checkpoint) negligible.
pub const DEFAULT_TIME_SLICE: Duration = Duration::from_secs(300);

/// A job ready to transfer (Queued, with no transfer still stopping).
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    /// The job.
    pub id: JobId,
    /// Its priority.
    pub priority: Priority,
    /// Since when it waits (it last became Queued).
    pub since: SystemTime,
}

/// A job holding a transfer slot.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    /// The job.
    pub id: JobId,
    /// Its priority.
    pub priority: Priority,
    /// When it got the slot.
    pub since: SystemTime,
    /// Whether it was already told to give the slot up (it is stopping).
    pub stopping: bool,
}

/// What the scheduler should do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Jobs to start, in this order.
    pub start: Vec<JobId>,
    /// Running jobs to send back to the queue (preempted, or their slice is
    /// over). Their slots free up once they have stopped.
    pub stop: Vec<JobId>,
    /// When to decide again even if nothing changes: the end of a slice that
    /// a waiting job is owed.
    pub wake_at: Option<SystemTime>,
}

/// Decides which jobs start and which give up their slot.
pub fn decide(
    waiting: &[Waiting],
    running: &[Running],
    slice: Duration,
    now: SystemTime,
) -> Decision {
    decide_with(waiting, running, slice, now, MAX_BACKGROUND)
}

/// [`decide`] with `max_background` background jobs at once (the policy's
/// BackgroundJobs; at least one).
pub fn decide_with(
    waiting: &[Waiting],
    running: &[Running],
    slice: Duration,
    now: SystemTime,
    max_background: usize,
) -> Decision {
    let mut d = Decision::default();
    let mut queue: Vec<&Waiting> = waiting.iter().collect();
    // Priority enum order is Foreground < High < Normal < Low.
    queue.sort_by_key(|w| (w.priority, w.since, w.id));
    d.start.extend(
        queue
            .iter()
            .filter(|w| !w.priority.is_background())
            .map(|w| w.id),
    );
    let mut background: Vec<&Waiting> = queue
        .into_iter()
        .filter(|w| w.priority.is_background())
        .collect();
    let holders: Vec<&Running> = running
        .iter()
        .filter(|r| r.priority.is_background())
        .collect();

    // Free slots go to the best waiting jobs.
    let free = max_background.max(1).saturating_sub(holders.len());
    let n = free.min(background.len());
    d.start.extend(background.drain(..n).map(|w| w.id));

    // Then each waiting job may claim the slot of a holder: one of lower
    // priority at once, one of its own priority when that one's slice is
    // over. The weakest holder (lowest priority, longest in its slot) yields
    // first, and each holder yields to one waiting job at most.
    let mut holders: Vec<&Running> = holders.into_iter().filter(|r| !r.stopping).collect();
    holders.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.since, r.id));
    for w in background {
        let Some(pos) = holders.iter().position(|r| {
            r.priority > w.priority
                || (r.priority == w.priority
                    && now.duration_since(r.since).unwrap_or(Duration::ZERO) >= slice)
        }) else {
            // Not yet: the earliest slice end of a same-priority holder.
            let end = holders
                .iter()
                .filter(|r| r.priority == w.priority)
                .map(|r| r.since + slice)
                .min();
            d.wake_at = match (d.wake_at, end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            continue;
        };
        d.stop.push(holders.remove(pos).id);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: Duration = Duration::from_secs(300);

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn w(p: Priority, since: u64) -> Waiting {
        Waiting {
            id: JobId::new_random(),
            priority: p,
            since: t(since),
        }
    }

    fn r(p: Priority, since: u64) -> Running {
        Running {
            id: JobId::new_random(),
            priority: p,
            since: t(since),
            stopping: false,
        }
    }

    #[test]
    fn the_policy_may_let_several_background_jobs_run_at_once() {
        let high = w(Priority::High, 3);
        let low1 = w(Priority::Low, 1);
        let low2 = w(Priority::Low, 2);
        let d = decide_with(&[low2, low1, high], &[], SLICE, t(10), 2);
        assert_eq!(d.start, vec![high.id, low1.id]);
        let holder = r(Priority::Normal, 0);
        let d = decide_with(&[low2, low1], &[holder], SLICE, t(10), 3);
        assert_eq!(d.start, vec![low1.id, low2.id]);
        assert!(d.stop.is_empty());
    }

    #[test]
    fn every_foreground_job_runs_and_one_background_job_by_priority_then_age() {
        let fg1 = w(Priority::Foreground, 9);
        let fg2 = w(Priority::Foreground, 1);
        let low = w(Priority::Low, 0);
        let high_old = w(Priority::High, 1);
        let high_new = w(Priority::High, 2);
        let normal = w(Priority::Normal, 0);
        let d = decide(
            &[low, normal, high_new, fg1, high_old, fg2],
            &[],
            SLICE,
            t(10),
        );
        assert_eq!(d.start, vec![fg2.id, fg1.id, high_old.id]);
        assert!(d.stop.is_empty());
    }

    #[test]
    fn foreground_jobs_never_wait_for_or_displace_anything() {
        let running = [r(Priority::Foreground, 0), r(Priority::Low, 0)];
        let fg = w(Priority::Foreground, 5);
        let d = decide(&[fg], &running, SLICE, t(10_000));
        assert_eq!(d.start, vec![fg.id]);
        assert!(d.stop.is_empty());
    }

    #[test]
    fn a_higher_priority_job_preempts_at_once() {
        let low = r(Priority::Low, 0);
        let high = w(Priority::High, 5);
        let d = decide(&[high], &[low], SLICE, t(6));
        assert_eq!(d.stop, vec![low.id]);
        assert!(d.start.is_empty(), "it starts once the slot is free");
        // While the low job stops, nothing more happens.
        let stopping = Running {
            stopping: true,
            ..low
        };
        assert_eq!(
            decide(&[high], &[stopping], SLICE, t(7)),
            Decision::default()
        );
        // Once it has stopped (and waits again), the high job starts.
        let low_again = w(Priority::Low, 7);
        let d = decide(&[low_again, high], &[], SLICE, t(8));
        assert_eq!(d.start, vec![high.id]);
    }

    #[test]
    fn a_lower_priority_job_waits_without_a_wake_up() {
        let high = r(Priority::High, 0);
        let low = w(Priority::Low, 5);
        assert_eq!(
            decide(&[low], &[high], SLICE, t(10_000)),
            Decision::default()
        );
    }

    #[test]
    fn same_priority_jobs_take_turns_by_time_slice() {
        let a = r(Priority::Normal, 0);
        let b = w(Priority::Normal, 10);
        let d = decide(&[b], &[a], SLICE, t(100));
        assert!(d.stop.is_empty());
        assert_eq!(d.wake_at, Some(t(300)), "decide again when a's slice ends");
        let d = decide(&[b], &[a], SLICE, t(300));
        assert_eq!(d.stop, vec![a.id]);
        // a queues behind b: b runs, and a waits for b's slice.
        let a_waits = w(Priority::Normal, 301);
        let d = decide(&[a_waits, b], &[], SLICE, t(302));
        assert_eq!(d.start, vec![b.id]);
    }

    #[test]
    fn a_lone_job_keeps_its_slot_past_the_slice() {
        let a = r(Priority::Normal, 0);
        assert_eq!(decide(&[], &[a], SLICE, t(10_000)), Decision::default());
    }
}
