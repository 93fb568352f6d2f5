//! A job's connection properties as requested: proxies, security flags, the
//! extra certificate authority, custom headers. Pure, except
//! [`ca_file`], which reads the file (call it outside every lock).

use super::bad;
use bits_core::{ConnectionProps, CustomHeader, ProxyUsage, SecurityFlags, PROXY_ENVIRONMENT};
use bits_proto::{ApiError, ConnectionSpec};
use std::path::{Path, PathBuf};

/// Custom headers a job may have, at most.
const MAX_HEADERS: usize = 64;
/// The longest custom header line.
const MAX_HEADER: usize = 8192;
/// Proxies and bypass entries a job may list, at most.
const MAX_PROXIES: usize = 64;
/// The longest proxy environment value kept.
const MAX_ENV_VALUE: usize = 4096;

/// Headers that would break the protocol bits speaks: ranges and the
/// version check (`Range`, `If-Range`), the body's framing
/// (`Content-Length`, `Transfer-Encoding`), the connection (`Host`,
/// `Connection`, `Upgrade`, `TE`, `Expect`, `Proxy-Authorization`), the
/// identity coding the file is stored in (`Accept-Encoding`).
/// `Authorization` is allowed (a bearer token, say): like every custom
/// header it only goes to the file's own origin.
const REFUSED_HEADERS: [&str; 11] = [
    "range",
    "if-range",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "expect",
    "proxy-authorization",
    "accept-encoding",
];

/// Applies the requested changes to `props`.
pub fn apply(props: &mut ConnectionProps, spec: &ConnectionSpec) -> Result<(), ApiError> {
    if let Some(usage) = &spec.proxy_usage {
        let usage: ProxyUsage = usage
            .parse()
            .map_err(|e| bad(format!("--proxy-usage: {e}")))?;
        if usage != ProxyUsage::Override {
            props.proxy.list.clear();
            props.proxy.bypass.clear();
        }
        props.proxy.usage = usage;
    }
    if let Some(list) = &spec.proxy_list {
        if list.len() > MAX_PROXIES {
            return Err(bad(format!(
                "--proxy-list: more than {MAX_PROXIES} proxies"
            )));
        }
        for entry in list {
            bits_transfer::parse_proxy(entry).map_err(|e| bad(format!("--proxy-list: {e}")))?;
        }
        props.proxy.list = list.clone();
    }
    if let Some(bypass) = &spec.proxy_bypass {
        if bypass.len() > MAX_PROXIES {
            return Err(bad(format!(
                "--proxy-bypass: more than {MAX_PROXIES} hosts"
            )));
        }
        if let Some(e) = bypass.iter().find(|e| e.trim().is_empty() || e.len() > 255) {
            return Err(bad(format!("--proxy-bypass: {e:?} is not a host name")));
        }
        props.proxy.bypass = bypass.iter().map(|e| e.trim().to_string()).collect();
    }
    let overriding = props.proxy.usage == ProxyUsage::Override;
    let has_lists = !props.proxy.list.is_empty() || !props.proxy.bypass.is_empty();
    if !overriding && has_lists {
        return Err(bad(
            "--proxy-list and --proxy-bypass need --proxy-usage override",
        ));
    }
    if overriding && props.proxy.list.is_empty() {
        return Err(bad("--proxy-usage override needs --proxy-list"));
    }
    if let Some(env) = &spec.proxy_environment {
        props.proxy.environment = environment(env)?;
    }
    if let Some(flags) = &spec.security_flags {
        props.security_flags = flags
            .parse::<SecurityFlags>()
            .map_err(|e| bad(format!("--security-flags: {e}")))?;
    }
    if let Some(path) = &spec.ca_cert {
        props.ca_cert = if path.is_empty() {
            None
        } else {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(bad("--ca-cert: the path must be absolute"));
            }
            Some(path)
        };
    }
    if let Some(headers) = &spec.headers {
        if headers.len() > MAX_HEADERS {
            return Err(bad(format!("--header: more than {MAX_HEADERS} headers")));
        }
        props.headers = headers
            .iter()
            .map(|h| header(h))
            .collect::<Result<_, _>>()?;
    }
    if spec.headers_write_only {
        props.headers_write_only = true;
    }
    Ok(())
}

/// The proxy variables kept from a creating command: only the known
/// names, values bounded, none with credentials (the client moves those to
/// the proxy credential).
fn environment(env: &[(String, String)]) -> Result<Vec<(String, String)>, ApiError> {
    let mut kept = Vec::new();
    for (name, value) in env {
        if !PROXY_ENVIRONMENT.contains(&name.as_str()) || value.trim().is_empty() {
            continue;
        }
        if value.len() > MAX_ENV_VALUE {
            return Err(bad(format!("{name} is longer than {MAX_ENV_VALUE} bytes")));
        }
        if !name.eq_ignore_ascii_case("no_proxy") {
            if let Ok(url) = url::Url::parse(value) {
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(bad(format!(
                        "{name} holds a user name or password; they belong in --proxy-credential"
                    )));
                }
            }
        }
        kept.push((name.clone(), value.clone()));
    }
    Ok(kept)
}

