use super::*;
use std::fs;

/// A temporary current directory with a few files:
/// `a.txt`, `b.txt`, `c.bin`, `.hidden.txt`, `sub/`, `out/`.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.txt", "b.txt", "c.bin", ".hidden.txt"] {
        fs::write(dir.path().join(name), name).unwrap();
    }
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::create_dir(dir.path().join("out")).unwrap();
    dir
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn at(cwd: &Path, rel: &str) -> String {
    cwd.join(rel).to_str().unwrap().to_string()
}

/// An http URL with a wildcard is refused, naming the URL.
#[test]
fn url_wildcard_is_refused() {
    let cwd = fixture();
    for url in [
        "http://example.com/*.iso",
        "https://example.com/file?.iso",
        "http://example.com/[ab].iso",
    ] {
        let err = resolve_download(&args(&[url]), "out", cwd.path()).unwrap_err();
        assert!(
            matches!(&err, SourceError::WildcardInUrl(u) if u == url),
            "{err}"
        );
        assert!(err.to_string().contains(url));
    }
}

/// A query string and an IPv6 host are not wildcards.
#[test]
fn url_query_and_ipv6_host_are_not_wildcards() {
    let cwd = fixture();
    let files = resolve_download(
        &args(&["http://[::1]:8080/dl/file.iso?token=abc&x=1"]),
        "out",
        cwd.path(),
    )
    .unwrap();
    assert_eq!(
        files[0].remote,
        "http://[::1]:8080/dl/file.iso?token=abc&x=1"
    );
    assert_eq!(files[0].local, at(cwd.path(), "out/file.iso"));
}

/// The destination may not hold a wildcard.
#[test]
fn destination_wildcard_is_refused() {
    let cwd = fixture();
    let err = resolve_download(&args(&["a.txt"]), "out/*.txt", cwd.path()).unwrap_err();
    assert!(matches!(&err, SourceError::WildcardInDestination(d) if d == "out/*.txt"));
}

/// Several sources, or a wildcard, need an existing destination directory.
#[test]
fn several_sources_need_a_directory() {
    let cwd = fixture();
    let err = resolve_download(&args(&["a.txt", "b.txt"]), "new.txt", cwd.path()).unwrap_err();
    assert!(matches!(&err, SourceError::NotADirectory(d) if d == "new.txt"));
    assert_eq!(
        err.to_string(),
        "new.txt is not a directory; several sources need a destination directory"
    );

    // A wildcard matching one file still asks for a directory.
    let err = resolve_download(&args(&["*.bin"]), "x.bin", cwd.path()).unwrap_err();
    assert!(matches!(err, SourceError::NotADirectory(_)));

    let files = resolve_download(&args(&["a.txt", "b.txt"]), "out", cwd.path()).unwrap();
    assert_eq!(
        files,
        vec![
            FileSpec {
                remote: at(cwd.path(), "a.txt"),
                local: at(cwd.path(), "out/a.txt"),
            },
            FileSpec {
                remote: at(cwd.path(), "b.txt"),
                local: at(cwd.path(), "out/b.txt"),
            },
        ]
    );
}

/// A local wildcard expands to the matching files, sorted, hidden ones and
/// directories left out.
#[test]
fn local_wildcard_expands_to_files() {
    let cwd = fixture();
    let files = resolve_download(&args(&["./*.txt"]), "out/", cwd.path()).unwrap();
    let locals: Vec<_> = files.iter().map(|f| f.local.as_str()).collect();
    assert_eq!(
        locals,
        [at(cwd.path(), "out/a.txt"), at(cwd.path(), "out/b.txt")]
    );
    assert_eq!(files[0].remote, at(cwd.path(), "a.txt"));

    let err = resolve_download(&args(&["*.zip"]), "out", cwd.path()).unwrap_err();
    assert!(matches!(&err, SourceError::NoMatch(p) if p == "*.zip"));
}

/// The file name of a URL is its last path segment, percent-decoded; a URL
/// without one asks for an explicit destination file.
#[test]
fn file_name_from_url() {
    let cwd = fixture();
    let files = resolve_download(
        &args(&["https://example.com/a/my%20file.iso"]),
        "out",
        cwd.path(),
    )
    .unwrap();
    assert_eq!(files[0].local, at(cwd.path(), "out/my file.iso"));

    let err = resolve_download(&args(&["https://example.com/"]), "out", cwd.path()).unwrap_err();
    assert!(matches!(err, SourceError::NoFileName(_)));

    // An explicit file name needs no name from the URL.
    let files =
        resolve_download(&args(&["https://example.com/"]), "index.html", cwd.path()).unwrap();
    assert_eq!(files[0].local, at(cwd.path(), "index.html"));
}

