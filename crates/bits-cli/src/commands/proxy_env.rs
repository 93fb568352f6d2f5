//! The proxy environment a job keeps: this command's `http_proxy`,
//! `https_proxy`, `all_proxy` and `no_proxy` (either case). A proxy URL's
//! `user:password@` is taken out and becomes the job's proxy credential,
//! so that the kept environment holds no secret.

use bits_core::PROXY_ENVIRONMENT;
use bits_proto::CredentialSpec;

/// The variables set (name, value without userinfo), and the first
/// credential found in them.
pub fn capture() -> (Vec<(String, String)>, Option<CredentialSpec>) {
    let vars = PROXY_ENVIRONMENT
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)));
    split(vars)
}

fn split(
    vars: impl IntoIterator<Item = (String, String)>,
) -> (Vec<(String, String)>, Option<CredentialSpec>) {
    let mut credential = None;
    let mut kept = Vec::new();
    for (name, value) in vars {
        if value.trim().is_empty() {
            continue;
        }
        if name.eq_ignore_ascii_case("no_proxy") {
            kept.push((name, value));
            continue;
        }
        // Without a scheme (`proxy:3128`) the URL parser sees no userinfo;
        // read it as http like the engine does.
        let text = if value.contains("://") {
            value.clone()
        } else {
            format!("http://{value}")
        };
        match url::Url::parse(&text) {
            Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                credential.get_or_insert_with(|| CredentialSpec {
                    user: decode(url.username()),
                    password: decode(url.password().unwrap_or("")),
                    scheme: Some("basic".into()),
                });
                // A URL that keeps its userinfo is not kept at all: its
                // password must not reach the job.
                if url.set_username("").is_ok() && url.set_password(None).is_ok() {
                    kept.push((name, url.to_string()));
                }
            }
            _ => kept.push((name, value)),
        }
    }
    (kept, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_leaves_the_environment_for_the_credential() {
        let (kept, credential) = split([
            (
                "http_proxy".to_string(),
                "http://bob:p%40ss@proxy:3128".to_string(),
            ),
            ("HTTPS_PROXY".to_string(), "proxy2:8080".to_string()),
            ("no_proxy".to_string(), "localhost,.corp".to_string()),
            ("all_proxy".to_string(), " ".to_string()),
        ]);
        assert_eq!(
            kept,
            [
                ("http_proxy".to_string(), "http://proxy:3128/".to_string()),
                ("HTTPS_PROXY".to_string(), "proxy2:8080".to_string()),
                ("no_proxy".to_string(), "localhost,.corp".to_string()),
            ]
        );
        let c = credential.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("bob", "p@ss"));
    }
}
