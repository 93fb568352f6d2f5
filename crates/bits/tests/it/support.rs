//! Test fixtures: a private BITS_HOME with helpers to run `bits` in it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private BITS_HOME, a scratch directory for downloads, and the daemon
/// that `bits` autostarts there (stopped on drop).
pub struct Home {
    pub home: tempfile::TempDir,
    pub work: tempfile::TempDir,
    /// Extra environment for `bits` (and the daemon it starts).
    pub env: Vec<(String, std::ffi::OsString)>,
}

/// What one `bits` run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Home {
    pub fn new() -> Home {
        Home::with_env(&[])
    }

    /// A home whose `bits` commands (and the daemon they start) get these
    /// environment variables too, after the defaults.
    pub fn with_env(vars: &[(&str, &std::ffi::OsStr)]) -> Home {
        let h = Home {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_os_string()))
                .collect(),
        };
        std::fs::write(h.src(), b"a small local source file\n").unwrap();
        h
    }

    /// A small local file that exists, to use as a source.
    pub fn src(&self) -> String {
        self.path("src.txt").to_string_lossy().into_owned()
    }

    /// A home whose daemon has the sync-fault library loaded (see
    /// `bits_test_support::SyncFaults`).
    pub fn with_sync_faults(faults: &bits_test_support::SyncFaults) -> Home {
        let env = faults.env();
        Home::with_env(&[
            (env[0].0, env[0].1.as_os_str()),
            (env[1].0, env[1].1.as_os_str()),
        ])
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn command(&self) -> Command {
        self.command_in(&[])
    }

    /// `bits` run by `prefix` (`["ip", "netns", "exec", NS]`): in another
    /// network namespace, with this home.
    pub fn command_in(&self, prefix: &[&str]) -> Command {
        let mut c = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_bits"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_bits")),
        };
        self.set_env(&mut c);
        c
    }

    /// `program` (a link to `bits` under another name, a shell…) with this
    /// home's environment, in the scratch directory.
    pub fn command_named(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        self.set_env(&mut c);
        c
    }

    fn set_env(&self, c: &mut Command) {
        c.env("BITS_HOME", self.home.path())
            .env_remove("BITS_RUNTIME_DIR")
            .env_remove("BITS_NO_AUTOSTART")
            .env("BITS_LOG", "debug")
            .current_dir(self.work.path())
            .stdin(Stdio::null());
        // Jobs keep the proxy environment of the command that made them:
        // none unless a test gives one.
        for name in bits_core::PROXY_ENVIRONMENT {
            c.env_remove(name);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
    }

    /// Runs `bits ARGS` to the end.
    pub fn bits(&self, args: &[&str]) -> Run {
        self.command().args(args).output().unwrap().into()
    }

    /// Runs `bits ARGS` with `input` on its standard input.
    pub fn bits_with_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut c = self.command();
        c.args(args);
        with_stdin(c, input)
    }

    /// Every file under BITS_HOME, its path and bytes (the store, its WAL
    /// and key, the log…).
    pub fn state_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.home.path(), &mut out);
        out
    }

    /// Asserts that `secret` is in no file under BITS_HOME.
    pub fn assert_nowhere_on_disk(&self, secret: &str) {
        for (path, bytes) in self.state_files() {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    }

    /// Runs `bits ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.bits(args);
        assert_eq!(
            r.code,
            0,
            "bits {args:?} failed: {r:?}\nlog:\n{}",
            self.log()
        );
        r
    }

    /// `bits info JOB --json`.
    pub fn info(&self, job: &str) -> Value {
        self.ok(&["info", job, "--json"]).json()
    }

    /// Creates a download job with `--async` and returns its JobId.
    pub fn start_async(&self, extra: &[&str]) -> String {
        let mut args = vec!["start", "--async", "--json"];
        args.extend_from_slice(extra);
        let job = self.ok(&args).json();
        job["JobId"].as_str().unwrap().to_string()
    }

    /// Polls until the job is in `state`.
    pub fn wait_state(&self, job: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info(job);
            if info["JobState"] == state {
                return info;
            }
            if Instant::now() > deadline {
                panic!(
                    "job {job} not {state} after {timeout:?}: {info:#}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until `cond` holds for the job's object.
    pub fn wait_for(&self, job: &str, timeout: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info(job);
            if cond(&info) {
                return info;
            }
            assert!(Instant::now() < deadline, "condition not met: {info:#}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.home.path().join("bitsd.pid")
    }

    /// The running daemon's pid, if there is one.
    pub fn daemon_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// Sends `sig` to the daemon and waits until it is gone.
    pub fn signal_daemon(&self, sig: nix::sys::signal::Signal) {
        let pid = self.daemon_pid().expect("no daemon running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "bitsd {pid} did not stop after {sig}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("bitsd.log")).unwrap_or_default()
    }
}

/// Whether `pid` is still running: not gone, and not a zombie whose
/// threads have all exited (a killed multi-threaded daemon's main thread
/// turns zombie while other threads still hold its files and socket).
pub fn alive(pid: i32) -> bool {
    let zombie = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => return false,
    };
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    !zombie || threads > 1
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if alive(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Deterministic test content that differs at every offset modulo a prime,
/// so a spliced or shifted file never compares equal.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Lists the hidden temporary files left in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bits-") && n.ends_with(".tmp"))
        .collect()
}

/// `bits serve DIR --upload …` as a child process on an ephemeral port,
/// killed on drop.
pub struct Serve {
    child: std::process::Child,
    pub addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    /// Serves `root` with the extra arguments (e.g. `--upload`).
    pub fn start(root: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(root, extra, &[])
    }

    /// The same, with these environment variables (e.g. sync faults).
    pub fn start_with_env(root: &Path, extra: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> Serve {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_bits"))
            .envs(vars.iter().copied())
            .arg("serve")
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stderr);
        reader.read_line(&mut line).unwrap();
        // The server's later log lines are kept for `log` (with the pipe
        // closed, its next warning would fail).
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.trim().strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected serve banner: {line:?}"))
            .to_string();
        Serve { child, addr, log }
    }

    /// What the server has logged since its banner.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `c` to the end with `input` on its standard input.
pub fn with_stdin(mut c: Command, input: &str) -> Run {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

/// A small tmpfs mounted on a directory for the test's life (a disk that
/// fills up). `None` when not root: such tests then say so and pass.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    pub fn mount(path: PathBuf, size: &str) -> Option<SmallDisk> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs on {}", path.display());
        Some(SmallDisk { path })
    }

    /// Gives the file system a new size.
    pub fn resize(&self, size: &str) {
        let remounted = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(remounted.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
