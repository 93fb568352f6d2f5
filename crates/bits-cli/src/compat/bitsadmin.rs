//! bitsadmin: the switches of Windows' `bitsadmin.exe` over the same
//! daemon requests as the native commands.
//!
//! Switches are case-insensitive; a job is a DisplayName or a JobId (in
//! braces or not, any case). Output follows bitsadmin's: `{GUID}` in
//! upper case, states as `TRANSIENT_ERROR`, values alone on a line; with
//! `/rawreturn`, the bare value without the line break, for scripts.

use std::path::Path;

use anyhow::Context;
use bits_proto::{CreateJob, FileSpec, JobObject, Request};

use super::jobrefs;
use super::powershell::shell_quote;
use crate::args::{AuthScheme, MonitorArgs, Priority, PropertyArgs, ProxyUsage, TransferType};
use crate::commands::{self, Passwords};
use crate::connect::Connection;
use crate::failure::{exit, Failure};
use crate::follow::{self, FollowOptions};
use crate::render;
use crate::sources;

/// What one bitsadmin command line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `/rawreturn`: bare values, no line break.
    pub raw: bool,
    /// The command.
    pub action: Action,
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `/help`, `/?`.
    Help,
    /// `/transfer name [/download|/upload|/upload-reply] [/priority P] remote local…`.
    Transfer {
        /// The DisplayName.
        name: String,
        /// The type.
        transfer_type: TransferType,
        /// The priority (bitsadmin's default: NORMAL).
        priority: Priority,
        /// (remote, local) pairs.
        files: Vec<(String, String)>,
    },
    /// `/create [/download|/upload|/upload-reply] name`.
    Create {
        /// The type.
        transfer_type: TransferType,
        /// The DisplayName.
        name: String,
    },
    /// `/addfile job remote local`.
    AddFile {
        /// The job.
        job: String,
        /// The remote name.
        remote: String,
        /// The local name.
        local: String,
    },
    /// `/addfileset job textfile`.
    AddFileSet {
        /// The job.
        job: String,
        /// The file of "remote local" lines.
        list: String,
    },
    /// `/resume`, `/suspend`, `/complete`, `/cancel`, `/takeownership`.
    Simple {
        /// Which.
        verb: Verb,
        /// The job.
        job: String,
    },
    /// `/list [/allusers] [/verbose]`.
    List {
        /// Every user's jobs.
        all_users: bool,
        /// Format-List detail for each.
        verbose: bool,
    },
    /// `/info job [/verbose]`.
    Info {
        /// The job.
        job: String,
        /// Format-List detail.
        verbose: bool,
    },
    /// `/monitor [/allusers] [/refresh seconds]`.
    Monitor {
        /// Every user's jobs.
        all_users: bool,
        /// Between refreshes (5 s by default, as bitsadmin).
        refresh: std::time::Duration,
    },
    /// `/reset [/allusers]`: cancel every job.
    Reset {
        /// Every user's jobs.
        all_users: bool,
    },
    /// `/getX job`.
    Get {
        /// The job.
        job: String,
        /// Which property.
        property: Getter,
    },
    /// `/setX job …`.
    Set {
        /// The job.
        job: String,
        /// What to set.
        change: Change,
    },
}

/// The job commands that take only a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `/resume` (returns at once, as bitsadmin does).
    Resume,
    /// `/suspend`.
    Suspend,
    /// `/complete`.
    Complete,
    /// `/cancel`.
    Cancel,
    /// `/takeownership`.
    TakeOwnership,
}

/// The `/get…` switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Getter {
    State,
    BytesTotal,
    BytesTransferred,
    FilesTotal,
    FilesTransferred,
    CreationTime,
    ModificationTime,
    CompletionTime,
    Type,
    Owner,
    DisplayName,
    Description,
    Priority,
    Error,
    ErrorCount,
    MinRetryDelay,
    NoProgressTimeout,
    MaxDownloadTime,
    NotifyCmdLine,
    NotifyFlags,
    ProxyUsage,
    ProxyList,
    ProxyBypassList,
    CustomHeaders,
    ReplyFileName,
}

const GETTERS: [(&str, Getter); 25] = [
    ("/getstate", Getter::State),
    ("/getbytestotal", Getter::BytesTotal),
    ("/getbytestransferred", Getter::BytesTransferred),
    ("/getfilestotal", Getter::FilesTotal),
    ("/getfilestransferred", Getter::FilesTransferred),
    ("/getcreationtime", Getter::CreationTime),
    ("/getmodificationtime", Getter::ModificationTime),
    ("/getcompletiontime", Getter::CompletionTime),
    ("/gettype", Getter::Type),
    ("/getowner", Getter::Owner),
    ("/getdisplayname", Getter::DisplayName),
    ("/getdescription", Getter::Description),
    ("/getpriority", Getter::Priority),
    ("/geterror", Getter::Error),
    ("/geterrorcount", Getter::ErrorCount),
    ("/getminretrydelay", Getter::MinRetryDelay),
    ("/getnoprogresstimeout", Getter::NoProgressTimeout),
    ("/getmaxdownloadtime", Getter::MaxDownloadTime),
    ("/getnotifycmdline", Getter::NotifyCmdLine),
    ("/getnotifyflags", Getter::NotifyFlags),
    ("/getproxyusage", Getter::ProxyUsage),
    ("/getproxylist", Getter::ProxyList),
    ("/getproxybypasslist", Getter::ProxyBypassList),
    ("/getcustomheaders", Getter::CustomHeaders),
    ("/getreplyfilename", Getter::ReplyFileName),
];

