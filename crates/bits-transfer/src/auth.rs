//! Answers a server's authentication challenge with a job's credential:
//! Basic (RFC 7617) or Digest (RFC 7616, SHA-256 or MD5), chosen from what
//! the server's `WWW-Authenticate` offers unless the job names a scheme.
//!
//! Nothing is sent before a server asks: the first request to an origin
//! goes without `Authorization`, and a credential is only ever answered to
//! the origin (scheme, host, port) it was given for, so a redirect to
//! another server never sees it. Once an origin has accepted an answer, the
//! same answer (Basic) or the same nonce with the next count (Digest) goes
//! with later requests up front, so a file in ranges does not pay a 401 per
//! range.

use bits_core::{AuthScheme, Credential};
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use url::{Origin, Url};

/// Challenges read from one response, at most: a server cannot make us
/// parse an unbounded list.
const MAX_CHALLENGES: usize = 16;

/// Why a 401 could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// The server refused the credential it had just challenged for: the
    /// user name or password is wrong (or not allowed this file).
    Rejected {
        /// The scheme that was answered.
        scheme: AuthScheme,
    },
    /// The server offers only schemes bits cannot answer.
    Unsupported {
        /// The schemes offered, as the server named them.
        offered: Vec<String>,
    },
    /// The job allows one scheme and the server does not offer it.
    NotOffered {
        /// The job's scheme.
        wanted: AuthScheme,
        /// The schemes offered, as the server named them.
        offered: Vec<String>,
    },
    /// The server asks for credentials but sent no usable challenge.
    NoChallenge,
    /// A proxy refused the request (407): the job's proxy credential is
    /// wrong or missing, or the proxy wants a scheme other than Basic.
    ProxyRefused,
    /// A Digest challenge that cannot be answered (no nonce, an unknown
    /// algorithm or quality of protection).
    BadChallenge(String),
}

impl fmt::Display for AuthProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        match self {
            AuthProblem::Rejected { scheme } => write!(
                f,
                "the server refused the job's user name and password ({} authentication)",
                name(*scheme)
            ),
            AuthProblem::Unsupported { offered } => write!(
                f,
                "the server accepts only {} authentication, which bits does not support \
                 (it answers Basic and Digest)",
                list(offered)
            ),
            AuthProblem::NotOffered { wanted, offered } => write!(
                f,
                "the job allows only {} authentication and the server offers {}",
                name(*wanted),
                list(offered)
            ),
            AuthProblem::NoChallenge => write!(
                f,
                "the server asks for credentials without saying how (no WWW-Authenticate)"
            ),
            AuthProblem::ProxyRefused => write!(
                f,
                "the proxy refused the job's proxy credential (or the job has none; give it \
                 with --proxy-credential; bits answers proxies with Basic)"
            ),
            AuthProblem::BadChallenge(why) => {
                write!(f, "the server's Digest challenge cannot be answered: {why}")
            }
        }
    }
}

fn name(scheme: AuthScheme) -> &'static str {
    match scheme {
        AuthScheme::Basic => "Basic",
        AuthScheme::Digest => "Digest",
        AuthScheme::Ntlm => "NTLM",
        AuthScheme::Negotiate => "Negotiate",
    }
}

/// One challenge of a `WWW-Authenticate` value: its scheme and the whole
/// text (scheme included), as Digest's parser wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) text: String,
}

