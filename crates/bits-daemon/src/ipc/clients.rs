//! Who is connected: one ticket per connection, counted per user, so that
//! one user's idle or stuck connections can never lock the door for good.
//! When a user is at the limit, a new connection closes one of that user's
//! idle connections: first those that never said Hello (a client that
//! connects and sends nothing is no `bits` command), the oldest first, then
//! those idle between requests; only when all are busy with requests is the
//! new one refused, with a message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connections one user may hold at once. The daemon's own descriptor limit
/// is raised to the hard limit at start, far above this.
pub const MAX_PER_USER: usize = 64;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