/// The `/set…` switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `/setpriority`.
    Priority(Priority),
    /// `/setdisplayname`.
    DisplayName(String),
    /// `/setdescription`.
    Description(String),
    /// `/setminretrydelay`.
    MinRetryDelay(u64),
    /// `/setnoprogresstimeout`.
    NoProgressTimeout(u64),
    /// `/setmaxdownloadtime`.
    MaxDownloadTime(u64),
    /// `/setnotifycmdline`: the `sh -c` command (empty: none).
    NotifyCmdLine(String),
    /// `/setnotifyflags`: the native flag names.
    NotifyFlags(String),
    /// `/setcredentials job SERVER|PROXY scheme user password`.
    Credentials {
        /// PROXY rather than SERVER.
        proxy: bool,
        /// The scheme.
        scheme: AuthScheme,
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// `/setproxysettings job usage [list] [bypass]`.
    Proxy {
        /// The usage.
        usage: ProxyUsage,
        /// OVERRIDE's proxies.
        list: Vec<String>,
        /// OVERRIDE's bypass list.
        bypass: Vec<String>,
    },
    /// `/setcustomheaders job header…` (`NULL`: none).
    CustomHeaders(Vec<String>),
    /// `/setreplyfilename job path`.
    ReplyFileName(String),
}

/// What is wrong with a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No command, or one bitsadmin does not have (or bits does not do).
    #[error("unknown command: {0}")]
    Unknown(String),
    /// A command's arguments are wrong.
    #[error("{switch}: {problem}")]
    Bad {
        /// The command.
        switch: String,
        /// What.
        problem: String,
    },
}

/// Parses a bitsadmin command line (the arguments after the program).
pub fn parse(args: &[String]) -> Result<Invocation, ParseError> {
    let mut raw = false;
    let mut rest = args;
    // Output modifiers come first.
    while let Some((first, tail)) = rest.split_first() {
        match first.to_ascii_lowercase().as_str() {
            "/rawreturn" => raw = true,
            "/wrap" | "/nowrap" => {}
            _ => break,
        }
        rest = tail;
    }
    let Some((switch, rest)) = rest.split_first() else {
        return Err(ParseError::Unknown("(none)".into()));
    };
    let lower = switch.to_ascii_lowercase();
    let bad = |problem: &str| ParseError::Bad {
        switch: lower.clone(),
        problem: problem.to_string(),
    };
    let one_job = |rest: &[String]| -> Result<String, ParseError> {
        match rest {
            [job] => Ok(job.clone()),
            _ => Err(bad("give the job (its name or {GUID})")),
        }
    };
    let action = match lower.as_str() {
        "/help" | "/?" | "-?" | "/examples" => Action::Help,
        "/transfer" => parse_transfer(rest).map_err(|p| bad(&p))?,
        "/create" => {
            let (transfer_type, rest) = take_type(rest);
            match rest {
                [name] => Action::Create {
                    transfer_type,
                    name: name.clone(),
                },
                _ => {
                    return Err(bad(
                        "give [/download|/upload|/upload-reply] and the job's name",
                    ))
                }
            }
        }
        "/addfile" => match rest {
            [job, remote, local] => Action::AddFile {
                job: job.clone(),
                remote: remote.clone(),
                local: local.clone(),
            },
            _ => return Err(bad("give the job, the remote URL and the local name")),
        },
        "/addfileset" => match rest {
            [job, list] => Action::AddFileSet {
                job: job.clone(),
                list: list.clone(),
            },
            _ => {
                return Err(bad(
                    "give the job and the text file of 'remote local' lines",
                ))
            }
        },
        "/resume" | "/suspend" | "/complete" | "/cancel" | "/takeownership" => Action::Simple {
            verb: match lower.as_str() {
                "/resume" => Verb::Resume,
                "/suspend" => Verb::Suspend,
                "/complete" => Verb::Complete,
                "/cancel" => Verb::Cancel,
                _ => Verb::TakeOwnership,
            },
            job: one_job(rest)?,
        },
        "/list" | "/reset" => {
            let mut all_users = false;
            let mut verbose = false;
            for flag in rest {
                match flag.to_ascii_lowercase().as_str() {
                    "/allusers" => all_users = true,
                    "/verbose" if lower == "/list" => verbose = true,
                    other => return Err(bad(&format!("unknown option {other}"))),
                }
            }
            if lower == "/list" {
                Action::List { all_users, verbose }
            } else {
                Action::Reset { all_users }
            }
        }
        "/info" => {
            let mut job = None;
            let mut verbose = false;
            for arg in rest {
                if arg.eq_ignore_ascii_case("/verbose") {
                    verbose = true;
                } else if job.is_none() {
                    job = Some(arg.clone());
                } else {
                    return Err(bad("give one job"));
                }
            }
            Action::Info {
                job: job.ok_or_else(|| bad("give the job"))?,
                verbose,
            }
        }
        "/monitor" => {
            let mut all_users = false;
            let mut refresh = std::time::Duration::from_secs(5);
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                match flag.to_ascii_lowercase().as_str() {
                    "/allusers" => all_users = true,
                    "/refresh" => {
                        refresh = it
                            .next()
                            .and_then(|s| s.parse::<f64>().ok())
                            // At least 0.1 s: a smaller interval only burns CPU.
                            .filter(|s| s.is_finite() && *s >= 0.1 && *s < 1e6)
                            .map(std::time::Duration::from_secs_f64)
                            .ok_or_else(|| bad("/refresh takes a number of seconds"))?;
                    }
                    other => return Err(bad(&format!("unknown option {other}"))),
                }
            }
            Action::Monitor { all_users, refresh }
        }
        _ => {
            if let Some((_, property)) = GETTERS.iter().find(|(s, _)| *s == lower) {
                Action::Get {
                    job: one_job(rest)?,
                    property: *property,
                }
            } else if lower.starts_with("/set") {
                let (job, values) = rest
                    .split_first()
                    .ok_or_else(|| bad("give the job, then the value"))?;
                Action::Set {
                    job: job.clone(),
                    change: parse_change(&lower, values).map_err(|p| bad(&p))?,
                }
            } else {
                return Err(ParseError::Unknown(switch.clone()));
            }
        }
    };
    Ok(Invocation { raw, action })
}

