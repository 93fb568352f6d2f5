//! Power cuts, simulated with LazyFS: BITS_HOME (the job database, the log)
//! and the downloaded files live on a LazyFS mount, which on command drops
//! every byte that was not fsynced, as a machine would lose it when the
//! power goes. After each cut the daemon must find every job at a durable
//! checkpoint, with byte-exact files, Complete included.
//!
//! Needs root, /dev/fuse and LazyFS (`../shared/tools/build-lazyfs.sh`
//! builds and installs it; `../shared/tools/powerloss.sh` drives it,
//! through `powerloss/driver.sh`). Without them the tests print `SKIP: …`
//! and pass, unless `BITS_REQUIRE_POWERLOSS=1` (set in CI), when they fail.
//! `BITS_POWERLOSS_SH` overrides where powerloss.sh is looked for.
//!
//! LazyFS holds back only file contents and sizes; creates, renames and
//! unlinks reach the backing directory at once. A cut therefore leaves the
//! names a program made and drops the data it wrote without an fsync.
//! (A `syncfs` never reaches a FUSE file system: on LazyFS only fsync and
//! fdatasync make data durable.) driver.sh runs lazyfs single-threaded:
//! its cache is not thread-safe, and many files written at once now and
//! then deadlock or kill it.

use crate::support::{alive, content, read, temp_files, Run};
use bits_test_support::{Fault, TestServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// LazyFS's cache, allocated (and touched) in RAM when the mount starts;
/// the tests run in parallel, each with its own mount. Everything written
/// between two cuts must fit, or the excess goes straight to the backing
/// directory and survives the cut: the tests write a few MB.
const CACHE_SIZE: &str = "128mb";

/// How long to wait for the driver's answer: a mount, a cut or an unmount
/// takes at most PL_TIMEOUT (30 s) in powerloss.sh, plus a second or two.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(75);

/// A test that runs longer than this is stuck, on the daemon or on LazyFS
/// itself (multi-threaded, its cache deadlocks now and then; driver.sh runs
/// it single-threaded for that reason): the watchdog then kills lazyfs, so
/// that every process waiting on the mount gets an error and the test fails
/// instead of hanging. The tests take a few seconds each.
const TEST_LIMIT: Duration = Duration::from_secs(180);

/// The longest any one `bits` command may take (`bits wait` is given 60 s).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// The environment variable that turns a skip into a failure.
const REQUIRE: &str = "BITS_REQUIRE_POWERLOSS";

fn required() -> bool {
    std::env::var_os(REQUIRE).is_some_and(|v| v == "1")
}

/// Reports that the test cannot run: a skip, or with BITS_REQUIRE_POWERLOSS=1
/// a failure.
fn skip(test: &str, reason: &str) {
    if required() {
        panic!("{test}: the power-loss test cannot run ({REQUIRE}=1): {reason}");
    }
    // Straight to standard error, past the test harness's capture: a skip
    // should be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {test}: power-loss test needs LazyFS: {reason}"
    );
}

fn powerloss_sh() -> PathBuf {
    match std::env::var_os("BITS_POWERLOSS_SH") {
        Some(p) => PathBuf::from(p),
        // The repository's root is two levels above this crate; the shared
        // tools sit beside the repository.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/powerloss.sh"),
    }
}

/// One LazyFS mount, owned by a long-lived `driver.sh` shell.
struct LazyFs {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<String>,
    mounted: bool,
    /// The lazyfs process.
    pid: i32,
    /// powerloss.sh's run folder: lazyfs's output and log.
    dir: PathBuf,
}

/// Why there is no mount.
enum NoMount {
    /// LazyFS is not there: skip.
    Unavailable(String),
    /// It is there and failed: always a failure.
    Failed(String),
}

