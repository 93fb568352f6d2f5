//! How a job reaches its servers: proxies (ProxyUsage, ProxyList,
//! ProxyBypass), the TLS and redirect checks it loosens (SecurityFlags), a
//! certificate authority it trusts besides the system's, and its custom
//! request headers. Data only; the engine applies it.

use crate::job::ParseEnumError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// BITS' `BG_SSL_*` and `BG_HTTP_REDIRECT_POLICY_*` flags, with BITS'
/// values. Each loosens exactly one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecurityFlags(u32);

impl SecurityFlags {
    /// BG_SSL_IGNORE_CERT_CN_INVALID: a certificate for another host name.
    pub const IGNORE_CERT_CN_INVALID: u32 = 0x0002;
    /// BG_SSL_IGNORE_CERT_DATE_INVALID: an expired or not yet valid
    /// certificate.
    pub const IGNORE_CERT_DATE_INVALID: u32 = 0x0004;
    /// BG_SSL_IGNORE_UNKNOWN_CA: a chain that ends at no trusted authority.
    pub const IGNORE_UNKNOWN_CA: u32 = 0x0008;
    /// BG_SSL_IGNORE_CERT_WRONG_USAGE: a certificate not made for servers.
    pub const IGNORE_CERT_WRONG_USAGE: u32 = 0x0010;
    /// BG_HTTP_REDIRECT_POLICY_ALLOW_REPORT: follow redirects and make the
    /// final URL the file's remote name.
    pub const REDIRECT_ALLOW_REPORT: u32 = 0x0100;
    /// BG_HTTP_REDIRECT_POLICY_DISALLOW: a redirect is an error.
    pub const REDIRECT_DISALLOW: u32 = 0x0200;
    /// BG_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP: follow https → http.
    pub const REDIRECT_ALLOW_HTTPS_TO_HTTP: u32 = 0x0800;

    /// The flags, their command-line names and what each loosens.
    pub const ALL: [(u32, &'static str, &'static str); 7] = [
        (
            Self::IGNORE_CERT_CN_INVALID,
            "ignore-cert-cn-invalid",
            "accepts a certificate issued for another host name",
        ),
        (
            Self::IGNORE_CERT_DATE_INVALID,
            "ignore-cert-date-invalid",
            "accepts certificates that have expired or are not valid yet",
        ),
        (
            Self::IGNORE_UNKNOWN_CA,
            "ignore-unknown-ca",
            "accepts a chain that ends at an authority nobody trusts",
        ),
        (
            Self::IGNORE_CERT_WRONG_USAGE,
            "ignore-cert-wrong-usage",
            "accepts certificates whose extended key usage excludes servers",
        ),
        (
            Self::REDIRECT_ALLOW_REPORT,
            "redirect-allow-report",
            "follows redirects and makes the final URL the file's RemoteName",
        ),
        (
            Self::REDIRECT_DISALLOW,
            "redirect-disallow",
            "makes any redirect an error of the job",
        ),
        (
            Self::REDIRECT_ALLOW_HTTPS_TO_HTTP,
            "redirect-allow-https-to-http",
            "follows a redirect from https to plain http",
        ),
    ];

    /// The flags from their BITS bit values (unknown bits dropped).
    pub fn from_bits(bits: u32) -> SecurityFlags {
        let known = Self::ALL.iter().fold(0, |m, (b, _, _)| m | b);
        SecurityFlags(bits & known)
    }

    /// The BITS bit value.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether `flag` (one of the constants) is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    /// The names of the flags set, in BITS' order.
    pub fn names(self) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|(b, _, _)| self.has(*b))
            .map(|(_, n, _)| *n)
            .collect()
    }
}

impl FromStr for SecurityFlags {
    type Err = ParseEnumError;
    /// A comma-separated list of names (empty, or `none`: no flag).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bits = 0;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("none") {
                continue;
            }
            let Some((b, _, _)) = Self::ALL
                .iter()
                .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
            else {
                return Err(ParseEnumError {
                    what: "security flag",
                    value: name.to_string(),
                    expected: "ignore-cert-cn-invalid, ignore-cert-date-invalid, \
                               ignore-unknown-ca, ignore-cert-wrong-usage, \
                               redirect-allow-report, redirect-disallow, \
                               redirect-allow-https-to-http",
                });
            };
            bits |= b;
        }
        if bits & Self::REDIRECT_ALLOW_REPORT != 0 && bits & Self::REDIRECT_DISALLOW != 0 {
            return Err(ParseEnumError {
                what: "combination of security flags",
                value: s.to_string(),
                expected: "at most one of redirect-allow-report and redirect-disallow",
            });
        }
        Ok(SecurityFlags(bits))
    }
}