/// `/download`, `/upload`, `/upload-reply` at the front.
fn take_type(args: &[String]) -> (TransferType, &[String]) {
    match args.split_first() {
        Some((first, rest)) => match first.to_ascii_lowercase().as_str() {
            "/download" => (TransferType::Download, rest),
            "/upload" => (TransferType::Upload, rest),
            "/upload-reply" => (TransferType::UploadReply, rest),
            _ => (TransferType::Download, args),
        },
        None => (TransferType::Download, args),
    }
}

fn parse_transfer(args: &[String]) -> Result<Action, String> {
    let (name, mut rest) = args
        .split_first()
        .ok_or("give the job's name, then remote and local names")?;
    if name.starts_with('/') || !jobrefs::job_ids(name).is_empty() {
        return Err(format!(
            "'{name}' cannot name a new job (the first argument is its display name, not a switch or a GUID)"
        ));
    }
    let mut transfer_type = TransferType::Download;
    let mut priority = Priority::Normal;
    while let Some((first, tail)) = rest.split_first() {
        match first.to_ascii_lowercase().as_str() {
            "/download" => transfer_type = TransferType::Download,
            "/upload" => transfer_type = TransferType::Upload,
            "/upload-reply" => transfer_type = TransferType::UploadReply,
            "/priority" => {
                let (value, tail) = tail.split_first().ok_or("/priority takes a priority")?;
                priority = parse_priority(value)?;
                rest = tail;
                continue;
            }
            "/dynamic" => {
                return Err(
                    "/DYNAMIC: bits has no dynamic-content mode; every download is \
                            resumable and checked against one version of the file"
                        .into(),
                )
            }
            "/aclflags" => {
                return Err(
                    "/ACLFLAGS: files are created with the owner's rights; there \
                            are no SMB ACLs to copy"
                        .into(),
                )
            }
            _ => break,
        }
        rest = tail;
    }
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err("give remote and local names in pairs".into());
    }
    let files = rest
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    Ok(Action::Transfer {
        name: name.clone(),
        transfer_type,
        priority,
        files,
    })
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    match text.to_ascii_uppercase().as_str() {
        "FOREGROUND" => Ok(Priority::Foreground),
        "HIGH" => Ok(Priority::High),
        "NORMAL" => Ok(Priority::Normal),
        "LOW" => Ok(Priority::Low),
        _ => Err(format!(
            "'{text}' is not a priority: FOREGROUND, HIGH, NORMAL or LOW"
        )),
    }
}

fn seconds(values: &[String]) -> Result<u64, String> {
    match values {
        [v] => v
            .parse()
            .map_err(|_| format!("'{v}' is not a whole number of seconds")),
        _ => Err("give the number of seconds".into()),
    }
}

