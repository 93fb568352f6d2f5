//! Unit tests: packets as Microsoft's pages and `[MC-BUP]` write them, as
//! Windows sends them, and as odd peers send them.

use std::collections::HashMap;

use super::*;

/// A case-insensitive header lookup over literal pairs, like an HTTP
/// library's header map.
fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    move |name| map.get(&name.to_ascii_lowercase()).cloned()
}

/// Turns built headers back into a lookup.
fn lookup_owned(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    move |name| map.get(&name.to_ascii_lowercase()).cloned()
}

#[test]
fn packet_types_parse_in_any_spelling_and_print_as_windows_sends_them() {
    for (text, want) in [
        ("Ping", PacketType::Ping),
        ("PING", PacketType::Ping),
        ("Create-Session", PacketType::CreateSession),
        ("CREATE-SESSION", PacketType::CreateSession),
        (" create-session ", PacketType::CreateSession),
        ("Fragment", PacketType::Fragment),
        ("Close-Session", PacketType::CloseSession),
        ("CLOSE_SESSION", PacketType::CloseSession),
        ("Cancel-Session", PacketType::CancelSession),
        ("ACK", PacketType::Ack),
    ] {
        assert_eq!(PacketType::parse(text), Some(want), "{text}");
    }
    for text in ["", "Create Session", "CreateSession", "Fragments", "Pin"] {
        assert_eq!(PacketType::parse(text), None, "{text}");
    }
    for t in PacketType::ALL {
        assert_eq!(PacketType::parse(t.as_str()), Some(t));
    }
    assert_eq!(PacketType::CreateSession.as_str(), "Create-Session");
}

#[test]
fn fragment_range_parses_the_spec_form_and_variants() {
    let r = FragmentRange::parse("bytes 0-4891/4892").expect("MC-BUP example");
    assert_eq!(
        r,
        FragmentRange {
            first: 0,
            last: 4891,
            total: 4892
        }
    );
    assert_eq!(r.len(), 4892);
    assert!(r.is_last());
    assert_eq!(r.to_header(), "bytes 0-4891/4892");
    let r = FragmentRange::parse("Bytes 128-212/1000").expect("Win32 page spelling");
    assert_eq!((r.first, r.last, r.total, r.len()), (128, 212, 1000, 85));
    assert!(!r.is_last());
    assert!(FragmentRange::parse("bytes=5-5/6").is_ok());
    assert!(FragmentRange::parse("  BYTES   1-2/3 ").is_ok());
}

