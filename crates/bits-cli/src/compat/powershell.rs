//! Running a BitsTransfer cmdlet: its bound parameters become the same
//! daemon requests the native commands send; the output is PowerShell's
//! (the BitsJob table where the cmdlet outputs BitsJob objects, nothing
//! where it outputs nothing).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use bits_proto::{CreateJob, FileSpec, JobObject, Request};

use super::cmdlets::Cmdlet;
use super::jobrefs;
use super::params::{self, Bound};
use crate::args::{AuthScheme, Priority, PropertyArgs, ProxyUsage, TransferType};
use crate::commands::{self, Passwords};
use crate::failure::{exit, Failure};
use crate::follow::{self, FollowOptions};
use crate::render;
use crate::sources::{self, CsvRow};

/// Runs `cmdlet` with its arguments; returns the exit code.
pub async fn run(cmdlet: Cmdlet, args: Vec<String>) -> anyhow::Result<i32> {
    let bound = params::bind(&cmdlet.params(), &args).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(host) = bound.one("ComputerName") {
        // The same cmdlet, run by `bits` on that machine.
        let mut remote = vec![cmdlet.name().to_string()];
        remote.extend(
            bound
                .tokens_without("ComputerName", &args)
                .into_iter()
                .cloned(),
        );
        return crate::remote::run(host, &remote);
    }
    if bound.switch("Verbose") {
        crate::install_tracing(1);
    }
    match cmdlet {
        Cmdlet::Start => start(&bound).await,
        Cmdlet::Get => get(&bound).await,
        Cmdlet::Add => add(&bound).await,
        Cmdlet::Set => set(&bound).await,
        Cmdlet::Suspend => each_job(&bound, |job| Request::Suspend { job }, true).await,
        Cmdlet::Complete => complete(&bound).await,
        Cmdlet::Remove => each_job(&bound, |job| Request::Cancel { job }, false).await,
        Cmdlet::Resume => resume(&bound).await,
    }?;
    Ok(exit::OK)
}

