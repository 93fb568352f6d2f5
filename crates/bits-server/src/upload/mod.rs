//! Uploads: the BITS Upload Protocol server (the role of IIS' BITS server
//! extension), its upload-reply back-end client, and plain `PUT`.
//!
//! # The protocol, as this server speaks it
//!
//! Every packet is a `BITS_POST` to the upload's URL; the URL path names the
//! destination below the served directory. Sessions are not tied to a
//! connection: a client may send each packet on a new one, and may come
//! back after the server restarted.
//!
//! * **Ping** → 200 Ack.
//! * **Create-Session** → our protocol GUID must be offered (else 400
//!   `E_INVALIDARG`); the destination is checked (module `target`: 400, 403,
//!   404, 409); at most [`UploadConfig::max_sessions`] sessions (else 503);
//!   the session directory is created durably; 200 Ack with `BITS-Protocol`,
//!   `BITS-Session-Id` (`{GUID}`), `BITS-Host-Id` (+ fallback timeout) when
//!   configured, `Accept-Encoding: Identity`. 200 rather than 201 because
//!   `[MC-BUP]` allows `BITS-Protocol` only with 200, and IIS sends 200.
//! * **Fragment** → bytes are taken in order from 0: a fragment starting
//!   after the bytes received is a gap, 416 with
//!   `BITS-Received-Content-Range`; one overlapping them only contributes its
//!   new bytes; the total must not change; an upload over
//!   [`UploadConfig::max_upload_size`] is 413 `BG_E_TOO_LARGE`. New bytes are
//!   written and acknowledged (the Ack's `BITS-Received-Content-Range` is
//!   the new offset), and made durable in batches (see `fragment`): synced,
//!   then recorded, always before the last byte's Ack. When the last byte arrives the upload is finished:
//!   with a notification configured the server application is told (and its
//!   reply URL goes into this Ack's `BITS-Reply-URL`); then, unless the
//!   application kept it, the file is renamed into place atomically. A
//!   repeated last fragment (its Ack was lost) gets the same Ack again.
//! * **Close-Session** → finishes a complete upload if that has not happened
//!   (e.g. it failed on the last fragment), then deletes the session; an
//!   incomplete upload is discarded (no partial uploads). 200 Ack.
//! * **Cancel-Session** → deletes the session and everything in it; a file
//!   already renamed into place stays. 200 Ack.
//! * An unknown or expired session is 500 `BG_E_SESSION_NOT_FOUND`, except
//!   that a Close or Cancel repeated shortly after the session ended is
//!   answered 200 again (see module `sessions`).
//!
//! Sessions idle for [`UploadConfig::session_timeout`] are deleted by a
//! sweeper (and on access). Failure statuses and codes are listed in module
//! `ack`.
//!
//! # Layout
//!
//! * `packets`: dispatch of `BITS_POST`, and Ping, Create-Session,
//!   Close-Session, Cancel-Session;
//! * `fragment`: Fragment, and finishing a complete upload;
//! * `ack`: Ack responses and the failure → status/code mapping;
//! * `target`: confining destinations to the root, and committing files;
//! * `store`: the on-disk session format and crash recovery;
//! * `sessions`: the in-memory session table;
//! * `notify`: the upload-reply back-end client;
//! * `reply`: `GET` of a stored reply;
//! * `put`: plain `PUT` uploads;
//! * `sweep`: removal of stale sessions.

mod ack;
mod fragment;
mod notify;
mod packets;
mod put;
mod reply;
mod sessions;
mod store;
mod sweep;
mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::ServeError;

pub(crate) use packets::bits_post;
pub(crate) use put::put;
pub(crate) use reply::respond as reply;
pub(crate) use sweep::run as sweep;

/// Name of the session store below the served directory. Hidden from `GET`
/// and listings, and never an upload target.
pub(crate) const SESSIONS_DIR: &str = ".bits-sessions";

/// Longest URL the protocol handles (notification and reply URLs), IIS'
/// limit.
pub(crate) const MAX_URL_LEN: usize = 2200;

/// Longest `BITS-Host-Id` IIS accepts (`BITSHostId`).
const MAX_HOST_ID_LEN: usize = 300;

/// How long a client may pause in the middle of a request body before the
/// request is abandoned. Without it a half-open connection would hold its
/// session's lock (and block the client's retry on a new connection)
/// forever.
pub(crate) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Upload settings (IIS' BITS server extension properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// Largest upload accepted, in bytes (`BITSMaximumUploadSize`); `None`
    /// for no limit. Larger uploads get 413 with `BG_E_TOO_LARGE` at their
    /// first fragment.
    pub max_upload_size: Option<u64>,
    /// Whether an upload may replace an existing file
    /// (`BITSAllowOverwrites`); otherwise Create-Session answers 409.
    pub allow_overwrite: bool,
    /// A session with no successful packet for this long is deleted
    /// (`BITSSessionTimeout`, default 14 days). The sweeper runs every
    /// `min(session_timeout / 2, 1 h)`.
    pub session_timeout: Duration,
    /// Most sessions open at once (`BITSNumberOfSessionsLimit`, default 50;
    /// at least 1). Create-Session beyond it gets 503 with `Retry-After`.
    pub max_sessions: usize,
    /// Web-farm affinity: sent as `BITS-Host-Id` (`BITSHostId`); clients
    /// send every later packet of the session to this host.
    pub host_id: Option<String>,
    /// Seconds after which a client that cannot reach `host_id` goes back to
    /// the original host (`BITSHostIdFallbackTimeout`); only sent with
    /// `host_id`.
    pub host_id_fallback_timeout: Option<u64>,
    /// Upload-reply: the server application to hand completed uploads to.
    pub notify: Option<Notify>,
}

