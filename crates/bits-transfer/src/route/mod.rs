//! How one transfer reaches its server: through which proxy (tried in
//! order, the one that last worked first), with which HTTP client (see
//! `clients`: proxy and TLS configuration), with which custom headers.
//!
//! - `proxy` (pure): the proxies for a URL.
//! - `tls`: the TLS configuration, with the checks a job's security flags
//!   loosen.
//! - `clients`: the engine's clients, kept per configuration and rebuilt
//!   when the trust store changes.

pub(crate) mod clients;
pub(crate) mod proxy;
pub(crate) mod tls;

use crate::engine::Engine;
use crate::error::TransferError;
use crate::fetch::Redirects;
use crate::identity::Identity;
use crate::net;
use bits_core::{ConnectionProps, Credential, SecurityFlags};
use clients::Clients;
use proxy::Hop;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use url::{Origin, Url};

/// How a transfer reaches its servers, as the job says.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// Proxies, security flags, extra CA, custom headers.
    pub props: &'a ConnectionProps,
    /// The proxies' credential (sent as Basic authentication to a proxy).
    pub proxy_credential: Option<&'a Credential>,
}

static DIRECT: LazyLock<ConnectionProps> = LazyLock::new(ConnectionProps::default);

impl Default for Connection<'_> {
    /// The proxy environment of nobody (so: directly), system roots, no
    /// flag, no header.
    fn default() -> Self {
        Connection {
            props: &DIRECT,
            proxy_credential: None,
        }
    }
}

/// The route of one transfer (shared by its requests).
pub(crate) struct Route {
    clients: Arc<Clients>,
    props: ConnectionProps,
    proxy_credential: Option<Credential>,
    /// The origin custom headers go to.
    origin: Origin,
    headers: HeaderMap,
    redirects: Redirects,
    /// The proxy (or none) that answered last: tried first next time.
    last: Mutex<Option<Hop>>,
    /// Where the first redirected request ended.
    landed: Mutex<Option<Url>>,
    /// Whose rights the job's files (its CA file) are read with.
    owner: Identity,
}

impl Route {
    /// The route of a transfer of `url`. Fails on custom headers that
    /// cannot be sent (the daemon checks them when a job takes them).
    pub(crate) fn new(
        engine: &Engine,
        c: &Connection<'_>,
        url: &Url,
        owner: &Identity,
    ) -> Result<Route, TransferError> {
        let mut headers = HeaderMap::new();
        for h in &c.props.headers {
            let bad = |why: &str| TransferError::BadHeader {
                name: h.name.clone(),
                why: why.to_string(),
            };
            let name =
                HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad("not a header name"))?;
            let mut value = HeaderValue::from_str(&h.value)
                .map_err(|_| bad("its value is not valid header text"))?;
            // Custom headers often carry tokens: never in hyper's logs.
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let flags = c.props.security_flags;
        Ok(Route {
            clients: engine.clients.clone(),
            props: c.props.clone(),
            proxy_credential: c.proxy_credential.cloned(),
            origin: url.origin(),
            headers,
            redirects: Redirects {
                disallow: flags.has(SecurityFlags::REDIRECT_DISALLOW),
                report: flags.has(SecurityFlags::REDIRECT_ALLOW_REPORT),
                https_to_http: flags.has(SecurityFlags::REDIRECT_ALLOW_HTTPS_TO_HTTP),
            },
            last: Mutex::new(None),
            landed: Mutex::new(None),
            owner: owner.clone(),
        })
    }

    /// The job's redirect policy.
    pub(crate) fn redirects(&self) -> Redirects {
        self.redirects
    }

    /// The custom headers for a request to `url`: the job's, for the origin
    /// they were given for; none elsewhere (they may hold tokens).
    pub(crate) fn headers_for(&self, url: &Url) -> HeaderMap {
        if url.origin() == self.origin {
            self.headers.clone()
        } else {
            HeaderMap::new()
        }
    }