/// One source: a directory receives the file, otherwise the destination is
/// the file and its directory must exist.
#[test]
fn one_source_names_a_file_or_a_directory() {
    let cwd = fixture();
    let files = resolve_download(&args(&["http://h/x.bin"]), "sub", cwd.path()).unwrap();
    assert_eq!(files[0].local, at(cwd.path(), "sub/x.bin"));

    let files = resolve_download(&args(&["http://h/x.bin"]), "sub/y.bin", cwd.path()).unwrap();
    assert_eq!(files[0].local, at(cwd.path(), "sub/y.bin"));

    let err = resolve_download(&args(&["http://h/x.bin"]), "nope/y.bin", cwd.path()).unwrap_err();
    assert!(
        matches!(&err, SourceError::DestinationDirMissing(d) if d == &at(cwd.path(), "nope")),
        "{err}"
    );
    let err = resolve_download(&args(&["http://h/x.bin"]), "nope/", cwd.path()).unwrap_err();
    assert!(matches!(err, SourceError::DestinationDirMissing(_)));
}

/// A missing local source is named.
#[test]
fn missing_source_is_named() {
    let cwd = fixture();
    let err = resolve_download(&args(&["gone.txt"]), "out", cwd.path()).unwrap_err();
    assert_eq!(err.to_string(), "source gone.txt does not exist");
    let err = resolve_download(&args(&["sub"]), "out", cwd.path()).unwrap_err();
    assert!(matches!(err, SourceError::SourceIsDirectory(_)));
}

/// Schemes other than http, https and file are refused, naming them.
#[test]
fn unsupported_scheme_is_refused() {
    let cwd = fixture();
    let err = resolve_download(&args(&["ftp://h/x"]), "out", cwd.path()).unwrap_err();
    assert!(
        matches!(&err, SourceError::UnsupportedScheme { scheme, .. } if scheme == "ftp"),
        "{err}"
    );
    assert!(err.to_string().contains("ftp://h/x"));
    // `a:b` is a file name, not a URL.
    fs::write(cwd.path().join("a:b"), "").unwrap();
    assert!(resolve_download(&args(&["a:b"]), "out", cwd.path()).is_ok());
}

/// A file:// URL source is checked like a path.
#[test]
fn file_urls_are_sources() {
    let cwd = fixture();
    let url = format!("file://{}", at(cwd.path(), "c.bin"));
    let files = resolve_download(&args(&[&url]), "out", cwd.path()).unwrap();
    assert_eq!(files[0].remote, url);
    assert_eq!(files[0].local, at(cwd.path(), "out/c.bin"));
    let missing = format!("file://{}", at(cwd.path(), "none"));
    assert!(matches!(
        resolve_download(&args(&[&missing]), "out", cwd.path()),
        Err(SourceError::SourceMissing(_))
    ));
}

/// Two sources landing on the same file are refused.
#[test]
fn duplicate_destinations_are_refused() {
    let cwd = fixture();
    let err = resolve_download(&args(&["http://h/a.txt", "a.txt"]), "out", cwd.path()).unwrap_err();
    assert!(
        matches!(err, SourceError::DuplicateDestination { .. }),
        "{err}"
    );
}

/// A download cannot go to a URL; an upload goes from one file to a URL.
#[test]
fn uploads_take_one_file_and_a_url() {
    let cwd = fixture();
    assert!(matches!(
        resolve_download(&args(&["a.txt"]), "http://h/up", cwd.path()),
        Err(SourceError::DownloadToUrl(_))
    ));
    let file = resolve_upload(&args(&["a.txt"]), "http://h/up/a", cwd.path()).unwrap();
    assert_eq!(
        file,
        FileSpec {
            remote: "http://h/up/a".into(),
            local: at(cwd.path(), "a.txt"),
        }
    );
    let file = resolve_upload(&args(&["a.txt"]), "http://h/up/", cwd.path()).unwrap();
    assert_eq!(file.remote, "http://h/up/a.txt");
    assert!(matches!(
        resolve_upload(&args(&["a.txt", "b.txt"]), "http://h/up/", cwd.path()),
        Err(SourceError::TooManyUploadFiles(2))
    ));
    assert!(matches!(
        resolve_upload(&args(&["a.txt"]), "out", cwd.path()),
        Err(SourceError::UploadToPath(_))
    ));
    assert!(matches!(
        resolve_upload(&args(&["http://h/x"]), "http://h/up", cwd.path()),
        Err(SourceError::UploadFromUrl(_))
    ));
}

/// CSV headers match in any case and order, with spaces around the commas.
#[test]
fn csv_with_spaces_and_any_column_order() {
    let text = "destination , Extra, SOURCE\n\
                out/x.bin , 1, http://h/x.bin\n\
                \n\
                \"out/y z.bin\",2 ,  http://h/y.bin  \n";
    let rows = parse_csv(text.as_bytes(), 100).unwrap();
    assert_eq!(
        rows,
        vec![
            CsvRow {
                line: 2,
                source: "http://h/x.bin".into(),
                destination: "out/x.bin".into(),
            },
            CsvRow {
                line: 4,
                source: "http://h/y.bin".into(),
                destination: "out/y z.bin".into(),
            },
        ]
    );
    let cwd = fixture();
    let files = resolve_download_rows(&rows, cwd.path()).unwrap();
    assert_eq!(files[1].local, at(cwd.path(), "out/y z.bin"));
}

