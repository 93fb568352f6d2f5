//! The engine's HTTP clients: one per way of reaching servers (directly or
//! through one proxy with its credential, and one TLS configuration),
//! built on first use and kept, so connections are pooled per way.
//!
//! The system's certificate authorities are read when a client is built,
//! and the files they come from are watched (looked at again at most once
//! a second): when one changes (a CA was installed or removed, a job's
//! `--ca-cert` file was rewritten), every client that trusts it is built
//! again at its next use. So a newly trusted authority works without
//! restarting `bitsd`.
//!
//! Building reads files, so it never happens under the cache's lock; two
//! requests that miss at once may both build, and one result is kept.

use super::proxy::Hop;
use super::tls;
use crate::error::TransferError;
use crate::identity::Identity;
use crate::EngineConfig;
use bits_core::Credential;
use reqwest::header::{self, HeaderMap};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Clients kept at most; past that the cache starts over (each job with
/// its own proxy or CA file makes one).
const MAX_CLIENTS: usize = 64;

/// How often the trust store's files are looked at, at most.
const TRUST_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What tells one client from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) hop: Hop,
    /// A keyed hash of the proxy credential (never the credential itself).
    pub(crate) proxy_auth: Option<u64>,
    pub(crate) ca_cert: Option<PathBuf>,
    /// When the CA file was last changed and its size: a rewritten file
    /// makes another key, so its clients are built again.
    pub(crate) ca_stamp: Option<(SystemTime, u64)>,
    /// Whose rights the CA file was read with: a client trusting a file
    /// one user could read is never another user's.
    pub(crate) ca_owner: Option<u32>,
    /// The TLS bits of the job's security flags.
    pub(crate) tls_flags: u32,
}

/// The files a trust store was read from, with their modification time and
/// size: when this changes, the store is read again.
type TrustStamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

pub(crate) struct Clients {
    config: EngineConfig,
    hasher: std::collections::hash_map::RandomState,
    state: Mutex<State>,
    /// The stamp of each job CA file, by path and reader, and when it was
    /// taken: looked at again at most every [`TRUST_CHECK_INTERVAL`], not
    /// on every request (a job of thousands of small files would stat the
    /// file thousands of times a second).
    ca_stamps: Mutex<HashMap<(PathBuf, u32), (Instant, CaStamp)>>,
}

/// A CA file's modification time and size, if it could be read.
type CaStamp = Option<(SystemTime, u64)>;