    /// The proxies for `url`, the one that worked last first.
    fn hops(&self, url: &Url) -> Vec<Hop> {
        let mut hops = proxy::hops(&self.props.proxy, url);
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(pos) = last.and_then(|l| hops.iter().position(|h| *h == l)) {
            let hop = hops.remove(pos);
            hops.insert(0, hop);
        }
        hops
    }

    /// Where the pacing probe of a background transfer of `url` measures:
    /// the first proxy if there is one (the path to the origin goes
    /// through it), else the server.
    pub(crate) fn probe_url(&self, url: &Url) -> Url {
        match self.hops(url).into_iter().next() {
            Some(Hop::Proxy(p)) => p,
            _ => url.clone(),
        }
    }

    /// The proxy that answered last, as shown to users (`None`: directly,
    /// or nothing answered yet).
    pub(crate) fn via(&self) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Hop::shown)
    }

    /// The client for try `n` (from 0) of a request to `url`, and its hop;
    /// `None` when there is no `n`th proxy to try.
    pub(crate) async fn client(
        &self,
        url: &Url,
        n: usize,
    ) -> Result<Option<(reqwest::Client, Hop)>, TransferError> {
        let Some(hop) = self.hops(url).into_iter().nth(n) else {
            return Ok(None);
        };
        let tls_flags = self.props.security_flags.bits()
            & !(SecurityFlags::REDIRECT_ALLOW_REPORT
                | SecurityFlags::REDIRECT_DISALLOW
                | SecurityFlags::REDIRECT_ALLOW_HTTPS_TO_HTTP);
        let key = self.clients.key(
            &hop,
            self.proxy_credential.as_ref(),
            self.props.ca_cert.as_deref(),
            tls_flags,
            &self.owner,
        );
        let client = self
            .clients
            .get(&key, self.proxy_credential.as_ref(), &self.owner)
            .await?;
        Ok(Some((client, hop)))
    }

    /// Records where a redirected request ended (the first one only: the
    /// file's URL as a whole went there).
    pub(crate) fn landed(&self, url: &Url) {
        let mut landed = self.landed.lock().unwrap_or_else(|p| p.into_inner());
        if landed.is_none() {
            *landed = Some(url.clone());
        }
    }

    /// The new remote name a redirect-allow-report job takes: the end of
    /// the first redirect, without userinfo.
    pub(crate) fn reported_name(&self) -> Option<String> {
        if !self.redirects.report {
            return None;
        }
        self.landed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(net::without_userinfo)
    }

    /// Records that `hop` answered.
    pub(crate) fn worked(&self, hop: &Hop) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref() != Some(hop) {
            if let Some(shown) = hop.shown() {
                info!(proxy = %shown, "going through this proxy");
            }
            *last = Some(hop.clone());
        }
    }

    /// Whether a failure through `hop` should move on to the next proxy:
    /// the proxy could not be reached (or opened no tunnel), and another is
    /// left.
    pub(crate) fn try_next(&self, hop: &Hop, url: &Url, n: usize, e: &TransferError) -> bool {
        let unreachable = matches!(e, TransferError::Connect { .. });
        let more = self.hops(url).len() > n + 1;
        if unreachable && more && matches!(hop, Hop::Proxy(_)) {
            warn!(proxy = ?hop.shown(), cause = %e, "proxy unreachable; trying the next one");
            return true;
        }
        false
    }

    /// Sends a request to `url`, built by `build` on the client of each
    /// proxy to try, and waits `wait` for its response head.
    pub(crate) async fn send(
        &self,
        url: &Url,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, TransferError> {
        let shown = net::shown(url);
        let mut n = 0;
        loop {
            let Some((client, hop)) = self.client(url, n).await? else {
                unreachable!("hops() is never empty and n only grows while more are left");
            };
            match net::send(build(&client), &shown, wait, cancel).await {
                Ok(response) => {
                    self.worked(&hop);
                    return Ok(response);
                }
                Err(e) if self.try_next(&hop, url, n, &e) => n += 1,
                Err(e) => return Err(e),
            }
        }
    }
}
