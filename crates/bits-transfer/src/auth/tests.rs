use super::*;
use bits_core::Secret;
use proptest::prelude::*;
use reqwest::Method;

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn credential(scheme: Option<AuthScheme>) -> Credential {
    Credential {
        user: "alice".into(),
        password: Secret::new("s3cret"),
        scheme,
    }
}

const DIGEST: &str = r#"Digest realm="r", qop="auth", algorithm=SHA-256, nonce="abc", opaque="o""#;

#[test]
fn one_header_may_hold_several_challenges() {
    let h = headers(&[r#"Basic realm="a, b", Digest realm="r", nonce="n, m", qop="auth""#]);
    let c = challenges(&h, &WWW_AUTHENTICATE);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].scheme, "Basic");
    assert_eq!(c[0].text, r#"Basic realm="a, b""#);
    assert_eq!(c[1].scheme, "Digest");
    assert!(c[1].text.contains(r#"nonce="n, m""#));
    let h = headers(&["Negotiate", "NTLM", r#"Basic realm="x""#]);
    let names: Vec<_> = challenges(&h, &WWW_AUTHENTICATE)
        .into_iter()
        .map(|c| c.scheme)
        .collect();
    assert_eq!(names, ["Negotiate", "NTLM", "Basic"]);
}

#[test]
fn the_strongest_offered_scheme_is_answered() {
    let h = headers(&[
        r#"Basic realm="x""#,
        r#"Digest realm="r", nonce="1", algorithm=MD5"#,
        DIGEST,
    ]);
    let c = challenges(&h, &WWW_AUTHENTICATE);
    let (scheme, chosen) = pick(&c, None).unwrap();
    assert_eq!(scheme, AuthScheme::Digest);
    assert!(chosen.text.contains("SHA-256"));
    assert_eq!(
        pick(&c, Some(AuthScheme::Basic)).unwrap().0,
        AuthScheme::Basic
    );
}

#[test]
fn unanswerable_challenges_name_the_schemes() {
    let h = headers(&["Negotiate", "NTLM"]);
    let c = challenges(&h, &WWW_AUTHENTICATE);
    let e = pick(&c, None).unwrap_err();
    assert_eq!(
        e,
        AuthProblem::Unsupported {
            offered: vec!["Negotiate".into(), "NTLM".into()]
        }
    );
    assert!(e.to_string().contains("Negotiate, NTLM"), "{e}");
    let e = pick(
        &challenges(&headers(&[DIGEST]), &WWW_AUTHENTICATE),
        Some(AuthScheme::Basic),
    )
    .unwrap_err();
    assert!(e.to_string().contains("only Basic"), "{e}");
    assert_eq!(pick(&[], None).unwrap_err(), AuthProblem::NoChallenge);
}

#[test]
fn nothing_is_sent_before_a_challenge_nor_to_another_origin() {
    let url = Url::parse("http://h:8080/a").unwrap();
    let a = Authorizer::new(Some(&credential(None)), &url).unwrap();
    assert!(a.header(&Method::GET, &url).is_none());
    a.challenged(&headers(&[r#"Basic realm="x""#]), None)
        .unwrap();
    let h = a.header(&Method::GET, &url).unwrap();
    assert_eq!(h.value, "Basic YWxpY2U6czNjcmV0");
    assert!(h.value.is_sensitive());
    for other in ["http://h:8081/a", "https://h:8080/a", "http://g:8080/a"] {
        assert!(
            a.header(&Method::GET, &Url::parse(other).unwrap())
                .is_none(),
            "{other}"
        );
    }
    // The same origin, another path: sent up front.
    assert!(a
        .header(&Method::GET, &Url::parse("http://h:8080/b").unwrap())
        .is_some());
    // Refused after being sent: the password is wrong.
    assert_eq!(
        a.challenged(&headers(&[r#"Basic realm="x""#]), Some(&h)),
        Err(AuthProblem::Rejected {
            scheme: AuthScheme::Basic
        })
    );
}

#[test]
fn digest_rounds_tell_a_wrong_password_from_a_stale_nonce() {
    let url = Url::parse("http://h/f?x=1").unwrap();
    let a = Authorizer::new(Some(&credential(None)), &url).unwrap();
    a.challenged(&headers(&[DIGEST]), None).unwrap();
    let first = a.header(&Method::GET, &url).unwrap();
    assert!(first.fresh);
    let text = first.value.to_str().unwrap();
    assert!(text.starts_with("Digest "), "{text}");
    assert!(text.contains(r#"uri="/f?x=1""#), "{text}");
    assert!(text.contains("SHA-256"), "{text}");
    assert!(!text.contains("s3cret"));
    // The nonce is reused with the next count, and is not fresh any more.
    let second = a.header(&Method::GET, &url).unwrap();
    assert!(!second.fresh);
    assert!(second.value.to_str().unwrap().contains("nc=00000002"));
    // A refusal of a reused nonce asks for a new round, not an error.
    a.challenged(&headers(&[DIGEST]), Some(&second)).unwrap();
    let third = a.header(&Method::GET, &url).unwrap();
    assert!(third.fresh);
    // A stale nonce after a fresh answer: another round.
    let stale = format!("{DIGEST}, stale=true");
    a.challenged(&headers(&[&stale]), Some(&third)).unwrap();
    let fourth = a.header(&Method::GET, &url).unwrap();
    // A fresh answer refused without `stale`: wrong password.
    assert_eq!(
        a.challenged(&headers(&[DIGEST]), Some(&fourth)),
        Err(AuthProblem::Rejected {
            scheme: AuthScheme::Digest
        })
    );
}

#[test]
fn a_digest_challenge_without_a_nonce_is_refused() {
    let url = Url::parse("http://h/f").unwrap();
    let a = Authorizer::new(Some(&credential(None)), &url).unwrap();
    let e = a
        .challenged(&headers(&[r#"Digest realm="r""#]), None)
        .unwrap_err();
    assert!(matches!(e, AuthProblem::BadChallenge(_)), "{e:?}");
}

#[test]
fn debug_output_has_no_password() {
    let url = Url::parse("http://h/f").unwrap();
    let a = Authorizer::new(Some(&credential(None)), &url).unwrap();
    a.challenged(&headers(&[r#"Basic realm="x""#]), None)
        .unwrap();
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("YWxpY2U6czNjcmV0"),
        "{shown}"
    );
}

proptest! {
    /// Whatever a server sends as challenges, reading and answering them
    /// never panics.
    #[test]
    fn any_challenge_text_is_handled(values in proptest::collection::vec("[ -~]{0,120}", 0..4)) {
        let mut h = HeaderMap::new();
        for v in &values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(WWW_AUTHENTICATE, v);
            }
        }
        let c = challenges(&h, &WWW_AUTHENTICATE);
        prop_assert!(c.len() <= MAX_CHALLENGES);
        let url = Url::parse("http://h/f").unwrap();
        let a = Authorizer::new(Some(&credential(None)), &url).unwrap();
        if a.challenged(&h, None).is_ok() {
            let _ = a.header(&Method::GET, &url);
        }
    }

    #[test]
    fn any_digest_like_challenge_is_handled(
        params in proptest::collection::vec(("[a-z]{1,9}", "[ -~]{0,20}", any::<bool>()), 0..8)
    ) {
        let mut text = String::from("Digest ");
        for (i, (k, v, quoted)) in params.iter().enumerate() {
            if i > 0 { text.push_str(", "); }
            if *quoted { text.push_str(&format!("{k}=\"{v}\"")) } else { text.push_str(&format!("{k}={v}")) }
        }
        if let Ok(v) = HeaderValue::from_str(&text) {
            let mut h = HeaderMap::new();
            h.append(WWW_AUTHENTICATE, v);
            let url = Url::parse("http://h/f").unwrap();
            let a = Authorizer::new(Some(&credential(Some(AuthScheme::Digest))), &url).unwrap();
            if a.challenged(&h, None).is_ok() {
                let _ = a.header(&Method::GET, &url);
            }
        }
    }
}