/// One `Name: value` header, checked.
fn header(line: &str) -> Result<CustomHeader, ApiError> {
    if line.len() > MAX_HEADER {
        return Err(bad(format!(
            "--header: a header is longer than {MAX_HEADER} bytes"
        )));
    }
    let Some((name, value)) = line.split_once(':') else {
        return Err(bad(format!("--header {line:?}: expected 'Name: value'")));
    };
    let name = name.trim();
    let value = value.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(bad(format!(
            "--header {line:?}: {name:?} is not a header name"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad(format!(
            "--header {name}: the value holds control characters (a line break would start \
             another header)"
        )));
    }
    if REFUSED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(bad(format!(
            "--header {name}: refused; bits sets {name} itself, and another value would break \
             the transfer"
        )));
    }
    Ok(CustomHeader {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// Reads the extra certificate authority file a request names, if any:
/// it must hold at least one PEM authority.
pub fn ca_file(spec: &ConnectionSpec) -> Result<(), ApiError> {
    match spec.ca_cert.as_deref() {
        Some(path) if !path.is_empty() => bits_transfer::check_ca_file(Path::new(path))
            .map(|_| ())
            .map_err(|why| bad(format!("--ca-cert: {why}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConnectionSpec {
        ConnectionSpec::default()
    }

    #[test]
    fn the_seeds_proxy_example_is_taken() {
        let mut props = ConnectionProps::default();
        let s = ConnectionSpec {
            proxy_usage: Some("override".into()),
            proxy_list: Some(vec![
                "https://proxy1".into(),
                "123.24.21.23".into(),
                "proxy3".into(),
            ]),
            proxy_bypass: Some(vec!["<local>".into()]),
            ..spec()
        };
        apply(&mut props, &s).unwrap();
        assert_eq!(props.proxy.usage, ProxyUsage::Override);
        assert_eq!(props.proxy.list.len(), 3);
    }

    #[test]
    fn proxy_options_that_do_not_fit_are_refused() {
        let mut props = ConnectionProps::default();
        // (Each case starts afresh: a refused change may leave `props`
        // half done, which its caller then drops.)
        let list_only = ConnectionSpec {
            proxy_list: Some(vec!["p:1".into()]),
            ..spec()
        };
        assert!(apply(&mut props, &list_only)
            .unwrap_err()
            .message
            .contains("override"));
        let override_only = ConnectionSpec {
            proxy_usage: Some("override".into()),
            ..spec()
        };
        let mut props = ConnectionProps::default();
        assert!(apply(&mut props, &override_only)
            .unwrap_err()
            .message
            .contains("--proxy-list"));
        let socks = ConnectionSpec {
            proxy_usage: Some("override".into()),
            proxy_list: Some(vec!["socks5://p:1080".into()]),
            ..spec()
        };
        assert!(apply(&mut props, &socks)
            .unwrap_err()
            .message
            .contains("SOCKS"));
        let env = ConnectionSpec {
            proxy_environment: Some(vec![("http_proxy".into(), "http://u:pw@p:1".into())]),
            ..spec()
        };
        let e = apply(&mut props, &env).unwrap_err().message;
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn headers_that_break_the_protocol_are_refused_by_name() {
        let mut props = ConnectionProps::default();
        for (line, says) in [
            ("Range: bytes=0-", "Range"),
            ("content-length: 5", "content-length"),
            ("Host: x", "Host"),
            ("Transfer-Encoding: chunked", "Transfer-Encoding"),
            ("If-Range: \"x\"", "If-Range"),
            ("Accept-Encoding: gzip", "Accept-Encoding"),
            ("NoColon", "Name: value"),
            ("Bad Name: v", "not a header name"),
            ("X-A: a\r\nX-B: b", "control"),
        ] {
            let s = ConnectionSpec {
                headers: Some(vec![line.into()]),
                ..spec()
            };
            let e = apply(&mut props, &s).unwrap_err().message;
            assert!(e.contains(says), "{line}: {e}");
        }
        let ok = ConnectionSpec {
            headers: Some(vec!["X-Api-Key:  k1 ".into(), "Accept: */*".into()]),
            headers_write_only: true,
            ..spec()
        };
        apply(&mut props, &ok).unwrap();
        assert_eq!(props.headers[0].value, "k1");
        assert!(props.headers_write_only);
    }

    #[test]
    fn security_flags_are_checked() {
        let mut props = ConnectionProps::default();
        let s = ConnectionSpec {
            security_flags: Some("ignore-unknown-ca,bogus".into()),
            ..spec()
        };
        assert!(apply(&mut props, &s).unwrap_err().message.contains("bogus"));
    }
}
