use super::*;

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// What `/setnotifycmdline j PROGRAM PARAMS` sets (PARAMS holds blanks).
fn notify_change(program: &str, params: &str) -> Change {
    let args = ["/setnotifycmdline", "j", program, params].map(String::from);
    match parse(&args) {
        Ok(Invocation {
            action: Action::Set { change, .. },
            ..
        }) => change,
        other => panic!("{other:?}"),
    }
}

fn action(text: &str) -> Action {
    parse(&words(text)).unwrap().action
}

#[test]
fn switches_are_case_insensitive() {
    assert_eq!(
        action("/LIST /AllUsers /verbose"),
        Action::List {
            all_users: true,
            verbose: true
        }
    );
    assert_eq!(
        action("/GetState myjob"),
        Action::Get {
            job: "myjob".into(),
            property: Getter::State
        }
    );
    let inv = parse(&words("/RawReturn /getbytestransferred {ABC}")).unwrap();
    assert!(inv.raw);
}

#[test]
fn transfer_takes_type_priority_and_pairs() {
    assert_eq!(
        action("/transfer nightly /Upload /PRIORITY high http://h/u /tmp/f"),
        Action::Transfer {
            name: "nightly".into(),
            transfer_type: TransferType::Upload,
            priority: Priority::High,
            files: vec![("http://h/u".into(), "/tmp/f".into())],
        }
    );
    // bitsadmin's default is NORMAL, not PowerShell's Foreground.
    let Action::Transfer {
        priority, files, ..
    } = action("/transfer j a b c d")
    else {
        panic!("a transfer")
    };
    assert_eq!(priority, Priority::Normal);
    assert_eq!(files.len(), 2);
    for bad in [
        "/transfer j a",
        "/transfer j /priority urgent a b",
        "/transfer j /dynamic a b",
        "/transfer 5f0c2a4e-0000-4000-8000-000000000001 a b",
    ] {
        assert!(
            matches!(parse(&words(bad)), Err(ParseError::Bad { .. })),
            "{bad}"
        );
    }
}

#[test]
fn unknown_switches_are_named() {
    assert_eq!(
        parse(&words("/frobnicate x")),
        Err(ParseError::Unknown("/frobnicate".into()))
    );
    assert_eq!(parse(&[]), Err(ParseError::Unknown("(none)".into())));
    assert!(matches!(
        parse(&words("/setsecurityflags j 1")),
        Err(ParseError::Bad { .. })
    ));
    assert_eq!(action("/?"), Action::Help);
}

#[test]
fn setters_read_their_values() {
    assert_eq!(
        action("/setpriority j low"),
        Action::Set {
            job: "j".into(),
            change: Change::Priority(Priority::Low)
        }
    );
    assert_eq!(
        action("/setminretrydelay j 60"),
        Action::Set {
            job: "j".into(),
            change: Change::MinRetryDelay(60)
        }
    );
    let Action::Set { change, .. } =
        action("/setproxysettings j OVERRIDE proxy1:8080,proxy2 <local>")
    else {
        panic!()
    };
    assert_eq!(
        change,
        Change::Proxy {
            usage: ProxyUsage::Override,
            list: vec!["proxy1:8080".into(), "proxy2".into()],
            bypass: vec!["<local>".into()],
        }
    );
    assert!(parse(&words("/setproxysettings j OVERRIDE p1")).is_err());
    let Action::Set { change, .. } = action("/setcredentials j server basic bob s3cret") else {
        panic!()
    };
    assert_eq!(
        change,
        Change::Credentials {
            proxy: false,
            scheme: AuthScheme::Basic,
            user: "bob".into(),
            password: "s3cret".into()
        }
    );
    assert_eq!(
        notify_change("/usr/bin/logger", "logger -t bits done"),
        Change::NotifyCmdLine("/usr/bin/logger -t bits done".into())
    );
    assert_eq!(
        action("/setnotifycmdline j NULL"),
        Action::Set {
            job: "j".into(),
            change: Change::NotifyCmdLine(String::new())
        }
    );
    assert_eq!(
        action("/setnotifycmdline j NULL NULL"),
        Action::Set {
            job: "j".into(),
            change: Change::NotifyCmdLine(String::new())
        }
    );
    // The parameters' words reach the program as they are, never the shell.
    assert_eq!(
        notify_change("/usr/bin/curl", "curl -d a=1&b=2 \"http://h/x y\""),
        Change::NotifyCmdLine("/usr/bin/curl -d 'a=1&b=2' 'http://h/x y'".into())
    );
    assert!(parse(&words("/monitor /refresh 1e-300")).is_err());
    assert_eq!(
        action("/setcustomheaders j NULL"),
        Action::Set {
            job: "j".into(),
            change: Change::CustomHeaders(Vec::new())
        }
    );
}

#[test]
fn values_print_as_bitsadmin_prints_them() {
    let mut job = crate::sample::job();
    assert_eq!(get(&job, Getter::State), "TRANSFERRING");
    job.job_state = "TransientError".into();
    assert_eq!(get(&job, Getter::State), "TRANSIENT_ERROR");
    job.transfer_type = "UploadReply".into();
    assert_eq!(get(&job, Getter::Type), "UPLOAD-REPLY");
    assert_eq!(get(&job, Getter::BytesTransferred), "1048576");
    job.bytes_total = None;
    assert_eq!(get(&job, Getter::BytesTotal), "UNKNOWN");
    assert_eq!(
        guid("5f0c2a4e-0000-4000-8000-000000000001"),
        "{5F0C2A4E-0000-4000-8000-000000000001}"
    );
    let line = list_line(&crate::sample::job());
    assert_eq!(
        line,
        "{5F0C2A4E-0000-4000-8000-000000000001} 'BITS Transfer' TRANSFERRING 0 / 1 1048576 / 2097152\n"
    );
}

#[test]
fn a_file_set_is_remote_local_lines() {
    let pairs =
        parse_file_set("# comment\nhttp://h/a /tmp/a\n\n  http://h/b   /tmp/b  \n").unwrap();
    assert_eq!(
        pairs,
        [
            ("http://h/a".to_string(), "/tmp/a".to_string()),
            ("http://h/b".to_string(), "/tmp/b".to_string())
        ]
    );
    let err = parse_file_set("http://h/a\n").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(parse_file_set("# nothing\n").is_err());
}
