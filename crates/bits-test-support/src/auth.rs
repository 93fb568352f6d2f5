//! Server-side HTTP authentication for the [`TestServer`](crate::TestServer): Basic (RFC 7617)
//! and Digest (RFC 7616, MD5 and SHA-256, `qop=auth`), checked here from the RFCs' formulas with
//! the hash crates directly, so a client is verified by an implementation that is not its own.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// A scheme the server challenges with, in the order given to [`Auth::schemes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Basic realm="…"`.
    Basic,
    /// `Digest …, algorithm=MD5, qop="auth"`.
    DigestMd5,
    /// `Digest …, algorithm=SHA-256, qop="auth"`.
    DigestSha256,
    /// A challenge the server sends but never accepts (e.g. `"NTLM"`, `"Negotiate"`).
    Other(String),
}

/// What the server demands: one user and password, and the challenges it sends.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The user name accepted.
    pub user: String,
    /// The password accepted.
    pub password: String,
    /// The challenges sent with a 401, each as its own `WWW-Authenticate` header, in order.
    pub schemes: Vec<Scheme>,
    /// Whether the challenges go in one `WWW-Authenticate` header, comma-separated (as
    /// RFC 9110 §11.6.1 allows), rather than one header each.
    pub one_header: bool,
}

/// The realm every challenge names.
pub const REALM: &str = "bits-test";

impl Auth {
    /// Basic only.
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::new(user, password, vec![Scheme::Basic])
    }

    /// These schemes, one header each.
    pub fn new(user: &str, password: &str, schemes: Vec<Scheme>) -> Auth {
        Auth {
            user: user.to_owned(),
            password: password.to_owned(),
            schemes,
            one_header: false,
        }
    }

    /// The `WWW-Authenticate` values of a 401, with `nonce` for the Digest ones.
    pub(crate) fn challenges(&self, nonce: &str) -> Vec<String> {
        let all: Vec<String> = self
            .schemes
            .iter()
            .map(|s| match s {
                Scheme::Basic => format!("Basic realm=\"{REALM}\""),
                Scheme::DigestMd5 => digest_challenge("MD5", nonce),
                Scheme::DigestSha256 => digest_challenge("SHA-256", nonce),
                Scheme::Other(name) => name.clone(),
            })
            .collect();
        if self.one_header {
            vec![all.join(", ")]
        } else {
            all
        }
    }

    /// Whether `authorization` (the request's header value) proves the user for a `method`
    /// request of `target`, given the nonces this server issued.
    pub(crate) fn accepts(
        &self,
        authorization: &str,
        method: &str,
        target: &str,
        nonces: &[String],
    ) -> bool {
        let (scheme, rest) = authorization
            .trim()
            .split_once(' ')
            .unwrap_or((authorization, ""));
        if scheme.eq_ignore_ascii_case("basic") && self.schemes.contains(&Scheme::Basic) {
            return decode_basic(rest.trim()).as_deref()
                == Some(&format!("{}:{}", self.user, self.password)[..]);
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return false;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let algorithm = get("algorithm").unwrap_or("MD5");
        let hash: fn(&str) -> String = if algorithm.eq_ignore_ascii_case("SHA-256")
            && self.schemes.contains(&Scheme::DigestSha256)
        {
            |s| hex(&Sha256::digest(s.as_bytes()))
        } else if algorithm.eq_ignore_ascii_case("MD5") && self.schemes.contains(&Scheme::DigestMd5)
        {
            |s| hex(&Md5::digest(s.as_bytes()))
        } else {
            return false;
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return false;
        };
        if user != self.user
            || realm != REALM
            || uri != target
            || !nonces.iter().any(|n| n == nonce)
        {
            return false;
        }
        let ha1 = hash(&format!("{user}:{realm}:{}", self.password));
        let ha2 = hash(&format!("{method}:{uri}"));
        let expected = match (get("qop"), get("nc"), get("cnonce")) {
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
            }
            _ => return false,
        };
        expected.eq_ignore_ascii_case(response)
    }
}

fn digest_challenge(algorithm: &str, nonce: &str) -> String {
    format!("Digest realm=\"{REALM}\", qop=\"auth\", algorithm={algorithm}, nonce=\"{nonce}\", opaque=\"op\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `k=v` and `k="v"` pairs separated by commas (quoted values may hold commas and `\` escapes).
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// Standard base64 (with padding) to text.
fn decode_basic(token: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in token.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_checks_the_password() {
        let auth = Auth::basic("Aladdin", "open sesame");
        assert!(auth.accepts("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "GET", "/", &[]));
        assert!(!auth.accepts("Basic QWxhZGRpbjpvcGVuIHNlc2FtZg==", "GET", "/", &[]));
    }

    /// RFC 7616 §3.9.1's example, MD5 and SHA-256.
    #[test]
    fn digest_matches_the_rfc_example() {
        let mut auth = Auth::new("Mufasa", "Circle of Life", vec![Scheme::DigestMd5]);
        let nonces = vec!["7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".to_string()];
        let md5 = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        // The RFC's realm is not ours: the check must refuse it.
        assert!(!auth.accepts(md5, "GET", "/dir/index.html", &nonces));
        let ours = md5.replace("http-auth@example.org", REALM);
        assert!(!auth.accepts(&ours, "GET", "/dir/index.html", &nonces));
        // With the RFC's realm in our place, the RFC's response is right.
        let ha1 = hex(&Md5::digest(b"Mufasa:http-auth@example.org:Circle of Life"));
        let ha2 = hex(&Md5::digest(b"GET:/dir/index.html"));
        let r = hex(&Md5::digest(
            format!(
                "{ha1}:{}:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:{ha2}",
                nonces[0]
            )
            .as_bytes(),
        ));
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
        auth.schemes = vec![Scheme::DigestSha256];
        let ha1 = hex(&Sha256::digest(
            b"Mufasa:http-auth@example.org:Circle of Life",
        ));
        let ha2 = hex(&Sha256::digest(b"GET:/dir/index.html"));
        let r = hex(&Sha256::digest(
            format!(
                "{ha1}:{}:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:{ha2}",
                nonces[0]
            )
            .as_bytes(),
        ));
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }
}
