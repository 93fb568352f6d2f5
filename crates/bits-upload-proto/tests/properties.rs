//! Property tests of the packet parsers: whatever a peer sends, parsing
//! returns a value or an error and never panics; and what we build, we read
//! back unchanged.

use std::collections::HashMap;

use bits_upload_proto::{header, parse_request, Ack, AckError, FragmentRange, PacketType, Request};
use proptest::prelude::*;

/// Every header name the parsers look at.
const NAMES: [&str; 13] = [
    header::PACKET_TYPE,
    header::SUPPORTED_PROTOCOLS,
    header::PROTOCOL,
    header::SESSION_ID,
    header::HOST_ID,
    header::HOST_ID_FALLBACK_TIMEOUT,
    header::RECEIVED_CONTENT_RANGE,
    header::REPLY_URL,
    header::ERROR_CODE,
    header::ERROR,
    header::ERROR_CONTEXT,
    header::CONTENT_RANGE,
    header::CONTENT_LENGTH,
];

/// Header values that are likely to reach deep into the parsers: protocol
/// words and numbers mixed with junk.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        prop::sample::select(vec![
            "Ping",
            "Create-Session",
            "FRAGMENT",
            "Close_Session",
            "cancel-session",
            "Ack",
            "0x",
            "0x80200020",
            "-2147483649",
            "-0",
            "bytes",
            "bytes */5",
            "bytes 0-0/0",
        ])
        .prop_map(str::to_owned),
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(a, b, c)| format!("bytes {a}-{b}/{c}")),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("{a}-{b}")),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// A header map with any subset of the protocol's headers set to [`value`].
fn headers() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(
        prop::sample::select(NAMES.to_vec()).prop_map(|n| n.to_ascii_lowercase()),
        value(),
        0..NAMES.len(),
    )
}

fn lookup(map: &HashMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    |name| map.get(&name.to_ascii_lowercase()).cloned()
}

fn from_pairs(pairs: Vec<(&'static str, String)>) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// A valid range: `first <= last < total`.
fn range() -> impl Strategy<Value = FragmentRange> {
    (1..=u64::MAX)
        .prop_flat_map(|total| (Just(total), 0..total))
        .prop_flat_map(|(total, last)| (Just(total), Just(last), 0..=last))
        .prop_map(|(total, last, first)| FragmentRange { first, last, total })
}

/// Header-safe tokens (what a session id or file name can be on the wire).
fn token() -> impl Strategy<Value = String> {
    "[!-~]{1,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The request parser never panics, and whatever it accepts is
    /// self-consistent.
    #[test]
    fn parse_request_never_panics(map in headers()) {
        if let Ok(Request::Fragment { range, content_length, .. }) = parse_request(lookup(&map)) {
            prop_assert_eq!(range.len(), content_length);
            prop_assert!(range.first <= range.last && range.last < range.total);
        }
    }

    /// The Ack parser never panics on anything a server may answer.
    #[test]
    fn ack_parse_never_panics(map in headers()) {
        let _ = Ack::parse(lookup(&map));
    }

    /// Neither do the value parsers on arbitrary text.
    #[test]
    fn value_parsers_never_panic(s in value()) {
        let _ = FragmentRange::parse(&s);
        let _ = PacketType::parse(&s);
    }

    /// A range survives `to_header` and `parse`.
    #[test]
    fn fragment_range_round_trips(r in range()) {
        let parsed = FragmentRange::parse(&r.to_header()).expect("own output parses");
        prop_assert_eq!(parsed, r);
        prop_assert_eq!(parsed.len(), r.last - r.first + 1);
    }

    /// A parsed range always satisfies the invariant.
    #[test]
    fn parsed_ranges_are_valid(a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
        match FragmentRange::parse(&format!("bytes {a}-{b}/{c}")) {
            Ok(r) => {
                let want = FragmentRange { first: a, last: b, total: c };
                prop_assert!(a <= b && b < c);
                prop_assert_eq!(r, want);
            }
            Err(_) => prop_assert!(a > b || b >= c),
        }
    }

    /// A fragment the client builds is the fragment the server reads.
    #[test]
    fn fragment_round_trips(id in token(), r in range(), name in proptest::option::of(token())) {
        let request = Request::Fragment {
            session_id: id,
            range: r,
            content_name: name,
            content_length: r.len(),
        };
        let mut pairs = request.headers();
        pairs.push((header::CONTENT_LENGTH, r.len().to_string()));
        let map = from_pairs(pairs);
        prop_assert_eq!(parse_request(lookup(&map)), Ok(request));
    }

    /// An Ack the server builds is the Ack the client reads.
    #[test]
    fn ack_round_trips(
        session_id in proptest::option::of(token()),
        protocol in proptest::option::of(token()),
        host in proptest::option::of((token(), proptest::option::of(any::<u64>()))),
        received in proptest::option::of(any::<u64>()),
        reply_url in proptest::option::of(token()),
        error in proptest::option::of((any::<u32>(), prop::sample::select(vec![5u32, 7]))),
    ) {
        let ack = Ack {
            session_id,
            protocol,
            host_id: host.as_ref().map(|(h, _)| h.clone()),
            host_id_fallback_timeout: host.and_then(|(_, t)| t),
            received_content_range: received,
            reply_url,
            error: error.map(|(code, context)| AckError { code, context }),
        };
        let map = from_pairs(ack.headers());
        prop_assert_eq!(Ack::parse(lookup(&map)), Ok(ack));
    }
}
