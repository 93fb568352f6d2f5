//! Where the daemon keeps its state and its socket, shared by `bits` and
//! `bitsd` so that both always agree.

use std::path::{Path, PathBuf};

/// The daemon's directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `BITS_HOME`: the job database and the log.
    pub state_dir: PathBuf,
    /// `BITS_RUNTIME_DIR`, else the state directory: the socket and the pid file.
    pub runtime_dir: PathBuf,
    /// The socket, when it is not `bits.sock` in the runtime directory (a
    /// system daemon's `--socket`).
    pub socket_file: Option<PathBuf>,
}

/// The system daemon's state directory.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/bits";

/// The system daemon's socket.
pub const SYSTEM_SOCKET: &str = "/run/bits/bits.sock";

impl Paths {
    /// Reads `BITS_HOME`, `BITS_RUNTIME_DIR`, `XDG_STATE_HOME` and `HOME`.
    pub fn from_env() -> Paths {
        Self::from_lookup(|k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// As [`Paths::from_env`], with the environment given as a function.
    pub fn from_lookup(get: impl Fn(&str) -> Option<PathBuf>) -> Paths {
        let state_dir = get("BITS_HOME")
            .or_else(|| get("XDG_STATE_HOME").map(|x| x.join("bits")))
            .or_else(|| get("HOME").map(|h| h.join(".local/state/bits")))
            .unwrap_or_else(|| PathBuf::from(".bits"));
        let runtime_dir = get("BITS_RUNTIME_DIR").unwrap_or_else(|| state_dir.clone());
        Paths {
            state_dir,
            runtime_dir,
            socket_file: None,
        }
    }

    /// The system daemon's: `state_dir` (default [`SYSTEM_STATE_DIR`]) and
    /// `socket` (default [`SYSTEM_SOCKET`]), whose directory holds the pid
    /// file.
    pub fn system(state_dir: Option<&Path>, socket: Option<&Path>) -> Paths {
        let socket = socket.unwrap_or(Path::new(SYSTEM_SOCKET)).to_path_buf();
        let runtime_dir = match socket.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Paths {
            state_dir: state_dir
                .unwrap_or(Path::new(SYSTEM_STATE_DIR))
                .to_path_buf(),
            runtime_dir,
            socket_file: Some(socket),
        }
    }

    /// Both directories given explicitly.
    pub fn new(state_dir: &Path, runtime_dir: Option<&Path>) -> Paths {
        Paths {
            state_dir: state_dir.to_path_buf(),
            runtime_dir: runtime_dir.unwrap_or(state_dir).to_path_buf(),
            socket_file: None,
        }
    }

    /// Whether these are the system daemon's (made by [`Paths::system`]).
    pub fn is_system(&self) -> bool {
        self.socket_file.is_some()
    }

    /// The socket: `bits.sock` in the runtime directory, unless moved.
    pub fn socket(&self) -> PathBuf {
        self.socket_file
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("bits.sock"))
    }

    /// `bitsd.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("bitsd.pid")
    }

    /// The job database.
    pub fn database(&self) -> PathBuf {
        self.state_dir.join("jobs.sqlite3")
    }

    /// The daemon's log.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("bitsd.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_home_wins_then_xdg_then_home() {
        let p = Paths::from_lookup(|k| match k {
            "BITS_HOME" => Some("/b".into()),
            "XDG_STATE_HOME" => Some("/x".into()),
            _ => None,
        });
        assert_eq!(p.socket(), PathBuf::from("/b/bits.sock"));
        let p = Paths::from_lookup(|k| (k == "XDG_STATE_HOME").then(|| "/x".into()));
        assert_eq!(p.state_dir, PathBuf::from("/x/bits"));
        let p = Paths::from_lookup(|k| match k {
            "HOME" => Some("/home/a".into()),
            "BITS_RUNTIME_DIR" => Some("/run/user/1/bits".into()),
            _ => None,
        });
        assert_eq!(p.state_dir, PathBuf::from("/home/a/.local/state/bits"));
        assert_eq!(p.pid_file(), PathBuf::from("/run/user/1/bits/bitsd.pid"));
    }

    #[test]
    fn the_system_daemon_keeps_its_pid_file_beside_its_socket() {
        let p = Paths::system(None, None);
        assert_eq!(p.socket(), PathBuf::from(SYSTEM_SOCKET));
        assert_eq!(p.pid_file(), PathBuf::from("/run/bits/bitsd.pid"));
        assert_eq!(p.database(), PathBuf::from("/var/lib/bits/jobs.sqlite3"));
        let p = Paths::system(
            Some(Path::new("/t/state")),
            Some(Path::new("/t/run/s.sock")),
        );
        assert_eq!(p.socket(), PathBuf::from("/t/run/s.sock"));
        assert_eq!(p.pid_file(), PathBuf::from("/t/run/bitsd.pid"));
    }
}
