//! The Windows front ends, through the names `bits compat install` makes:
//! each example of the seed document (Microsoft's "Using Windows PowerShell
//! to create BITS transfer jobs") run as a POSIX shell lets it be written,
//! and bitsadmin end to end.

use std::path::{Path, PathBuf};

use crate::support::{content, read, with_stdin, Home, Run, Serve};
use bits_test_support::{Auth, TestServer};

/// A directory holding the links `bits compat install --dir` made.
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    fn new(h: &Home) -> Installed {
        let dir = tempfile::tempdir().unwrap();
        let r = h.ok(&["compat", "install", "--dir", dir.path().to_str().unwrap()]);
        for name in [
            "Start-BitsTransfer",
            "Get-BitsTransfer",
            "Add-BitsFile",
            "Set-BitsTransfer",
            "Suspend-BitsTransfer",
            "Resume-BitsTransfer",
            "Complete-BitsTransfer",
            "Remove-BitsTransfer",
            "bitsadmin",
        ] {
            let link = dir.path().join(name);
            assert!(r.stdout.contains(link.to_str().unwrap()), "{r:?}");
            assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        }
        Installed { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs an installed name with `args`.
    fn run(&self, h: &Home, name: &str, args: &[&str]) -> Run {
        h.command_named(self.path(name))
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    /// Runs a shell script with the installed names first on PATH.
    fn sh(&self, h: &Home, script: &str, stdin: &str) -> Run {
        let path = format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = h.command_named("sh");
        c.args(["-euc", script]).env("PATH", path);
        with_stdin(c, stdin)
    }
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// "To create a synchronous BITS transfer job": named parameters, the
/// positional form, and the destination left out.
#[test]
fn the_seeds_synchronous_examples_run_as_written() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let server = TestServer::start();
    let body = content(300_000, 1);
    server.put_file("/serverdir/testfile1.txt", body.clone());
    let url = server.url("/serverdir/testfile1.txt");
    std::fs::create_dir(h.path("clientdir")).unwrap();

    let dest = h.path("clientdir/testfile1.txt");
    ok(ps.run(
        &h,
        "Start-BitsTransfer",
        &["-Source", &url, "-Destination", s(&dest)],
    ));
    assert_eq!(read(&dest), body);

    let dest2 = h.path("clientdir/positional.txt");
    let r = ok(ps.run(&h, "Start-BitsTransfer", &[&url, s(&dest2)]));
    assert_eq!(read(&dest2), body);
    // A synchronous transfer outputs nothing, as the cmdlet does.
    assert_eq!(r.stdout, "");

    // Without -Destination: the current directory.
    ok(ps.run(&h, "Start-BitsTransfer", &[&url]));
    assert_eq!(read(&h.path("testfile1.txt")), body);

    // Names in any case, shortened, -Name:value.
    let dest3 = h.path("clientdir/abbreviated.txt");
    let d = format!("-dest:{}", s(&dest3));
    // (The file system knows the links by their exact names; `bits NAME`
    // takes any case.)
    ok(h.bits(&["start-bitstransfer", "-so", &url, &d, "-PRIO", "low"]));
    assert_eq!(read(&dest3), body);
}

/// "…with multiple files": a local wildcard into a directory, and the
/// refusal of a wildcard destination.
#[test]
fn the_seeds_wildcard_copy_runs_and_a_wildcard_destination_is_refused() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let src = h.path("clientsourcedir");
    let out = h.path("clientdir");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&out).unwrap();
    for i in 0..3u8 {
        std::fs::write(src.join(format!("f{i}.txt")), content(10_000, i)).unwrap();
    }
    std::fs::write(src.join("skip.bin"), b"not a text file").unwrap();
    let pattern = format!("{}/*.txt", s(&src));
    let dir = format!("{}/", s(&out));
    ok(ps.run(
        &h,
        "Start-BitsTransfer",
        &[
            "-Source",
            &pattern,
            "-Destination",
            &dir,
            "-TransferType",
            "Download",
        ],
    ));
    for i in 0..3u8 {
        assert_eq!(read(&out.join(format!("f{i}.txt"))), content(10_000, i));
    }
    assert!(!out.join("skip.bin").exists());

    let bad = format!("{}/*.txt", s(&out));
    let r = ps.run(
        &h,
        "Start-BitsTransfer",
        &["-Source", &pattern, "-Destination", &bad],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("wildcard"), "{r:?}");
    assert!(r.stderr.starts_with("Start-BitsTransfer: "), "{r:?}");
    // Nothing was created for the refused command.
    assert!(!ps.run(&h, "Get-BitsTransfer", &[]).stdout.contains("JobId"));
}