struct State {
    clients: HashMap<ClientKey, reqwest::Client>,
    /// The system's authorities and the stamp of their files.
    system: Arc<Vec<CertificateDer<'static>>>,
    stamp: TrustStamp,
    checked: Instant,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    pub(crate) fn new(config: EngineConfig) -> Clients {
        let (system, stamp) = read_system_roots();
        Clients {
            config,
            hasher: Default::default(),
            state: Mutex::new(State {
                clients: HashMap::new(),
                system: Arc::new(system),
                stamp,
                checked: Instant::now(),
            }),
            ca_stamps: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of a client for `hop` with these settings.
    pub(crate) fn key(
        &self,
        hop: &Hop,
        proxy_auth: Option<&Credential>,
        ca_cert: Option<&std::path::Path>,
        tls_flags: u32,
        owner: &Identity,
    ) -> ClientKey {
        let proxy_auth = match hop {
            Hop::Proxy(_) => {
                proxy_auth.map(|c| self.hasher.hash_one((c.user.as_str(), c.password.expose())))
            }
            Hop::Direct => None,
        };
        let ca_stamp = ca_cert.and_then(|p| self.ca_stamp(p, owner));
        ClientKey {
            hop: hop.clone(),
            proxy_auth,
            ca_cert: ca_cert.map(PathBuf::from),
            ca_stamp,
            ca_owner: ca_cert.map(|_| owner.uid()),
            tls_flags,
        }
    }

    /// The stamp of the CA file `path` as `owner` sees it, taken again
    /// once it is [`TRUST_CHECK_INTERVAL`] old: a rewritten file is seen
    /// within that time. The stat is a single short call, done without
    /// holding the lock.
    fn ca_stamp(&self, path: &std::path::Path, owner: &Identity) -> CaStamp {
        let key = (path.to_path_buf(), owner.uid());
        let lock = || self.ca_stamps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((taken, stamp)) = lock().get(&key) {
            if taken.elapsed() < TRUST_CHECK_INTERVAL {
                return *stamp;
            }
        }
        let stamp = owner
            .run(|| std::fs::metadata(path))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut stamps = lock();
        if stamps.len() >= MAX_CLIENTS {
            stamps.clear();
        }
        stamps.insert(key, (Instant::now(), stamp));
        stamp
    }

    /// The client for `key`, built if needed (`proxy_auth` is the
    /// credential `key` was made with; a CA file is read with `owner`'s
    /// rights).
    pub(crate) async fn get(
        &self,
        key: &ClientKey,
        proxy_auth: Option<&Credential>,
        owner: &Identity,
    ) -> Result<reqwest::Client, TransferError> {
        self.refresh_trust().await;
        let system = {
            let state = self.lock();
            if let Some(client) = state.clients.get(key) {
                return Ok(client.clone());
            }
            state.system.clone()
        };
        let (k, auth, config) = (key.clone(), proxy_auth.cloned(), self.config.clone());
        let owner = owner.clone();
        let client =
            tokio::task::spawn_blocking(move || build(&config, &system, &k, auth.as_ref(), &owner))
                .await
                .map_err(|e| TransferError::CaCert {
                    problem: format!("building an HTTP client failed: {e}"),
                })??;
        let mut state = self.lock();
        if state.clients.len() >= MAX_CLIENTS {
            state.clients.clear();
        }
        Ok(state.clients.entry(key.clone()).or_insert(client).clone())
    }

    /// Builds the client for `key` (without a proxy credential) now, on
    /// this thread.
    pub(crate) fn prime(&self, key: &ClientKey) -> Result<(), TransferError> {
        let system = self.lock().system.clone();
        let client = build(&self.config, &system, key, None, &Identity::own())?;
        self.lock().clients.insert(key.clone(), client);
        Ok(())
    }

    /// Looks at the trust store's files, at most every
    /// [`TRUST_CHECK_INTERVAL`]; when one changed, reads the store again
    /// and drops every client.
    async fn refresh_trust(&self) {
        let seen = {
            let mut state = self.lock();
            if state.checked.elapsed() < TRUST_CHECK_INTERVAL {
                return;
            }
            state.checked = Instant::now();
            state.stamp.clone()
        };
        let changed = tokio::task::spawn_blocking(move || stamp(&trust_files()) != seen)
            .await
            .unwrap_or(false);
        if !changed {
            return;
        }
        let Ok((system, stamp)) = tokio::task::spawn_blocking(read_system_roots).await else {
            return;
        };
        tracing::info!(
            authorities = system.len(),
            "the system's certificate authorities changed; read them again"
        );
        let mut state = self.lock();
        state.system = Arc::new(system);
        state.stamp = stamp;
        state.clients.clear();
    }
}

/// The files the system's authorities come from, as
/// `rustls-native-certs` reads them: `SSL_CERT_FILE` and `SSL_CERT_DIR`
/// when set, else the usual bundle paths.
fn trust_files() -> Vec<PathBuf> {
    let from_env: Vec<PathBuf> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter_map(std::env::var_os)
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
        .collect();
    if !from_env.is_empty() {
        return from_env;
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/etc/ssl/certs",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

fn stamp(paths: &[PathBuf]) -> TrustStamp {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok();
            let seen = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
            (p.clone(), seen)
        })
        .collect()
}

/// The system's authorities (whatever could be read: a missing store only
/// matters to https jobs, which then say the issuer is unknown) and the
/// stamp of their files, taken before reading so that a change during the
/// read is seen next time.
fn read_system_roots() -> (Vec<CertificateDer<'static>>, TrustStamp) {
    let files = trust_files();
    let before = stamp(&files);
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(cause = %e, "a system certificate could not be read");
    }
    (found.certs, before)
}

/// One client: the engine's settings, this TLS configuration, this hop.
fn build(
    config: &EngineConfig,
    system: &[CertificateDer<'static>],
    key: &ClientKey,
    proxy_auth: Option<&Credential>,
    owner: &Identity,
) -> Result<reqwest::Client, TransferError> {
    let flags = bits_core::SecurityFlags::from_bits(key.tls_flags);
    let extra = match &key.ca_cert {
        // With the owner's rights: a file the owner cannot read is trusted
        // for nobody.
        Some(path) => owner
            .run(|| Ok(tls::read_ca(path)))
            .map_err(|e| TransferError::CaCert {
                problem: format!("cannot read {}: {e}", path.display()),
            })?
            .map_err(|p| TransferError::CaCert { problem: p.0 })?,
        None => Vec::new(),
    };
    let tls = tls::client_config(system, extra, flags);
    let mut headers = HeaderMap::new();
    // Without Accept-Encoding a server may pick any coding (RFC 9110
    // §12.5.3). The file is stored as sent and its length and ranges must
    // describe the file itself, so ask for identity; a server that codes
    // anyway is refused (see `version`).
    headers.insert(
        header::ACCEPT_ENCODING,
        header::HeaderValue::from_static("identity"),
    );
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .default_headers(headers)
        .user_agent(concat!("bits/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        // Enough idle connections for every file and range a job moves at
        // once: fewer, and each burst of small files would close some and
        // open new ones (hundreds per thousand files).
        .pool_max_idle_per_host(32)
        .tcp_keepalive(Duration::from_secs(60))
        .tcp_nodelay(true)
        // Redirects are followed by hand (see `fetch`), under each job's
        // policy, with credentials kept to their origin.
        .redirect(reqwest::redirect::Policy::none())
        // Never the daemon's own proxy environment: the job's hop only.
        .no_proxy();
    if let Hop::Proxy(url) = &key.hop {
        let mut proxy =
            reqwest::Proxy::all(url.as_str()).map_err(|source| TransferError::Client { source })?;
        if let Some(c) = proxy_auth {
            proxy = proxy.basic_auth(&c.user, c.password.expose());
        }
        builder = builder.proxy(proxy);
    }
    // No reqwest timeouts beyond connecting: the wait for a response head
    // is bounded in `net::send`, and stalls of a body are detected where it
    // is read, so that each becomes a precise error after the bytes
    // received so far are checkpointed.
    builder
        .build()
        .map_err(|source| TransferError::Client { source })
}