fn one_value(values: &[String]) -> Result<String, String> {
    match values {
        [v] => Ok(v.clone()),
        _ => Err("give one value (quote it if it holds spaces)".into()),
    }
}

/// The words of a Windows command line: split at blanks outside double
/// quotes, which group and are dropped.
pub fn command_line_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// `NULL` means "none" in bitsadmin's arguments.
fn is_null(text: &str) -> bool {
    text.eq_ignore_ascii_case("NULL")
}

fn parse_change(switch: &str, values: &[String]) -> Result<Change, String> {
    Ok(match switch {
        "/setpriority" => Change::Priority(parse_priority(&one_value(values)?)?),
        "/setdisplayname" => Change::DisplayName(one_value(values)?),
        "/setdescription" => Change::Description(one_value(values)?),
        "/setminretrydelay" => Change::MinRetryDelay(seconds(values)?),
        "/setnoprogresstimeout" => Change::NoProgressTimeout(seconds(values)?),
        "/setmaxdownloadtime" => Change::MaxDownloadTime(seconds(values)?),
        "/setreplyfilename" => Change::ReplyFileName(one_value(values)?),
        "/setnotifyflags" => {
            let text = one_value(values)?;
            let value: u32 = text.parse().map_err(|_| {
                format!("'{text}' is not a number (1 transferred, 2 error, 4 disable…)")
            })?;
            Change::NotifyFlags(
                super::powershell::notify_flags(&value.to_string()).map_err(|e| e.to_string())?,
            )
        }
        "/setnotifycmdline" => match values {
            [program] if is_null(program) => Change::NotifyCmdLine(String::new()),
            [program, params] if is_null(program) && is_null(params) => {
                Change::NotifyCmdLine(String::new())
            }
            [program] => Change::NotifyCmdLine(shell_quote(program)),
            [program, params] if is_null(params) => Change::NotifyCmdLine(shell_quote(program)),
            [program, params] => {
                if is_null(program) {
                    return Err(
                        "the program may be NULL only when the parameters are NULL too".into(),
                    );
                }
                // The parameters are a Windows command line that repeats
                // the program's name first; the program given is what
                // runs, with the other words as its arguments, each
                // quoted so that the shell passes it as it is.
                let mut cmd = shell_quote(program);
                for word in command_line_words(params).iter().skip(1) {
                    cmd.push(' ');
                    cmd.push_str(&shell_quote(word));
                }
                Change::NotifyCmdLine(cmd)
            }
            _ => return Err("give the program and its parameters (or NULL)".into()),
        },
        "/setcredentials" => match values {
            [target, scheme, user, password] => {
                let proxy = match target.to_ascii_uppercase().as_str() {
                    "SERVER" => false,
                    "PROXY" => true,
                    _ => return Err(format!("'{target}' is not a target: SERVER or PROXY")),
                };
                let scheme = match scheme.to_ascii_uppercase().as_str() {
                    "BASIC" => AuthScheme::Basic,
                    "DIGEST" => AuthScheme::Digest,
                    "NTLM" => AuthScheme::Ntlm,
                    "NEGOTIATE" => AuthScheme::Negotiate,
                    "PASSPORT" => {
                        return Err(
                            "PASSPORT: Microsoft retired Passport; use BASIC or DIGEST".into()
                        )
                    }
                    _ => {
                        return Err(format!(
                            "'{scheme}' is not a scheme: BASIC, DIGEST, NTLM or NEGOTIATE"
                        ))
                    }
                };
                Change::Credentials {
                    proxy,
                    scheme,
                    user: user.clone(),
                    password: password.clone(),
                }
            }
            _ => return Err("give SERVER|PROXY, the scheme, the user and the password".into()),
        },
        "/setproxysettings" => {
            let (usage, rest) = values
                .split_first()
                .ok_or("give PRECONFIG, NO_PROXY, AUTODETECT or OVERRIDE")?;
            let usage = match usage.to_ascii_uppercase().as_str() {
                "PRECONFIG" => ProxyUsage::SystemDefault,
                "NO_PROXY" => ProxyUsage::NoProxy,
                "AUTODETECT" => ProxyUsage::AutoDetect,
                "OVERRIDE" => ProxyUsage::Override,
                _ => {
                    return Err(format!(
                    "'{usage}' is not a proxy usage: PRECONFIG, NO_PROXY, AUTODETECT or OVERRIDE"
                ))
                }
            };
            let (list, bypass) = match (usage, rest) {
                (ProxyUsage::Override, [list, bypass @ ..]) if !bypass.is_empty() => {
                    let list: Vec<String> = if is_null(list) {
                        Vec::new()
                    } else {
                        list.split([',', ';'])
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    let bypass: Vec<String> = bypass
                        .iter()
                        .filter(|b| !is_null(b))
                        .flat_map(|b| b.split([',', ';', ' ']))
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    (list, bypass)
                }
                (ProxyUsage::Override, _) => {
                    return Err(
                        "OVERRIDE needs the proxy list and the bypass list (NULL for none)".into(),
                    )
                }
                (_, []) => (Vec::new(), Vec::new()),
                _ => return Err("only OVERRIDE takes proxy and bypass lists".into()),
            };
            Change::Proxy {
                usage,
                list,
                bypass,
            }
        }
        "/setcustomheaders" => match values {
            [] => return Err("give the headers ('Name: value' each), or NULL".into()),
            [null] if is_null(null) => Change::CustomHeaders(Vec::new()),
            headers => Change::CustomHeaders(headers.to_vec()),
        },
        _ => return Err("bits does not implement this switch".into()),
    })
}

/// The usage text.
pub const USAGE: &str = "\
Usage: bitsadmin [/rawreturn] <command> <arguments>
  /transfer <name> [/download|/upload|/upload-reply] [/priority <p>] <remote> <local> [<remote> <local>...]
                    create a job, transfer it and complete it (cancel it on a fatal error)
  /create [/download|/upload|/upload-reply] <name>   create a suspended job (prints its GUID)
  /addfile <job> <remote> <local>                    add a file
  /addfileset <job> <textfile>                       add the 'remote local' lines of a file
  /resume <job>    /suspend <job>    /complete <job>    /cancel <job>    /takeownership <job>
  /list [/allusers] [/verbose]                       your jobs (every user's: root)
  /info <job> [/verbose]
  /monitor [/allusers] [/refresh <seconds>]          live view (Ctrl-C to quit)
  /reset [/allusers]                                 cancel every job
  /getstate /getbytestotal /getbytestransferred /getfilestotal /getfilestransferred
  /getcreationtime /getmodificationtime /getcompletiontime /gettype /getowner
  /getdisplayname /getdescription /getpriority /geterror /geterrorcount
  /getminretrydelay /getnoprogresstimeout /getmaxdownloadtime /getnotifycmdline
  /getnotifyflags /getproxyusage /getproxylist /getproxybypasslist /getcustomheaders
  /getreplyfilename                                   each: <job>
  /setpriority <job> FOREGROUND|HIGH|NORMAL|LOW
  /setdisplayname <job> <name>    /setdescription <job> <text>    /setreplyfilename <job> <path>
  /setminretrydelay <job> <s>     /setnoprogresstimeout <job> <s> /setmaxdownloadtime <job> <s>
  /setnotifycmdline <job> <program>|NULL [<parameters>|NULL]
  /setnotifyflags <job> <flags>   (1 transferred, 2 error, 4 disable)
  /setcredentials <job> SERVER|PROXY BASIC|DIGEST <user> <password>
  /setproxysettings <job> PRECONFIG|NO_PROXY|AUTODETECT|OVERRIDE [<proxies> <bypass>|NULL]
  /setcustomheaders <job> <header>... | NULL
<job> is a display name or a {GUID}. /rawreturn prints bare values.
";

/// Runs bitsadmin; returns the exit code.
pub async fn run(args: Vec<String>) -> anyhow::Result<i32> {
    let invocation = match parse(&args) {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("bitsadmin: {e}\n\n{USAGE}");
            return Ok(exit::USAGE);
        }
    };
    let raw = invocation.raw;
    // A bare value: a line, or with /rawreturn the value alone.
    let value = |text: String| -> anyhow::Result<()> {
        if raw {
            render::print(&text)
        } else {
            render::print(&format!("{text}\n"))
        }
    };
    match invocation.action {
        Action::Help => render::print(USAGE)?,
        Action::Transfer {
            name,
            transfer_type,
            priority,
            files,
        } => return transfer(name, transfer_type, priority, &files, raw).await,
        Action::Create {
            transfer_type,
            name,
        } => {
            let mut conn = commands::connect().await?;
            let job = conn
                .job(&Request::Create(CreateJob {
                    transfer_type: transfer_type.as_protocol().to_string(),
                    properties: commands::properties(
                        &PropertyArgs {
                            name: Some(name),
                            // bitsadmin's jobs start at NORMAL.
                            priority: Some(Priority::Normal),
                            ..PropertyArgs::default()
                        },
                        &commands::cwd()?,
                        true,
                    )?,
                    files: Vec::new(),
                    resume: false,
                    summary: true,
                }))
                .await?;
            if raw {
                value(guid(&job.job_id))?;
            } else {
                render::print(&format!("Created job {}.\n", guid(&job.job_id)))?;
            }
        }
        Action::AddFile { job, remote, local } => {
            add_files(&job, &[(remote, local)]).await?;
            if !raw {
                render::print("Added file to job.\n")?;
            }
        }
        Action::AddFileSet { job, list } => {
            let text = read_file_set(&list)?;
            let pairs = parse_file_set(&text).with_context(|| format!("in {list}"))?;
            add_files(&job, &pairs).await?;
            if !raw {
                render::print(&format!("Added {} file(s) to job.\n", pairs.len()))?;
            }
        }
        Action::Simple { verb, job } => simple(verb, &job, raw).await?,
        Action::List { all_users, verbose } => {
            let mut conn = commands::connect().await?;
            let jobs = conn
                .jobs(&Request::List {
                    all_users,
                    name: None,
                    summary: !verbose,
                    after: None,
                })
                .await?;
            let mut text = String::new();
            for job in &jobs {
                if verbose {
                    text.push_str(&render::format_list(job));
                    text.push('\n');
                } else {
                    text.push_str(&list_line(job));
                }
            }
            if !raw {
                text.push_str(&format!("Listed {} job(s).\n", jobs.len()));
            }
            render::print(&text)?;
        }
        Action::Info { job, verbose } => {
            let job = fetch(&job).await?;
            if verbose {
                render::print(&render::format_list(&job))?;
            } else {
                render::print(&info_lines(&job))?;
            }
        }
        Action::Monitor { all_users, refresh } => {
            commands::run(crate::args::Command::Monitor(MonitorArgs {
                refresh,
                all_users,
                json: false,
            }))
            .await?;
        }
        Action::Reset { all_users } => {
            let mut conn = commands::connect().await?;
            let jobs = conn
                .jobs(&Request::List {
                    all_users,
                    name: None,
                    summary: true,
                    after: None,
                })
                .await?;
            let mut cancelled = 0;
            for job in &jobs {
                match conn
                    .job(&Request::Cancel {
                        job: job.job_id.clone(),
                    })
                    .await
                {
                    Ok(_) => cancelled += 1,
                    Err(e) => eprintln!(
                        "bitsadmin: {} could not be cancelled: {e:#}",
                        guid(&job.job_id)
                    ),
                }
            }
            if !raw {
                render::print(&format!(
                    "{cancelled} out of {} jobs canceled.\n",
                    jobs.len()
                ))?;
            }
        }
        Action::Get { job, property } => {
            let job = fetch(&job).await?;
            value(get(&job, property))?;
        }
        Action::Set { job, change } => {
            set(&job, change).await?;
            if !raw {
                render::print("Job property set.\n")?;
            }
        }
    }
    Ok(exit::OK)
}

/// `/transfer`: create, follow, complete; a fatal error cancels the job,
/// as bitsadmin does, and says so.
async fn transfer(
    name: String,
    transfer_type: TransferType,
    priority: Priority,
    pairs: &[(String, String)],
    raw: bool,
) -> anyhow::Result<i32> {
    let cwd = commands::cwd()?;
    let files = resolve(transfer_type, pairs, &cwd)?;
    let properties = commands::properties(
        &PropertyArgs {
            name: Some(name.clone()),
            priority: Some(priority),
            ..PropertyArgs::default()
        },
        &cwd,
        true,
    )?;
    let mut conn = commands::connect().await?;
    let job = conn
        .job(&Request::Create(CreateJob {
            transfer_type: transfer_type.as_protocol().to_string(),
            properties,
            files,
            resume: true,
            summary: true,
        }))
        .await?;
    if !raw {
        eprintln!(
            "DISPLAY: '{name}' TYPE: {} {}",
            upper(&job.transfer_type),
            guid(&job.job_id)
        );
    }
    let id = job.job_id.clone();
    let opts = FollowOptions {
        complete: true,
        timeout: None,
        files: false,
    };
    match follow::follow(&mut conn, job, &opts).await {
        Ok(_) => {
            if !raw {
                render::print("Transfer complete.\n")?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            let fatal = e
                .chain()
                .any(|c| matches!(c.downcast_ref::<Failure>(), Some(Failure::JobError(_))));
            if fatal {
                let description = e
                    .chain()
                    .find_map(|c| match c.downcast_ref::<Failure>() {
                        Some(Failure::JobError(job)) => job.error_description.clone(),
                        _ => None,
                    })
                    .unwrap_or_else(|| "the job failed".into());
                conn.job(&Request::Cancel { job: id.clone() })
                    .await
                    .context("cancelling the job after its error")?;
                eprintln!(
                    "bitsadmin: Unable to complete transfer: {description}\nJob {} was cancelled.",
                    guid(&id)
                );
                return Ok(exit::FAILED);
            }
            Err(e)
        }
    }
}

/// The files of `pairs` (remote, local) for a job of `transfer_type`.
fn resolve(
    transfer_type: TransferType,
    pairs: &[(String, String)],
    cwd: &Path,
) -> anyhow::Result<Vec<FileSpec>> {
    if transfer_type.is_upload() {
        return match pairs {
            [(remote, local)] => Ok(vec![sources::resolve_upload(
                std::slice::from_ref(local),
                remote,
                cwd,
            )?]),
            _ => Err(Failure::Usage("an upload job holds one file".into()).into()),
        };
    }
    Ok(sources::resolve_download_pairs(pairs, cwd)?)
}

async fn add_files(job: &str, pairs: &[(String, String)]) -> anyhow::Result<()> {
    let mut conn = commands::connect().await?;
    let current = info(&mut conn, job).await?;
    let transfer_type = match current.transfer_type.as_str() {
        "Download" => TransferType::Download,
        _ => TransferType::Upload,
    };
    let files = resolve(transfer_type, pairs, &commands::cwd()?)?;
    conn.job(&Request::AddFiles {
        job: current.job_id,
        files,
    })
    .await?;
    Ok(())
}

fn read_file_set(path: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Usage(format!("cannot read the file set {path}: {e}")))?;
    let mut text = String::new();
    file.take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Failure::Usage(format!("cannot read the file set {path}: {e}")))?;
    Ok(text)
}