/// "…and specify credentials for a remote server": -Credential asks for
/// the password (read from stdin when it is not a terminal).
#[test]
fn the_seeds_credential_example_reads_the_password() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let server = TestServer::start();
    let body = content(50_000, 7);
    server.put_file("/servertestdir/testfile1.txt", body.clone());
    server.require_auth(Auth::basic("Username\\Domain", "pa55-seed"));
    let dest = h.path("testfile1.txt");
    let r = ps.sh(
        &h,
        &format!(
            "Start-BitsTransfer -DisplayName MyJob -Credential 'Username\\Domain' \
             -Source {} -Destination {} -ProxyUsage NoProxy",
            server.url("/servertestdir/testfile1.txt"),
            s(&dest)
        ),
        "pa55-seed\n",
    );
    ok(r);
    assert_eq!(read(&dest), body);
    h.assert_nowhere_on_disk("pa55-seed");
}

/// "…from a CSV file": `Import-CSV filelist.txt | Start-BitsTransfer
/// -TransferType Upload` as `cat filelist.txt | Start-BitsTransfer …`.
#[test]
fn the_seeds_csv_upload_runs_from_a_pipe() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("servertestdir")).unwrap();
    let serve = Serve::start(root.path(), &["--upload"]);
    let client = h.path("clienttestdir");
    std::fs::create_dir(&client).unwrap();
    let mut list = String::from("Source, Destination\n");
    for i in 1..=4u8 {
        let local = client.join(format!("testfile{i}.txt"));
        std::fs::write(&local, content(20_000 + i as usize, i)).unwrap();
        list.push_str(&format!(
            "{}, {}\n",
            s(&local),
            serve.url(&format!("servertestdir/testfile{i}.txt"))
        ));
    }
    std::fs::write(h.path("filelist.txt"), &list).unwrap();
    ok(ps.sh(
        &h,
        "cat filelist.txt | Start-BitsTransfer -TransferType Upload",
        "",
    ));
    for i in 1..=4u8 {
        let got = read(&root.path().join(format!("servertestdir/testfile{i}.txt")));
        assert_eq!(got, content(20_000 + i as usize, i));
    }
}

/// "To create an asynchronous BITS transfer job": the polling loop in sh,
/// the job handed on as text, Complete-BitsTransfer on success and the
/// Format-List view on error.
#[test]
fn the_seeds_asynchronous_polling_loop_runs_in_sh() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let server = TestServer::start();
    let body = content(200_000, 3);
    server.put_file("/File1.zip", body.clone());
    std::fs::create_dir(h.path("downloads")).unwrap();
    let script = |url: &str| {
        format!(
            r#"
Job=$(Start-BitsTransfer -Source {url} -Destination downloads/ -Asynchronous)
while state=$(bitsadmin /rawreturn /getstate "$Job")
      [ "$state" = QUEUED ] || [ "$state" = CONNECTING ] || [ "$state" = TRANSFERRING ]
do sleep 0.1; done
case "$state" in
  TRANSFERRED) Complete-BitsTransfer -BitsJob "$Job"; echo completed ;;
  ERROR) bitsadmin /info "$Job" /verbose; exit 1 ;;
  *) echo "Other action: $state"; exit 2 ;;
