//! The engine itself: its settings and the one HTTP client every transfer
//! shares. Downloads are in `download`, uploads in `upload`; both are
//! `impl Engine` blocks, so this module depends on neither.

use crate::error::TransferError;
use crate::route::clients::Clients;
use crate::route::proxy::Hop;
use std::sync::Arc;
use std::time::Duration;

/// Default bytes per Fragment packet of an upload: 8 MiB.
///
/// The protocol allows one outstanding packet at a time, so every fragment
/// costs one round trip of idle link (and the server's last write) on top
/// of its transfer time, while a connection cut mid-fragment costs
/// resending the fragment (the server acknowledges whole fragments). 8 MiB
/// balances the two: at 100 Mbit/s it takes ~0.67 s, so a 20 ms round trip
/// wastes ~3%; at 1 Mbit/s a cut resends at most ~67 s of work. On
/// loopback, 1 GiB took 1.36 x `curl -T` with 4 MiB fragments and 1.18 x
/// with 8 MiB (16 MiB: 1.14-1.23, within noise, for twice the memory). It
/// stays below common server request-size limits (IIS allows 30,000,000
/// bytes by default); a running upload holds two fragments (the one sent,
/// the one read ahead).
pub const DEFAULT_UPLOAD_FRAGMENT: u64 = 8 << 20;

/// How often progress is made durable.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Checkpoint at least this often while bytes arrive.
    pub interval: Duration,
    /// ... and at least every this many bytes.
    pub bytes: u64,
}

impl Default for CheckpointPolicy {
    /// Every 5 seconds or 32 MiB: at most that much is downloaded again after
    /// a power loss, while `fdatasync` stays rare enough not to throttle fast
    /// links.
    fn default() -> Self {
        CheckpointPolicy {
            interval: Duration::from_secs(5),
            bytes: 32 << 20,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Checkpoint policy.
    pub checkpoint: CheckpointPolicy,
    /// Give up on a connection that sends nothing for this long, and on a
    /// server that has not sent a complete response head this long after
    /// the request.
    pub read_timeout: Duration,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Bytes per BITS upload Fragment packet; see
    /// [`DEFAULT_UPLOAD_FRAGMENT`] for the trade-off. Values below 1 are
    /// treated as 1.
    pub upload_fragment: u64,
}

impl Default for EngineConfig {
    /// Default checkpoints, a 60 s read timeout, a 30 s connect timeout and
    /// 8 MiB upload fragments.
    fn default() -> Self {
        EngineConfig {
            checkpoint: CheckpointPolicy::default(),
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            upload_fragment: DEFAULT_UPLOAD_FRAGMENT,
        }
    }
}

/// The transfer engine. One per daemon; cheap to share (clones share the
/// HTTP clients and their connection pools).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) clients: Arc<Clients>,
    pub(crate) config: EngineConfig,
}

impl Engine {
    /// Builds an engine. Its HTTP clients (rustls with the system's root
    /// certificates, keep-alive pools, no redirects of their own, no
    /// automatic decompression, one per proxy and TLS configuration) are
    /// made on first use; the direct one is made here, so that a client
    /// that cannot be built at all is reported at once.
    pub fn new(config: EngineConfig) -> Result<Engine, TransferError> {
        let clients = Arc::new(Clients::new(config.clone()));
        let engine = Engine { clients, config };
        let key = engine
            .clients
            .key(&Hop::Direct, None, None, 0, &crate::Identity::own());
        engine.clients.prime(&key)?;
        Ok(engine)
    }

    /// The settings this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
}
