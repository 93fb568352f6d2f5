//! Which proxies a request to a URL goes through, in the order to try them
//! (pure). The job's proxy settings decide: no proxy, its own list with a
//! bypass list, or the proxy environment of the command that created it
//! (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, lower case before
//! upper case, as curl reads them).

use bits_core::{ProxySettings, ProxyUsage};
use std::net::IpAddr;
use url::Url;

/// One way to reach a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Hop {
    /// Straight to the server.
    Direct,
    /// Through this proxy (http or https, with a port, no userinfo).
    Proxy(Url),
}

impl Hop {
    /// The proxy's URL as a job shows it (`None`: direct).
    pub(crate) fn shown(&self) -> Option<String> {
        match self {
            Hop::Direct => None,
            Hop::Proxy(url) => Some(format!(
                "{}://{}:{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            )),
        }
    }
}

/// A proxy entry that is not a proxy URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{entry}' is not a proxy bits can use: {why}")]
pub struct BadProxy {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A proxy list entry as a URL: `host`, `host:port`, `http://host[:port]`
/// or `https://host[:port]` (a missing scheme is http, a missing port the
/// scheme's). Userinfo is refused here: credentials go in the job's proxy
/// credential (the creating command moves them there).
pub fn parse_proxy(entry: &str) -> Result<Url, BadProxy> {
    let bad = |why| BadProxy {
        entry: entry.to_string(),
        why,
    };
    let text = entry.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| bad("it is not a host, host:port or URL"))?;
    match url.scheme() {
        "http" | "https" => {}
        "socks4" | "socks4a" | "socks5" | "socks5h" => {
            return Err(bad("SOCKS proxies are not supported (http and https are)"))
        }
        _ => return Err(bad("its scheme is not http or https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it holds a user name or password; give them with --proxy-credential",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(bad("a proxy is a host and port, without a path"));
    }
    Ok(url)
}

/// The ways to reach `url`, in order. An empty list is impossible: with
/// nothing else, `[Direct]`.
pub(crate) fn hops(settings: &ProxySettings, url: &Url) -> Vec<Hop> {
    match settings.usage {
        ProxyUsage::NoProxy => vec![Hop::Direct],
        ProxyUsage::Override => {
            if bypassed(url, settings.bypass.iter().map(String::as_str)) {
                return vec![Hop::Direct];
            }
            let list: Vec<Hop> = settings
                .list
                .iter()
                // Entries were checked when the job took them; one that
                // no longer parses is skipped rather than fatal.
                .filter_map(|e| parse_proxy(e).ok())
                .map(Hop::Proxy)
                .collect();
            if list.is_empty() {
                vec![Hop::Direct]
            } else {
                list
            }
        }
        ProxyUsage::SystemDefault | ProxyUsage::AutoDetect => from_environment(settings, url),
    }
}

fn from_environment(settings: &ProxySettings, url: &Url) -> Vec<Hop> {
    let var = |name: &str| {
        let find = |n: &str| {
            settings
                .environment
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.trim().is_empty())
        };
        find(name).or_else(|| find(&name.to_ascii_uppercase()))
    };
    if let Some(no_proxy) = var("no_proxy") {
        if bypassed(url, no_proxy.split([',', ' ']).filter(|e| !e.is_empty())) {
            return vec![Hop::Direct];
        }
    }
    let proxy = match url.scheme() {
        "https" => var("https_proxy"),
        _ => var("http_proxy"),
    }
    .or_else(|| var("all_proxy"));
    match proxy.map(parse_proxy) {
        Some(Ok(p)) => vec![Hop::Proxy(p)],
        _ => vec![Hop::Direct],
    }
}

/// Whether `url`'s host is in a bypass list: `*` (everything), `<local>`
/// (dotless names and loopback), an IP address or `address/bits` network,
/// or a domain (`example.com`, `.example.com`, `*.example.com`: it and
/// every name under it). A `:port` after an entry is ignored.
pub(crate) fn bypassed<'a>(url: &Url, entries: impl IntoIterator<Item = &'a str>) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    entries.into_iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if entry == "<local>" {
            return match ip {
                Some(ip) => ip.is_loopback(),
                None => !host.contains('.') || host == "localhost",
            };
        }
        if let Some(ip) = ip {
            return ip_matches(ip, &entry);
        }
        let domain = strip_port(&entry)
            .trim_start_matches("*.")
            .trim_start_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

/// `host:port` → `host`; IPv6 in brackets keeps its colons.
fn strip_port(entry: &str) -> &str {
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => entry,
    }
}

fn ip_matches(ip: IpAddr, entry: &str) -> bool {
    let (net, bits) = match entry.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (strip_port(entry), None),
    };
    let Ok(net) = net
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn settings(usage: ProxyUsage) -> ProxySettings {
        ProxySettings {
            usage,
            ..ProxySettings::default()
        }
    }

