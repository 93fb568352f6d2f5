//! Accept loop, per-connection tasks, the upload session sweeper and
//! graceful shutdown.
//!
//! Every accepted TCP connection gets its own task running hyper's HTTP/1.1
//! connection driver (keep-alive on, so download clients can reuse
//! connections). Response header names are written in title case
//! (`Bits-Packet-Type`, `Content-Length`) rather than hyper's lower case:
//! both are correct HTTP, but some BITS peers look headers up
//! case-sensitively, and the conventional spelling is the one they expect.
//!
//! When the shutdown token is cancelled the listener is closed at once,
//! every connection is asked to finish its current response and close, and
//! after [`SHUTDOWN_GRACE`] whatever is still running is aborted: a
//! multi-GiB transfer must not keep `bits serve` alive forever after Ctrl-C.
//! The upload session sweeper stops with it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::body::BufferPool;
use crate::upload::{self, Uploads};
use crate::{handler, ServeConfig, ServeError};

/// How long in-flight requests may run on after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a client may take to send a request head, which also bounds how
/// long an idle keep-alive connection is kept open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause after an `accept` failure such as running out of file descriptors,
/// so that the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What every request handler can see. Shared by all connections.
#[derive(Debug)]
pub(crate) struct State {
    /// Canonical (absolute, symlink-free) form of the published directory;
    /// resolved request paths must stay below it.
    pub(crate) root: std::path::PathBuf,
    /// Read buffers recycled across responses.
    pub(crate) pool: Arc<BufferPool>,
    /// The upload side; `None` when uploads are off.
    pub(crate) uploads: Option<Arc<Uploads>>,
}

/// Serves `config.root` on `listener` until `shutdown` is cancelled; then stops accepting, lets in-flight requests finish (bounded, e.g. 5 s) and returns.
///
/// The root is checked (and canonicalized) once up front, so a typo in the
/// directory is reported immediately rather than as a stream of 404s. With
/// uploads on, the upload settings are checked and the session store
/// (`DIR/.bits-sessions`) is opened and its sessions resumed before the
/// first connection is accepted.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let root = canonical_root(&config.root).await?;
    let uploads = match config.upload {
        None => None,
        Some(upload_config) => {
            let root = root.clone();
            let opened = tokio::task::spawn_blocking(move || Uploads::open(&root, upload_config))
                .await
                .map_err(|e| ServeError::SessionStore {
                    path: config.root.join(upload::SESSIONS_DIR),
                    source: std::io::Error::other(e),
                })??;
            Some(Arc::new(opened))
        }
    };
    let sweeper = uploads
        .as_ref()
        .map(|up| tokio::spawn(upload::sweep(Arc::clone(up), shutdown.child_token())));
    let state = Arc::new(State {
        root,
        pool: Arc::new(BufferPool::default()),
        uploads,
    });
    match listener.local_addr() {
        Ok(addr) => tracing::info!(root = %state.root.display(), %addr, "serving"),
        Err(_) => tracing::info!(root = %state.root.display(), "serving"),
    }

    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Prefer shutdown over new work once it has been requested.
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(
                        stream,
                        peer,
                        Arc::clone(&state),
                        shutdown.clone(),
                    ));
                }
                Err(err) => {
                    // Accept errors concern one pending connection (reset
                    // before we got to it) or are temporary (EMFILE); neither
                    // is a reason to stop serving everyone else.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without
            // bound on a long-running server.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
        }
    }

    // Closing the listening socket makes new connection attempts fail fast
    // instead of queueing in the backlog of a server that is going away.
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down; waiting for in-flight requests"
    );
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still running after {SHUTDOWN_GRACE:?}; aborting them"
        );
        connections.shutdown().await;
    }
    if let Some(sweeper) = sweeper {
        // Its token is a child of `shutdown`, so it is already stopping.
        let _ = sweeper.await;
    }
    Ok(())
}

/// Canonicalizes the published directory and checks that it is one.
async fn canonical_root(root: &Path) -> Result<std::path::PathBuf, ServeError> {
    let unavailable = |source| ServeError::RootUnavailable {
        root: root.to_path_buf(),
        source,
    };
    let canonical = tokio::fs::canonicalize(root).await.map_err(unavailable)?;
    let meta = tokio::fs::metadata(&canonical).await.map_err(unavailable)?;
    if !meta.is_dir() {
        return Err(ServeError::RootNotADirectory {
            root: root.to_path_buf(),
        });
    }
    Ok(canonical)
}

/// Logs a connection task that panicked; normal completions are silent.
fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        if err.is_panic() {
            tracing::error!(error = %err, "connection task panicked");
        }
    }
}

/// Runs HTTP/1.1 on one accepted connection until the client goes away, the
/// connection idles out, or shutdown is requested.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    // Responses are written in few large writes; Nagle would only delay the
    // tail of small responses (HEAD, 304, errors) on a kept-alive connection.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %err, "could not set TCP_NODELAY");
    }
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handler::handle(req, &state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));

    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            // Finish the response in progress (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        // Clients hanging up mid-download are routine for a download server.
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}