/// `/addfileset`'s file: "remote local" per line, `#` comments, blank
/// lines skipped.
pub fn parse_file_set(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [remote, local] => pairs.push((remote.to_string(), local.to_string())),
            _ => {
                return Err(Failure::Usage(format!(
                    "line {}: expected 'remote local', found {} word(s)",
                    n + 1,
                    words.len()
                ))
                .into())
            }
        }
    }
    if pairs.is_empty() {
        return Err(Failure::Usage("no files listed".into()).into());
    }
    Ok(pairs)
}

async fn simple(verb: Verb, job: &str, raw: bool) -> anyhow::Result<()> {
    let job = one(job)?;
    let mut conn = commands::connect().await?;
    let (request, message) = match verb {
        Verb::Resume => (Request::Resume { job }, "Job resumed."),
        Verb::Suspend => (Request::Suspend { job }, "Job suspended."),
        Verb::Complete => (Request::Complete { job, summary: true }, "Job completed."),
        Verb::Cancel => (Request::Cancel { job }, "Job canceled."),
        Verb::TakeOwnership => {
            let properties = bits_proto::JobProperties {
                take_ownership: true,
                ..Default::default()
            };
            (
                Request::Set { job, properties },
                "Took ownership of the job.",
            )
        }
    };
    render::warn_partial_complete(&conn.job(&request).await?);
    if !raw {
        render::print(&format!("{message}\n"))?;
    }
    Ok(())
}