esac
"#
        )
    };
    let r = ok(ps.sh(&h, &script(&server.url("/File1.zip")), ""));
    assert!(r.stdout.contains("completed"), "{r:?}");
    assert_eq!(read(&h.path("downloads/File1.zip")), body);

    let r = ps.sh(&h, &script(&server.url("/missing.zip")), "");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("JobState"), "{r:?}");
    assert!(r.stdout.contains("404"), "{r:?}");
}

/// Job ids on stdin: `Get-BitsTransfer -Name 'Nightly*' | Remove-BitsTransfer`
/// acts on the jobs listed and no others.
#[test]
fn jobs_piped_from_get_bitstransfer_are_the_ones_acted_on() {
    let h = Home::new();
    let ps = Installed::new(&h);
    for name in ["Nightly-a", "Nightly-b", "Daily"] {
        let r = ok(ps.run(
            &h,
            "Start-BitsTransfer",
            &[
                "-Source",
                &h.src(),
                "-Destination",
                s(&h.path(name)),
                "-DisplayName",
                name,
                "-Suspended",
            ],
        ));
        // -Suspended outputs the BitsJob table.
        assert!(r.stdout.starts_with("JobId"), "{r:?}");
        assert!(r.stdout.contains(name), "{r:?}");
    }
    let r = ok(ps.sh(
        &h,
        "Get-BitsTransfer -Name 'Nightly*' | Remove-BitsTransfer",
        "",
    ));
    assert_eq!(r.stdout, "");
    let left = ok(ps.run(&h, "Get-BitsTransfer", &[])).stdout;
    assert!(
        left.contains("Daily") && !left.contains("Nightly"),
        "{left}"
    );
    let header: Vec<&str> = left.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "JobId",
            "DisplayName",
            "TransferType",
            "JobState",
            "OwnerAccount"
        ]
    );

    // The table handed back as an argument names its job, like a BitsJob
    // object in a variable.
    let r = ok(ps.sh(
        &h,
        "job=$(Get-BitsTransfer -Name Daily); Set-BitsTransfer -BitsJob \"$job\" -Priority Low -dn Renamed",
        "",
    ));
    assert!(r.stdout.contains("Renamed"), "{r:?}");
    assert_eq!(
        h.bits(&["info", "Renamed", "--json"]).json()["Priority"],
        "Low"
    );

    // Nothing piped in and no -BitsJob: the parameter is named.
    let r = ps.run(&h, "Complete-BitsTransfer", &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("-BitsJob"), "{r:?}");
}