impl UploadConfig {
    /// `BITSSessionTimeout`'s default: 14 days.
    pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(14 * 24 * 3600);
    /// `BITSNumberOfSessionsLimit`'s default.
    pub const DEFAULT_MAX_SESSIONS: usize = 50;
}

impl Default for UploadConfig {
    /// IIS' defaults: no size limit, no overwriting, 14-day sessions, 50
    /// sessions, no host id, no notification.
    fn default() -> Self {
        Self {
            max_upload_size: None,
            allow_overwrite: false,
            session_timeout: Self::DEFAULT_SESSION_TIMEOUT,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            host_id: None,
            host_id_fallback_timeout: None,
            notify: None,
        }
    }
}

/// Where completed uploads are announced (upload-reply;
/// `BITSServerNotificationURL` and `BITSServerNotificationType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Absolute `http://` URL of the server application (at most 2,200
    /// characters). The upload URL's query string is appended to it.
    pub url: String,
    /// How the upload is handed over.
    pub kind: NotifyKind,
}

/// How a completed upload is handed to the server application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// Type 2: the file is the request body; the reply is the response body.
    File,
    /// Type 1: the request names the file's path
    /// (`BITS-Request-DataFile-Name`) and where to write the reply
    /// (`BITS-Response-DataFile-Name`); the application needs access to the
    /// session directory.
    Location,
}

/// The upload side of the server, shared by all connections.
#[derive(Debug)]
pub(crate) struct Uploads {
    /// The settings.
    config: UploadConfig,
    /// Canonical served directory.
    root: PathBuf,
    /// `root/.bits-sessions`.
    store: store::Store,
    /// Active sessions.
    registry: sessions::Registry,
    /// The back-end client, when upload-reply is configured.
    notifier: Option<notify::Notifier>,
}

impl Uploads {
    /// Checks the settings, opens the session store below `root` (which
    /// must be canonical) and loads the sessions a previous run left.
    /// Blocking.
    pub(crate) fn open(root: &Path, config: UploadConfig) -> Result<Self, ServeError> {
        let invalid = |setting, reason| ServeError::InvalidUploadConfig { setting, reason };
        if config.session_timeout.is_zero() {
            return Err(invalid("session_timeout", "must be positive"));
        }
        if config.max_sessions == 0 {
            return Err(invalid("max_sessions", "must be at least 1"));
        }
        if let Some(host) = &config.host_id {
            if host.is_empty()
                || host.len() > MAX_HOST_ID_LEN
                || hyper::header::HeaderValue::from_str(host).is_err()
            {
                return Err(invalid(
                    "host_id",
                    "must be 1 to 300 characters of header text",
                ));
            }
        }
        let notifier = config
            .notify
            .as_ref()
            .map(|n| notify::Notifier::new(&n.url, n.kind))
            .transpose()
            .map_err(|reason| invalid("notify.url", reason))?;

        let dir = root.join(SESSIONS_DIR);
        let store_error = |source| ServeError::SessionStore {
            path: dir.clone(),
            source,
        };
        let store = store::Store::open(dir.clone()).map_err(store_error)?;
        let registry = sessions::Registry::default();
        let loaded = store.load_all().map_err(store_error)?;
        let count = loaded.len();
        for session in loaded {
            // Sessions on disk are kept even beyond `max_sessions`: they
            // were accepted, and the limit only applies to new ones.
            let dir = store.session_dir(session.id);
            let _ = registry.insert(session.id, dir, session.record, usize::MAX);
        }
        if count > 0 {
            tracing::info!(sessions = count, "resumed upload sessions");
        }
        Ok(Self {
            config,
            root: root.to_path_buf(),
            store,
            registry,
            notifier,
        })
    }

    /// Whether a session idle since `modified_ms` has expired at `now_ms`.
    fn expired(&self, modified_ms: u64, now_ms: u64) -> bool {
        let timeout = u64::try_from(self.config.session_timeout.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(modified_ms) > timeout
    }
}

/// Reads and discards a request body the answer does not need, so the
/// connection stays usable for the client's next packet (closing it with
/// unread data could make the kernel reset it before the client reads our
/// Ack). Gives up after `limit` bytes or an idle pause.
pub(crate) async fn drain(mut body: Incoming, limit: u64) {
    let mut seen = 0u64;
    while seen <= limit {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                }
            }
            _ => return,
        }
    }
}

/// Bodies up to this size are drained before an error answer; larger ones
/// are not worth reading just to be polite (the connection is closed
/// instead). Windows clients send fragments of at most 13 MB.
pub(crate) const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