async fn set(job: &str, change: Change) -> anyhow::Result<()> {
    let job = one(job)?;
    let mut args = PropertyArgs::default();
    let mut passwords = Vec::new();
    let mut clear_headers = false;
    match change {
        Change::Priority(p) => args.priority = Some(p),
        Change::DisplayName(n) => args.name = Some(n),
        Change::Description(d) => args.description = Some(d),
        Change::MinRetryDelay(s) => args.retry_interval = Some(s),
        Change::NoProgressTimeout(s) => args.retry_timeout = Some(s),
        Change::MaxDownloadTime(s) => args.max_download_time = Some(s),
        Change::NotifyCmdLine(c) => args.notify_cmd = Some(c),
        Change::NotifyFlags(f) => args.notify_flags = Some(f),
        Change::ReplyFileName(p) => args.reply_file = Some(p.into()),
        Change::Credentials {
            proxy,
            scheme,
            user,
            password,
        } => {
            passwords.push(password);
            if proxy {
                args.proxy_credential = Some(user);
                args.proxy_auth = Some(scheme);
            } else {
                args.credential = Some(user);
                args.auth = Some(scheme);
            }
        }
        Change::Proxy {
            usage,
            list,
            bypass,
        } => {
            args.proxy_usage = Some(usage);
            if usage == ProxyUsage::Override {
                args.proxy_list = Some(list);
                args.proxy_bypass = Some(bypass);
            }
        }
        Change::CustomHeaders(headers) => {
            clear_headers = headers.is_empty();
            args.headers = headers;
        }
    }
    let mut properties =
        commands::properties_with(&args, &commands::cwd()?, false, Passwords::given(passwords))?;
    if clear_headers {
        properties.connection.headers = Some(Vec::new());
    }
    let mut conn = commands::connect().await?;
    conn.job(&Request::Set { job, properties }).await?;
    Ok(())
}