impl LazyFs {
    fn mount(backing: &Path, mnt: &Path) -> Result<LazyFs, NoMount> {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/powerloss/driver.sh");
        let mut child = Command::new("bash")
            .arg(&driver)
            .arg(powerloss_sh())
            .arg(backing)
            .arg(mnt)
            .env("PL_CACHE_SIZE", CACHE_SIZE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| NoMount::Unavailable(format!("cannot run bash: {e}")))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut fs = LazyFs {
            stdin: child.stdin.take(),
            child,
            answers,
            mounted: false,
            pid: 0,
            dir: PathBuf::new(),
        };
        match fs.answer() {
            Ok(a) if a.starts_with("ok ") => {
                let mut words = a.split_whitespace().skip(1);
                fs.mounted = true;
                fs.pid = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                fs.dir = words.next().map(PathBuf::from).unwrap_or_default();
                Ok(fs)
            }
            Ok(a) if a.starts_with("unavailable") => Err(NoMount::Unavailable(
                a.trim_start_matches("unavailable ").to_string(),
            )),
            Ok(a) => Err(NoMount::Failed(format!("driver.sh: {a}"))),
            Err(e) => Err(NoMount::Failed(e)),
        }
    }

    fn answer(&self) -> Result<String, String> {
        match self.answers.recv_timeout(DRIVER_TIMEOUT) {
            Ok(a) => Ok(a),
            Err(RecvTimeoutError::Timeout) => Err(format!("no answer within {DRIVER_TIMEOUT:?}")),
            Err(RecvTimeoutError::Disconnected) => Err("driver.sh exited".to_string()),
        }
    }

    fn command(&mut self, cmd: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("driver.sh is gone")?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send {cmd:?} to driver.sh: {e}"))?;
        match self.answer()? {
            a if a == "ok" => Ok(()),
            a => Err(format!("{cmd}: {a}")),
        }
    }

    /// pl_crash: every byte not fsynced is gone.
    fn crash(&mut self) -> Result<(), String> {
        self.command("crash")
    }

    /// When lazyfs died (it can crash on its own: then the mount answers
    /// every operation with ENOTCONN), what it said last.
    fn death(&self) -> Option<String> {
        if self.pid <= 0 || alive(self.pid) {
            return None;
        }
        let out = std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        Some(format!(
            "lazyfs (pid {}) is gone: it crashed, and the mount fails every operation; \
             the last lines of its output:\n{}",
            self.pid,
            tail(&out, 5)
        ))
    }