/// Malformed CSV names the line at fault.
#[test]
fn malformed_csv_names_the_line() {
    let err = parse_csv(
        "Source,Destination\nhttp://h/a,out/a\nhttp://h/b\n".as_bytes(),
        100,
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::Csv { line: 3, .. }), "{err}");
    assert!(err.to_string().starts_with("line 3:"), "{err}");

    let err = parse_csv("Source,Destination\nhttp://h/a, \n".as_bytes(), 100).unwrap_err();
    assert!(matches!(err, SourceError::Csv { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("Destination field is empty"));

    let err = parse_csv("Src,Destination\na,b\n".as_bytes(), 100).unwrap_err();
    assert!(matches!(err, SourceError::Csv { line: 1, .. }), "{err}");
    assert!(err.to_string().contains("no Source column"));

    assert!(matches!(
        parse_csv("".as_bytes(), 100),
        Err(SourceError::Csv { line: 1, .. })
    ));
    assert!(matches!(
        parse_csv("Source,Destination\n".as_bytes(), 100),
        Err(SourceError::Csv { line: 2, .. })
    ));
}

/// Regression: a list of 400,000 files was read whole and sent as one job
/// whose answers no longer fit a frame. Now reading stops at the first row
/// past the limit, which the message names; the rest is never read.
#[test]
fn a_csv_longer_than_a_job_is_refused_at_the_first_row_too_many() {
    struct Endless {
        sent: u64,
    }
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let text = if self.sent == 0 {
                "Source,Destination\n".to_string()
            } else {
                format!("http://h/{0},out/{0}\n", self.sent)
            };
            self.sent += 1;
            let n = text.len().min(buf.len());
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            Ok(n)
        }
    }
    let err = parse_csv(Endless { sent: 0 }, 1000).unwrap_err();
    assert!(matches!(err, SourceError::Csv { line: 1002, .. }), "{err}");
    assert!(err.to_string().contains("more than 1000 files"), "{err}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a file list holds, reading it ends with rows or an
        /// error naming a line inside it; never a panic.
        #[test]
        fn any_file_list_parses_or_names_a_line(text in "(Source|Destination|,|\"|\r|\n|a|b| |\u{feff}){0,120}") {
            let lines = text.matches('\n').count() as u64 + 1;
            match parse_csv(text.as_bytes(), 5) {
                Ok(rows) => {
                    prop_assert!(!rows.is_empty() && rows.len() <= 5);
                    prop_assert!(rows.iter().all(|r| r.line >= 2 && r.line <= lines));
                }
                Err(SourceError::Csv { line, .. }) => prop_assert!(line >= 1 && line <= lines + 1),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }
}

/// A bad file in a CSV row is reported with the row's line.
#[test]
fn csv_row_errors_carry_the_line() {
    let cwd = fixture();
    let rows = parse_csv(
        "Source,Destination\na.txt,out\nmissing.txt,out\n".as_bytes(),
        100,
    )
    .unwrap();
    let err = resolve_download_rows(&rows, cwd.path()).unwrap_err();
    assert!(matches!(&err, SourceError::AtLine { line: 3, source }
        if matches!(**source, SourceError::SourceMissing(_))));
    let err = anyhow::Error::from(err);
    assert_eq!(
        format!("{err:#}"),
        "line 3: source missing.txt does not exist"
    );
}

/// Relative paths become absolute without `.` components.
#[test]
fn absolute_drops_dot_components() {
    assert_eq!(
        absolute(Path::new("./a/./b"), Path::new("/cwd")),
        PathBuf::from("/cwd/a/b")
    );
    assert_eq!(
        absolute(Path::new("/x/y"), Path::new("/cwd")),
        PathBuf::from("/x/y")
    );
}

#[test]
fn positionals_need_a_destination() {
    assert!(matches!(
        split_positionals(&args(&["a"])),
        Err(SourceError::MissingDestination)
    ));
    let list = args(&["a", "b", "c"]);
    let (sources, dest) = split_positionals(&list).unwrap();
    assert_eq!(sources, &list[..2]);
    assert_eq!(dest, "c");
}

#[test]
fn a_download_of_one_source_alone_goes_into_the_current_directory() {
    let one = args(&["http://h/a.iso"]);
    let (sources, dest) = split_positionals_or_here(&one).unwrap();
    assert_eq!((sources, dest), (&one[..], "./"));
    let cwd = tempfile::tempdir().unwrap();
    let files = resolve_download(sources, dest, cwd.path()).unwrap();
    assert_eq!(Path::new(&files[0].local), cwd.path().join("a.iso"));
    let two = args(&["http://h/a.iso", "/d/"]);
    assert_eq!(split_positionals_or_here(&two).unwrap().1, "/d/");
}