/// The one job a bitsadmin argument names.
fn one(text: &str) -> anyhow::Result<String> {
    match jobrefs::parse(text).as_slice() {
        [job] => Ok(job.clone()),
        [] => Err(Failure::Usage("no job given".into()).into()),
        _ => Err(Failure::Usage(format!("'{text}' names more than one job")).into()),
    }
}

async fn info(conn: &mut Connection, job: &str) -> anyhow::Result<JobObject> {
    conn.job(&Request::Info {
        job: one(job)?,
        files_from: 0,
    })
    .await
}

async fn fetch(job: &str) -> anyhow::Result<JobObject> {
    let mut conn = commands::connect().await?;
    let mut job = info(&mut conn, job).await?;
    conn.fill_files(&mut job).await?;
    Ok(job)
}

/// `{5F0C…}`, as bitsadmin prints a GUID.
pub fn guid(id: &str) -> String {
    format!("{{{}}}", id.to_ascii_uppercase())
}

/// `TransientError` → `TRANSIENT_ERROR`, `UploadReply` → `UPLOAD-REPLY`
/// is handled by [`upper_type`].
pub fn upper(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn upper_type(transfer_type: &str) -> String {
    upper(transfer_type).replace('_', "-")
}

fn total(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "UNKNOWN".to_string(), |b| b.to_string())
}

