//! What the daemon's readers see: every job as last saved, the live
//! progress of running transfers, and the signal that wakes watchers.
//!
//! Architecture invariant: the view holds only what the store already
//! holds (a change is saved, then published), plus the live byte counts of
//! running transfers, which are atomics beside it. Its lock is never held
//! across I/O or an `.await`: every section under it is a copy or an
//! update in memory. Job states change only in `lifecycle`; file progress
//! only in the file's running transfer (`runner`).

use bits_core::policy::machine::MachinePolicy;
use bits_core::{Job, JobId};
use bits_transfer::{Engine, SharedCap};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::StoreHandle;

/// The user the daemon runs for.
#[derive(Debug, Clone)]
pub struct Owner {
    /// uid.
    pub uid: u32,
    /// User name (OwnerAccount).
    pub name: String,
}

/// One job as readers see it.
#[derive(Debug)]
pub struct Entry {
    /// The job as last saved.
    pub job: Job,
    /// Per file: bytes a running transfer has received (durable or not),
    /// 0 when none runs; shown when above the durable count.
    pub received: crate::counters::Counters,
    /// The revision of the job's last change (for Watch).
    pub revision: Arc<AtomicU64>,
    /// When a running transfer last made progress, in ms since the epoch
    /// (0: never): the ModificationTime shown while bytes arrive.
    pub progressed_ms: Arc<AtomicU64>,
    /// How fast its transfers may go (priority, cap): kept in step with the
    /// job by the lifecycle owner, read by running transfers at every step.
    pub rate: Arc<bits_transfer::Limits>,
}

impl Entry {
    /// A job the daemon has just created or loaded.
    pub fn new(job: Job) -> Entry {
        let received = crate::counters::Counters::new(job.files.len());
        Entry {
            received,
            revision: Arc::new(AtomicU64::new(0)),
            progressed_ms: Arc::new(AtomicU64::new(0)),
            rate: Arc::new(bits_transfer::Limits::new(
                job.props.priority.is_background(),
                job.props.max_bandwidth,
            )),
            job,
        }
    }

    /// Bytes of file `index` to show: the received count while a transfer
    /// runs, else the durable one.
    pub fn shown_bytes(&self, index: usize) -> u64 {
        let durable = self.job.files.get(index).map_or(0, |f| f.bytes_transferred);
        let received = self.received.load(index);
        durable.max(received)
    }

    /// ModificationTime: the last change, or the last progress if later.
    pub fn modified(&self) -> SystemTime {
        let progressed =
            UNIX_EPOCH + Duration::from_millis(self.progressed_ms.load(Ordering::Relaxed));
        self.job.modified.max(progressed)
    }

    /// The revision of the job's last change.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }
}

/// Every job the user may still see, final ones included until restart.
#[derive(Debug, Default)]
pub struct View {
    /// The jobs.
    pub jobs: HashMap<JobId, Entry>,
}

/// Shared by the listener, the lifecycle owner and the runners.
pub struct Shared {
    view: RwLock<View>,
    /// The store.
    pub store: StoreHandle,
    /// The transfer engine.
    pub engine: Engine,
    /// Increases with every change of any job.
    revision: AtomicU64,
    /// Carries the latest revision to watchers.
    pub changes: watch::Sender<u64>,
    /// The daemon's user.
    pub owner: Owner,
    /// One user's daemon, or the machine's.
    pub mode: crate::access::Mode,
    /// Cancelled when the daemon stops.
    pub shutdown: CancellationToken,
    /// The daemon-wide policy (caps, schedule, quotas), as last saved.
    policy: RwLock<MachinePolicy>,
    /// The machine-wide cap every background transfer draws from (policy).
    pub background_cap: Arc<SharedCap>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state around a view of the jobs loaded at start.
    pub fn new(
        view: View,
        store: StoreHandle,
        engine: Engine,
        owner: Owner,
        mode: crate::access::Mode,
        shutdown: CancellationToken,
        policy: MachinePolicy,
    ) -> Shared {
        let (changes, _) = watch::channel(0);
        Shared {
            view: RwLock::new(view),
            store,
            engine,
            revision: AtomicU64::new(0),
            changes,
            owner,
            mode,
            shutdown,
            policy: RwLock::new(policy),
            background_cap: Arc::new(SharedCap::new(None)),
        }
    }

    /// Who the user `uid` behind a request is to this daemon. Whether they
    /// are in the admin group comes from the user database, looked up on
    /// the blocking pool (it may be a network service).
    pub async fn caller(&self, uid: u32) -> crate::access::Caller {
        let (mode, daemon_uid) = (self.mode.clone(), self.owner.uid);
        if !matches!(
            mode,
            crate::access::Mode::System {
                admin_group: Some(_)
            }
        ) || uid == 0
        {
            return crate::access::Caller::new(&mode, daemon_uid, uid);
        }
        tokio::task::spawn_blocking(move || crate::access::Caller::new(&mode, daemon_uid, uid))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The user name of `uid` (OwnerAccount), from the user database on
    /// the blocking pool.
    pub async fn account_of(&self, uid: u32) -> String {
        tokio::task::spawn_blocking(move || crate::access::user_name(uid))
            .await
            .unwrap_or_else(|_| uid.to_string())
    }

    /// Whose rights the files of a job owned by `owner_uid` are opened with.
    /// The user database may be a network service (LDAP): looked up on the
    /// blocking pool, never on a runtime thread.
    pub async fn identity_for(
        &self,
        owner_uid: u32,
    ) -> Result<bits_transfer::Identity, bits_transfer::IdentityError> {
        if !self.mode.is_system() {
            return crate::access::identity_for(&self.mode, owner_uid);
        }
        let mode = self.mode.clone();
        tokio::task::spawn_blocking(move || crate::access::identity_for(&mode, owner_uid))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The policy in force.
    pub fn policy(&self) -> MachinePolicy {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a saved policy in force (the caller saved it first).
    pub fn set_policy(&self, policy: MachinePolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// The most files one job may hold now.
    pub fn max_files_per_job(&self) -> usize {
        usize::try_from(
            self.policy
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .max_files_per_job,
        )
        .unwrap_or(usize::MAX)
    }

    /// Reads the jobs. Hold it briefly: no I/O, no `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the jobs. Hold it briefly: no I/O, no `.await`.
    pub fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a job as changed (its `revision` cell): watchers wake.
    pub fn bump(&self, revision: &AtomicU64) {
        let rev = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        revision.store(rev, Ordering::Relaxed);
        self.changes.send_replace(rev);
    }
}

/// The error for a store failure, as clients see it.
pub fn store_failed(e: bits_store::StoreError) -> bits_proto::ApiError {
    tracing::error!(cause = %error_chain(&e), "job store write failed");
    bits_proto::ApiError {
        kind: bits_proto::ErrorKind::Internal,
        message: format!(
            "the job database could not be written, so nothing changed: {}",
            error_chain(&e)
        ),
        code: None,
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
impl Shared {
    /// The shared state of a daemon of the current user around `view`,
    /// over `store` (on its thread), with a default engine: what tests of
    /// the parts above it start from.
    pub fn for_tests(view: View, store: bits_store::Store) -> Arc<Shared> {
        let (store, _thread) = StoreHandle::start(store).expect("the store thread starts");
        let engine = bits_transfer::Engine::new(bits_transfer::EngineConfig::default())
            .expect("an engine with default settings");
        let owner = Owner {
            uid: 0,
            name: "u".into(),
        };
        Arc::new(Shared::new(
            view,
            store,
            engine,
            owner,
            Default::default(),
            CancellationToken::new(),
            Default::default(),
        ))
    }
}