    #[test]
    fn proxy_entries_parse_like_the_seed_writes_them() {
        for (entry, want) in [
            ("https://proxy1", "https://proxy1:443"),
            ("123.24.21.23", "http://123.24.21.23:80"),
            ("proxy3", "http://proxy3:80"),
            ("proxy3:3128", "http://proxy3:3128"),
            ("[::1]:8080", "http://[::1]:8080"),
        ] {
            let hop = Hop::Proxy(parse_proxy(entry).unwrap());
            assert_eq!(hop.shown().unwrap(), want, "{entry}");
        }
        for bad in [
            "",
            "socks5://p:1080",
            "http://u:p@proxy",
            "ftp://p",
            "http://p/path",
        ] {
            assert!(parse_proxy(bad).is_err(), "{bad}");
        }
        assert!(parse_proxy("socks5://p:1080")
            .unwrap_err()
            .to_string()
            .contains("SOCKS"));
    }

    #[test]
    fn override_tries_the_list_in_order_unless_bypassed() {
        let mut s = settings(ProxyUsage::Override);
        s.list = vec!["p1:1".into(), "p2:2".into()];
        s.bypass = vec!["<local>".into(), ".corp.example".into()];
        let hops = hops(&s, &url("http://server/a"));
        assert_eq!(hops, [Hop::Direct], "dotless names are local");
        let hops = super::hops(&s, &url("http://files.example.org/a"));
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[0].shown().unwrap(), "http://p1:1");
        assert_eq!(
            super::hops(&s, &url("http://a.corp.example/")),
            [Hop::Direct]
        );
        assert_eq!(super::hops(&s, &url("http://127.0.0.1:8/")), [Hop::Direct]);
    }

    #[test]
    fn the_environment_picks_by_scheme_and_honours_no_proxy() {
        let mut s = settings(ProxyUsage::SystemDefault);
        s.environment = vec![
            ("HTTP_PROXY".into(), "http://upper:1".into()),
            ("http_proxy".into(), "http://lower:2".into()),
            ("ALL_PROXY".into(), "http://all:3".into()),
            ("no_proxy".into(), "localhost,10.0.0.0/8, .internal".into()),
        ];
        let shown = |u: &str| super::hops(&s, &url(u))[0].shown();
        assert_eq!(shown("http://h/a").as_deref(), Some("http://lower:2"));
        assert_eq!(shown("https://h/a").as_deref(), Some("http://all:3"));
        assert_eq!(shown("http://10.2.3.4/a"), None);
        assert_eq!(shown("http://x.internal/a"), None);
        assert_eq!(shown("http://localhost:8/a"), None);
        assert_eq!(
            super::hops(&settings(ProxyUsage::NoProxy), &url("http://h/")),
            [Hop::Direct]
        );
        assert_eq!(
            super::hops(&settings(ProxyUsage::SystemDefault), &url("http://h/")),
            [Hop::Direct]
        );
    }

    #[test]
    fn bypass_entries() {
        let b = |u: &str, e: &str| bypassed(&url(u), [e]);
        assert!(b("http://a.b.c/", "*"));
        assert!(b("http://example.com/", "example.com"));
        assert!(b("http://www.example.com/", "*.example.com"));
        assert!(!b("http://badexample.com/", "example.com"));
        assert!(b("http://192.168.1.9/", "192.168.0.0/16"));
        assert!(!b("http://192.169.1.9/", "192.168.0.0/16"));
        assert!(b("http://[::1]:80/", "<local>"));
        assert!(b("http://[::1]:80/", "::1"));
        assert!(b("http://example.com:8080/", "example.com:8080"));
        assert!(!b("http://example.com/", ""));
    }

    proptest! {
        #[test]
        fn no_entry_or_url_panics(entry in "[ -~]{0,40}", host in "[a-z0-9.:\\[\\]-]{1,30}") {
            let _ = parse_proxy(&entry);
            if let Ok(u) = Url::parse(&format!("http://{host}/")) {
                let _ = bypassed(&u, [entry.as_str()]);
                let mut s = settings(ProxyUsage::SystemDefault);
                s.environment = vec![("http_proxy".into(), entry.clone()), ("no_proxy".into(), entry.clone())];
                prop_assert!(!hops(&s, &u).is_empty());
            }
        }
    }
}