    /// Unmounts; true when that went well.
    fn umount(&mut self) -> bool {
        if !self.mounted {
            return true;
        }
        self.mounted = false;
        let r = self.command("umount");
        if let Err(e) = &r {
            eprintln!("powerloss: {e}");
        }
        r.is_ok()
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        self.umount();
        // End of stdin makes the driver unmount and exit if it is still
        // reading.
        drop(self.stdin.take());
        let deadline = Instant::now() + DRIVER_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Kills lazyfs when the test runs past [`TEST_LIMIT`]; stopped on drop.
struct Watchdog {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(name: &'static str, lazyfs: i32, run: PathBuf) -> Watchdog {
        let (stop, stopped) = channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let thread = std::thread::spawn(move || {
            if stopped.recv_timeout(TEST_LIMIT) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            flag.store(true, Ordering::SeqCst);
            eprintln!(
                "powerloss: {name} still runs after {TEST_LIMIT:?}; where bitsd's threads \
                 wait:\n{}\npowerloss: killing lazyfs (pid {lazyfs}) so that whatever \
                 waits on the mount fails",
                daemon_threads(&run)
            );
            let comm = std::fs::read_to_string(format!("/proc/{lazyfs}/comm")).unwrap_or_default();
            if lazyfs > 0 && comm.trim() == "lazyfs" {
                let _ = kill(Pid::from_raw(lazyfs), Signal::SIGKILL);
            }
        });
        Watchdog {
            stop: Some(stop),
            thread: Some(thread),
            fired,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The kernel functions bitsd's threads wait in (a FUSE request that LazyFS
/// never answers shows as `request_wait_answer`).
fn daemon_threads(run: &Path) -> String {
    let Some(pid) = std::fs::read_to_string(run.join("bitsd.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return "(no bitsd pid file)".to_string();
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("(bitsd {pid} is gone)");
    };
    tasks
        .filter_map(|t| t.ok())
        .map(|t| {
            let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            format!(
                "  bitsd {pid} thread {}: {wchan}",
                t.file_name().to_string_lossy()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A BITS_HOME and a download directory on a LazyFS mount, the socket and
/// pid file off it (a cut must not be able to lose the daemon's pid), and
/// a normal directory for local files. The daemon is killed, then the mount
/// unmounted, on drop.
struct Rig {
    name: &'static str,
    watchdog: Watchdog,
    fs: LazyFs,
    root: Option<tempfile::TempDir>,
    /// BITS_HOME, on the mount.
    home: PathBuf,
    /// Downloads go here, on the mount.
    work: PathBuf,
    /// BITS_RUNTIME_DIR, not on the mount.
    run: PathBuf,
    /// A directory on the normal disk: the working directory of `bits`.
    disk: PathBuf,
    /// The daemon's log as it was before each cut (a cut may drop its
    /// tail): for failure messages.
    history: std::cell::RefCell<String>,
}

impl Rig {
    /// A fresh mount, or None when the test is skipped.
    fn new(name: &'static str) -> Option<Rig> {
        if !nix::unistd::geteuid().is_root() {
            skip(name, "not root (LazyFS mounts with allow_other)");
            return None;
        }
        let root = tempfile::Builder::new()
            .prefix("bits-powerloss.")
            .tempdir()
            .unwrap();
        let backing = root.path().join("backing");
        let mnt = root.path().join("mnt");
        let run = root.path().join("run");
        let disk = root.path().join("disk");
        for d in [&run, &disk] {
            std::fs::create_dir(d).unwrap();
        }
        let fs = match LazyFs::mount(&backing, &mnt) {
            Ok(fs) => fs,
            Err(NoMount::Unavailable(reason)) => {
                skip(name, &reason);
                return None;
            }
            Err(NoMount::Failed(reason)) => panic!("{name}: cannot mount LazyFS: {reason}"),
        };
        let home = mnt.join("home");
        let work = mnt.join("work");
        for d in [&home, &work] {
            std::fs::create_dir(d).unwrap();
        }
        Some(Rig {
            name,
            watchdog: Watchdog::start(name, fs.pid, run.clone()),
            fs,
            root: Some(root),
            home,
            work,
            run,
            disk,
            history: Default::default(),
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bits"));
        c.env("BITS_HOME", &self.home)
            .env("BITS_RUNTIME_DIR", &self.run)
            .env("BITS_LOG", "debug")
            .env_remove("BITS_NO_AUTOSTART")
            .current_dir(&self.disk)
            .stdin(Stdio::null());
        c
    }

    /// Runs `bits ARGS` to the end (killed after [`COMMAND_LIMIT`]).
    fn bits(&self, args: &[&str]) -> Run {
        let child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let r = finish(child, COMMAND_LIMIT);
        assert!(
            r.code != KILLED,
            "bits {args:?} still ran after {COMMAND_LIMIT:?}: {r:?}\n{}",
            self.logs()
        );
        r
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.bits(args);
        assert_eq!(r.code, 0, "bits {args:?} failed: {r:?}\n{}", self.logs());
        r
    }

    fn info(&self, job: &str) -> Value {
        self.ok(&["info", job, "--json"]).json()
    }

    fn start_async(&self, extra: &[&str]) -> String {
        let mut args = vec!["start", "--async", "--json"];
        args.extend_from_slice(extra);
        self.ok(&args).json()["JobId"].as_str().unwrap().to_string()
    }

    fn wait_for(&self, job: &str, timeout: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.info(job);
            if cond(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met after {timeout:?}: {info:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn daemon_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.run.join("bitsd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// SIGKILL to the daemon, then waits until all its threads are gone (a
    /// zombie counts as gone). Returns false when no daemon was running.
    fn kill_daemon(&self) -> bool {
        let Some(pid) = self.daemon_pid() else {
            return false;
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "bitsd {pid} did not die after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// The power cut: the daemon is killed (it must be dead before LazyFS
    /// drops its cache), then every byte not fsynced is dropped.
    fn power_cut(&mut self) {
        self.kill_daemon();
        assert!(self.daemon_pid().is_none(), "a daemon still runs");
        let log = self.log();
        let mut history = self.history.borrow_mut();
        history.push_str(&format!(
            "\n----- bitsd.log before power cut (last lines) -----\n{}",
            tail(&log, 60)
        ));
        drop(history);
        if let Err(e) = self.fs.crash() {
            panic!("LazyFS: {e}\n{}", self.logs());
        }
    }

    fn log(&self) -> String {
        let path = self.home.join("bitsd.log");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
    }

    /// The log as it was before each cut and as it is now, shortened.
    fn logs(&self) -> String {
        let fired = if self.watchdog.fired.load(Ordering::SeqCst) {
            format!(
                "\nNOTE: the watchdog killed lazyfs after {TEST_LIMIT:?}: the test was stuck \
                 on the mount (see the thread list above)"
            )
        } else if let Some(death) = self.fs.death() {
            format!("\nNOTE: {death}")
        } else {
            String::new()
        };
        format!(
            "[{}]{}\n----- bitsd.log now (last lines) -----\n{}{fired}",
            self.name,
            self.history.borrow(),
            tail(&self.log(), 80)
        )
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The daemon first: a file it holds open keeps the mount busy.
        if let Some(pid) = self.daemon_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(15);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if !self.fs.umount() {
            // Never delete through a mount that is still there.
            if let Some(root) = self.root.take() {
                eprintln!("powerloss: left {} behind", root.keep().display());
            }
        }
    }
}

/// The last `lines` lines of `text`, without the daemon's chatter (the
/// HTTP client's connection pool, the clients' Watch requests).
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.contains("hyper_util::client::legacy::pool") && !l.contains("request=\"watch\"")
        })
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The exit code [`finish`] reports for a process it had to kill.
const KILLED: i32 = -9;

/// Waits for a `bits` process whose stdout and stderr are piped (read as
/// they come, so a long answer cannot fill a pipe), killing it after
/// `timeout`.
fn finish(mut child: Child, timeout: Duration) -> Run {
    fn drain(mut from: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            killed = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        code: if killed {
            KILLED
        } else {
            status.code().unwrap_or(-1)
        },
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A power cut in the middle of a download: the next daemon resumes from a
/// durable checkpoint (its request starts past zero), and the completed
/// file is byte-exact, with no temporary file left, and stays so through
/// another cut.
#[test]
fn power_cut_mid_download_resumes_from_a_durable_checkpoint() {
    let Some(mut rig) = Rig::new("power_cut_mid_download") else {
        return;
    };
    let server = TestServer::start();
    let body = content(7_000_000, 31);
    server.put_file("/big.bin", body.clone());
    // 1 MB/s: 2.2 MB take two to three of the daemon's 1 s checkpoints.
    server.set_default_fault(
        "/big.bin",
        Some(Fault::Slow {
            bytes_per_sec: 1_000_000,
        }),
    );
    let dest = rig.work.join("big.bin");
    let id = rig.start_async(&[&server.url("big.bin"), dest.to_str().unwrap()]);
    rig.wait_for(&id, Duration::from_secs(30), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 2_200_000
    });
    let reported = rig.info(&id)["BytesTransferred"].as_u64().unwrap();
    let asked = Instant::now();
    rig.power_cut();
    // What the transfer may have reached when it was killed: what it
    // reported, plus 1 MB/s since then, plus a buffer's worth.
    let reached = reported + (asked.elapsed().as_secs_f64() * 1_000_000.0) as u64 + 262_144;

    server.set_default_fault("/big.bin", None);
    let before = server.requests_for("/big.bin").len();
    let r = rig.bits(&["wait", &id, "--timeout", "60"]);
    assert_eq!(r.code, 0, "bits wait after the cut: {r:?}\n{}", rig.logs());
    let gets: Vec<_> = server.requests_for("/big.bin")[before..]
        .iter()
        .filter(|r| r.method == "GET")
        .cloned()
        .collect();
    let resumed_at = gets
        .first()
        .unwrap_or_else(|| panic!("no GET after the cut\n{}", rig.logs()))
        .range_start()
        .unwrap_or(0);
    eprintln!(
        "{}: {reported} bytes reported before the cut, resumed at {resumed_at}",
        rig.name
    );
    assert!(
        resumed_at > 0,
        "the job restarted from zero after the cut: no durable checkpoint\n{}",
        rig.logs()
    );
    assert!(
        resumed_at <= reached,
        "resumed at {resumed_at}, past the {reached} bytes the transfer can have reached"
    );
    rig.ok(&["complete", &id]);
    assert!(read(&dest) == body, "{} is not byte-exact", dest.display());
    assert_eq!(
        temp_files(&rig.work),
        Vec::<String>::new(),
        "temp files left"
    );

    // Complete said done: that must survive a cut too.
    rig.power_cut();
    assert!(
        read(&dest) == body,
        "{} is not byte-exact after a cut following Complete\n{}",
        dest.display(),
        rig.logs()
    );
    let r = rig.bits(&["info", &id, "--json"]);
    assert_eq!(r.code, 4, "the completed job came back: {r:?}");
}

/// A power cut while a job of many small files is being completed, at a few
/// moments (and once before Complete was asked): afterwards either the job
/// is gone and every file is there, byte-exact, or the job is still there
/// and completing it now gives every file, byte-exact. Never a job reported
/// complete with a file missing or wrong.
#[test]
fn power_cut_during_complete_of_many_files_loses_nothing() {
    let Some(mut rig) = Rig::new("power_cut_during_complete") else {
        return;
    };
    let server = TestServer::start();
    const FILES: usize = 300;
    const SIZE: usize = 4096;
    for i in 0..FILES {
        server.put_file(&format!("/f{i}.bin"), content(SIZE, i as u8));
    }
    // Round 0 cuts once the job is Transferred, before Complete, and times
    // the Complete that follows; the later rounds cut at fractions of that
    // time after `bits complete` was started, the last one after it ended.
    let fractions = [
        None,
        Some(0.0),
        Some(0.2),
        Some(0.4),
        Some(0.6),
        Some(0.8),
        Some(1.0),
        Some(1.5),
    ];
    let mut complete_took = Duration::from_millis(50);
    let mut problems = Vec::new();
    for (round, fraction) in fractions.into_iter().enumerate() {
        let dir = rig.work.join(format!("round{round}"));
        std::fs::create_dir(&dir).unwrap();
        let dests: Vec<PathBuf> = (0..FILES).map(|i| dir.join(format!("f{i}.bin"))).collect();
        let mut csv = String::from("Source,Destination\n");
        for (i, d) in dests.iter().enumerate() {
            csv.push_str(&format!(
                "{},{}\n",
                server.url(&format!("f{i}.bin")),
                d.display()
            ));
        }
        let list = rig.disk.join(format!("round{round}.csv"));
        std::fs::write(&list, csv).unwrap();
        let id = rig.start_async(&["--from-csv", list.to_str().unwrap()]);
        let r = rig.bits(&["wait", &id, "--timeout", "60"]);
        assert_eq!(r.code, 0, "round {round}: bits wait: {r:?}\n{}", rig.logs());

        let delay = fraction.map(|f| complete_took.mul_f64(f));
        let mut complete = None;
        if let Some(delay) = delay {
            // No autostart: a complete that arrives after the kill must not
            // bring up a daemon that lives through the cut.
            let child = rig
                .command()
                .args(["complete", &id])
                .env("BITS_NO_AUTOSTART", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            rig.kill_daemon();
            complete = Some(finish(child, COMMAND_LIMIT));
        }
        rig.power_cut();

        let what = match delay {
            None => "cut before Complete".to_string(),
            Some(d) => format!("cut {} ms after `bits complete` started", d.as_millis()),
        };
        let said_done = complete.as_ref().is_some_and(|r| r.code == 0);
        let info = rig.bits(&["info", &id, "--json"]);
        let outcome = match info.code {
            4 => "job gone".to_string(),
            0 => {
                let state = info.json()["JobState"].as_str().unwrap_or("?").to_string();
                if said_done {
                    problems.push(format!(
                        "round {round} ({what}): `bits complete` succeeded before the cut, \
                         but the job is back, in state {state}"
                    ));
                }
                let renamed = dests.iter().filter(|d| d.exists()).count();
                let started = Instant::now();
                let r = rig.bits(&["complete", &id]);
                if r.code != 0 {
                    problems.push(format!(
                        "round {round} ({what}): the job survived in state {state} with \
                         {renamed} of {FILES} files under their names, but `bits complete` \
                         now fails: {r:?}\njob: {}",
                        summarize(&rig.bits(&["info", &id, "--json"]))
                    ));
                    continue;
                }
                if round == 0 {
                    complete_took = started.elapsed();
                }
                format!(
                    "job still there ({state}, {renamed} of {FILES} files already under \
                     their names), completed after the cut"
                )
            }
            _ => {
                problems.push(format!("round {round} ({what}): bits info: {info:?}"));
                continue;
            }
        };
        eprintln!(
            "{}: round {round}, {what}: bits complete before the cut: {}; {outcome}",
            rig.name,
            complete.as_ref().map_or("not run".to_string(), |r| format!(
                "exit {} {}",
                r.code,
                r.stderr.trim()
            )),
        );
        if round == 0 {
            eprintln!(
                "{}: bits complete of {FILES} files takes {complete_took:?}",
                rig.name
            );
        }
        let mut bad = Vec::new();
        for (i, d) in dests.iter().enumerate() {
            match std::fs::read(d) {
                Ok(got) if got == content(SIZE, i as u8) => {}
                Ok(got) => bad.push(format!("{} holds {} wrong bytes", d.display(), got.len())),
                Err(e) => bad.push(format!("{}: {e}", d.display())),
            }
        }
        if !bad.is_empty() {
            problems.push(format!(
                "round {round} ({what}, {outcome}): {} of {FILES} files missing or wrong, e.g. {}",
                bad.len(),
                bad[..bad.len().min(3)].join("; ")
            ));
        }
        let temps = temp_files(&dir);
        if !temps.is_empty() {
            problems.push(format!(
                "round {round} ({what}, {outcome}): {} temporary files left, e.g. {}",
                temps.len(),
                temps[0]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        rig.logs()
    );
}

/// The job's state and error, for a failure message.
fn summarize(info: &Run) -> String {
    if info.code != 0 {
        return format!("{info:?}");
    }
    let j = info.json();
    format!(
        "JobState {}, FilesTransferred {}/{}, error {}",
        j["JobState"], j["FilesTransferred"], j["FilesTotal"], j["ErrorDescription"]
    )
}

/// A power cut right after `bits start --async` returned: the job was
/// reported created, so it is still there afterwards, with all its files,
/// and it then completes byte-exact.
#[test]
fn power_cut_right_after_start_keeps_the_job() {
    let Some(mut rig) = Rig::new("power_cut_right_after_start") else {
        return;
    };
    let server = TestServer::start();
    let body = content(200_000, 41);
    server.put_file("/one.bin", body.clone());
    server.set_default_fault(
        "/one.bin",
        Some(Fault::Slow {
            bytes_per_sec: 50_000,
        }),
    );
    let mut jobs = Vec::new();
    // A one-file job, one of 50 files, and one more one-file job (created
    // while the daemon resumes the others), each cut as soon as `start`
    // returns.
    for round in 0..3 {
        let dir = rig.work.join(format!("start{round}"));
        std::fs::create_dir(&dir).unwrap();
        let (id, dests) = if round == 1 {
            let mut csv = String::from("Source,Destination\n");
            let mut dests = Vec::new();
            for i in 0..50 {
                let dest = dir.join(format!("m{i}.bin"));
                csv.push_str(&format!("{},{}\n", server.url("one.bin"), dest.display()));
                dests.push(dest);
            }
            let list = rig.disk.join("start.csv");
            std::fs::write(&list, csv).unwrap();
            (
                rig.start_async(&["--from-csv", list.to_str().unwrap()]),
                dests,
            )
        } else {
            let dest = dir.join("one.bin");
            let id = rig.start_async(&[&server.url("one.bin"), dest.to_str().unwrap()]);
            (id, vec![dest])
        };
        rig.power_cut();
        let r = rig.bits(&["info", &id, "--json"]);
        assert_eq!(
            r.code,
            0,
            "round {round}: job {id} lost by a power cut right after `bits start` returned: \
             {r:?}\n{}",
            rig.logs()
        );
        let files = r.json()["FileList"].as_array().map_or(0, |f| f.len());
        assert_eq!(files, dests.len(), "round {round}: files of job {id}");
        jobs.push((id, dests));
    }
    server.set_default_fault("/one.bin", None);
    for (id, dests) in jobs {
        let r = rig.bits(&["wait", &id, "--timeout", "60"]);
        assert_eq!(r.code, 0, "bits wait {id}: {r:?}\n{}", rig.logs());
        rig.ok(&["complete", &id]);
        for d in dests {
            assert!(read(&d) == body, "{} is not byte-exact", d.display());
        }
    }
}
