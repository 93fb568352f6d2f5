//! One GET as a download makes it: redirects followed by hand, under the
//! job's redirect policy, and a 401 answered with the job's credential when
//! (and only when) the server asking is the origin it was given for.
//!
//! reqwest's own redirect following is off (see `Engine::new`): it would
//! keep the credential's origin check and the https → http rule out of our
//! hands, and could not report the final URL a policy wants to keep.

use crate::auth::{AuthProblem, Authorizer, Header};
use crate::error::TransferError;
use crate::net::{shown, strip_userinfo};
use crate::route::Route;
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION};
use reqwest::{Method, Response};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Redirects followed for one request, at most (as browsers and curl).
pub(crate) const MAX_REDIRECTS: u32 = 10;

/// Times one request may be answered with a challenge before the answer
/// counts as a refusal (a fresh nonce, a stale one, then a wrong password).
pub(crate) const MAX_CHALLENGES: u32 = 3;

/// What a job allows of redirects (BITS' BG_HTTP_REDIRECT_POLICY_*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redirects {
    /// Redirects end the file in Error (…_DISALLOW).
    pub disallow: bool,
    /// The file's remote name becomes the final URL (…_ALLOW_REPORT).
    pub report: bool,
    /// An https URL may redirect to http (…_ALLOW_HTTPS_TO_HTTP).
    pub https_to_http: bool,
}

/// A response that is not a redirect, and where it came from.
pub(crate) struct Landed {
    pub(crate) response: Response,
    /// The URL that answered (the request's own URL when not redirected).
    pub(crate) url: Url,
}

