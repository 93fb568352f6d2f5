//! Local wall-clock time, as the policy's schedule reads it.

use bits_core::policy::bandwidth::WeekTime;
use chrono::{DateTime, Datelike, Local, Timelike};
use std::time::SystemTime;

/// `now` in local time: the moment of the week, and the seconds into its
/// minute.
pub fn week_time(now: SystemTime) -> (WeekTime, u32) {
    let local: DateTime<Local> = now.into();
    (
        WeekTime {
            day: local.weekday().num_days_from_monday(),
            minute: local.hour() * 60 + local.minute(),
        },
        local.second(),
    )
}
