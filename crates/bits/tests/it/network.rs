//! Network awareness: a link that goes down mid-transfer holds the job in
//! TransientError (BG_E_NETWORK_DISCONNECTED); when it comes back the job
//! resumes at once, not after its retry delay, and the file is exact.
//!
//! Runs on a private network of two namespaces joined by a veth pair; skips
//! with a message where `ip netns` is not permitted.

use crate::support::{content, read, Home};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Two network namespaces, server and client, joined by a veth pair.
struct TestNet {
    srv: String,
    cli: String,
    cli_if: String,
    server_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl TestNet {
    /// `None` (with a message) where namespaces cannot be made.
    fn new() -> Option<TestNet> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = std::process::id() % 200 + NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let net = TestNet {
            srv: format!("bitsnet-s{tag}"),
            cli: format!("bitsnet-c{tag}"),
            cli_if: format!("vc{n}"),
            server_ip: format!("10.234.{n}.1"),
        };
        if !ip(&["netns", "add", &net.srv]) {
            eprintln!("skipped: `ip netns add` is not permitted here");
            return None;
        }
        let srv_if = format!("vs{n}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), net.cli.clone()],
            vec![
                "link".into(),
                "add".into(),
                srv_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                net.cli_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                srv_if.clone(),
                "netns".into(),
                net.srv.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                net.cli_if.clone(),
                "netns".into(),
                net.cli.clone(),
            ],
            vec![
                "-n".into(),
                net.srv.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", net.server_ip),
                "dev".into(),
                srv_if.clone(),
            ],
            vec![
                "-n".into(),
                net.cli.clone(),
                "addr".into(),
                "add".into(),
                format!("10.234.{n}.2/24"),
                "dev".into(),
                net.cli_if.clone(),
            ],
            vec![
                "-n".into(),
                net.srv.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                net.cli.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                net.srv.clone(),
                "link".into(),
                "set".into(),
                srv_if.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                net.cli.clone(),
                "link".into(),
                "set".into(),
                net.cli_if.clone(),
                "up".into(),
            ],
        ];
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            assert!(ip(&args), "ip {args:?} failed");
        }
        // About 1 MB/s from the server, so that the transfer is still
        // running when the link goes down.
        let shaped = Command::new("tc")
            .args([
                "-n", &net.srv, "qdisc", "add", "dev", &srv_if, "root", "tbf", "rate", "8mbit",
                "burst", "32kb", "latency", "50ms",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(shaped, "tc failed");
        Some(net)
    }

    fn exec(&self, ns: &str) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), ns.to_string()]
    }

    fn link(&self, state: &str) {
        assert!(ip(&["-n", &self.cli, "link", "set", &self.cli_if, state]));
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.srv]);
        ip(&["netns", "del", &self.cli]);
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_link_that_goes_down_holds_the_job_and_its_return_resumes_it_at_once() {
    let Some(net) = TestNet::new() else { return };
    let h = Home::new();
    let body = content(5_000_000, 141);
    let root = h.path("served");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("n.bin"), &body).unwrap();
    let listen = format!("{}:8080", net.server_ip);
    let _server = Killed(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.srv,
                env!("CARGO_BIN_EXE_bits"),
                "serve",
            ])
            .arg(&root)
            .args(["--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let cli = net.exec(&net.cli);
    let cli: Vec<&str> = cli.iter().map(String::as_str).collect();
    // The daemon starts in the client namespace (the first command starts
    // it); later commands reach it through its socket file from anywhere.
    let dest = h.path("n.bin");
    let url = format!("http://{listen}/n.bin");
    let created = h
        .command_in(&cli)
        .args(["start", "--async", "--json", &url, dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let id = serde_json::from_slice::<serde_json::Value>(&created.stdout).unwrap()["JobId"]
        .as_str()
        .unwrap()
        .to_string();
    h.wait_for(&id, Duration::from_secs(20), |j| {
        j["BytesTransferred"].as_u64().unwrap_or(0) > 500_000
    });

    net.link("down");
    let down_at = Instant::now();
    let held = h.wait_state(&id, "TransientError", Duration::from_secs(10));
    let noticed = down_at.elapsed();
    assert_eq!(held["ErrorCode"], "0x80200010", "{held}");
    assert!(
        held["ErrorDescription"]
            .as_str()
            .unwrap()
            .contains("network is disconnected"),
        "{held}"
    );
    let waited = held["BytesTransferred"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));

    net.link("up");
    let up_at = Instant::now();
    h.wait_for(&id, Duration::from_secs(10), |j| {
        j["JobState"] == "Transferring" && j["BytesTransferred"].as_u64().unwrap_or(0) > waited
    });
    let resumed = up_at.elapsed();
    eprintln!("measured: TransientError {noticed:?} after the link went down; transferring again {resumed:?} after it came back");
    assert!(
        resumed < Duration::from_secs(3),
        "resumed {resumed:?} after the link's return"
    );
    // The retry delay (600 s by default) was not waited out.
    h.wait_state(&id, "Transferred", Duration::from_secs(30));
    h.ok(&["complete", &id]);
    assert_eq!(read(&dest), body);
}
