//! What every HTTP exchange of the engine shares: URLs as they may be shown,
//! credentials taken out of URLs, requests whose wait for an answer is
//! bounded, and the classification of a failure to get one.

use crate::error::{NetFailure, TransferError};
use bits_core::{Credential, Secret};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Removes `user:password@` from `url`. Setting them fails only for URLs
/// that cannot hold credentials (no host, or cannot-be-a-base), which then
/// hold none: there is nothing left to remove.
pub(crate) fn strip_userinfo(url: &mut Url) {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    debug_assert!(url.username().is_empty() && url.password().is_none());
}

/// A URL for messages and logs: no `user:password@`, and the query string
/// (which in a signed URL is a credential too) replaced by `?…`.
pub(crate) fn shown(url: &Url) -> String {
    let mut url = url.clone();
    strip_userinfo(&mut url);
    let had_query = url.query().is_some();
    url.set_query(None);
    url.set_fragment(None);
    let mut text = url.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

/// The URL without `user:password@`, query kept: for URLs that are stored
/// and fetched later.
pub(crate) fn without_userinfo(url: &Url) -> String {
    let mut url = url.clone();
    strip_userinfo(&mut url);
    url.to_string()
}

/// Splits the userinfo off an http(s) URL: the URL without it, and the
/// credential it held (percent-decoded). Other text is returned as it is.
pub fn split_credential(remote: &str) -> (String, Option<Credential>) {
    // Userinfo ends with '@': without one there is nothing to split, and
    // a job of 100,000 files need not parse each URL twice.
    if !remote.contains('@') {
        return (remote.to_string(), None);
    }
    let Ok(mut url) = Url::parse(remote) else {
        return (remote.to_string(), None);
    };
    if !matches!(url.scheme(), "http" | "https")
        || (url.username().is_empty() && url.password().is_none())
    {
        return (remote.to_string(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credential = Credential {
        user: decode(url.username()),
        password: Secret::new(decode(url.password().unwrap_or(""))),
        scheme: None,
    };
    strip_userinfo(&mut url);
    (url.to_string(), Some(credential))
}

/// Sends `request` and waits for the response head, at most `limit`: a
/// server that accepts and never answers, or trickles its headers, ends in
/// [`TransferError::NoHeaders`]. Cancellation answers `Cancelled` at once.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    shown: &str,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<reqwest::Response, TransferError> {
    let answer = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(TransferError::Cancelled),
        r = tokio::time::timeout(limit, request.send()) => r,
    };
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(request_error(shown, e)),
        Err(_) => Err(TransferError::NoHeaders {
            url: shown.to_string(),
            secs: limit.as_secs_f64().ceil() as u64,
        }),
    }
}

/// Classifies a failure to get response headers.
pub(crate) fn request_error(shown: &str, e: reqwest::Error) -> TransferError {
    let source = e.without_url();
    let url = shown.to_string();
    if chain_mentions(&source, "proxy authorization required") {
        // A proxy's 407 to CONNECT (an https URL through a proxy).
        return TransferError::Unauthorized {
            url,
            status: 407,
            problem: crate::auth::AuthProblem::ProxyRefused,
        };
    }
    if source.is_connect() {
        let kind = NetFailure::of(&source);
        TransferError::Connect { url, kind, source }
    } else {
        let kind = NetFailure::of(&source);
        TransferError::NoResponse { url, kind, source }
    }
}

/// Whether any error in `e`'s source chain says `text`.
fn chain_mentions(e: &(dyn std::error::Error + 'static), text: &str) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string().contains(text) {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `http://user:secret@host/f` showed `secret` in logs and
    /// errors, and signed URLs' query strings reached the log.
    #[test]
    fn shown_urls_carry_no_credentials_or_query() {
        let u = Url::parse("https://alice:s3cret@example.com/a.bin?sig=abc#x").unwrap();
        assert_eq!(shown(&u), "https://example.com/a.bin?…");
        let plain = Url::parse("http://example.com/a").unwrap();
        assert_eq!(shown(&plain), "http://example.com/a");
    }

    #[test]
    fn userinfo_becomes_a_credential() {
        let (url, c) = split_credential("http://al%20ice:p%40ss@h:8080/f?q=1");
        assert_eq!(url, "http://h:8080/f?q=1");
        let c = c.unwrap();
        assert_eq!((c.user.as_str(), c.password.expose()), ("al ice", "p@ss"));
        assert!(!format!("{c:?}").contains("p@ss"));
        assert_eq!(split_credential("http://h/f"), ("http://h/f".into(), None));
        assert_eq!(split_credential("/srv/a"), ("/srv/a".into(), None));
    }
}
