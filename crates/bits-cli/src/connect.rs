//! The connection to `bitsd`, started on demand.
//!
//! [`Connection::open`] connects to the socket named by [`Paths`]. When
//! nothing listens there (no socket file, or a stale one) it starts `bitsd`
//! (found beside this executable, else on PATH) detached in its own session,
//! with the same environment, and retries the connection until the daemon
//! answers or [`AUTOSTART_WAIT`] passes. `BITS_NO_AUTOSTART=1` turns that off.
//! Every failure to reach a daemon is a [`Failure::Unreachable`] (exit 3).
//!
//! Requests that may be repeated (Watch, List) go through
//! [`Connection::call_resilient`], which rides out a daemon restart; the
//! others are sent once, since a Create must not run twice.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bits_proto::{
    has_more_files, Client, ErrorKind, JobObject, JobTexts, PageEnd, Paths, ProtoError, RawJob,
    Request, Response, PROTOCOL_VERSION,
};

use crate::failure::Failure;

/// How long to wait for an autostarted daemon: the contract's 5 s.
pub const AUTOSTART_WAIT: Duration = Duration::from_secs(5);

/// Pause between connection attempts while the daemon starts: short enough
/// that a daemon which is up in 50 ms is seen at once, long enough not to
/// spin.
const RETRY_EVERY: Duration = Duration::from_millis(25);

/// How long [`Connection::call_resilient`] keeps trying to get a daemon back
/// after losing it: a stopping daemon checkpoints its jobs first, and its
/// successor may need the full [`AUTOSTART_WAIT`] to come up.
const RECONNECT_BUDGET: Duration = Duration::from_secs(10);

/// Pause before each reconnection attempt, so that a daemon which is still
/// stopping is not asked again at once.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// The environment variable that turns autostart off when it is `1`.
const NO_AUTOSTART: &str = "BITS_NO_AUTOSTART";

/// Where a moved system daemon's socket is.
const SYSTEM_SOCKET_ENV: &str = "BITS_SYSTEM_SOCKET";

