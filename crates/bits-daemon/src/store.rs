//! The job store on a thread of its own. Every read and write of SQLite
//! happens there, one after another in the order asked (so a file's
//! checkpoints and its completion are saved in order), and callers await
//! the result without holding any lock: a slow `fsync` of the database
//! delays only those who need that save, never a transfer's data path or a
//! client's read.

use bits_store::{Store, StoreError};
use std::sync::mpsc;
use tokio::sync::oneshot;

type Work = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle on the store thread; cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Work>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

/// Why a call did not run: the store thread is gone (it panicked, or the
/// daemon is stopping).
fn gone() -> StoreError {
    StoreError::Unavailable
}

impl StoreHandle {
    /// Moves `store` to a thread of its own; it runs until every handle is
    /// dropped.
    pub fn start(store: Store) -> std::io::Result<(StoreHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Work>();
        let thread = std::thread::Builder::new()
            .name("bits-store".into())
            .spawn(move || {
                let mut store = store;
                while let Ok(work) = rx.recv() {
                    work(&mut store);
                }
            })?;
        Ok((StoreHandle { tx }, thread))
    }

    /// Runs `f` on the store thread and waits for its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |store| {
            // The caller may have stopped waiting; the write happened anyway.
            let _ = reply.send(f(store));
        });
        self.tx.send(work).map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}
