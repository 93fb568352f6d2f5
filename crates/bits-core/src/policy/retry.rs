//! When a failed transfer is tried again, and when BITS gives up.
//!
//! BITS' rules: a transient failure waits at least MinimumRetryDelay (a
//! server's `Retry-After` may ask for longer, never shorter); the
//! NoProgressTimeout clock starts at the first failure without progress and is
//! reset by progress; once it has run out the job goes to Error. A
//! NoProgressTimeout of zero means no retries at all, and a retry delay longer
//! than the timeout means the retry could never happen, so the job goes to
//! Error at once. A failure after progress (a connection cut mid-body) is
//! retried at once: the server was answering a moment ago.

use std::time::{Duration, SystemTime};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again now, without entering TransientError.
    Immediately,
    /// Enter TransientError and try again at this time.
    At(SystemTime),
    /// Enter Error: the retry period is over (BG_E_NO_PROGRESS) or retries are
    /// disabled.
    GiveUp,
}

/// Inputs of [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct RetryInput {
    /// Whether the failed attempt moved any bytes.
    pub made_progress: bool,
    /// How many attempts in a row failed right after progress; bounds the
    /// "retry at once" rule so that a server that sends one byte and hangs up
    /// forever cannot spin the daemon.
    pub immediate_retries: u32,
    /// Since when the job has made no progress (None: it just did).
    pub no_progress_since: Option<SystemTime>,
    /// MinimumRetryDelay.
    pub min_retry_delay: Duration,
    /// NoProgressTimeout.
    pub no_progress_timeout: Duration,
    /// The server's Retry-After, if it sent one.
    pub retry_after: Option<Duration>,
}

/// Failures right after progress that are retried without waiting, before
/// the normal delay applies.
pub const MAX_IMMEDIATE_RETRIES: u32 = 20;

/// Decides what happens after a transient failure at `now`.
pub fn decide(input: RetryInput, now: SystemTime) -> RetryDecision {
    if input.no_progress_timeout.is_zero() || input.min_retry_delay > input.no_progress_timeout {
        return RetryDecision::GiveUp;
    }
    if input.made_progress && input.immediate_retries < MAX_IMMEDIATE_RETRIES {
        return RetryDecision::Immediately;
    }
    let since = input.no_progress_since.unwrap_or(now);
    let deadline = later(since, input.no_progress_timeout);
    if now >= deadline {
        return RetryDecision::GiveUp;
    }
    let delay = input
        .retry_after
        .map_or(input.min_retry_delay, |ra| ra.max(input.min_retry_delay));
    // One last attempt at the deadline rather than none: the server may be
    // back by then.
    RetryDecision::At(later(now, delay).min(deadline))
}

/// The last instant this policy ever names: 9999-12-31, the end of what an
/// HTTP date can express.
pub const FAR_FUTURE_SECS: u64 = 253_402_300_799;

/// `t + d`, or [`FAR_FUTURE_SECS`] when that is later or cannot be
/// represented: durations come from servers (`Retry-After`) and users
/// (`--retry-timeout`), and adding any of them must not panic.
pub fn later(t: SystemTime, d: Duration) -> SystemTime {
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(FAR_FUTURE_SECS);
    t.checked_add(d).map_or(far, |sum| sum.min(far))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn input() -> RetryInput {
        RetryInput {
            made_progress: false,
            immediate_retries: 0,
            no_progress_since: None,
            min_retry_delay: Duration::from_secs(600),
            no_progress_timeout: Duration::from_secs(1_209_600),
            retry_after: None,
        }
    }

    #[test]
    fn waits_minimum_retry_delay() {
        assert_eq!(decide(input(), at(1000)), RetryDecision::At(at(1600)));
    }

    #[test]
    fn retry_after_can_lengthen_but_not_shorten_the_wait() {
        let mut i = input();
        i.retry_after = Some(Duration::from_secs(900));
        assert_eq!(decide(i, at(0)), RetryDecision::At(at(900)));
        i.retry_after = Some(Duration::from_secs(5));
        assert_eq!(decide(i, at(0)), RetryDecision::At(at(600)));
    }

    #[test]
    fn failure_after_progress_retries_at_once_but_not_forever() {
        let mut i = input();
        i.made_progress = true;
        assert_eq!(decide(i, at(0)), RetryDecision::Immediately);
        i.immediate_retries = MAX_IMMEDIATE_RETRIES;
        assert_eq!(decide(i, at(0)), RetryDecision::At(at(600)));
    }

    #[test]
    fn gives_up_when_no_progress_timeout_has_run_out() {
        let mut i = input();
        i.no_progress_timeout = Duration::from_secs(100);
        i.min_retry_delay = Duration::from_secs(10);
        i.no_progress_since = Some(at(0));
        assert_eq!(decide(i, at(50)), RetryDecision::At(at(60)));
        assert_eq!(decide(i, at(95)), RetryDecision::At(at(100)));
        assert_eq!(decide(i, at(100)), RetryDecision::GiveUp);
    }

    /// Regression: `Retry-After: 18446744073709551615` panicked a runtime
    /// worker (overflow adding it to the time), leaving the job stuck.
    #[test]
    fn a_huge_retry_after_or_timeout_does_not_overflow() {
        let mut i = input();
        i.retry_after = Some(Duration::from_secs(u64::MAX));
        i.no_progress_timeout = Duration::from_secs(u64::MAX);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(FAR_FUTURE_SECS);
        assert_eq!(decide(i, at(5)), RetryDecision::At(far));
        i.no_progress_timeout = Duration::from_secs(1000);
        assert_eq!(decide(i, at(5)), RetryDecision::At(at(1005)));
        assert_eq!(later(at(1), Duration::MAX), far);
    }

    #[test]
    fn zero_timeout_or_delay_beyond_timeout_means_no_retries() {
        let mut i = input();
        i.no_progress_timeout = Duration::ZERO;
        assert_eq!(decide(i, at(0)), RetryDecision::GiveUp);
        let mut i = input();
        i.no_progress_timeout = Duration::from_secs(60);
        assert_eq!(decide(i, at(0)), RetryDecision::GiveUp);
    }
}