impl fmt::Display for SecurityFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// BITS `ProxyUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ProxyUsage {
    /// The proxy environment of the command that created the job.
    #[default]
    SystemDefault,
    /// Every server directly.
    NoProxy,
    /// WPAD/PAC discovery; bits has none and uses SystemDefault.
    AutoDetect,
    /// The job's own proxy list and bypass list.
    Override,
}

impl ProxyUsage {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyUsage::SystemDefault => "system-default",
            ProxyUsage::NoProxy => "no-proxy",
            ProxyUsage::AutoDetect => "auto-detect",
            ProxyUsage::Override => "override",
        }
    }

    /// BITS' name (`Get-BitsTransfer`'s `ProxyUsage`).
    pub fn bits_name(self) -> &'static str {
        match self {
            ProxyUsage::SystemDefault => "SystemDefault",
            ProxyUsage::NoProxy => "NoProxy",
            ProxyUsage::AutoDetect => "AutoDetect",
            ProxyUsage::Override => "Override",
        }
    }
}

impl FromStr for ProxyUsage {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match norm.as_str() {
            "systemdefault" | "preconfig" => Ok(ProxyUsage::SystemDefault),
            "noproxy" => Ok(ProxyUsage::NoProxy),
            "autodetect" => Ok(ProxyUsage::AutoDetect),
            "override" => Ok(ProxyUsage::Override),
            _ => Err(ParseEnumError {
                what: "proxy usage",
                value: s.to_string(),
                expected: "system-default, no-proxy, auto-detect, override",
            }),
        }
    }
}

/// The proxy environment variables a job keeps from the command that made
/// it (either case).
pub const PROXY_ENVIRONMENT: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// A job's proxies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxySettings {
    /// Which proxies.
    pub usage: ProxyUsage,
    /// With Override: the proxies, tried in order (`host`, `host:port`,
    /// `http://host:port`, `https://host:port`).
    pub list: Vec<String>,
    /// With Override: hosts reached directly (`<local>`: dotless names and
    /// loopback; `.example.com` or `example.com`: the domain and below;
    /// IP addresses; `*`: all).
    pub bypass: Vec<String>,
    /// With SystemDefault or AutoDetect: the [`PROXY_ENVIRONMENT`] variables
    /// the creating command had, as name and value, without userinfo (a
    /// proxy URL's `user:password@` becomes the job's proxy credential).
    pub environment: Vec<(String, String)>,
}

/// One custom request header (`--header 'Name: value'`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomHeader {
    /// The field name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// Everything about how a job's requests are made, besides credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionProps {
    /// Proxies.
    pub proxy: ProxySettings,
    /// Loosened checks and the redirect policy.
    pub security_flags: SecurityFlags,
    /// A PEM file of certificate authorities trusted besides the system's.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Custom request headers, sent with every request to the job's
    /// servers (not to another origin a redirect leads to).
    pub headers: Vec<CustomHeader>,
    /// CustomHeadersWriteOnly: `info` does not show the headers' values.
    /// Cannot be undone.
    pub headers_write_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_flags_parse_show_and_keep_bits_values() {
        let f: SecurityFlags = "ignore-unknown-ca, redirect-allow-report".parse().unwrap();
        assert_eq!(f.bits(), 0x0108);
        assert_eq!(f.to_string(), "ignore-unknown-ca,redirect-allow-report");
        assert_eq!(SecurityFlags::from_bits(0xFFFF_FFFF).names().len(), 7);
        assert_eq!("none".parse::<SecurityFlags>().unwrap().bits(), 0);
        let e = "ignore-everything".parse::<SecurityFlags>().unwrap_err();
        assert!(e.to_string().contains("ignore-everything"));
        assert!("redirect-allow-report,redirect-disallow"
            .parse::<SecurityFlags>()
            .is_err());
    }

    #[test]
    fn proxy_usage_takes_bits_and_command_line_names() {
        for (text, usage) in [
            ("system-default", ProxyUsage::SystemDefault),
            ("SystemDefault", ProxyUsage::SystemDefault),
            ("no-proxy", ProxyUsage::NoProxy),
            ("Override", ProxyUsage::Override),
            ("auto_detect", ProxyUsage::AutoDetect),
        ] {
            assert_eq!(text.parse::<ProxyUsage>().unwrap(), usage, "{text}");
        }
        assert!("sometimes".parse::<ProxyUsage>().is_err());
    }
}
