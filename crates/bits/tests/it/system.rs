//! The system daemon: one `bitsd --system` serving two throwaway users and
//! root. Each user's jobs are theirs alone; every file a job touches is
//! opened with its owner's rights; root takes ownership; owners survive a
//! restart; jobs run without any session of their owner.
//!
//! Needs root (to create users and to run the daemon as root). Skips with a
//! message otherwise, unless BITS_REQUIRE_SYSTEM=1 (CI), where it fails.

use bits_test_support::{content, Auth, Fault, TestServer};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Run;

fn can_run() -> bool {
    let required = std::env::var_os("BITS_REQUIRE_SYSTEM").is_some_and(|v| v == "1");
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        !required,
        "BITS_REQUIRE_SYSTEM=1 but the tests do not run as root"
    );
    eprintln!("skipped: the system daemon's tests need root (throwaway users, bitsd as root)");
    false
}

/// A throwaway user, deleted on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    /// A directory of its own (0700), for its downloads.
    dir: PathBuf,
}

impl User {
    fn create(tag: &str, parent: &Path) -> User {
        let name = format!("bt{tag}{}", std::process::id() % 1_000_000);
        // useradd takes a lock on the user database: tests creating users
        // at the same moment wait for each other.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("useradd")
                .args(["--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/bin/sh", "--user-group", &name])
                .output()
                .expect("useradd");
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                Instant::now() < deadline && err.contains("lock"),
                "useradd {name}: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        let dir = parent.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        User {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Best effort: a failure leaves a user nobody can log in as.
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// `bitsd --system` with its state and socket in a scratch directory, and
/// copies of `bits` and `bitsd` every user may run.
struct System {
    root: tempfile::TempDir,
    daemon: Option<Child>,
}

/// Starts a program this test copied a moment ago. Regression: another
/// test's thread that forked while the copy was open for writing holds
/// that descriptor until its child execs, and exec of the copy then fails
/// with ETXTBSY ("Text file busy"); under load that window is long enough
/// to hit. The descriptor goes with the child's exec, so trying again
/// shortly after succeeds.
fn spawn_copied_program(command: &mut Command) -> std::process::Child {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot start {:?}: {e}", command.get_program()),
        }
    }
}

