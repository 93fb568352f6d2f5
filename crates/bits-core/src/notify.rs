//! A job's command-line notification (BITS' `SetNotifyCmdLine` and
//! `NotifyFlags`): a command run when the job becomes Transferred or Error.

use crate::job::ParseEnumError;
use crate::state::JobState;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// BITS' `BG_NOTIFY_*` flags, with BITS' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotifyFlags(u32);

impl NotifyFlags {
    /// BG_NOTIFY_JOB_TRANSFERRED.
    pub const TRANSFERRED: u32 = 0x01;
    /// BG_NOTIFY_JOB_ERROR.
    pub const ERROR: u32 = 0x02;
    /// BG_NOTIFY_DISABLE: no notification (the others are ignored).
    pub const DISABLE: u32 = 0x04;
    /// BG_NOTIFY_JOB_MODIFICATION: taken, but a command line is never run
    /// for it (as in BITS; `bits watch` reports modifications).
    pub const MODIFICATION: u32 = 0x08;
    /// BG_NOTIFY_FILE_TRANSFERRED: taken, likewise.
    pub const FILE_TRANSFERRED: u32 = 0x10;

    const NAMES: [(u32, &'static str); 5] = [
        (Self::TRANSFERRED, "transferred"),
        (Self::ERROR, "error"),
        (Self::DISABLE, "disable"),
        (Self::MODIFICATION, "modification"),
        (Self::FILE_TRANSFERRED, "file-transferred"),
    ];

    /// The BITS value.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// From a BITS value (unknown bits dropped).
    pub fn from_bits(bits: u32) -> NotifyFlags {
        NotifyFlags(bits & Self::NAMES.iter().fold(0, |m, (b, _)| m | b))
    }

    /// Whether the command runs when the job enters `state`.
    pub fn runs_for(self, state: JobState) -> bool {
        if self.0 & Self::DISABLE != 0 {
            return false;
        }
        match state {
            JobState::Transferred => self.0 & Self::TRANSFERRED != 0,
            JobState::Error => self.0 & Self::ERROR != 0,
            _ => false,
        }
    }

    /// The names of the flags set.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Default for NotifyFlags {
    /// BITS' default: transferred and error.
    fn default() -> Self {
        NotifyFlags(Self::TRANSFERRED | Self::ERROR)
    }
}

impl FromStr for NotifyFlags {
    type Err = ParseEnumError;
    /// A comma-separated list of names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bits = 0;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some((b, _)) = Self::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(name))
            else {
                return Err(ParseEnumError {
                    what: "notify flag",
                    value: name.to_string(),
                    expected: "transferred, error, disable, modification, file-transferred",
                });
            };
            bits |= b;
        }
        Ok(NotifyFlags(bits))
    }
}

/// A job's notification settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifySettings {
    /// Run by `sh -c` as the job's owner, with `BITS_JOB_ID` and
    /// `BITS_JOB_STATE` in its environment.
    pub cmd: Option<String>,
    /// When it runs.
    pub flags: NotifyFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decide_when_the_command_runs() {
        let d = NotifyFlags::default();
        assert!(d.runs_for(JobState::Transferred) && d.runs_for(JobState::Error));
        assert!(!d.runs_for(JobState::TransientError));
        let only_error: NotifyFlags = "error".parse().unwrap();
        assert!(!only_error.runs_for(JobState::Transferred));
        let off: NotifyFlags = "transferred,error,disable".parse().unwrap();
        assert!(!off.runs_for(JobState::Error));
        assert_eq!(off.names(), ["transferred", "error", "disable"]);
        assert!("sometimes".parse::<NotifyFlags>().is_err());
    }
}
