//! The table of active sessions (`[MC-BUP]` 3.2.1.3.1), in memory.
//!
//! Each session's record sits behind its own async mutex: the protocol
//! allows one outstanding request per session, and a client that lost a
//! connection may already be sending the same fragment again on a new one
//! while the old request is still being read; the mutex makes the second
//! wait for the first instead of both appending. Holding it across `.await`
//! (body reads, the notification) is the point, hence tokio's mutex.
//!
//! Sessions that ended by Close-Session or Cancel-Session leave a tombstone
//! for a while, so a *repeated* Close or Cancel (the client did not get the
//! first Ack, e.g. the connection dropped) is answered 200 instead of
//! `BG_E_SESSION_NOT_FOUND`: for a Close, that error would make a Windows
//! client start the whole upload again (`[MC-BUP]` 3.1.5.1.7). Tombstones
//! live in memory only; after a restart a repeated Close gets the error,
//! which is the protocol's normal answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::store::Record;

/// How long an ended session is remembered for repeated Close/Cancel. An
/// hour covers any client retry schedule short of a suspended job.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// At most this many tombstones are kept, so a flood of short sessions
/// cannot grow memory without bound; the oldest go first.
const MAX_TOMBSTONES: usize = 10_000;

/// One session: its directory and its record.
#[derive(Debug)]
pub(crate) struct Session {
    /// The session id.
    pub(crate) id: Uuid,
    /// Its directory under `DIR/.bits-sessions`.
    pub(crate) dir: PathBuf,
    /// Its record; lock it (owned, so the guard can travel with the
    /// request) for the whole of a request.
    pub(crate) state: Arc<tokio::sync::Mutex<SessionState>>,
    /// Held (on the blocking pool) while the `state` file is rewritten: a
    /// write left running by a request whose client went away must not
    /// interleave with the next one in `state.tmp`.
    pub(crate) record_writes: Arc<Mutex<()>>,
}

/// What the session mutex guards.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The record as acknowledged. Its `received` may run ahead of the
    /// `state` file's (see `durable`): acknowledged bytes are in the page
    /// cache, made durable in batches.
    pub(crate) record: Record,
    /// What the `state` file is known to say was received: those bytes
    /// are fsynced. (A background batch that ended but was not yet
    /// collected may have made the file say more.)
    /// After a crash the server restarts from here, answers the client's
    /// next Fragment with a 416 naming it, and the client resends the rest.
    pub(crate) durable: u64,
    /// When the last batch was made durable (or started to be).
    pub(crate) synced_at: std::time::Instant,
    /// The batch being made durable in the background, if any (see
    /// `fragment`). Whatever writes the record or deletes the session
    /// waits for it first.
    pub(crate) catch_up: Option<CatchUp>,
    /// A background batch failed: until a sync succeeds again, batches are
    /// synced before their Ack, so a failing disk fails the fragment that
    /// meets it instead of acknowledging bytes it will lose.
    pub(crate) sync_failed: bool,
    /// Set when the session was closed, cancelled or swept while a request
    /// was waiting for the lock; that request must then act as if the
    /// session did not exist.
    pub(crate) gone: bool,
}

/// Acknowledged bytes being made durable in the background: the data
/// file fsynced, then the record written saying `upto` bytes are received.
#[derive(Debug)]
pub(crate) struct CatchUp {
    pub(crate) upto: u64,
    pub(crate) task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The session table.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<Uuid, Arc<Session>>,
    ended: HashMap<Uuid, Instant>,
}

/// Why a session could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManySessions;

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing can be left half-updated by a panic while holding this
        // lock (single map operations), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a session, unless `limit` sessions are already active.
    pub(crate) fn insert(
        &self,
        id: Uuid,
        dir: PathBuf,
        record: Record,
        limit: usize,
    ) -> Result<Arc<Session>, TooManySessions> {
        let mut inner = self.lock();
        if inner.live.len() >= limit {
            return Err(TooManySessions);
        }
        let session = Arc::new(Session {
            id,
            dir,
            state: Arc::new(tokio::sync::Mutex::new(SessionState {
                durable: record.received,
                synced_at: std::time::Instant::now(),
                catch_up: None,
                sync_failed: false,
                record,
                gone: false,
            })),
            record_writes: Arc::new(Mutex::new(())),
        });
        inner.live.insert(id, Arc::clone(&session));
        Ok(session)
    }

    /// The active session with this id.
    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<Session>> {
        self.lock().live.get(&id).cloned()
    }

    /// Whether this session ended by Close or Cancel recently.
    pub(crate) fn recently_ended(&self, id: Uuid) -> bool {
        self.lock()
            .ended
            .get(&id)
            .is_some_and(|at| at.elapsed() < TOMBSTONE_TTL)
    }

    /// Number of active sessions.
    pub(crate) fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Every active session (a snapshot).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.lock().live.values().cloned().collect()
    }

    /// Forgets a session; with `tombstone`, remembers that it ended.
    pub(crate) fn remove(&self, id: Uuid, tombstone: bool) {
        let mut inner = self.lock();
        inner.live.remove(&id);
        if tombstone {
            let now = Instant::now();
            inner
                .ended
                .retain(|_, at| now.duration_since(*at) < TOMBSTONE_TTL);
            if inner.ended.len() >= MAX_TOMBSTONES {
                if let Some(oldest) = inner
                    .ended
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k)
                {
                    inner.ended.remove(&oldest);
                }
            }
            inner.ended.insert(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_the_limit_and_remembers_ended_sessions() {
        let registry = Registry::default();
        let record = Record::new(PathBuf::from("x"), None, true);
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        registry
            .insert(a, PathBuf::from("a"), record.clone(), 1)
            .expect("first");
        assert_eq!(
            registry
                .insert(b, PathBuf::from("b"), record.clone(), 1)
                .map(|_| ()),
            Err(TooManySessions)
        );
        assert_eq!(registry.len(), 1);
        assert!(registry.get(a).is_some());
        registry.remove(a, true);
        assert!(registry.get(a).is_none());
        assert!(registry.recently_ended(a));
        registry
            .insert(b, PathBuf::from("b"), record, 1)
            .expect("room again");
        registry.remove(b, false);
        assert!(!registry.recently_ended(b));
    }
}