impl System {
    fn start() -> System {
        let root = tempfile::tempdir().unwrap();
        // Users reach the programs, their own directories and the socket.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (name, from) in [
            ("bits", env!("CARGO_BIN_EXE_bits")),
            ("bitsd", env!("CARGO_BIN_EXE_bitsd")),
        ] {
            std::fs::copy(from, bin.join(name)).unwrap();
        }
        std::fs::create_dir(root.path().join("users")).unwrap();
        let mut s = System { root, daemon: None };
        s.spawn_daemon();
        s
    }

    fn socket(&self) -> PathBuf {
        self.root.path().join("run/bits.sock")
    }

    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    fn users(&self) -> PathBuf {
        self.root.path().join("users")
    }

    fn spawn_daemon(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let mut command = Command::new(self.root.path().join("bin/bitsd"));
        command
            .arg("--system")
            .arg("--state-dir")
            .arg(self.state())
            .arg("--socket")
            .arg(self.socket())
            .env("BITS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.daemon = Some(spawn_copied_program(&mut command));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "bitsd --system did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then a new daemon on the same state.
    fn kill_and_restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill().unwrap();
            d.wait().unwrap();
        }
        self.spawn_daemon();
    }

    /// `bits` as `user` (root when `None`), talking to this daemon.
    fn command(&self, user: Option<&User>) -> Command {
        let mut c = Command::new(self.root.path().join("bin/bits"));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("BITS_SYSTEM", "1")
            .env("BITS_SYSTEM_SOCKET", self.socket())
            .stdin(Stdio::null());
        match user {
            Some(u) => {
                c.uid(u.uid)
                    .gid(u.gid)
                    .env("HOME", "/nonexistent")
                    .current_dir(&u.dir);
            }
            None => {
                c.env("HOME", "/root").current_dir("/");
            }
        }
        c
    }

    fn bits(&self, user: Option<&User>, args: &[&str]) -> Run {
        let mut c = self.command(user);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        spawn_copied_program(&mut c)
            .wait_with_output()
            .unwrap()
            .into()
    }

    fn ok(&self, user: Option<&User>, args: &[&str]) -> Run {
        let r = self.bits(user, args);
        assert_eq!(r.code, 0, "bits {args:?}: {r:?}\n{}", self.log());
        r
    }

    fn info(&self, user: Option<&User>, job: &str) -> Value {
        self.ok(user, &["info", job, "--json"]).json()
    }

    fn wait_state(&self, job: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.info(None, job);
            if info["JobState"] == state {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} never {state}: {info}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state().join("bitsd.log")).unwrap_or_default()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn job_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["JobId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn each_user_sees_and_changes_only_their_own_jobs() {
    if !can_run() {
        return;
    }
    let sys = System::start();
    let a = User::create("a", &sys.users());
    let b = User::create("b", &sys.users());
    let server = TestServer::start();
    let data = content(200_000, 61);
    server.put_file("/f.bin", data.clone());
    let url = server.url("f.bin");

    let start = |u: &User, name: &str| -> String {
        let dest = u.path("f.bin");
        let r = sys.ok(
            Some(u),
            &[
                "start",
                "--async",
                "--suspended",
                "--name",
                name,
                &url,
                &dest,
            ],
        );
        r.stdout.trim().to_string()
    };
    let ja = start(&a, "ajob");
    let jb = start(&b, "bjob");
    assert_eq!(sys.info(Some(&a), &ja)["OwnerAccount"], a.name.as_str());
    assert_eq!(sys.info(Some(&b), &jb)["OwnerAccount"], b.name.as_str());

    // Each lists their own; root lists both with --all-users, none without.
    let list = |u: Option<&User>, all: bool| {
        let mut args = vec!["list", "--json"];
        if all {
            args.push("--all-users");
        }
        job_ids(&sys.ok(u, &args).json())
    };
    assert_eq!(list(Some(&a), false), vec![ja.clone()]);
    assert_eq!(list(Some(&b), false), vec![jb.clone()]);
    let mut both = vec![ja.clone(), jb.clone()];
    both.sort();
    assert_eq!(list(None, true), both);
    assert!(list(None, false).is_empty());
    let r = sys.bits(Some(&a), &["list", "--all-users"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("all-users"), "{r:?}");

    // The same through the Windows names: Get-BitsTransfer -AllUsers and
    // bitsadmin /list /allusers show both jobs and their owners to root.
    let r = sys.ok(None, &["Get-BitsTransfer", "-AllUsers"]);
    for needle in [&ja, &jb, &a.name, &b.name] {
        assert!(r.stdout.contains(needle.as_str()), "{needle}: {r:?}");
    }
    let r = sys.ok(None, &["bitsadmin", "/list", "/allusers"]);
    for id in [&ja, &jb] {
        assert!(r.stdout.contains(&id.to_ascii_uppercase()), "{r:?}");
    }
    let r = sys.ok(Some(&a), &["Get-BitsTransfer"]);
    assert!(r.stdout.contains(&ja) && !r.stdout.contains(&jb), "{r:?}");
    let r = sys.bits(Some(&a), &["Get-BitsTransfer", "-all"]);
    assert_eq!(r.code, 4, "{r:?}");

    // A can do nothing with B's job: by id, by name, by prefix.
    for args in [
        vec!["suspend", jb.as_str()],
        vec!["resume", jb.as_str()],
        vec!["complete", jb.as_str()],
        vec!["remove", jb.as_str()],
        vec!["info", jb.as_str()],
        vec!["set", jb.as_str(), "--priority", "low"],
    ] {
        let r = sys.bits(Some(&a), &args);
        assert_eq!(r.code, 4, "{args:?}: {r:?}");
        assert!(r.stderr.contains("another user"), "{args:?}: {r:?}");
    }
    for arg in ["bjob", &jb[..8]] {
        let r = sys.bits(Some(&a), &["info", arg]);
        assert_eq!(r.code, 4, "{arg}: {r:?}");
    }
    assert_eq!(sys.info(None, &jb)["JobState"], "Suspended");

    // A's own job goes through, and the file is A's.
    sys.ok(Some(&a), &["resume", "--async", &ja]);
    sys.wait_state(&ja, "Transferred");
    sys.ok(Some(&a), &["complete", &ja]);
    let meta = std::fs::metadata(a.path("f.bin")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (a.uid, a.gid));
    assert_eq!(std::fs::read(a.path("f.bin")).unwrap(), data);

    // Root manages anyone's job.
    sys.ok(None, &["remove", &jb]);
    assert!(list(Some(&b), false).is_empty());
}

#[test]
fn a_jobs_files_are_opened_with_its_owners_rights() {
    if !can_run() {
        return;
    }
    let sys = System::start();
    let a = User::create("c", &sys.users());
    let server = TestServer::start();
    let data = content(100_000, 62);
    server.put_file("/f.bin", data.clone());
    let url = server.url("f.bin");

    // A directory only root may write: the job fails as A would, with
    // access denied on the local file, and nothing appears there.
    let root_only = sys.root.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dest = root_only.join("f.bin").to_string_lossy().into_owned();
    let job = sys
        .ok(Some(&a), &["start", "--async", &url, &dest])
        .stdout
        .trim()
        .to_string();
    let info = sys.wait_state(&job, "Error");
    assert_eq!(info["ErrorContext"], "LocalFile", "{info}");
    assert_eq!(info["ErrorCode"], "0x80070005", "{info}");
    assert_eq!(std::fs::read_dir(&root_only).unwrap().count(), 0);

    // A file only root may read is neither uploaded nor copied for A.
    let secret = sys.root.path().join("secret");
    std::fs::write(&secret, b"root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret_s = secret.to_string_lossy().into_owned();
    // (Anyone may look at its size and date: the job is refused when the
    // daemon opens the file, as A.)
    let up = sys
        .ok(
            Some(&a),
            &[
                "start",
                "--async",
                "--type",
                "upload",
                &secret_s,
                &server.url("up/x"),
            ],
        )
        .stdout
        .trim()
        .to_string();
    let info = sys.wait_state(&up, "Error");
    assert_eq!(info["ErrorCode"], "0x80070005", "{info}");
    assert_eq!(info["ErrorContext"], "LocalFile", "{info}");
    assert!(server.requests_for("/up/x").is_empty());
    let copy = sys
        .ok(Some(&a), &["start", "--async", &secret_s, &a.path("copy")])
        .stdout
        .trim()
        .to_string();
    let info = sys.wait_state(&copy, "Error");
    assert_eq!(info["ErrorCode"], "0x80070005", "{info}");
    assert!(!Path::new(&a.path("copy")).exists());

    // A CA file the owner may read when the job is made, and may not when
    // it runs: the daemon does not read it for them.
    let tls = TestServer::start_tls();
    tls.put_file("/f.bin", data.clone());
    let ca = sys.root.path().join("ca.pem");
    std::fs::write(&ca, tls.ca_pem()).unwrap();
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ca_s = ca.to_string_lossy().into_owned();
    let tls_url = tls.url("f.bin");
    let job = sys
        .ok(
            Some(&a),
            &[
                "start",
                "--async",
                "--suspended",
                "--ca-cert",
                &ca_s,
                &tls_url,
                &a.path("t.bin"),
            ],
        )
        .stdout
        .trim()
        .to_string();
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600)).unwrap();
    sys.ok(Some(&a), &["resume", "--async", &job]);
    let info = sys.wait_state(&job, "Error");
    let why = info["ErrorDescription"].as_str().unwrap_or_default();
    assert!(why.contains("ermission denied"), "{info}");
    assert!(!Path::new(&a.path("t.bin")).exists());

    // A's temporary file and destination replaced by links to root's files
    // between attempts: nothing is written through them.
    let victim_temp = sys.root.path().join("victim-temp");
    let victim_dest = sys.root.path().join("victim-dest");
    for v in [&victim_temp, &victim_dest] {
        std::fs::write(v, b"root's file\n").unwrap();
        std::fs::set_permissions(v, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let dest = a.path("g.bin");
    let job = sys
        .ok(Some(&a), &["start", "--async", "--suspended", &url, &dest])
        .stdout
        .trim()
        .to_string();
    let temp = a.dir.join(format!(".g.bin.bits-{job}.tmp"));
    // Planted as A would (A owns the links).
    for (link, to) in [(&temp, &victim_temp), (&PathBuf::from(&dest), &victim_dest)] {
        std::os::unix::fs::symlink(to, link).unwrap();
        std::os::unix::fs::lchown(link, Some(a.uid), Some(a.gid)).unwrap();
    }
    sys.ok(Some(&a), &["resume", "--async", &job]);
    sys.wait_state(&job, "Transferred");
    sys.ok(Some(&a), &["complete", &job]);
    for v in [&victim_temp, &victim_dest] {
        assert_eq!(
            std::fs::read(v).unwrap(),
            b"root's file\n",
            "{}",
            v.display()
        );
    }
    let meta = std::fs::symlink_metadata(&dest).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.uid(), a.uid);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}

#[test]
fn root_takes_ownership_owners_survive_a_restart_and_jobs_run_without_their_owner() {
    if !can_run() {
        return;
    }
    let mut sys = System::start();
    let a = User::create("d", &sys.users());
    let private = TestServer::start();
    private.put_file("/private.bin", content(50_000, 63));
    private.require_auth(Auth::basic("alice", "s3cret"));
    let server = TestServer::start();
    let data = content(300_000, 64);
    server.put_file("/slow.bin", data.clone());
    server.set_default_fault(
        "/slow.bin",
        Some(Fault::Slow {
            bytes_per_sec: 200_000,
        }),
    );

    // A job of A's with a credential and a notification command.
    let mut c = sys.command(Some(&a));
    c.args(["start", "--async", "--suspended", "--credential", "alice"])
        .args(["--password-stdin", "--notify-cmd", "touch notified"])
        .arg(private.url("private.bin"))
        .arg(a.path("private.bin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_copied_program(&mut c);
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let r: Run = child.wait_with_output().unwrap().into();
    assert_eq!(r.code, 0, "{r:?}");
    let taken = r.stdout.trim().to_string();

    // A's second job runs while no process of A's exists: `bits start
    // --async` has returned and A never logged in.
    let running = sys
        .ok(
            Some(&a),
            &[
                "start",
                "--async",
                &server.url("slow.bin"),
                &a.path("slow.bin"),
            ],
        )
        .stdout
        .trim()
        .to_string();

    // Only root (or an administrator) takes ownership.
    let r = sys.bits(Some(&a), &["set", &taken, "--take-ownership"]);
    assert_eq!(r.code, 4, "{r:?}");
    let info = sys
        .ok(None, &["set", &taken, "--take-ownership", "--json"])
        .json();
    assert_eq!(info["OwnerAccount"], "root");
    assert!(info["NotifyCmdLine"].is_null(), "{info}");
    let r = sys.bits(Some(&a), &["info", &taken]);
    assert_eq!(r.code, 4, "{r:?}");

    // A restart keeps every owner's jobs.
    sys.kill_and_restart();
    assert_eq!(sys.info(None, &taken)["OwnerAccount"], "root");
    assert_eq!(sys.info(None, &running)["OwnerAccount"], a.name.as_str());

    // The credential went with the ownership: the server now refuses.
    sys.ok(None, &["resume", "--async", &taken]);
    let info = sys.wait_state(&taken, "Error");
    assert_eq!(info["ErrorCode"], "0x80190191", "{info}");

    // A's job carried on across the restart, without A.
    sys.wait_state(&running, "Transferred");
    sys.ok(None, &["complete", &running]);
    assert_eq!(std::fs::read(a.path("slow.bin")).unwrap(), data);
    assert_eq!(std::fs::metadata(a.path("slow.bin")).unwrap().uid(), a.uid);
}

#[test]
fn a_notify_command_runs_as_the_jobs_owner() {
    if !can_run() {
        return;
    }
    let sys = System::start();
    let a = User::create("e", &sys.users());
    let server = TestServer::start();
    server.put_file("/f.bin", content(10_000, 65));
    let who = a.path("who");
    let cmd = format!("id -u > {who}; id -G >> {who}; echo \"$HOME $USER\" >> {who}");
    let job = sys
        .ok(
            Some(&a),
            &[
                "start",
                "--async",
                "--notify-cmd",
                &cmd,
                &server.url("f.bin"),
                &a.path("f.bin"),
            ],
        )
        .stdout
        .trim()
        .to_string();
    sys.wait_state(&job, "Transferred");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&who).exists() {
        assert!(
            Instant::now() < deadline,
            "the command never ran\n{}",
            sys.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&who).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(a.uid.to_string().as_str()), "{text}");
    // Its own group only: none of root's.
    assert_eq!(lines.next(), Some(a.gid.to_string().as_str()), "{text}");
    assert_eq!(
        lines.next(),
        Some(format!("/nonexistent {}", a.name).as_str()),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&who).unwrap().uid(), a.uid);
}
