//! Bringing the daemon up and down: directories, the single-instance lock,
//! the socket, restoring jobs, and the orderly stop.

use crate::shared::{Entry, Owner, Shared, State};
use crate::{ipc, scheduler, Config};
use anyhow::{bail, Context};
use bits_core::{Event, JobState};
use bits_store::Store;
use bits_transfer::Engine;
use nix::fcntl::{Flock, FlockArg};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::UnixListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop waits for transfers to checkpoint.
const STOP_GRACE: Duration = Duration::from_secs(10);

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

/// Takes the pid file's lock: one daemon per state directory.
fn lock_pid_file(path: &Path) -> anyhow::Result<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
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

fn install_tracing(log_file: &Path) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BITS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
    {
        // A second install (tests running several daemons in one process)
        // keeps the first subscriber.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init();
    }
}

/// Jobs that were mid-transfer when the daemon last stopped wait for their
/// turn again; everything else stays as it was.
fn restore(store: &mut Store) -> anyhow::Result<State> {
    let mut state = State::default();
    let now = SystemTime::now();
    for mut job in store.load_all().context("cannot read the job database")? {
        if matches!(job.state(), JobState::Connecting | JobState::Transferring) {
            job.apply(Event::Interrupted, now)
                .map_err(|e| anyhow::anyhow!("bug: restoring job {}: {e}", job.id))?;
            store.update_job(&job)?;
        }
        state.jobs.insert(job.id, Entry::new(job));
    }
    Ok(state)
}

/// The daemon: serves `config.paths` until `shutdown` is cancelled, then
/// checkpoints every transfer and returns.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let paths = &config.paths;
    private_dir(&paths.state_dir)?;
    private_dir(&paths.runtime_dir)?;
    install_tracing(&paths.log_file());
    let _pid_lock = lock_pid_file(&paths.pid_file())?;

    let mut store = Store::open(&paths.database())?;
    let state = restore(&mut store)?;
    let engine = Engine::new(config.engine.clone()).context("cannot start the transfer engine")?;
    let (changes, _) = watch::channel(0);
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        store: Mutex::new(store),
        engine,
        wake: Notify::new(),
        changes,
        owner: owner(),
        shutdown: shutdown.clone(),
        runners: TaskTracker::new(),
        time_slice: config.time_slice,
    });

    let socket = paths.socket();
    // The lock above proves no other daemon owns this socket: a leftover file
    // is from a daemon that died.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(
        pid = std::process::id(),
        socket = %socket.display(),
        jobs = shared.lock().jobs.len(),
        "bitsd started"
    );

    let scheduler = tokio::spawn(scheduler::run(shared.clone()));
    ipc::serve(listener, shared.clone()).await;

    // Stopping: every runner checkpoints on cancellation and moves its job
    // back to Queued.
    let _ = scheduler.await;
    shared.runners.close();
    if tokio::time::timeout(STOP_GRACE, shared.runners.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "some transfers did not stop in time; they resume from their last checkpoint"
        );
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(paths.pid_file());
    tracing::info!("bitsd stopped");
    Ok(())
}