/// PowerShell's binding errors from the installed names, and the names as
/// `bits`'s first argument.
#[test]
fn cmdlet_argument_errors_name_the_parameter() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let r = ps.run(&h, "Start-BitsTransfer", &["-Pr", "Low", "x"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("ambiguous") && r.stderr.contains("-Priority -ProxyUsage"),
        "{r:?}"
    );
    let r = ps.run(&h, "Start-BitsTransfer", &["-Source", "x", "-Dynamic"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("-Dynamic is not supported"), "{r:?}");
    let r = ps.run(
        &h,
        "Get-BitsTransfer",
        &["-JobId", "00000000-0000-4000-8000-000000000000"],
    );
    assert_eq!(r.code, 4, "{r:?}");
    let r = ps.run(&h, "Start-BitsTransfer", &["-Priority", "urgent", "x"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("Foreground, High, Normal, Low"), "{r:?}");

    // Without the links.
    let dest = h.path("copy.txt");
    ok(h.bits(&["Start-BitsTransfer", &h.src(), s(&dest)]));
    assert_eq!(read(&dest), read(Path::new(&h.src())));
    let r = ok(h.bits(&["bitsadmin", "/list"]));
    assert!(r.stdout.contains("Listed 0 job(s)."), "{r:?}");
}

/// `bitsadmin /transfer` completes on success and cancels on a fatal
/// error; the job commands, getters and setters work on names and GUIDs.
#[test]
fn bitsadmin_transfer_and_job_commands_run_end_to_end() {
    let h = Home::new();
    let ps = Installed::new(&h);
    let server = TestServer::start();
    let a = content(120_000, 5);
    let b = content(80_000, 6);
    server.put_file("/a.bin", a.clone());
    server.put_file("/b.bin", b.clone());

    let (da, db) = (h.path("a.bin"), h.path("b.bin"));
    let r = ok(ps.run(
        &h,
        "bitsadmin",
        &[
            "/TRANSFER",
            "myjob",
            "/Priority",
            "high",
            &server.url("/a.bin"),
            s(&da),
            &server.url("/b.bin"),
            s(&db),
        ],
    ));
    assert!(r.stdout.contains("Transfer complete."), "{r:?}");
    assert_eq!(read(&da), a);
    assert_eq!(read(&db), b);

    // A fatal error cancels the job: nothing is left behind.
    let missing = h.path("missing.bin");
    let r = ps.run(
        &h,
        "bitsadmin",
        &["/transfer", "bad", &server.url("/missing.bin"), s(&missing)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("was cancelled") && r.stderr.contains("404"),
        "{r:?}"
    );
    assert!(!missing.exists());
    assert!(crate::support::temp_files(h.work.path()).is_empty());
    let r = ok(ps.run(&h, "bitsadmin", &["/list"]));
    assert!(r.stdout.contains("Listed 0 job(s)."), "{r:?}");

    // /create, /addfile, /addfileset, setters and getters, /resume, /complete.
    let guid = ok(ps.run(&h, "bitsadmin", &["/rawreturn", "/create", "built"])).stdout;
    assert!(guid.starts_with('{') && guid.ends_with('}'), "{guid:?}");
    let dc = h.path("c.bin");
    ok(ps.run(
        &h,
        "bitsadmin",
        &["/addfile", &guid, &server.url("/a.bin"), s(&dc)],
    ));
    let set = h.path("set.txt");
    std::fs::write(
        &set,
        format!(
            "# the second file\n{} {}\n",
            server.url("/b.bin"),
            s(&h.path("d.bin"))
        ),
    )
    .unwrap();
    ok(ps.run(&h, "bitsadmin", &["/addfileset", "built", s(&set)]));
    ok(ps.run(&h, "bitsadmin", &["/setpriority", "built", "LOW"]));
    ok(ps.run(&h, "bitsadmin", &["/setminretrydelay", "built", "30"]));
    let get = |switch: &str| ok(ps.run(&h, "bitsadmin", &["/rawreturn", switch, "built"])).stdout;
    assert_eq!(get("/getpriority"), "LOW");
    assert_eq!(get("/getminretrydelay"), "30");
    assert_eq!(get("/getfilestotal"), "2");
    assert_eq!(get("/getstate"), "SUSPENDED");
    assert_eq!(get("/gettype"), "DOWNLOAD");
    let info = ok(ps.run(&h, "bitsadmin", &["/info", &guid])).stdout;
    assert!(
        info.contains("DISPLAY: 'built'") && info.contains("STATE: SUSPENDED"),
        "{info}"
    );
    ok(ps.run(&h, "bitsadmin", &["/resume", "built"]));
    let id = guid
        .trim_matches(|c| c == '{' || c == '}')
        .to_ascii_lowercase();
    h.wait_state(&id, "Transferred", std::time::Duration::from_secs(30));
    assert_eq!(get("/getbytestransferred"), (a.len() + b.len()).to_string());
    let r = ok(ps.run(&h, "bitsadmin", &["/complete", "built"]));
    assert!(r.stdout.contains("Job completed."), "{r:?}");
    assert_eq!(read(&dc), a);
    assert_eq!(read(&h.path("d.bin")), b);

    // An unknown switch: the usage text, exit 2.
    let r = ps.run(&h, "bitsadmin", &["/frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/frobnicate") && r.stderr.contains("Usage: bitsadmin"),
        "{r:?}"
    );
}