impl Route {
    /// Sends a GET for `url` with `headers` (and the job's custom headers
    /// while on the file's origin), follows its redirects and answers its
    /// challenges; gives the first other answer, waiting `wait` for each
    /// response head. A 401 that cannot be answered ends in
    /// [`TransferError::Unauthorized`]; one from a server the credential is
    /// not for comes back as it is (the status check makes it an error). A
    /// proxy's 407 is its own error.
    pub(crate) async fn get(
        &self,
        url: &Url,
        headers: &HeaderMap,
        auth: Option<&Authorizer>,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Landed, TransferError> {
        let redirects = self.redirects();
        let mut url = url.clone();
        let mut hops = 0u32;
        let mut challenges = 0u32;
        loop {
            let shown = shown(&url);
            let sent: Option<Header> = auth.and_then(|a| a.header(&Method::GET, &url));
            let mut all = self.headers_for(&url);
            all.extend(headers.clone());
            if let Some(h) = &sent {
                all.insert(AUTHORIZATION, h.value.clone());
            }
            let response = self
                .send(
                    &url,
                    |client| client.get(url.clone()).headers(all.clone()),
                    wait,
                    cancel,
                )
                .await?;
            let status = response.status().as_u16();
            if status == 407 {
                return Err(TransferError::Unauthorized {
                    url: shown,
                    status,
                    problem: AuthProblem::ProxyRefused,
                });
            }
            if status == 401 {
                let Some(auth) = auth.filter(|a| a.covers(&url)) else {
                    return Ok(Landed { response, url });
                };
                challenges += 1;
                let learnt = auth.challenged(response.headers(), sent.as_ref());
                let problem = match learnt {
                    Ok(()) if challenges <= MAX_CHALLENGES => continue,
                    Ok(()) => AuthProblem::Rejected {
                        scheme: auth.scheme_in_use(),
                    },
                    Err(problem) => problem,
                };
                return Err(TransferError::Unauthorized {
                    url: shown,
                    status,
                    problem,
                });
            }
            if !is_redirect(status) {
                if hops > 0 {
                    self.landed(&url);
                }
                return Ok(Landed { response, url });
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok());
            let next = next_hop(&url, status, location, redirects, hops)?;
            hops += 1;
            challenges = 0;
            url = next;
        }
    }
}

/// Statuses that send the client elsewhere with a `Location`.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect answer (`status`, `location`) to a GET of `url` sends
/// the next request, if the policy allows going there; `hops` redirects
/// were followed before this one.
fn next_hop(
    url: &Url,
    status: u16,
    location: Option<&str>,
    redirects: Redirects,
    hops: u32,
) -> Result<Url, TransferError> {
    let shown_from = shown(url);
    let refused = |to: Option<&Url>, why: RedirectRefusal| TransferError::RedirectRefused {
        url: shown_from.clone(),
        to: to.map(shown),
        status,
        why,
    };
    let location = location.ok_or_else(|| refused(None, RedirectRefusal::NoLocation))?;
    let mut next = url
        .join(location)
        .map_err(|_| refused(None, RedirectRefusal::BadLocation))?;
    // Credentials come from the job, never from a server's Location.
    strip_userinfo(&mut next);
    if !matches!(next.scheme(), "http" | "https") {
        return Err(refused(Some(&next), RedirectRefusal::NotHttp));
    }
    if redirects.disallow {
        return Err(refused(Some(&next), RedirectRefusal::Disallowed));
    }
    if url.scheme() == "https" && next.scheme() == "http" && !redirects.https_to_http {
        return Err(refused(Some(&next), RedirectRefusal::HttpsToHttp));
    }
    if hops >= MAX_REDIRECTS {
        return Err(refused(Some(&next), RedirectRefusal::TooMany));
    }
    Ok(next)
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRefusal {
    /// The job's policy forbids redirects.
    Disallowed,
    /// https → http, which would send the rest in the clear.
    HttpsToHttp,
    /// More than [`MAX_REDIRECTS`].
    TooMany,
    /// No `Location`.
    NoLocation,
    /// A `Location` that is not a URL.
    BadLocation,
    /// A `Location` that is not http(s).
    NotHttp,
}

impl RedirectRefusal {
    pub(crate) fn describe(self) -> String {
        match self {
            RedirectRefusal::Disallowed => {
                "the job does not allow redirects (security flag redirect-disallow)".into()
            }
            RedirectRefusal::HttpsToHttp => "it goes from https to http, which the job does not \
                 allow (security flag redirect-allow-https-to-http)"
                .into(),
            RedirectRefusal::TooMany => format!("more than {MAX_REDIRECTS} redirects in a row"),
            RedirectRefusal::NoLocation => "the answer has no Location".into(),
            RedirectRefusal::BadLocation => "its Location is not a URL".into(),
            RedirectRefusal::NotHttp => "it leads to a scheme other than http or https".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(
        from: &str,
        location: Option<&str>,
        redirects: Redirects,
    ) -> Result<String, RedirectRefusal> {
        let url = Url::parse(from).unwrap();
        match next_hop(&url, 302, location, redirects, 0) {
            Ok(next) => Ok(next.to_string()),
            Err(TransferError::RedirectRefused { why, .. }) => Err(why),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn redirects_follow_the_policy() {
        let allow = Redirects::default();
        assert_eq!(
            hop("http://h/a/b", Some("c"), allow),
            Ok("http://h/a/c".into())
        );
        assert_eq!(
            hop("http://h/a", Some("https://g/x"), allow),
            Ok("https://g/x".into())
        );
        assert_eq!(
            hop("https://h/a", Some("http://h/a"), allow),
            Err(RedirectRefusal::HttpsToHttp)
        );
        let downgrade = Redirects {
            https_to_http: true,
            ..allow
        };
        assert_eq!(
            hop("https://h/a", Some("http://h/a"), downgrade),
            Ok("http://h/a".into())
        );
        let disallow = Redirects {
            disallow: true,
            ..allow
        };
        assert_eq!(
            hop("http://h/a", Some("/b"), disallow),
            Err(RedirectRefusal::Disallowed)
        );
        assert_eq!(
            hop("http://h/a", None, allow),
            Err(RedirectRefusal::NoLocation)
        );
        assert_eq!(
            hop("http://h/a", Some("ftp://h/a"), allow),
            Err(RedirectRefusal::NotHttp)
        );
        assert_eq!(
            hop("http://h/a", Some("http://[::1"), allow),
            Err(RedirectRefusal::BadLocation)
        );
        let url = Url::parse("http://h/a").unwrap();
        assert!(matches!(
            next_hop(&url, 301, Some("/b"), allow, MAX_REDIRECTS),
            Err(TransferError::RedirectRefused {
                why: RedirectRefusal::TooMany,
                ..
            })
        ));
    }

    /// The refusal is an Error of the file with BITS' code: a forbidden
    /// redirect reports the redirect's status, others a failed redirect.
    #[test]
    fn refusals_carry_bits_codes() {
        let url = Url::parse("http://h/a").unwrap();
        let disallow = Redirects {
            disallow: true,
            ..Redirects::default()
        };
        let e = next_hop(&url, 301, Some("/b"), disallow, 0).unwrap_err();
        let job = e.job_error();
        assert_eq!(job.code, 0x8019_012D);
        assert!(
            job.description.contains("redirect-disallow"),
            "{}",
            job.description
        );
        let e = next_hop(
            &Url::parse("https://h/a").unwrap(),
            302,
            Some("http://h/a"),
            Redirects::default(),
            0,
        )
        .unwrap_err();
        assert_eq!(e.job_error().code, crate::error::E_REDIRECT_FAILED);
        assert_eq!(e.class(), crate::Class::Fatal);
    }
}
