//! Which queued jobs get a transfer slot.
//!
//! For now: every Foreground job runs at once; background jobs (High, Normal,
//! Low) run at most [`MAX_BACKGROUND`] at a time, higher priority first, then
//! oldest first. Preemption and time slices come with the scheduling issue.

use crate::job::{JobId, Priority};
use std::time::SystemTime;

/// Background jobs that transfer at the same time.
pub const MAX_BACKGROUND: usize = 2;

/// A job waiting for a slot.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// The job.
    pub id: JobId,
    /// Its priority.
    pub priority: Priority,
    /// When it was created (FIFO within a priority).
    pub created: SystemTime,
}

/// The jobs to start now, given the queued ones and how many background jobs
/// are already running.
pub fn pick(mut queued: Vec<Candidate>, running_background: usize) -> Vec<JobId> {
    queued.sort_by_key(|c| (c.priority, c.created, c.id));
    let mut free = MAX_BACKGROUND.saturating_sub(running_background);
    let mut out = Vec::new();
    for c in queued {
        if !c.priority.is_background() {
            out.push(c.id);
        } else if free > 0 {
            free -= 1;
            out.push(c.id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(p: Priority, t: u64) -> Candidate {
        Candidate {
            id: JobId::new_random(),
            priority: p,
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(t),
        }
    }

    #[test]
    fn foreground_always_runs_background_is_capped_by_priority_then_age() {
        let fg = c(Priority::Foreground, 9);
        let low = c(Priority::Low, 0);
        let high_old = c(Priority::High, 1);
        let high_new = c(Priority::High, 2);
        let normal = c(Priority::Normal, 0);
        let got = pick(vec![low, normal, high_new, fg, high_old], 0);
        assert_eq!(got, vec![fg.id, high_old.id, high_new.id]);
        let got = pick(vec![low, normal, fg], 1);
        assert_eq!(got, vec![fg.id, normal.id]);
        assert_eq!(pick(vec![low], 2), vec![]);
    }
}
