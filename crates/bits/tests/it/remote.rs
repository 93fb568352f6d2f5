//! Remote management (the seed's last section): `bits --host` and the
//! cmdlets' `-ComputerName` over a real sshd on a loopback port, with a
//! throwaway host key and client key. The "remote" daemon has its own
//! BITS_HOME (set by sshd for the session), so the local one staying empty
//! shows where the jobs live.
//!
//! Needs sshd (and root, for its privilege-separation directory); skipped
//! otherwise, unless BITS_REQUIRE_SSH=1 (CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{content, read, Home, Run};
use bits_test_support::TestServer;

const SSHD: &str = "/usr/sbin/sshd";

/// An sshd on 127.0.0.1 whose sessions get `BITS_HOME` = `remote_home`.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    fn start(remote_home: &Path) -> Option<Sshd> {
        let required = std::env::var_os("BITS_REQUIRE_SSH").is_some_and(|v| v == "1");
        let root = nix::unistd::geteuid().is_root();
        if !Path::new(SSHD).exists() || !root {
            assert!(
                !required,
                "BITS_REQUIRE_SSH=1 but sshd is missing or not root"
            );
            eprintln!("skipped: needs {SSHD} and root");
            return None;
        }
        // The privilege-separation directory sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nSetEnv BITS_HOME={home}\n",
            d = d.display(),
            home = remote_home.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let sshd = Sshd { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sshd)
    }

    /// BITS_SSH for this server: its port and key, no host-key prompts.
    fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.dir.path().join("client_key").display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bits ARGS` run against the remote machine (the local home stays the
/// caller's).
fn remote(h: &Home, sshd: &Sshd, program: &Path, args: &[&str]) -> Run {
    h.command_named(program)
        .args(args)
        .env("BITS_SSH", sshd.ssh_command())
        .env("BITS_REMOTE_BITS", env!("CARGO_BIN_EXE_bits"))
        .output()
        .unwrap()
        .into()
}

fn bits_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bits"))
}

/// A job started over ssh goes on after the connection closes and is
/// managed from later connections; the local daemon never sees it.
#[test]
fn jobs_started_over_ssh_outlive_the_connection_and_are_managed_later() {
    let local = Home::new();
    // Its daemon is the remote one (sshd gives sessions its BITS_HOME), so
    // dropping it stops that daemon.
    let far = Home::new();
    let Some(sshd) = Sshd::start(far.home.path()) else {
        return;
    };
    let server = TestServer::start();
    let body = content(600_000, 9);
    server.put_file("/File1.zip", body.clone());
    let dest = far.path("File1.zip");

    // Slow enough (300 kB/s) that the job is still running when ssh is gone.
    let r = remote(
        &local,
        &sshd,
        &bits_exe(),
        &[
            "--host",
            "127.0.0.1",
            "start",
            "--async",
            "--max-bandwidth",
            "300k",
            "--name",
            "far job",
            &server.url("/File1.zip"),
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 36, "{r:?}");

    // A new connection sees it running; the local daemon has no jobs.
    let r = remote(
        &local,
        &sshd,
        &bits_exe(),
        &["--host", "127.0.0.1", "list", "--json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let listed = r.json();
    assert_eq!(listed[0]["JobId"], id.as_str());
    assert_ne!(
        listed[0]["JobState"], "Transferred",
        "the job should still be running"
    );
    assert!(local.ok(&["list"]).stdout.contains("No jobs."));

    // Get-BitsTransfer -ComputerName lists it too (the cmdlet runs there).
    let r = remote(
        &local,
        &sshd,
        &bits_exe(),
        &[
            "Get-BitsTransfer",
            "-ComputerName",
            "127.0.0.1",
            "-Name",
            "far*",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&id) && r.stdout.contains("far job"),
        "{r:?}"
    );

    // Later: wait for it, complete it, all from new connections.
    let r = remote(
        &local,
        &sshd,
        &bits_exe(),
        &["--host", "127.0.0.1", "wait", &id, "--timeout", "60"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Get-BitsTransfer's table piped into Complete-BitsTransfer, both run
    // over ssh: standard input crosses the connection.
    let bits = env!("CARGO_BIN_EXE_bits");
    let r = remote(
        &local,
        &sshd,
        Path::new("sh"),
        &[
            "-ec",
            &format!(
                "{bits} Get-BitsTransfer -ComputerName 127.0.0.1 -Name 'far*' | \
                 {bits} Complete-BitsTransfer -cn 127.0.0.1"
            ),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(read(&dest), body);

    // Exit codes come back: an unknown job is 4 over ssh as here.
    let r = remote(
        &local,
        &sshd,
        &bits_exe(),
        &["--host", "127.0.0.1", "info", "no-such-job"],
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("no-such-job"), "{r:?}");
}

/// A host ssh cannot reach: exit 3 and a message, nothing run.
#[test]
fn an_unreachable_host_is_exit_3() {
    let h = Home::new();
    let port = free_port();
    let r: Run = h
        .command()
        .args(["--host", "127.0.0.1", "list"])
        .env(
            "BITS_SSH",
            format!("ssh -F /dev/null -p {port} -o BatchMode=yes -o ConnectTimeout=5"),
        )
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("ssh to 127.0.0.1 failed"), "{r:?}");
    let r = h.bits(&["--host", "-oProxyCommand=x", "list"]);
    assert_eq!(r.code, 2, "{r:?}");
}