/// Start-BitsTransfer.
async fn start(bound: &Bound) -> anyhow::Result<()> {
    let cwd = commands::cwd()?;
    let transfer_type = match bound.one("TransferType") {
        Some(text) => transfer_type(text)?,
        None => TransferType::Download,
    };
    // The properties first: a bad value is named before any file is looked at.
    let mut properties = property_args(bound)?;
    if properties.name.is_none() {
        properties.name = Some("BITS Transfer".into());
    }
    let file_lists = match bound.many("Source") {
        Some(sources) => vec![files(
            transfer_type,
            sources,
            bound.many("Destination"),
            &cwd,
        )?],
        None => {
            // `Import-Csv list | Start-BitsTransfer`: the rows on stdin,
            // one job each, as the pipeline runs the cmdlet once per row.
            if std::io::stdin().is_terminal() {
                return Err(Failure::Usage(
                    "missing -Source: give the files, or pipe a CSV file list in (a header \
                     row naming Source and Destination)"
                        .into(),
                )
                .into());
            }
            if bound.has("Credential") || bound.has("ProxyCredential") {
                return Err(Failure::Usage(
                    "the file list and the passwords would both come from standard input: \
                     give -Source, or set the credentials afterwards with Set-BitsTransfer"
                        .into(),
                )
                .into());
            }
            let rows = commands::read_csv("-", usize::MAX)?;
            rows.iter()
                .map(|row| {
                    row_files(transfer_type, row, &cwd).with_context(|| {
                        format!("in the file list read from stdin, line {}", row.line)
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    let properties = commands::properties_with(&properties, &cwd, true, passwords())?;
    let suspended = bound.switch("Suspended");
    let requests: Vec<CreateJob> = file_lists
        .into_iter()
        .map(|files| CreateJob {
            transfer_type: transfer_type.as_protocol().to_string(),
            properties: properties.clone(),
            files,
            resume: !suspended,
            summary: true,
        })
        .collect();
    let mut conn = commands::connect().await?;
    let jobs = commands::start::create_all(&mut conn, requests).await?;
    if suspended || bound.switch("Asynchronous") {
        return render::print(&table(&jobs));
    }
    let opts = FollowOptions {
        complete: true,
        timeout: None,
        // The cmdlets print a table of jobs, never their files.
        files: false,
    };
    follow::follow_all(&mut conn, jobs, &opts).await?;
    Ok(())
}

/// The files of one job from -Source and -Destination: one destination for
/// every source (a directory, or a file name for one source; left out, the
/// current directory), or one per source.
fn files(
    transfer_type: TransferType,
    from: &[String],
    to: Option<&[String]>,
    cwd: &Path,
) -> anyhow::Result<Vec<FileSpec>> {
    if transfer_type.is_upload() {
        return match (from, to) {
            ([source], Some([destination])) => Ok(vec![sources::resolve_upload(
                std::slice::from_ref(source),
                destination,
                cwd,
            )?]),
            (_, None) => Err(Failure::Usage(
                "an upload needs -Destination: the URL to upload to".into(),
            )
            .into()),
            _ => Err(Failure::Usage(
                "an upload job holds one file: give one -Source and one -Destination, or pipe \
                 a CSV file list in (one job per row)"
                    .into(),
            )
            .into()),
        };
    }
    match to {
        None => Ok(sources::resolve_download(from, "./", cwd)?),
        Some([one]) => Ok(sources::resolve_download(from, one, cwd)?),
        Some(many) if many.len() == from.len() => {
            let pairs: Vec<(String, String)> =
                from.iter().cloned().zip(many.iter().cloned()).collect();
            Ok(sources::resolve_download_pairs(&pairs, cwd)?)
        }
        Some(many) => Err(Failure::Usage(format!(
            "-Source has {} items and -Destination {}: give one destination (a directory for \
             several files), or one per source",
            from.len(),
            many.len()
        ))
        .into()),
    }
}

fn row_files(
    transfer_type: TransferType,
    row: &CsvRow,
    cwd: &Path,
) -> anyhow::Result<Vec<FileSpec>> {
    let source = std::slice::from_ref(&row.source);
    let to = std::slice::from_ref(&row.destination);
    files(transfer_type, source, Some(to), cwd)
}

/// Get-BitsTransfer: the caller's jobs (every user's with -AllUsers), by
/// name patterns or by JobId.
async fn get(bound: &Bound) -> anyhow::Result<()> {
    if bound.has("JobId") && (bound.has("Name") || bound.has("AllUsers")) {
        return Err(Failure::Usage(
            "parameter set cannot be resolved: -JobId goes alone, -Name with -AllUsers".into(),
        )
        .into());
    }
    let mut conn = commands::connect().await?;
    let mut jobs: Vec<JobObject> = Vec::new();
    if let Some(ids) = bound.many("JobId") {
        for text in ids {
            for job in jobrefs::parse(text) {
                jobs.push(conn.job(&Request::Info { job, files_from: 0 }).await?);
            }
        }
    } else {
        let patterns: Vec<Option<String>> = match bound.many("Name") {
            Some(names) => names.iter().cloned().map(Some).collect(),
            None => vec![None],
        };
        for name in patterns {
            let found = conn
                .jobs(&Request::List {
                    all_users: bound.switch("AllUsers"),
                    name,
                    summary: true,
                    after: None,
                })
                .await?;
            for job in found {
                if !jobs.iter().any(|j| j.job_id == job.job_id) {
                    jobs.push(job);
                }
            }
        }
    }
    render::print(&table(&jobs))
}

/// Add-BitsFile.
async fn add(bound: &Bound) -> anyhow::Result<()> {
    let cwd = commands::cwd()?;
    let from = bound
        .many("Source")
        .ok_or_else(|| Failure::Usage("missing -Source: the files to add".into()))?;
    let files = files(
        TransferType::Download,
        from,
        bound.many("Destination"),
        &cwd,
    )?;
    let mut conn = commands::connect().await?;
    let mut done = Vec::new();
    for job in jobs_given(bound)? {
        done.push(
            conn.job(&Request::AddFiles {
                job,
                files: files.clone(),
            })
            .await?,
        );
    }
    render::print(&table(&done))
}

/// Set-BitsTransfer.
async fn set(bound: &Bound) -> anyhow::Result<()> {
    let args = property_args(bound)?;
    let take_ownership = bound.switch("SetOwnerToCurrentUser");
    if args.is_empty() && !take_ownership {
        return Err(Failure::Usage(
            "nothing to change: give a property (-DisplayName, -Priority, -RetryInterval, …) or \
             -SetOwnerToCurrentUser"
                .into(),
        )
        .into());
    }
    let jobs = jobs_given(bound)?;
    let mut properties = commands::properties_with(&args, &commands::cwd()?, false, passwords())?;
    properties.take_ownership = take_ownership;
    let mut conn = commands::connect().await?;
    let mut done = Vec::new();
    for job in jobs {
        done.push(
            conn.job(&Request::Set {
                job,
                properties: properties.clone(),
            })
            .await?,
        );
    }
    render::print(&table(&done))
}

/// Complete-BitsTransfer: no output; files it could not keep are named on
/// stderr.
async fn complete(bound: &Bound) -> anyhow::Result<()> {
    let jobs = jobs_given(bound)?;
    let mut conn = commands::connect().await?;
    for job in jobs {
        render::warn_partial_complete(&conn.job(&Request::Complete { job, summary: true }).await?);
    }
    Ok(())
}

/// Resume-BitsTransfer: synchronous unless -Asynchronous, even for a job
/// created asynchronously.
async fn resume(bound: &Bound) -> anyhow::Result<()> {
    let jobs = jobs_given(bound)?;
    let mut conn = commands::connect().await?;
    let mut resumed = Vec::new();
    for job in jobs {
        resumed.push(conn.job(&Request::Resume { job }).await?);
    }
    if bound.switch("Asynchronous") {
        return render::print(&table(&resumed));
    }
    let opts = FollowOptions {
        complete: true,
        timeout: None,
        // The cmdlets print a table of jobs, never their files.
        files: false,
    };
    follow::follow_all(&mut conn, resumed, &opts).await?;
    Ok(())
}

/// Suspend- and Remove-BitsTransfer: one request per job; the jobs are
/// printed when `print` (Suspend outputs them, Remove nothing).
async fn each_job(
    bound: &Bound,
    request: impl Fn(String) -> Request,
    print: bool,
) -> anyhow::Result<()> {
    let jobs = jobs_given(bound)?;
    let mut conn = commands::connect().await?;
    let mut done = Vec::new();
    for job in jobs {
        done.push(conn.job(&request(job)).await?);
    }
    if print {
        render::print(&table(&done))?;
    }
    Ok(())
}

/// The jobs of -BitsJob, else those piped in.
fn jobs_given(bound: &Bound) -> anyhow::Result<Vec<String>> {
    match bound.many("BitsJob") {
        Some(texts) => {
            let jobs: Vec<String> = texts.iter().flat_map(|t| jobrefs::parse(t)).collect();
            if jobs.is_empty() {
                return Err(Failure::Usage("-BitsJob is empty".into()).into());
            }
            Ok(jobs)
        }
        None => jobrefs::from_stdin("BitsJob"),
    }
}

/// Passwords as PowerShell's Get-Credential takes them: asked on the
/// terminal, else read from standard input, a line each.
fn passwords() -> Passwords {
    Passwords::new(!std::io::stdin().is_terminal())
}

/// The BitsJob table: JobId, DisplayName, TransferType, JobState,
/// OwnerAccount (nothing when there are no jobs, as PowerShell prints).
pub fn table(jobs: &[JobObject]) -> String {
    render::table_of(jobs, &render::HEADER[..5])
}

/// The native job properties from the cmdlet's parameters, values checked
/// against PowerShell's names.
fn property_args(bound: &Bound) -> anyhow::Result<PropertyArgs> {
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        bound
            .one(name)
            .map(|text| {
                text.trim().parse::<u64>().map_err(|_| {
                    Failure::Usage(format!("-{name} {text}: give a whole number of seconds")).into()
                })
            })
            .transpose()
    };
    let proxy_usage = bound.one("ProxyUsage").map(proxy_usage).transpose()?;
    for list in ["ProxyList", "ProxyBypass"] {
        if bound.has(list) && proxy_usage != Some(ProxyUsage::Override) {
            return Err(Failure::Usage(format!("-{list} needs -ProxyUsage Override")).into());
        }
    }
    Ok(PropertyArgs {
        name: bound.one("DisplayName").map(String::from),
        description: bound.one("Description").map(String::from),
        priority: bound.one("Priority").map(priority).transpose()?,
        retry_interval: number("RetryInterval")?,
        retry_timeout: number("RetryTimeout")?,
        max_download_time: number("MaxDownloadTime")?,
        credential: bound.one("Credential").map(String::from),
        auth: bound
            .one("Authentication")
            .map(|t| auth("Authentication", t))
            .transpose()?,
        proxy_credential: bound.one("ProxyCredential").map(String::from),
        proxy_auth: bound
            .one("ProxyAuthentication")
            .map(|t| auth("ProxyAuthentication", t))
            .transpose()?,
        proxy_usage,
        proxy_list: bound.many("ProxyList").map(<[String]>::to_vec),
        proxy_bypass: bound.many("ProxyBypass").map(<[String]>::to_vec),
        security_flags: bound
            .many("SecurityFlags")
            .map(security_flags)
            .transpose()?,
        headers: bound
            .many("CustomHeaders")
            .map(<[String]>::to_vec)
            .unwrap_or_default(),
        header_write_only: bound.switch("CustomHeadersWriteOnly"),
        notify_cmd: bound.many("NotifyCmdLine").map(|words| {
            words
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        }),
        notify_flags: bound.one("NotifyFlags").map(notify_flags).transpose()?,
        ..PropertyArgs::default()
    })
}

/// One word for `sh -c`.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Finds `text` among `choices` (PowerShell names), case-insensitively;
/// the error lists them.
fn choose<T: Copy>(parameter: &str, text: &str, choices: &[(&str, T)]) -> anyhow::Result<T> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            Failure::Usage(format!(
                "-{parameter} {text}: not one of {}",
                names.join(", ")
            ))
            .into()
        })
}

fn transfer_type(text: &str) -> anyhow::Result<TransferType> {
    choose(
        "TransferType",
        text,
        &[
            ("Download", TransferType::Download),
            ("Upload", TransferType::Upload),
            ("UploadReply", TransferType::UploadReply),
        ],
    )
}

fn priority(text: &str) -> anyhow::Result<Priority> {
    choose(
        "Priority",
        text,
        &[
            ("Foreground", Priority::Foreground),
            ("High", Priority::High),
            ("Normal", Priority::Normal),
            ("Low", Priority::Low),
        ],
    )
}

fn proxy_usage(text: &str) -> anyhow::Result<ProxyUsage> {
    choose(
        "ProxyUsage",
        text,
        &[
            ("SystemDefault", ProxyUsage::SystemDefault),
            ("NoProxy", ProxyUsage::NoProxy),
            ("AutoDetect", ProxyUsage::AutoDetect),
            ("Override", ProxyUsage::Override),
        ],
    )
}

fn auth(parameter: &str, text: &str) -> anyhow::Result<AuthScheme> {
    if text.trim().eq_ignore_ascii_case("Passport") {
        return Err(Failure::Usage(format!(
            "-{parameter} Passport: Microsoft retired Passport authentication; use Basic or Digest"
        ))
        .into());
    }
    choose(
        parameter,
        text,
        &[
            ("Basic", AuthScheme::Basic),
            ("Digest", AuthScheme::Digest),
            ("Ntlm", AuthScheme::Ntlm),
            ("Negotiate", AuthScheme::Negotiate),
        ],
    )
}

/// SecurityFlagValue names into the native flag list.
fn security_flags(names: &[String]) -> anyhow::Result<String> {
    let mut flags = Vec::new();
    for name in names {
        let flag = choose(
            "SecurityFlags",
            name,
            &[
                ("IgnoreCertCNInvalid", Some("ignore-cert-cn-invalid")),
                ("IgnoreCertDateInvalid", Some("ignore-cert-date-invalid")),
                ("IgnoreUnknownCA", Some("ignore-unknown-ca")),
                ("IgnoreCertWrongUsage", Some("ignore-cert-wrong-usage")),
                ("RedirectPolicyAllowSilent", None),
                ("RedirectPolicyAllowReport", Some("redirect-allow-report")),
                ("RedirectPolicyDisallow", Some("redirect-disallow")),
                (
                    "RedirectPolicyAllowHttpsToHttp",
                    Some("redirect-allow-https-to-http"),
                ),
                ("EnableCRLCheck", Some("")),
            ],
        )?;
        match flag {
            Some("") => {
                return Err(Failure::Usage(
                    "-SecurityFlags EnableCRLCheck: bits does not check revocation lists".into(),
                )
                .into())
            }
            Some(flag) => flags.push(flag),
            // Following redirects silently is the default.
            None => {}
        }
    }
    Ok(if flags.is_empty() {
        "none".into()
    } else {
        flags.join(",")
    })
}

/// NotifyFlagValue: a number (1 transferred, 2 error, 4 disable, 8
/// modification, 16 file transferred) or names.
pub(super) fn notify_flags(text: &str) -> anyhow::Result<String> {
    const NAMES: [(u32, &str); 5] = [
        (1, "transferred"),
        (2, "error"),
        (4, "disable"),
        (8, "modification"),
        (16, "file-transferred"),
    ];
    let text = text.trim();
    let value = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse::<u32>().ok(),
    };
    let Some(value) = value else {
        // Names, as the native option takes them.
        return Ok(text.to_ascii_lowercase());
    };
    if value & !0x1f != 0 {
        return Err(Failure::Usage(format!(
            "-NotifyFlags {text}: bits knows 1 (transferred), 2 (error), 4 (disable), 8 \
             (modification) and 16 (file transferred)"
        ))
        .into());
    }
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    Ok(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(cmdlet: Cmdlet, text: &str) -> Bound {
        let args: Vec<String> = text.split_whitespace().map(String::from).collect();
        params::bind(&cmdlet.params(), &args).unwrap()
    }

    #[test]
    fn powershell_values_become_the_native_properties() {
        let b = bound(
            Cmdlet::Start,
            "-DisplayName MyJob -Priority low -ProxyUsage Override \
             -ProxyList @(https://proxy1, 123.24.21.23, proxy3) -RetryInterval 60 \
             -SecurityFlags IgnoreUnknownCA,RedirectPolicyDisallow -NotifyFlags 3 \
             -NotifyCmdLine /bin/echo,done -CustomHeaders X-A:1",
        );
        let p = property_args(&b).unwrap();
        assert_eq!(p.name.as_deref(), Some("MyJob"));
        assert_eq!(p.priority, Some(Priority::Low));
        assert_eq!(p.proxy_usage, Some(ProxyUsage::Override));
        assert_eq!(
            p.proxy_list.unwrap(),
            ["https://proxy1", "123.24.21.23", "proxy3"]
        );
        assert_eq!(p.retry_interval, Some(60));
        assert_eq!(
            p.security_flags.as_deref(),
            Some("ignore-unknown-ca,redirect-disallow")
        );
        assert_eq!(p.notify_flags.as_deref(), Some("transferred,error"));
        assert_eq!(p.notify_cmd.as_deref(), Some("/bin/echo done"));
        assert_eq!(p.headers, ["X-A:1"]);
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_choices() {
        let err = property_args(&bound(Cmdlet::Start, "-Priority urgent")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "-Priority urgent: not one of Foreground, High, Normal, Low"
        );
        let err = property_args(&bound(Cmdlet::Start, "-RetryInterval soon")).unwrap_err();
        assert!(err.to_string().contains("-RetryInterval soon"), "{err}");
        let err = property_args(&bound(Cmdlet::Start, "-ProxyList p1")).unwrap_err();
        assert_eq!(err.to_string(), "-ProxyList needs -ProxyUsage Override");
        let err = transfer_type("Sideways").unwrap_err();
        assert!(err.to_string().contains("Download, Upload, UploadReply"));
    }

    #[test]
    fn the_cmdlets_refuse_what_bits_does_not_do_by_name() {
        for (cmdlet, text, name) in [
            (Cmdlet::Start, "-TransferPolicy Standard", "-TransferPolicy"),
            (Cmdlet::Start, "-Dynamic", "-Dynamic"),
            (Cmdlet::Set, "-HttpMethod PUT", "-HttpMethod"),
            (Cmdlet::Remove, "-WhatIf", "-WhatIf"),
            (Cmdlet::Start, "-CertHash ab", "-CertHash"),
        ] {
            let args: Vec<String> = text.split_whitespace().map(String::from).collect();
            let err = params::bind(&cmdlet.params(), &args)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name} is not supported")),
                "{err}"
            );
        }
    }

    #[test]
    fn every_cmdlet_takes_its_documented_aliases() {
        let b = bound(Cmdlet::Resume, "-b 5f0c -as");
        assert!(b.switch("Asynchronous"));
        assert_eq!(b.many("BitsJob").unwrap(), ["5f0c"]);
        let b = bound(Cmdlet::Get, "-n Nightly* -all");
        assert!(b.switch("AllUsers"));
        let b = bound(Cmdlet::Set, "Nightly -so -pu NoProxy -dn x");
        assert!(b.switch("SetOwnerToCurrentUser"));
        assert_eq!(b.one("ProxyUsage"), Some("NoProxy"));
        // Add-BitsFile's positions: job, source, destination.
        let b = bound(Cmdlet::Add, "job http://h/f /tmp/f");
        assert_eq!(b.one("BitsJob"), Some("job"));
        assert_eq!(b.one("Source"), Some("http://h/f"));
        assert_eq!(b.one("Destination"), Some("/tmp/f"));
    }

    #[test]
    fn the_bitsjob_table_has_powershells_columns() {
        let job = crate::sample::job();
        let text = table(std::slice::from_ref(&job));
        let first = text.lines().next().unwrap();
        let words: Vec<&str> = first.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "JobId",
                "DisplayName",
                "TransferType",
                "JobState",
                "OwnerAccount"
            ]
        );
        assert!(text.lines().nth(2).unwrap().starts_with(&job.job_id));
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn notify_command_words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/bin/echo"), "/bin/echo");
        assert_eq!(shell_quote("it's done"), "'it'\\''s done'");
        assert_eq!(shell_quote(""), "''");
    }
}