/// `--system` (or `BITS_SYSTEM`) was given.
static SYSTEM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every connection of this process go to the system daemon.
pub fn use_system_daemon(on: bool) {
    SYSTEM.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The daemon this process talks to (see [`choose`]).
pub fn daemon_paths() -> Paths {
    let get = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    choose(
        SYSTEM.load(std::sync::atomic::Ordering::Relaxed),
        get,
        |p| std::fs::symlink_metadata(p).is_ok(),
    )
}

/// Which daemon to talk to:
/// 1. with `--system`: the system daemon (at `BITS_SYSTEM_SOCKET`, else
///    /run/bits/bits.sock), never started by bits;
/// 2. else the user's own daemon when one is configured: `BITS_HOME` is
///    set, or its socket exists;
/// 3. else the system daemon when its socket exists;
/// 4. else the user's own daemon, started on demand.
pub fn choose(
    system: bool,
    get: impl Fn(&str) -> Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Paths {
    let system_paths = || Paths::system(None, get(SYSTEM_SOCKET_ENV).as_deref());
    if system {
        return system_paths();
    }
    let own = Paths::from_lookup(&get);
    if get("BITS_HOME").is_some() || exists(&own.socket()) {
        return own;
    }
    let sys = system_paths();
    if exists(&sys.socket()) {
        return sys;
    }
    own
}

/// A connection to `bitsd` that has said Hello with a matching version.
#[derive(Debug)]
pub struct Connection {
    /// The live connection.
    client: Client,
    /// Where the daemon lives; kept to reconnect.
    paths: Paths,
}

impl Connection {
    /// Connects, starting the daemon if nobody answers.
    pub async fn open(paths: Paths) -> anyhow::Result<Connection> {
        let client = connect(&paths).await?;
        Ok(Connection { client, paths })
    }

    /// Sends a request that may safely be repeated (Watch, List), riding out
    /// a restart of the daemon: when the connection drops, or the daemon
    /// answers that it is stopping, it reconnects,
    /// starting a new daemon if needed, and asks again, for at most
    /// ten seconds. `make(fresh)` builds the request; `fresh` is
    /// true on a new connection, where a Watch revision means nothing.
    pub async fn call_resilient(
        &mut self,
        make: impl Fn(bool) -> Request,
    ) -> anyhow::Result<Response> {
        let mut fresh = false;
        let mut lost_since: Option<Instant> = None;
        loop {
            let mut problem: anyhow::Error = match self.client.call(&make(fresh)).await {
                Ok(Response::Error(e)) if e.kind == ErrorKind::Stopping => {
                    Failure::Daemon(e).into()
                }
                Ok(Response::Error(e)) => return Err(Failure::Daemon(e).into()),
                Ok(resp) => return Ok(resp),
                Err(e) => self.lost(&e).into(),
            };
            let since = *lost_since.get_or_insert_with(Instant::now);
            tracing::info!(cause = %format!("{problem:#}"), "lost bitsd, reconnecting");
            loop {
                if since.elapsed() >= RECONNECT_BUDGET {
                    return Err(problem);
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                match connect(&self.paths).await {
                    Ok(client) => {
                        self.client = client;
                        break;
                    }
                    Err(e) if matches!(e.downcast_ref(), Some(Failure::Unreachable(_))) => {
                        problem = e;
                    }
                    Err(e) => return Err(e),
                }
            }
            fresh = true;
        }
    }

    /// Sends a request and returns the answer, unless it is an error:
    /// [`Response::Error`] becomes [`Failure::Daemon`], a lost connection
    /// [`Failure::Unreachable`]. Never retries: a request such as Create must
    /// not run twice.
    pub async fn request(&mut self, req: &Request) -> anyhow::Result<Response> {
        match self.client.call(req).await {
            Ok(Response::Error(e)) => Err(Failure::Daemon(e).into()),
            Ok(resp) => Ok(resp),
            Err(e) => Err(self.lost(&e).into()),
        }
    }

    fn lost(&self, e: &ProtoError) -> Failure {
        let socket = self.paths.socket();
        match e {
            ProtoError::FrameTooLarge { len, max } => Failure::Usage(format!(
                "the request is too large to send to bitsd ({} MiB, at most {} MiB): \
                 split the file list into several jobs",
                len >> 20,
                max >> 20
            )),
            ProtoError::TimedOut { secs } => Failure::Unreachable(format!(
                "bitsd at {} did not answer within {secs} s; it may be hung (see its log {})",
                socket.display(),
                self.paths.log_file().display()
            )),
            _ => Failure::Unreachable(format!(
                "lost the connection to bitsd at {}: {}",
                socket.display(),
                error_chain(e)
            )),
        }
    }

    /// Sends a request that answers with one job; its file list is filled
    /// in (the daemon sends long lists a page at a time).
    pub async fn job(&mut self, req: &Request) -> anyhow::Result<JobObject> {
        match self.request(req).await? {
            Response::Job { job } => {
                let mut job = *job;
                self.fill_files(&mut job).await?;
                Ok(job)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Fetches the rest of a job's file list, page after page.
    pub async fn fill_files(&mut self, job: &mut JobObject) -> anyhow::Result<()> {
        while let Some(from) = job.file_list_next.take() {
            let page = match self
                .request(&Request::Info {
                    job: job.job_id.clone(),
                    files_from: from,
                })
                .await?
            {
                Response::Job { job } => *job,
                other => return Err(unexpected(&other)),
            };
            if page.file_list.is_empty() {
                break;
            }
            job.file_list.extend(page.file_list);
            job.file_list_next = page.file_list_next;
        }
        Ok(())
    }

    /// Lists jobs (`ListAll`: every page streamed), as the daemon wrote
    /// them: for passing them on without building each job object. Jobs
    /// whose file list continues are filled in (and written again).
    pub async fn raw_jobs(
        &mut self,
        all_users: bool,
        name: Option<String>,
    ) -> anyhow::Result<JobTexts> {
        let req = Request::ListAll {
            all_users,
            name,
            summary: false,
        };
        let mut texts = JobTexts::default();
        let mut first = true;
        loop {
            let body = if std::mem::take(&mut first) {
                self.client.call_body(&req).await
            } else {
                self.client.next_body().await
            };
            let page = body.and_then(|body| texts.add_page(body));
            let next = match page {
                Ok(PageEnd::Jobs(next)) => next,
                Ok(PageEnd::Error(e)) => return Err(Failure::Daemon(e).into()),
                Ok(PageEnd::Other(what)) => {
                    return Err(anyhow::anyhow!(
                        "bitsd gave an unexpected answer to List: {what}"
                    ))
                }
                Err(e) => return Err(self.lost(&e).into()),
            };
            if next.is_none() {
                break;
            }
        }
        for i in 0..texts.len() {
            if has_more_files(texts.get(i)) {
                let mut job: JobObject = serde_json::from_str(texts.get(i))
                    .context("bitsd sent an unreadable job object")?;
                self.fill_files(&mut job).await?;
                texts.replace(i, RawJob::new(&job)?);
            }
        }
        Ok(texts)
    }

    /// Lists jobs (`List`), page after page, with their file lists filled in
    /// unless the request asks for a summary.
    pub async fn jobs(&mut self, req: &Request) -> anyhow::Result<Vec<JobObject>> {
        let mut req = req.clone();
        let mut all = Vec::new();
        loop {
            let (jobs, next) = match self.request(&req).await? {
                Response::Jobs { jobs, next } => (jobs, next),
                other => return Err(unexpected(&other)),
            };
            all.extend(jobs);
            match (&mut req, next) {
                (Request::List { after, .. }, Some(cursor)) => *after = Some(cursor),
                _ => break,
            }
        }
        for job in &mut all {
            self.fill_files(job).await?;
        }
        Ok(all)
    }
}

/// The error for an answer of the wrong kind: a daemon of another build.
pub fn unexpected(resp: &Response) -> anyhow::Error {
    anyhow::anyhow!("bitsd gave an unexpected answer: {resp:?}")
}

/// Connects and checks the Hello, autostarting the daemon when nothing
/// listens.
async fn connect(paths: &Paths) -> anyhow::Result<Client> {
    let socket = paths.socket();
    let first = match Client::connect(&socket).await {
        Ok(client) => return check_hello(client, &socket),
        Err(e) => e,
    };
    let unreachable = |why: String| -> anyhow::Error {
        Failure::Unreachable(format!("cannot reach bitsd at {}: {why}", socket.display())).into()
    };
    if let ProtoError::TimedOut { secs } = first {
        return Err(unreachable(format!(
            "something accepted the connection but did not answer within {secs} s; bitsd may \
             be hung (see its log {}), or another program holds the socket",
            paths.log_file().display()
        )));
    }
    if !nobody_listens(&first) {
        return Err(unreachable(error_chain(&first)));
    }
    if paths.is_system() {
        // The system daemon belongs to the machine (its service manager
        // starts it as root), not to a user's command.
        return Err(unreachable(format!(
            "{}; the system daemon is not running (start it with \
             `systemctl start bitsd`, or leave out --system and BITS_SYSTEM to use your own)",
            error_chain(&first)
        )));
    }
    if std::env::var_os(NO_AUTOSTART).is_some_and(|v| v == "1") {
        return Err(unreachable(format!(
            "{}; autostart is off ({NO_AUTOSTART}=1): start bitsd yourself",
            error_chain(&first)
        )));
    }

    let program = find_bitsd().map_err(|e| {
        unreachable(format!(
            "{}; and bitsd could not be started: {e}",
            error_chain(&first)
        ))
    })?;
    tracing::info!(program = %program.display(), "starting bitsd");
    let mut child = spawn_detached(&program).map_err(|e| {
        unreachable(format!(
            "{}; and starting {} failed: {e}",
            error_chain(&first),
            program.display()
        ))
    })?;

    let deadline = Instant::now() + AUTOSTART_WAIT;
    let mut spawned = 1;
    loop {
        if let Ok(client) = Client::connect(&socket).await {
            return check_hello(client, &socket);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Ours may have stepped aside because another daemon held the
            // pid-file lock: one started by another bits at the same moment
            // (then wait for it), or one still dying (then, once its lock is
            // gone, start ours again).
            if !other_daemon_alive(paths) {
                if let Ok(client) = Client::connect(&socket).await {
                    return check_hello(client, &socket);
                }
                if spawned >= MAX_SPAWNS {
                    return Err(unreachable(match why_it_stopped(&mut child) {
                        Some(reason) => format!("bitsd could not start: {reason}"),
                        None => format!(
                            "bitsd ({}) exited at once with {status}; see its log {}",
                            program.display(),
                            paths.log_file().display()
                        ),
                    }));
                }
                spawned += 1;
                child = spawn_detached(&program).map_err(|e| {
                    unreachable(format!("starting {} failed: {e}", program.display()))
                })?;
            }
        }
        if Instant::now() >= deadline {
            return Err(unreachable(format!(
                "bitsd (pid {}) did not answer within {} s; see its log {}",
                child.id(),
                AUTOSTART_WAIT.as_secs(),
                paths.log_file().display()
            )));
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// How many times one command starts bitsd before it gives up (a start can
/// fail only because a dying daemon still held the lock).
const MAX_SPAWNS: u32 = 3;

/// What a daemon that exited at once wrote on its standard error (the
/// reason it could not start: a damaged job database, one from a newer
/// version, a directory it cannot create), if anything.
fn why_it_stopped(child: &mut Child) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    // The daemon has exited, so this ends at once; a megabyte of messages
    // would not be read in full.
    child
        .stderr
        .take()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    let reason = text
        .lines()
        .map(|l| l.strip_prefix("bitsd: ").unwrap_or(l).trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (!reason.is_empty()).then_some(reason)
}

/// Whether a daemon holds the pid file's lock (bitsd takes it before
/// anything else, so this is true from the first moment of a daemon that is
/// starting).
fn other_daemon_alive(paths: &Paths) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(paths.pid_file()) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked_on_drop) => false,
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// Refuses a daemon that speaks another protocol version.
fn check_hello(client: Client, socket: &Path) -> anyhow::Result<Client> {
    match &client.daemon {
        Response::Hello { protocol, .. } if *protocol == PROTOCOL_VERSION => Ok(client),
        Response::Hello {
            protocol, version, ..
        } => Err(Failure::Unreachable(format!(
            "bitsd {version} at {} speaks protocol {protocol}, this bits speaks \
             {PROTOCOL_VERSION}; restart bitsd from the same installation",
            socket.display()
        ))
        .into()),
        Response::Error(e) => Err(Failure::Daemon(e.clone()))
            .with_context(|| format!("bitsd at {} refused this client", socket.display())),
        other => Err(unexpected(other)),
    }
}

/// Whether a failed connect means "no daemon here": no socket file, or a
/// socket file nobody listens on (left by a daemon that was killed).
fn nobody_listens(e: &ProtoError) -> bool {
    // A daemon that is dying (killed, its threads still exiting) may accept
    // a connection into its backlog and then drop it: reset, or closed
    // before Hello is answered. For the client that is the same as no
    // daemon at all.
    matches!(e, ProtoError::Closed)
        || matches!(e, ProtoError::Io(io) if matches!(
            io.kind(),
            io::ErrorKind::NotFound
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ))
}

/// `bitsd` beside this executable (an installation, or `target/debug`),
/// else the first on PATH.
fn find_bitsd() -> Result<PathBuf, String> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("bitsd")));
    if let Some(path) = beside.iter().find(|p| is_executable(p)) {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("bitsd"))
                .find(|p| is_executable(p))
        })
        .unwrap_or_default();
    on_path.ok_or_else(|| match beside {
        Some(beside) => format!("no bitsd at {} nor on PATH", beside.display()),
        None => "no bitsd on PATH".to_string(),
    })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Starts the daemon so that it outlives us and our terminal: its own
/// session (no controlling terminal, so closing the terminal or Ctrl-C in
/// it does not reach the daemon), the root directory as working directory
/// (so it keeps no directory busy), and our environment, which carries
/// BITS_HOME and friends. Its standard error is a pipe to us, read only if
/// it exits at once (the reason it could not start); once up, it sends its
/// standard error to its log instead (`BITS_DETACHED`).
fn spawn_detached(program: &Path) -> io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("BITS_DETACHED", "1")
        .current_dir("/");
    // The daemon runs from `/`, so relative state directories must be
    // resolved here, where they mean what the user meant.
    if let Ok(cwd) = std::env::current_dir() {
        for var in ["BITS_HOME", "BITS_RUNTIME_DIR", "XDG_STATE_HOME", "HOME"] {
            if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                let path = PathBuf::from(&value);
                if path.is_relative() {
                    cmd.env(var, cwd.join(path));
                }
            }
        }
    }
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// An error and its causes, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket nobody serves, and one whose daemon is dying (the
    /// connection is reset or closed before Hello is answered), both lead
    /// to autostart; other failures (permission denied) do not.
    #[test]
    fn dying_or_absent_daemons_count_as_nobody_listening() {
        let io = |kind| ProtoError::Io(io::Error::from(kind));
        for kind in [
            io::ErrorKind::NotFound,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
        ] {
            assert!(nobody_listens(&io(kind)), "{kind:?}");
        }
        assert!(nobody_listens(&ProtoError::Closed));
        assert!(!nobody_listens(&io(io::ErrorKind::PermissionDenied)));
    }

    #[test]
    fn the_daemon_is_chosen_by_flag_then_home_then_sockets() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| PathBuf::from(v))
            }
        };
        let none = |_: &Path| false;
        // --system, wherever the user's daemon is.
        let p = choose(true, env(&[("BITS_HOME", "/h")]), none);
        assert_eq!(p.socket(), PathBuf::from("/run/bits/bits.sock"));
        let p = choose(true, env(&[("BITS_SYSTEM_SOCKET", "/t/s.sock")]), none);
        assert_eq!(p.socket(), PathBuf::from("/t/s.sock"));
        assert!(p.is_system());
        // BITS_HOME: the user's own, even with a system daemon running.
        let all = |_: &Path| true;
        let p = choose(false, env(&[("BITS_HOME", "/h")]), all);
        assert_eq!(p.socket(), PathBuf::from("/h/bits.sock"));
        // No BITS_HOME: the user's own if its socket is there...
        let home = env(&[("HOME", "/home/a")]);
        let p = choose(false, home, |s: &Path| s.starts_with("/home"));
        assert!(!p.is_system());
        // ... else the system daemon's if that one is...
        let p = choose(false, home, |s: &Path| s.starts_with("/run/bits"));
        assert!(p.is_system());
        // ... else the user's own, to be started.
        let p = choose(false, home, none);
        assert_eq!(
            p.socket(),
            PathBuf::from("/home/a/.local/state/bits/bits.sock")
        );
    }
}
