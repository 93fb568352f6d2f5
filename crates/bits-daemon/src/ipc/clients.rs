//! Who is connected: one ticket per connection, counted per user, so that
//! one user's idle or stuck connections can never lock the door for good.
//! When a user is at the limit, a new connection closes one of that user's
//! idle connections: first those that never said Hello (a client that
//! connects and sends nothing is no `bits` command), the oldest first, then
//! those idle between requests; only when all are busy with requests is the
//! new one refused, with a message.
//!
//! In the system daemon, one user's requests are also worked on at most
//! [`REQUESTS_PER_USER`] at a time: a user who floods the daemon with
//! requests waits for their own, while another user's are taken at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connections one user may hold at once. The daemon's own descriptor limit
/// is raised to the hard limit at start, far above this.
pub const MAX_PER_USER: usize = 64;

/// Requests of one user the system daemon works on at once.
pub const REQUESTS_PER_USER: usize = 4;

/// One connection.
#[derive(Debug)]
struct Client {
    uid: u32,
    busy: bool,
    /// Whether it has said Hello.
    greeted: bool,
    since: Instant,
    kick: CancellationToken,
}

/// The connections.
#[derive(Debug, Default)]
pub struct Clients {
    inner: Mutex<HashMap<u64, Client>>,
    next: AtomicU64,
    /// Per user: the requests being worked on.
    turns: Mutex<HashMap<u32, Arc<tokio::sync::Semaphore>>>,
}

/// A connection's place.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    kick: CancellationToken,
}

impl Ticket {
    /// Completes when the connection must close to make room.
    pub async fn kicked(&self) {
        self.kick.cancelled().await
    }
}

/// Whether a new connection may stay.
pub enum Admission {
    Admitted(Arc<Ticket>),
    /// The user's connections are all busy with requests.
    Full(usize),
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection of `uid`, closing that user's longest-idle
    /// connection if the user is at [`MAX_PER_USER`].
    pub fn admit(&self, uid: u32) -> Admission {
        let mut clients = self.lock();
        let mine = clients.values().filter(|c| c.uid == uid).count();
        if mine >= MAX_PER_USER {
            let idlest = clients
                .iter()
                .filter(|(_, c)| c.uid == uid && !c.busy)
                .min_by_key(|(_, c)| (c.greeted, c.since))
                .map(|(id, _)| *id);
            match idlest.and_then(|id| clients.remove(&id)) {
                Some(old) => old.kick.cancel(),
                None => return Admission::Full(MAX_PER_USER),
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let kick = CancellationToken::new();
        clients.insert(
            id,
            Client {
                uid,
                busy: false,
                greeted: false,
                since: Instant::now(),
                kick: kick.clone(),
            },
        );
        Admission::Admitted(Arc::new(Ticket { id, kick }))
    }

    /// Marks the connection as busy with a request (not to be closed) or
    /// idle again.
    pub fn busy(&self, ticket: &Ticket, busy: bool) {
        if let Some(c) = self.lock().get_mut(&ticket.id) {
            c.busy = busy;
            c.since = Instant::now();
        }
    }

    /// The connection has said Hello: a real client.
    pub fn greeted(&self, ticket: &Ticket) {
        if let Some(c) = self.lock().get_mut(&ticket.id) {
            c.greeted = true;
        }
    }

    /// The connection has closed.
    pub fn leave(&self, ticket: &Ticket) {
        self.lock().remove(&ticket.id);
    }

    /// Waits for `uid`'s turn to have a request worked on (one of
    /// [`REQUESTS_PER_USER`]); the turn ends when the permit is dropped.
    pub async fn turn(&self, uid: u32) -> tokio::sync::OwnedSemaphorePermit {
        let turns = {
            let mut all = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            // Users without a request in progress are forgotten.
            all.retain(|_, s| s.available_permits() < REQUESTS_PER_USER);
            all.entry(uid)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(REQUESTS_PER_USER)))
                .clone()
        };
        turns
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_flooding_the_daemon_waits_for_their_own_turns_only() {
        let clients = Clients::default();
        let mut held = Vec::new();
        for _ in 0..REQUESTS_PER_USER {
            held.push(clients.turn(7).await);
        }
        let wait = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, clients.turn(7)).await.is_err(),
            "a fifth request of uid 7 waits"
        );
        assert!(
            tokio::time::timeout(wait, clients.turn(8)).await.is_ok(),
            "uid 8 is served at once"
        );
        held.pop();
        assert!(tokio::time::timeout(wait, clients.turn(7)).await.is_ok());
    }

    #[test]
    fn the_idlest_connection_makes_room_and_busy_ones_stay() {
        let clients = Clients::default();
        let tickets: Vec<_> = (0..MAX_PER_USER)
            .map(|_| match clients.admit(7) {
                Admission::Admitted(t) => t,
                Admission::Full(_) => panic!("room for {MAX_PER_USER}"),
            })
            .collect();
        // Another user is not affected.
        assert!(matches!(clients.admit(8), Admission::Admitted(_)));
        for t in &tickets[1..] {
            clients.busy(t, true);
        }
        assert!(matches!(clients.admit(7), Admission::Admitted(_)));
        assert!(tickets[0].kick.is_cancelled(), "the idle one was closed");
        clients.busy(&tickets[1], true);
        // Now every connection of uid 7 but the newest is busy.
        let newest_idle = matches!(clients.admit(7), Admission::Admitted(_));
        assert!(newest_idle, "the newest idle connection made room");
        for t in &tickets[1..] {
            assert!(!t.kick.is_cancelled());
        }
    }
}
