//! Where a session's packets go: the job's URL, or the machine of a web
//! farm that holds the session (`BITS-Host-Id`), until its fallback time.

use crate::error::TransferError;
use crate::net::shown;
use bits_core::UploadSession;
use std::time::SystemTime;
use url::Url;

/// Where the session's packets go: the job's URL, with the host replaced by
/// the session's BITS-Host-Id if it has one.
pub(super) fn session_target(url: &Url, session: &UploadSession) -> Url {
    session
        .host_id
        .as_deref()
        .and_then(|h| with_host(url, h))
        .unwrap_or_else(|| url.clone())
}

/// Whether the session's host affinity has passed its fallback time.
pub(super) fn past_fallback(session: &UploadSession) -> bool {
    session.host_id.is_some()
        && session
            .host_fallback_at
            .is_some_and(|at| SystemTime::now() >= at)
}

/// `url` with its host replaced by `host_id` (`host`, `host:port`,
/// `[v6]:port`, with or without an `http://` prefix). Without a port in
/// `host_id` the URL's port is kept (a farm's machines listen where the
/// farm does). `None` if `host_id` is not a plain host.
pub(super) fn with_host(url: &Url, host_id: &str) -> Option<Url> {
    let mut h = host_id.trim();
    for prefix in ["http://", "https://"] {
        if h.len() >= prefix.len() && h[..prefix.len()].eq_ignore_ascii_case(prefix) {
            h = &h[prefix.len()..];
        }
    }
    let h = h.trim_end_matches('/');
    if h.is_empty() || h.contains(['/', '@', '?', '#']) {
        return None;
    }
    // A scheme without a default port, so an explicit ":80" is kept.
    let probe = Url::parse(&format!("bits-host://{h}/")).ok()?;
    let mut out = url.clone();
    out.set_host(Some(probe.host_str()?)).ok()?;
    if let Some(port) = probe.port() {
        out.set_port(Some(port)).ok()?;
    }
    Some(out)
}

pub(super) fn parse_upload_url(url: &str) -> Result<Url, TransferError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        Ok(u) => Err(TransferError::InvalidUploadUrl { url: shown(&u) }),
        Err(_) => Err(TransferError::InvalidUploadUrl {
            // Not a URL, so it cannot be redacted by parts: hide anything
            // that may be user info.
            url: match url.rsplit_once('@') {
                Some((_, rest)) => format!("…@{rest}"),
                None => url.to_string(),
            },
        }),
    }
}