/// A `/list` line: GUID, name, state, files, bytes.
pub fn list_line(job: &JobObject) -> String {
    format!(
        "{} '{}' {} {} / {} {} / {}\n",
        guid(&job.job_id),
        job.display_name,
        upper(&job.job_state),
        job.files_transferred,
        job.files_total,
        job.bytes_transferred,
        total(job.bytes_total)
    )
}

/// `/info`'s three lines.
pub fn info_lines(job: &JobObject) -> String {
    format!(
        "GUID: {} DISPLAY: '{}'\nTYPE: {} STATE: {} OWNER: {}\nPRIORITY: {} FILES: {} / {} BYTES: {} / {}\n",
        guid(&job.job_id),
        job.display_name,
        upper_type(&job.transfer_type),
        upper(&job.job_state),
        job.owner_account,
        upper(&job.priority),
        job.files_transferred,
        job.files_total,
        job.bytes_transferred,
        total(job.bytes_total)
    )
}

/// One property, as `/get…` prints it.
pub fn get(job: &JobObject, property: Getter) -> String {
    let c = &job.connection;
    match property {
        Getter::State => upper(&job.job_state),
        Getter::BytesTotal => total(job.bytes_total),
        Getter::BytesTransferred => job.bytes_transferred.to_string(),
        Getter::FilesTotal => job.files_total.to_string(),
        Getter::FilesTransferred => job.files_transferred.to_string(),
        Getter::CreationTime => job.creation_time.clone(),
        Getter::ModificationTime => job.modification_time.clone(),
        Getter::CompletionTime => job
            .transfer_completion_time
            .clone()
            .unwrap_or_else(|| "UNKNOWN".into()),
        Getter::Type => upper_type(&job.transfer_type),
        Getter::Owner => job.owner_account.clone(),
        Getter::DisplayName => job.display_name.clone(),
        Getter::Description => job.description.clone(),
        Getter::Priority => upper(&job.priority),
        Getter::Error => match &job.error_code {
            None => "No error.".into(),
            Some(code) => format!(
                "ERROR CODE: {code}\nERROR CONTEXT: {}\nDESCRIPTION: {}",
                job.error_context.as_deref().unwrap_or("Unknown"),
                job.error_description.as_deref().unwrap_or("")
            ),
        },
        Getter::ErrorCount => job.transient_error_count.to_string(),
        Getter::MinRetryDelay => job.minimum_retry_delay.to_string(),
        Getter::NoProgressTimeout => job.no_progress_timeout.to_string(),
        Getter::MaxDownloadTime => job.max_download_time.to_string(),
        Getter::NotifyCmdLine => job.notify_cmd_line.clone().unwrap_or_else(|| "NULL".into()),
        Getter::NotifyFlags => {
            let bits = job
                .notify_flags
                .iter()
                .map(|f| match f.to_ascii_lowercase().as_str() {
                    "transferred" => 1,
                    "error" => 2,
                    "disable" => 4,
                    "modification" => 8,
                    "file-transferred" => 16,
                    _ => 0,
                })
                .fold(0u32, |a, b| a | b);
            bits.to_string()
        }
        Getter::ProxyUsage => match c.proxy_usage.as_str() {
            "SystemDefault" => "PRECONFIG".into(),
            "NoProxy" => "NO_PROXY".into(),
            "AutoDetect" => "AUTODETECT".into(),
            "Override" => "OVERRIDE".into(),
            other => other.to_ascii_uppercase(),
        },
        Getter::ProxyList => null_or(&c.proxy_list.join(",")),
        Getter::ProxyBypassList => null_or(&c.proxy_bypass.join(" ")),
        Getter::CustomHeaders => match &c.custom_headers {
            None => "(write-only)".into(),
            Some(h) if h.is_empty() => "NULL".into(),
            Some(h) => h.join("\n"),
        },
        Getter::ReplyFileName => job.reply_file_name.clone().unwrap_or_else(|| "NULL".into()),
    }
}

fn null_or(text: &str) -> String {
    if text.is_empty() {
        "NULL".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests;
