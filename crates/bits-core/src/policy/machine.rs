//! The daemon-wide transfer policy (BITS' Group Policy settings): a cap on
//! all background transfers, a weekly schedule of caps, how many background
//! jobs transfer at once, and quotas. Kept by the store as one versioned
//! JSON document.

use super::bandwidth::{Cap, Schedule, WeekTime};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The policy. Unknown fields are refused on load, missing ones take their
/// defaults, so a later field needs no migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MachinePolicy {
    /// The format's version.
    pub version: u32,
    /// All background transfers together, bytes per second.
    pub max_background_bandwidth: Option<u64>,
    /// A weekly schedule of caps (see [`super::bandwidth`]), as written.
    pub bandwidth_schedule: Option<String>,
    /// Background jobs (High, Normal, Low) that transfer at once.
    pub background_jobs: u32,
    /// Jobs one user may have that are not Acknowledged or Cancelled.
    pub max_jobs_per_user: u64,
    /// Files one job may hold.
    pub max_files_per_job: u64,
}

impl MachinePolicy {
    /// The format written by this code.
    pub const VERSION: u32 = 1;
    /// BITS transfers one background job at a time.
    pub const DEFAULT_BACKGROUND_JOBS: u32 = 1;
    /// The most background jobs that may transfer at once.
    pub const MAX_BACKGROUND_JOBS: u32 = 64;
    /// Default MaxJobsPerUser.
    pub const DEFAULT_MAX_JOBS_PER_USER: u64 = 10_000;
    /// Default MaxFilesPerJob.
    pub const DEFAULT_MAX_FILES_PER_JOB: u64 = 100_000;

    /// Checks what a client asked for; the message names the setting.
    pub fn check(&self) -> Result<(), String> {
        if let Some(text) = &self.bandwidth_schedule {
            Schedule::parse(text).map_err(|e| format!("--bandwidth-schedule: {e}"))?;
        }
        if self.max_background_bandwidth == Some(0) {
            return Err(
                "--max-background-bandwidth 0 would stop background jobs for good: \
                        give a rate, `off`, or a --bandwidth-schedule window of 0"
                    .into(),
            );
        }
        if !(1..=Self::MAX_BACKGROUND_JOBS).contains(&self.background_jobs) {
            return Err(format!(
                "--background-jobs must be between 1 and {}",
                Self::MAX_BACKGROUND_JOBS
            ));
        }
        if self.max_jobs_per_user == 0 {
            return Err("--max-jobs-per-user must be at least 1".into());
        }
        if !(1..=Self::DEFAULT_MAX_FILES_PER_JOB).contains(&self.max_files_per_job) {
            return Err(format!(
                "--max-files-per-job must be between 1 and {}",
                Self::DEFAULT_MAX_FILES_PER_JOB
            ));
        }
        Ok(())
    }

    fn schedule(&self) -> Option<Schedule> {
        self.bandwidth_schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
    }

    /// What background transfers may do at local time `t`: the lower of the
    /// cap and the schedule's window.
    pub fn background_cap(&self, t: WeekTime) -> Cap {
        let window = self.schedule().map_or(Cap::Unlimited, |s| s.cap_at(t));
        match (window, self.max_background_bandwidth) {
            (Cap::Blocked, _) => Cap::Blocked,
            (Cap::Unlimited, None) => Cap::Unlimited,
            (Cap::Unlimited, Some(r)) => Cap::Rate(r),
            (Cap::Rate(w), None) => Cap::Rate(w),
            (Cap::Rate(w), Some(r)) => Cap::Rate(w.min(r)),
        }
    }

    /// How long from `t` (plus `seconds` into its minute) until the
    /// schedule's next window starts; `None` without a schedule.
    pub fn next_change(&self, t: WeekTime, seconds: u32) -> Option<Duration> {
        let minutes = self.schedule()?.minutes_to_next_change(t);
        Some(Duration::from_secs(
            (u64::from(minutes) * 60).saturating_sub(u64::from(seconds.min(59))),
        ))
    }
}

impl Default for MachinePolicy {
    fn default() -> Self {
        MachinePolicy {
            version: Self::VERSION,
            max_background_bandwidth: None,
            bandwidth_schedule: None,
            background_jobs: Self::DEFAULT_BACKGROUND_JOBS,
            max_jobs_per_user: Self::DEFAULT_MAX_JOBS_PER_USER,
            max_files_per_job: Self::DEFAULT_MAX_FILES_PER_JOB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, h: u32) -> WeekTime {
        WeekTime {
            day,
            minute: h * 60,
        }
    }

    #[test]
    fn the_cap_is_the_lower_of_the_setting_and_the_window() {
        let mut p = MachinePolicy {
            max_background_bandwidth: Some(2_000_000),
            ..MachinePolicy::default()
        };
        assert_eq!(p.background_cap(at(0, 12)), Cap::Rate(2_000_000));
        p.bandwidth_schedule = Some("08:00,1M 18:00,off 23:00,0".into());
        assert_eq!(p.background_cap(at(0, 12)), Cap::Rate(1_000_000));
        assert_eq!(p.background_cap(at(0, 20)), Cap::Rate(2_000_000));
        assert_eq!(p.background_cap(at(0, 23)), Cap::Blocked);
        p.max_background_bandwidth = None;
        assert_eq!(p.background_cap(at(0, 20)), Cap::Unlimited);
    }

    #[test]
    fn the_next_change_counts_from_the_second() {
        let p = MachinePolicy {
            bandwidth_schedule: Some("08:00,1M 18:00,off".into()),
            ..MachinePolicy::default()
        };
        let t = WeekTime {
            day: 0,
            minute: 17 * 60 + 59,
        };
        assert_eq!(p.next_change(t, 30), Some(Duration::from_secs(30)));
        assert_eq!(MachinePolicy::default().next_change(t, 0), None);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = |p: MachinePolicy, what: &str| {
            let e = p.check().unwrap_err();
            assert!(e.contains(what), "{e}");
        };
        bad(
            MachinePolicy {
                bandwidth_schedule: Some("25:00,1M".into()),
                ..Default::default()
            },
            "--bandwidth-schedule",
        );
        bad(
            MachinePolicy {
                max_background_bandwidth: Some(0),
                ..Default::default()
            },
            "--max-background-bandwidth",
        );
        bad(
            MachinePolicy {
                background_jobs: 0,
                ..Default::default()
            },
            "--background-jobs",
        );
        bad(
            MachinePolicy {
                max_jobs_per_user: 0,
                ..Default::default()
            },
            "--max-jobs-per-user",
        );
        bad(
            MachinePolicy {
                max_files_per_job: 100_001,
                ..Default::default()
            },
            "--max-files-per-job",
        );
        assert_eq!(MachinePolicy::default().check(), Ok(()));
    }

    #[test]
    fn the_stored_form_is_versioned_and_refuses_unknown_fields() {
        let json = serde_json::to_string(&MachinePolicy::default()).unwrap();
        assert!(json.contains("\"version\":1"), "{json}");
        let back: MachinePolicy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, MachinePolicy::default());
        let older: MachinePolicy = serde_json::from_str(r#"{"version":1}"#).unwrap();
        assert_eq!(older, MachinePolicy::default());
        assert!(serde_json::from_str::<MachinePolicy>(r#"{"version":1,"what":2}"#).is_err());
    }
}