/// Splits the values of `WWW-Authenticate` into challenges. One value may
/// hold several (`Basic realm="a", Digest realm="b", nonce="n"`): a new one
/// starts at a comma-separated element that is a token followed by a space
/// or by nothing, outside quotes. Never panics; gives at most
/// [`MAX_CHALLENGES`].
pub(crate) fn challenges(
    headers: &HeaderMap,
    name: &reqwest::header::HeaderName,
) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        for element in split_outside_quotes(value) {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            let head = element
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or("");
            let starts_challenge = !head.contains('=') && head.chars().all(is_token_char);
            if starts_challenge {
                if out.len() == MAX_CHALLENGES {
                    return out;
                }
                out.push(Challenge {
                    scheme: head.to_string(),
                    text: element.to_string(),
                });
            } else if let Some(last) = out.last_mut() {
                last.text.push_str(", ");
                last.text.push_str(element);
            }
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Splits at commas that are not inside a quoted string (with `\` escapes).
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// What an origin was last answered with.
enum Answer {
    Basic(HeaderValue),
    Digest(Box<digest_auth::WwwAuthenticateHeader>),
}

/// An `Authorization` value for one request, and whether it answers a
/// challenge for the first time (a refusal of that one means the
/// credential is wrong; a refusal of a reused nonce may only mean the
/// server wants a fresh one).
pub(crate) struct Header {
    pub(crate) value: HeaderValue,
    pub(crate) fresh: bool,
}

/// Answers challenges of one origin with one credential. Shared by the
/// requests of a file (its ranges run side by side), so the state is
/// behind a mutex held only to compute a header.
pub(crate) struct Authorizer {
    credential: Credential,
    origin: Origin,
    state: Mutex<Option<(Answer, bool)>>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("user", &self.credential.user)
            .field("origin", &self.origin.ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// An authorizer for the origin of `url`, if there is a credential.
    pub(crate) fn new(credential: Option<&Credential>, url: &Url) -> Option<Authorizer> {
        credential.map(|c| Authorizer {
            credential: c.clone(),
            origin: url.origin(),
            state: Mutex::new(None),
        })
    }

    /// Whether requests to `url` may carry this credential.
    pub(crate) fn covers(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }

    fn lock(&self) -> MutexGuard<'_, Option<(Answer, bool)>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Authorization` for a `method` request to `url`, if its origin
    /// has been challenged before.
    pub(crate) fn header(&self, method: &reqwest::Method, url: &Url) -> Option<Header> {
        if !self.covers(url) {
            return None;
        }
        let mut state = self.lock();
        let (answer, fresh) = state.as_mut()?;
        let first = std::mem::replace(fresh, false);
        let value = match answer {
            Answer::Basic(value) => value.clone(),
            Answer::Digest(challenge) => {
                let uri = request_target(url);
                let context = digest_auth::AuthContext::new_with_method(
                    self.credential.user.as_str(),
                    self.credential.password.expose(),
                    uri.as_str(),
                    Option::<&[u8]>::None,
                    digest_auth::HttpMethod(method.as_str().to_string().into()),
                );
                let answered = challenge.respond(&context).ok()?;
                let mut value = HeaderValue::from_str(&answered.to_header_string()).ok()?;
                value.set_sensitive(true);
                value
            }
        };
        Some(Header {
            value,
            fresh: first,
        })
    }

    /// The scheme this credential is answered with (for messages).
    pub(crate) fn scheme_in_use(&self) -> AuthScheme {
        match self.lock().as_ref() {
            Some((Answer::Digest(_), _)) => AuthScheme::Digest,
            Some((Answer::Basic(_), _)) => AuthScheme::Basic,
            None => self.credential.scheme.unwrap_or(AuthScheme::Basic),
        }
    }

    /// Learns from a 401 to a request that carried `sent` (or nothing):
    /// `Ok` means ask again with [`Authorizer::header`].
    pub(crate) fn challenged(
        &self,
        headers: &HeaderMap,
        sent: Option<&Header>,
    ) -> Result<(), AuthProblem> {
        let offered = challenges(headers, &WWW_AUTHENTICATE);
        let (scheme, challenge) = pick(&offered, self.credential.scheme)?;
        let answer = match scheme {
            AuthScheme::Digest => {
                let parsed = digest_auth::parse(&challenge.text)
                    .map_err(|e| AuthProblem::BadChallenge(e.to_string()))?;
                // A refused answer to a challenge we had just received is
                // a wrong password; one to a reused nonce, or a fresh
                // nonce marked stale, only asks for a new round.
                if sent.is_some_and(|s| s.fresh) && !parsed.stale {
                    return Err(AuthProblem::Rejected { scheme });
                }
                Answer::Digest(Box::new(parsed))
            }
            _ => {
                if sent.is_some() {
                    return Err(AuthProblem::Rejected { scheme });
                }
                Answer::Basic(basic(&self.credential))
            }
        };
        *self.lock() = Some((answer, true));
        Ok(())
    }
}

/// The challenge to answer: the job's scheme if it names one, else the
/// strongest offered (Digest with SHA-512-256, SHA-256, then MD5; then
/// Basic).
fn pick(
    offered: &[Challenge],
    wanted: Option<AuthScheme>,
) -> Result<(AuthScheme, &Challenge), AuthProblem> {
    let names: Vec<String> = offered.iter().map(|c| c.scheme.clone()).collect();
    let of = |scheme: AuthScheme| {
        offered
            .iter()
            .filter(move |c| c.scheme.eq_ignore_ascii_case(name(scheme)))
    };
    let digest = of(AuthScheme::Digest).max_by_key(|c| digest_strength(&c.text));
    let basic = of(AuthScheme::Basic).next();
    let found = match wanted {
        Some(AuthScheme::Digest) => digest.map(|c| (AuthScheme::Digest, c)),
        Some(AuthScheme::Basic) => basic.map(|c| (AuthScheme::Basic, c)),
        Some(other) => {
            return Err(AuthProblem::NotOffered {
                wanted: other,
                offered: names,
            })
        }
        None => digest
            .map(|c| (AuthScheme::Digest, c))
            .or(basic.map(|c| (AuthScheme::Basic, c))),
    };
    match (found, wanted) {
        (Some(found), _) => Ok(found),
        (None, _) if offered.is_empty() => Err(AuthProblem::NoChallenge),
        (None, Some(wanted)) => Err(AuthProblem::NotOffered {
            wanted,
            offered: names,
        }),
        (None, None) => Err(AuthProblem::Unsupported { offered: names }),
    }
}

/// How much a Digest challenge's algorithm is worth (higher is better).
fn digest_strength(text: &str) -> u8 {
    let lower = text.to_ascii_lowercase();
    if lower.contains("sha-512-256") {
        3
    } else if lower.contains("sha-256") {
        2
    } else {
        1
    }
}

fn basic(credential: &Credential) -> HeaderValue {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        credential.user,
        credential.password.expose()
    ));
    let mut value =
        HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The request-target of `url` (path and query), as Digest's `uri` names
/// it.
fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[cfg(test)]
mod tests;