#[test]
fn fragment_range_refuses_what_is_not_a_fragment() {
    for bad in [
        "",
        "bytes",
        "bytes */100",
        "bytes 5-4/10",
        "bytes 0-10/10",
        "bytes 0-0/0",
        "bytes -1-3/10",
        "bytes +1-3/10",
        "bytes 1-3",
        "items 1-3/10",
        "bytes 1-3/10/11",
        "bytes 0-18446744073709551616/18446744073709551617",
        "bytes 0x1-3/10",
        "bytés 1-3/10",
    ] {
        assert!(
            matches!(FragmentRange::parse(bad), Err(PacketError::BadRange { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn parses_create_session_as_windows_sends_it() {
    let req = parse_request(lookup(&[
        ("Accept", "*/*"),
        ("BITS-Packet-Type", "Create-Session"),
        (
            "BITS-Supported-Protocols",
            "{7df0354d-249b-430f-820d-3d2a9bef4931}",
        ),
        ("Content-Name", "rfc2119.txt"),
        ("Content-Length", "0"),
    ]))
    .expect("valid");
    assert_eq!(
        req,
        Request::CreateSession {
            protocols: vec![PROTOCOL_GUID.to_owned()]
        }
    );
    assert_eq!(req.session_id(), None);
}

#[test]
fn protocol_lists_split_on_blanks_and_commas() {
    let req = parse_request(lookup(&[
        ("bits-packet-type", "create-session"),
        ("bits-supported-protocols", " {a}, {b}  {c},,"),
    ]))
    .expect("valid");
    let Request::CreateSession { protocols } = req else {
        panic!("wrong packet")
    };
    assert_eq!(protocols, ["{a}", "{b}", "{c}"]);
    let err = parse_request(lookup(&[
        ("BITS-Packet-Type", "Create-Session"),
        ("BITS-Supported-Protocols", " , "),
    ]))
    .expect_err("empty list");
    assert_eq!(err, PacketError::NoProtocols);
    let err =
        parse_request(lookup(&[("BITS-Packet-Type", "Create-Session")])).expect_err("no list");
    assert_eq!(err, PacketError::MissingHeader(header::SUPPORTED_PROTOCOLS));
}

#[test]
fn chooses_our_protocol_case_insensitively() {
    assert_eq!(choose_protocol(&[PROTOCOL_GUID]), Some(PROTOCOL_GUID));
    assert_eq!(
        choose_protocol(&[
            "{00000000-0000-0000-0000-000000000000}",
            "{7DF0354D-249B-430F-820D-3D2A9BEF4931}"
        ]),
        Some(PROTOCOL_GUID)
    );
    assert_eq!(
        choose_protocol(&["7df0354d-249b-430f-820d-3d2a9bef4931"]),
        Some(PROTOCOL_GUID)
    );
    assert_eq!(
        choose_protocol(&["{00000000-0000-0000-0000-000000000000}"]),
        None
    );
    assert_eq!(choose_protocol::<&str>(&[]), None);
}

#[test]
fn parses_a_fragment_and_checks_its_length() {
    let headers = [
        ("BITS-Packet-Type", "Fragment"),
        ("BITS-Session-Id", "{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}"),
        ("Content-Name", "rfc2119.txt"),
        ("Content-Range", "bytes 0-4891/4892"),
        ("Content-Length", "4892"),
    ];
    let req = parse_request(lookup(&headers)).expect("MC-BUP example");
    assert_eq!(
        req,
        Request::Fragment {
            session_id: "{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}".into(),
            range: FragmentRange {
                first: 0,
                last: 4891,
                total: 4892
            },
            content_name: Some("rfc2119.txt".into()),
            content_length: 4892,
        }
    );
    assert_eq!(
        req.session_id(),
        Some("{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}")
    );

    let mut short = headers;
    short[4] = ("Content-Length", "10");
    assert_eq!(
        parse_request(lookup(&short)),
        Err(PacketError::LengthMismatch {
            content_length: 10,
            range_length: 4892
        })
    );
    let without_length = &headers[..4];
    assert_eq!(
        parse_request(lookup(without_length)),
        Err(PacketError::MissingHeader(header::CONTENT_LENGTH))
    );
    let without_range: Vec<_> = headers
        .iter()
        .copied()
        .filter(|(k, _)| *k != "Content-Range")
        .collect();
    assert_eq!(
        parse_request(lookup(&without_range)),
        Err(PacketError::MissingHeader(header::CONTENT_RANGE))
    );
    let without_session: Vec<_> = headers
        .iter()
        .copied()
        .filter(|(k, _)| *k != "BITS-Session-Id")
        .collect();
    assert_eq!(
        parse_request(lookup(&without_session)),
        Err(PacketError::MissingHeader(header::SESSION_ID))
    );
}

#[test]
fn fragment_encoding_must_be_identity() {
    let base = [
        ("BITS-Packet-Type", "Fragment"),
        ("BITS-Session-Id", "{x}"),
        ("Content-Range", "bytes 0-0/1"),
        ("Content-Length", "1"),
    ];
    let with = |encoding: &'static str| {
        let mut h = base.to_vec();
        h.push(("Content-Encoding", encoding));
        parse_request(lookup(&h))
    };
    assert!(with("identity").is_ok());
    assert!(with("Identity").is_ok());
    assert_eq!(
        with("gzip"),
        Err(PacketError::UnsupportedEncoding("gzip".into()))
    );
}

#[test]
fn close_cancel_and_ping_parse() {
    let id = "{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}";
    assert_eq!(
        parse_request(lookup(&[
            ("BITS-Packet-Type", "Close-Session"),
            ("BITS-Session-Id", id)
        ])),
        Ok(Request::CloseSession {
            session_id: id.into()
        })
    );
    assert_eq!(
        parse_request(lookup(&[
            ("BITS-Packet-Type", "CANCEL-SESSION"),
            ("bits-session-id", id)
        ])),
        Ok(Request::CancelSession {
            session_id: id.into()
        })
    );
    assert_eq!(
        parse_request(lookup(&[
            ("BITS-Packet-Type", "Close-Session"),
            ("BITS-Session-Id", "  ")
        ])),
        Err(PacketError::MissingHeader(header::SESSION_ID))
    );
    assert_eq!(
        parse_request(lookup(&[("BITS-Packet-Type", "Ping")])),
        Ok(Request::Ping)
    );
}

#[test]
fn unknown_missing_and_misplaced_packet_types_are_errors() {
    assert_eq!(
        parse_request(lookup(&[])),
        Err(PacketError::MissingHeader(header::PACKET_TYPE))
    );
    assert_eq!(
        parse_request(lookup(&[("BITS-Packet-Type", "Upload")])),
        Err(PacketError::UnknownPacketType("Upload".into()))
    );
    assert_eq!(
        parse_request(lookup(&[("BITS-Packet-Type", "Ack")])),
        Err(PacketError::UnexpectedPacketType(PacketType::Ack))
    );
}

#[test]
fn request_headers_round_trip() {
    let requests = [
        Request::Ping,
        Request::CreateSession {
            protocols: vec![PROTOCOL_GUID.into(), "{other}".into()],
        },
        Request::Fragment {
            session_id: "{s}".into(),
            range: FragmentRange {
                first: 10,
                last: 19,
                total: 100,
            },
            content_name: Some("report.bin".into()),
            content_length: 10,
        },
        Request::CloseSession {
            session_id: "{s}".into(),
        },
        Request::CancelSession {
            session_id: "{s}".into(),
        },
    ];
    for request in requests {
        let mut headers = request.headers();
        assert_eq!(headers[0].0, header::PACKET_TYPE);
        if let Request::Fragment { content_length, .. } = &request {
            headers.push((header::CONTENT_LENGTH, content_length.to_string()));
        }
        assert_eq!(parse_request(lookup_owned(headers)), Ok(request));
    }
}

#[test]
fn ack_headers_carry_both_error_names_in_windows_hex() {
    let ack = Ack {
        session_id: Some("{s}".into()),
        error: Some(AckError::remote_file(codes::BG_E_TOO_LARGE)),
        ..Ack::default()
    };
    let headers = ack.headers();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get(header::PACKET_TYPE), Some("Ack"));
    assert_eq!(get(header::ERROR_CODE), Some("0x80200020"));
    assert_eq!(get(header::ERROR), Some("0x80200020"));
    assert_eq!(get(header::ERROR_CONTEXT), Some("0x5"));
    assert_eq!(get(header::ACCEPT_ENCODING), None);
    assert_eq!(headers[0].0, header::PACKET_TYPE);

    let lost = Ack {
        error: Some(AckError::remote_application(codes::BG_E_SESSION_NOT_FOUND)),
        ..Ack::default()
    };
    let headers = lost.headers();
    assert!(headers.contains(&(header::ERROR_CODE, "0x8020001F".into())));
    assert!(headers.contains(&(header::ERROR_CONTEXT, "0x7".into())));
}

#[test]
fn ack_for_create_session_offers_identity_encoding() {
    let ack = Ack {
        session_id: Some("{s}".into()),
        protocol: Some(PROTOCOL_GUID.into()),
        host_id: Some("node7.example".into()),
        host_id_fallback_timeout: Some(86_400),
        ..Ack::default()
    };
    let headers = ack.headers();
    assert!(headers.contains(&(header::ACCEPT_ENCODING, "Identity".into())));
    assert!(headers.contains(&(header::HOST_ID_FALLBACK_TIMEOUT, "86400".into())));
    assert_eq!(Ack::parse(lookup_owned(headers)), Ok(ack));
}

#[test]
fn fallback_timeout_needs_a_host_id() {
    let ack = Ack {
        host_id_fallback_timeout: Some(5),
        ..Ack::default()
    };
    assert!(!ack
        .headers()
        .iter()
        .any(|(n, _)| *n == header::HOST_ID_FALLBACK_TIMEOUT));
}

#[test]
fn ack_parse_reads_what_iis_sends() {
    // Ack for Create-Session and for the last Fragment of an upload-reply,
    // from [MC-BUP] section 4 (IIS 6).
    let ack = Ack::parse(lookup(&[
        ("Pragma", "no-cache"),
        ("BITS-Packet-Type", "Ack"),
        ("BITS-Protocol", "{7df0354d-249b-430f-820d-3d2a9bef4931}"),
        ("BITS-Session-Id", "{A0FF5911-4144-45B3-BF27-27AFC8EC8A67}"),
        ("Content-Length", "0"),
        ("Accept-encoding", "identity"),
    ]))
    .expect("valid");
    assert_eq!(ack.protocol.as_deref(), Some(PROTOCOL_GUID));
    assert_eq!(ack.error, None);
    let ack = Ack::parse(lookup(&[
        ("BITS-Packet-Type", "Ack"),
        ("BITS-Received-Content-Range", "4892"),
        (
            "BITS-Reply-URL",
            "BITS-Sessions\\Replies\\{C85B4E0A-9EB9-4114-BFA4-8A43B4710091}\\responsefile.bin",
        ),
    ]))
    .expect("valid");
    assert_eq!(ack.received_content_range, Some(4892));
    assert!(ack.reply_url.expect("reply").ends_with("responsefile.bin"));
}

#[test]
fn ack_parse_reads_either_error_header_in_any_number_form() {
    for (name, value, want) in [
        (
            "BITS-Error-Code",
            "0x8020001F",
            codes::BG_E_SESSION_NOT_FOUND,
        ),
        ("BITS-Error", "0x8020001f", codes::BG_E_SESSION_NOT_FOUND),
        ("bits-error", "80200020", codes::BG_E_TOO_LARGE),
        ("BITS-Error-Code", "-2145386464", codes::BG_E_TOO_LARGE),
        ("BITS-Error-Code", "0X80070057", codes::E_INVALIDARG),
    ] {
        let ack = Ack::parse(lookup(&[("BITS-Packet-Type", "Ack"), (name, value)]))
            .unwrap_or_else(|e| panic!("{name}: {value}: {e}"));
        assert_eq!(ack.error, Some(AckError::remote_file(want)), "{value}");
    }
    let ack = Ack::parse(lookup(&[
        ("BITS-Error-Code", "0x8020001F"),
        ("BITS-Error", "0x80070057"),
        ("BITS-Error-Context", "0x7"),
    ]))
    .expect("valid");
    assert_eq!(
        ack.error,
        Some(AckError::remote_application(codes::BG_E_SESSION_NOT_FOUND))
    );
    assert!(ack.error.expect("error").is_session_not_found());
    assert!(matches!(
        Ack::parse(lookup(&[("BITS-Error-Code", "oops")])),
        Err(PacketError::BadHeader { name, .. }) if name == header::ERROR_CODE
    ));
    // A context alone is not an error.
    assert_eq!(
        Ack::parse(lookup(&[("BITS-Error-Context", "0x5")])).map(|a| a.error),
        Ok(None)
    );
}

#[test]
fn ack_parse_tolerates_a_missing_packet_type_but_not_a_wrong_one() {
    assert_eq!(Ack::parse(lookup(&[])), Ok(Ack::default()));
    assert_eq!(
        Ack::parse(lookup(&[("BITS-Packet-Type", "ack")])),
        Ok(Ack::default())
    );
    assert_eq!(
        Ack::parse(lookup(&[("BITS-Packet-Type", "Fragment")])),
        Err(PacketError::NotAnAck("Fragment".into()))
    );
}

#[test]
fn ack_parse_reads_odd_received_ranges() {
    for (value, want) in [
        ("213", 213),
        (" 0 ", 0),
        ("0-212", 213),
        ("bytes 0-212/1000", 213),
    ] {
        let ack = Ack::parse(lookup(&[("BITS-Received-Content-Range", value)]))
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(ack.received_content_range, Some(want), "{value}");
    }
    for value in ["-5", "12a", "5-1", "18446744073709551616"] {
        assert!(
            Ack::parse(lookup(&[("BITS-Received-Content-Range", value)])).is_err(),
            "{value}"
        );
    }
}

#[test]
fn http_error_codes_follow_bits() {
    assert_eq!(codes::http_error(404), 0x8019_0194);
    assert_eq!(codes::http_error(503), 0x8019_01F7);
}

#[test]
fn error_messages_name_the_problem() {
    assert_eq!(
        PacketError::MissingHeader(header::SESSION_ID).to_string(),
        "missing header BITS-Session-Id"
    );
    let long = "x".repeat(1000);
    let err = parse_request(lookup(&[("BITS-Packet-Type", &long)])).expect_err("unknown");
    assert!(err.to_string().len() < 200, "{err}");
}
