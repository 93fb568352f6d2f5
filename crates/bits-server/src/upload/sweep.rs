//! Removal of stale sessions (`[MC-BUP]` 3.2.6.1; IIS' cleanup task).
//!
//! A session with no successful packet for the session timeout is deleted
//! with everything in it; a file already stored under its name stays. The
//! sweep runs every `min(timeout / 2, 1 h)`: half the timeout so a session
//! outlives it by at most half again, an hour at most so that a server
//! started with a long timeout still cleans up within the hour after a
//! clock jump. Sessions busy with a request are skipped (they are not
//! stale). Directories in the store that no session owns (a crash between
//! creating a directory and answering) and PUT temporaries are removed once
//! they are as old as the timeout.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::packets::{blocking, remove};
use super::store::{self, PUT_PREFIX};
use super::Uploads;

/// Longest pause between sweeps.
const MAX_PERIOD: Duration = Duration::from_secs(3600);

/// Shortest pause between sweeps, for tiny (test) timeouts.
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// Sweeps until `shutdown` is cancelled.
pub(crate) async fn run(up: Arc<Uploads>, shutdown: CancellationToken) {
    let period = (up.config.session_timeout / 2).clamp(MIN_PERIOD, MAX_PERIOD);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => sweep(&up).await,
        }
    }
}

/// One sweep.
async fn sweep(up: &Uploads) {
    let now = store::now_ms();
    for session in up.registry.all() {
        let Ok(mut guard) = Arc::clone(&session.state).try_lock_owned() else {
            continue; // a request is using it right now
        };
        if guard.gone || !up.expired(guard.record.modified_ms, now) {
            continue;
        }
        match remove(up, &session, &mut guard, false).await {
            Ok(()) => tracing::info!(session = %session.id, "stale upload session removed"),
            Err(e) => {
                tracing::warn!(session = %session.id, error = %e, "cannot remove a stale upload session")
            }
        }
    }
    let live: Vec<_> = up.registry.all().iter().map(|s| s.id).collect();
    let dir = up.store.dir().to_path_buf();
    let timeout = up.config.session_timeout;
    let swept = blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_str().unwrap_or("");
            let owned = store::parse_dir_name(name).is_some_and(|id| live.contains(&id));
            let put_temp = name.starts_with(PUT_PREFIX) && name.ends_with(".tmp");
            if owned || !(put_temp || store::parse_dir_name(name).is_some()) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > timeout);
            if old {
                let path = entry.path();
                let removed = if put_temp {
                    std::fs::remove_file(&path)
                } else {
                    std::fs::remove_dir_all(&path)
                };
                match removed {
                    Ok(()) => tracing::info!(path = %path.display(), "removed a stray upload leftover"),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a stray upload leftover"),
                }
            }
        }
    })
    .await;
    if let Err(e) = swept {
        tracing::warn!(error = %e, "sweeping the upload session directory failed");
    }
}
