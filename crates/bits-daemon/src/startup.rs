//! Bringing the daemon up and down: private directories and files, the
//! single-instance lock, the descriptor limit, restoring jobs, the socket,
//! and the orderly stop.

use crate::lifecycle::Manager;
use crate::state::{Entry, Owner, Shared, View};
use crate::store::StoreHandle;
use crate::{ipc, Config};
use anyhow::{bail, Context};
use bits_core::{Event, JobState};
use bits_store::Store;
use bits_transfer::Engine;
use nix::fcntl::{Flock, FlockArg};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// Set (to `1`) by `bits` when it starts the daemon in the background:
/// once the daemon is up, its standard error goes to its log (the pipe
/// `bits` gave it only carries the reason a start failed).
pub const DETACHED_ENV: &str = "BITS_DETACHED";

fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // An existing directory keeps its mode otherwise; the socket and the job
    // list are nobody else's business.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to its owner", dir.display()))?;
    Ok(())
}

/// The system daemon's runtime directory: every user reaches the socket in
/// it, nobody but root writes there.
fn public_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    Ok(())
}

/// Opens (creating) a file of the daemon's own, readable by its owner only
/// (a file left by an older bitsd is restricted too).
fn private_file(path: &Path, append: bool) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(!append)
        .write(true)
        .append(append)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
    Ok(file)
}

/// Takes the pid file's lock: one daemon per state directory.
fn lock_pid_file(path: &Path) -> anyhow::Result<Flock<std::fs::File>> {
    let file = private_file(path, false)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let pid = std::fs::read_to_string(path).unwrap_or_default();
            bail!(
                "another bitsd (pid {}) is already running for {}",
                pid.trim(),
                path.parent().unwrap_or(path).display()
            );
        }
        Err((_, errno)) => bail!("cannot lock {}: {errno}", path.display()),
    };
    lock.set_len(0)?;
    writeln!(&mut *lock, "{}", std::process::id())?;
    lock.sync_all()?;
    Ok(lock)
}

fn owner() -> Owner {
    let uid = nix::unistd::geteuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    Owner {
        uid: uid.as_raw(),
        name,
    }
}

/// The log file, for panics: the panic hook writes to it directly (one
/// `write`, no lock), never through the subscriber, whose writer lock the
/// panicking thread may hold.
static PANIC_LOG: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// The log file panics are written to, once the log is open.
pub(crate) fn panic_log() -> Option<&'static std::fs::File> {
    PANIC_LOG.get()
}

/// The log as the subscriber writes it. A write that fails (a full disk) is
/// dropped: reporting it on standard error, which is the log itself once
/// the daemon is detached, would fail in turn and panic, and the panic
/// would wait for the writer lock its own thread holds.
struct LogFile(std::fs::File);

impl std::io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs to the daemon's log file (0600). Returns the file, for standard
/// error once the daemon is detached.
fn install_tracing(log_file: &Path) -> anyhow::Result<std::fs::File> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BITS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let file = private_file(log_file, true)?;
    let writer = file.try_clone().context("cannot share the log file")?;
    // Set once: a second daemon in one process (tests) keeps the first
    // log for panics, as it keeps the first subscriber below.
    if let Ok(for_panics) = file.try_clone() {
        let _ = PANIC_LOG.set(for_panics);
    }
    // A second install (tests running several daemons in one process)
    // keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(LogFile(writer)))
        .try_init();
    Ok(file)
}

/// Raises the soft limit on open descriptors to the hard one: every client
/// connection, transfer and batch of finished files holds descriptors, and
/// the default soft limit (1,024) is easily reached by one busy user.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, cause = %e, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(cause = %e, "cannot read the open-file limit"),
    }
}

