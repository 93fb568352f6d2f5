use super::*;

const PARAMS: &[Param] = &[
    Param::new("Source", Kind::Array).at(0),
    Param::new("Destination", Kind::Array).at(1),
    Param::new("Asynchronous", Kind::Switch),
    Param::new("DisplayName", Kind::Value).aliases(&["dn"]),
    Param::new("Description", Kind::Value).aliases(&["d"]),
    Param::new("ProxyList", Kind::Array).aliases(&["pl"]),
    Param::new("ProxyUsage", Kind::Value).aliases(&["pu"]),
    Param::new("Priority", Kind::Value).aliases(&["p"]),
    Param::unsupported("Dynamic", Kind::Switch, "no dynamic-content mode"),
];

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn bind_text(text: &str) -> Result<Bound, BindError> {
    bind(PARAMS, &args(text))
}

#[test]
fn names_are_case_insensitive_and_take_unique_prefixes() {
    let b = bind_text("-SOURCE a -dest b -async -displayn x -ProxyU Override").unwrap();
    assert_eq!(b.many("Source").unwrap(), ["a"]);
    assert_eq!(b.one("Destination"), Some("b"));
    assert!(b.switch("Asynchronous"));
    assert_eq!(b.one("DisplayName"), Some("x"));
    assert_eq!(b.one("ProxyUsage"), Some("Override"));
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let err = bind_text("-Pr x").unwrap_err();
    assert_eq!(
        err,
        BindError::Ambiguous {
            given: "Pr".into(),
            candidates: vec!["ProxyList", "ProxyUsage", "Priority"],
        }
    );
    let text = err.to_string();
    assert!(text.contains("-ProxyList -ProxyUsage -Priority"), "{text}");
    // Two names starting alike: the D prefix is ambiguous, the alias is not.
    assert!(matches!(
        bind_text("-De x"),
        Err(BindError::Ambiguous { .. })
    ));
    assert_eq!(
        bind_text("-d text").unwrap().one("Description"),
        Some("text")
    );
    assert_eq!(bind_text("-DN n").unwrap().one("DisplayName"), Some("n"));
}

#[test]
fn a_colon_joins_name_and_value() {
    let b = bind_text("-DisplayName:Nightly -Asynchronous:$false -Source:a,b").unwrap();
    assert_eq!(b.one("DisplayName"), Some("Nightly"));
    assert!(!b.switch("Asynchronous"));
    assert!(b.has("Asynchronous"));
    assert_eq!(b.many("Source").unwrap(), ["a", "b"]);
    // A Windows path in a value keeps its colon.
    let b = bind_text("-Destination:C:\\dir\\").unwrap();
    assert_eq!(b.one("Destination"), Some("C:\\dir\\"));
    assert!(matches!(
        bind_text("-Asynchronous:maybe"),
        Err(BindError::BadSwitch { .. })
    ));
}

#[test]
fn arrays_take_comma_lists_across_tokens() {
    let b = bind_text("-ProxyList https://proxy1,123.24.21.23,proxy3").unwrap();
    assert_eq!(
        b.many("ProxyList").unwrap(),
        ["https://proxy1", "123.24.21.23", "proxy3"]
    );
    // As the seed writes it, once the shell has split it on spaces.
    let b = bind_text("-ProxyList @(https://proxy1, 123.24.21.23, proxy3) -p Low").unwrap();
    assert_eq!(
        b.many("ProxyList").unwrap(),
        ["https://proxy1", "123.24.21.23", "proxy3"]
    );
    assert_eq!(b.one("Priority"), Some("Low"));
    assert_eq!(split_array("'a', \"b\""), ["a", "b"]);
    // Commas inside quotes stay in their item.
    assert_eq!(
        split_array("'Accept: text/html, application/xml',X-A: 1"),
        ["Accept: text/html, application/xml", "X-A: 1"]
    );
    // Unnamed arrays join across the shell's words too.
    let b = bind_text("http://h/a, http://h/b /tmp/").unwrap();
    assert_eq!(b.many("Source").unwrap(), ["http://h/a", "http://h/b"]);
    assert_eq!(b.one("Destination"), Some("/tmp/"));
}

#[test]
fn unnamed_tokens_fill_the_positions_left() {
    let b = bind_text("http://h/f /tmp/x -Priority Low").unwrap();
    assert_eq!(b.many("Source").unwrap(), ["http://h/f"]);
    assert_eq!(b.many("Destination").unwrap(), ["/tmp/x"]);
    // Source named: the first unnamed token is the Destination.
    let b = bind_text("-Source a /tmp/x").unwrap();
    assert_eq!(b.many("Destination").unwrap(), ["/tmp/x"]);
    assert_eq!(
        bind_text("a b c").unwrap_err(),
        BindError::NoPosition("c".into())
    );
}

#[test]
fn values_that_look_like_dashes_are_values() {
    // `-` (stdin) and negative numbers are not parameter names.
    let b = bind_text("-Source - -Description -5").unwrap();
    assert_eq!(b.one("Source"), Some("-"));
    assert_eq!(b.one("Description"), Some("-5"));
    assert_eq!(
        bind_text("-DisplayName -Asynchronous").unwrap_err(),
        BindError::MissingValue("DisplayName")
    );
    assert_eq!(
        bind_text("-DisplayName").unwrap_err(),
        BindError::MissingValue("DisplayName")
    );
}

#[test]
fn unknown_repeated_and_unsupported_parameters_are_named() {
    assert_eq!(
        bind_text("-Colour red").unwrap_err(),
        BindError::Unknown("Colour".into())
    );
    assert_eq!(
        bind_text("-dn a -DisplayName b").unwrap_err(),
        BindError::Repeated("DisplayName")
    );
    let err = bind_text("-Dyn").unwrap_err();
    assert!(
        err.to_string().contains("-Dynamic is not supported"),
        "{err}"
    );
}

#[test]
fn the_tokens_of_one_parameter_can_be_left_out() {
    let a = args("-Source a -DisplayName:x b");
    let b = bind(PARAMS, &a).unwrap();
    let rest: Vec<&String> = b.tokens_without("DisplayName", &a);
    assert_eq!(rest, ["-Source", "a", "b"]);
    let rest: Vec<&String> = b.tokens_without("Source", &a);
    assert_eq!(rest, ["-DisplayName:x", "b"]);
}