/// Once up, a detached daemon's standard error (and output) go to its log,
/// so a late panic or message is kept, and the pipe of the `bits` that
/// started it is let go.
fn detach_stderr(log: &std::fs::File) {
    use std::os::fd::AsRawFd;
    if std::env::var_os(DETACHED_ENV).is_none_or(|v| v != "1") {
        return;
    }
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 onto a standard descriptor from an open file.
        if unsafe { libc::dup2(log.as_raw_fd(), fd) } == -1 {
            tracing::warn!(cause = %std::io::Error::last_os_error(), "cannot send standard error to the log");
        }
    }
}

/// Jobs that were mid-transfer when the daemon last stopped wait for their
/// turn again; everything else stays as it was.
fn restore(store: &mut Store) -> anyhow::Result<View> {
    let mut view = View::default();
    let now = SystemTime::now();
    for mut job in store.load_all().context("cannot read the job database")? {
        if matches!(job.state(), JobState::Connecting | JobState::Transferring) {
            job.apply(Event::Interrupted, now)
                .map_err(|e| anyhow::anyhow!("bug: restoring job {}: {e}", job.id))?;
            store
                .update_job(&job)
                .context("cannot write the job database")?;
        }
        view.jobs.insert(job.id, Entry::new(job));
    }
    Ok(view)
}

/// The daemon: serves `config.paths` until `shutdown` is cancelled, then
/// checkpoints every transfer and returns.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let paths = &config.paths;
    let system = config.mode.is_system();
    if system && !nix::unistd::geteuid().is_root() {
        bail!(
            "bitsd --system must run as root: it serves every user and opens each job's files \
             with its owner's rights"
        );
    }
    private_dir(&paths.state_dir)?;
    if system {
        public_dir(&paths.runtime_dir)?;
    } else {
        private_dir(&paths.runtime_dir)?;
    }
    let log = install_tracing(&paths.log_file())?;
    let _pid_lock = lock_pid_file(&paths.pid_file())?;
    raise_descriptor_limit();

    let mut store = Store::open(&paths.database())?;
    let view = restore(&mut store)?;
    // Reading the store parsed every row into temporaries.
    crate::memory::give_back();
    let policy = store.load_policy()?;
    let engine = Engine::new(config.engine.clone()).context("cannot start the transfer engine")?;
    // The thread ends when the last handle goes; every save a transfer
    // depends on was awaited before the lifecycle owner returned.
    let (store, _store_thread) =
        StoreHandle::start(store).context("cannot start the store thread")?;
    let shared = Arc::new(Shared::new(
        view,
        store,
        engine,
        owner(),
        config.mode.clone(),
        shutdown.clone(),
        policy,
    ));
    let (manager, handle) = Manager::new(shared.clone(), config.time_slice);
    let _network = crate::network::spawn(shared.clone(), handle.clone());

    let socket = paths.socket();
    // The lock above proves no other daemon owns this socket: a leftover file
    // is from a daemon that died.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", socket.display())),
    }
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    // The system daemon's socket is every user's door; who comes in is
    // told by the kernel (SO_PEERCRED) on each connection.
    let socket_mode = if system { 0o666 } else { 0o600 };
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(socket_mode))?;
    tracing::info!(
        pid = std::process::id(),
        system,
        socket = %socket.display(),
        jobs = shared.read().jobs.len(),
        "bitsd started"
    );
    detach_stderr(&log);

    let lifecycle = tokio::spawn(manager.run());
    ipc::serve(listener, shared.clone(), handle).await;

    // Stopping: the lifecycle owner stops every runner (each checkpoints and
    // its job goes back to Queued), then the store thread ends.
    if let Err(e) = lifecycle.await {
        tracing::error!(cause = %e, "the lifecycle owner ended abnormally");
    }
    for leftover in [socket, paths.pid_file()] {
        if let Err(e) = std::fs::remove_file(&leftover) {
            tracing::debug!(path = %leftover.display(), cause = %e, "could not remove at stop");
        }
    }
    tracing::info!("bitsd stopped");
    Ok(())
}
