//! What the commands print: the job table, the Format-List view of one job,
//! and JSON.
//!
//! Data goes to stdout, through [`print()`], so that a closed pipe ends the
//! command quietly; messages for people go to stderr. JSON is the
//! [`JobObject`] exactly as the daemon sent it, so its keys are the BitsJob
//! property names of the contract.

use std::io::Write;

use bits_proto::{FileObject, JobObject};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::failure::Failure;

/// Writes `text` to stdout. A reader that went away
/// (`bits list | head -1`) becomes [`Failure::StdoutClosed`].
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Pretty JSON and a newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// Prints a JSON array of job objects already serialized, one per line,
/// through one buffer rather than one string of them all.
pub fn print_json_lines<'a>(jobs: impl ExactSizeIterator<Item = &'a str>) -> anyhow::Result<()> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    let written = write_json_lines(&mut out, jobs).and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// `[`, each job on a line of its own indented by two spaces, `]`; `[]`
/// for none.
fn write_json_lines<'a>(
    out: &mut impl Write,
    jobs: impl ExactSizeIterator<Item = &'a str>,
) -> std::io::Result<()> {
    let n = jobs.len();
    if n == 0 {
        return out.write_all(b"[]\n");
    }
    out.write_all(b"[\n")?;
    for (i, job) in jobs.enumerate() {
        out.write_all(b"  ")?;
        out.write_all(job.as_bytes())?;
        out.write_all(if i + 1 < n { b",\n" } else { b"\n" })?;
    }
    out.write_all(b"]\n")
}

/// The job table's columns: BitsJob's table (the first five) and Progress.
pub const HEADER: [&str; 6] = [
    "JobId",
    "DisplayName",
    "TransferType",
    "JobState",
    "OwnerAccount",
    "Progress",
];

/// The job table of `list` and `monitor`: one line per job under a header.
/// Empty when there are no jobs, as Get-BitsTransfer prints nothing.
pub fn table(jobs: &[JobObject]) -> String {
    table_of(jobs, &HEADER)
}

/// The job table with the first `header.len()` of its columns
/// ([`HEADER`]'s first five are PowerShell's BitsJob table).
pub fn table_of(jobs: &[JobObject], header: &[&str]) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 6]> = jobs.iter().map(job_cells).collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().take(header.len()).map(String::as_str).collect())
        .collect();
    columns(header, &rows)
}

/// A job's cells in the table: JobId, DisplayName, TransferType, JobState,
/// OwnerAccount, Progress.
pub fn job_cells(job: &JobObject) -> [String; 6] {
    [
        job.job_id.clone(),
        job.display_name.clone(),
        job.transfer_type.clone(),
        job.job_state.clone(),
        job.owner_account.clone(),
        progress(job.bytes_transferred, job.bytes_total),
    ]
}

/// Text columns under a header and a rule, each as wide as its widest
/// cell, two spaces apart, no padding after the last.
pub fn columns(header: &[&str], rows: &[Vec<&str>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                // No padding after the last column.
                out.push_str(cell);
            } else {
                let pad = width.saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rules.iter().map(String::as_str).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
    text
}

/// One job in Format-List style: `Key : value` lines, then each file.
pub fn format_list(job: &JobObject) -> String {
    let mut props: Vec<(&str, String)> = vec![
        ("JobId", job.job_id.clone()),
        ("DisplayName", job.display_name.clone()),
        ("Description", job.description.clone()),
        ("TransferType", job.transfer_type.clone()),
        ("JobState", job.job_state.clone()),
        ("Priority", job.priority.clone()),
        ("OwnerAccount", job.owner_account.clone()),
        (
            "BytesTotal",
            job.bytes_total
                .map_or_else(|| "unknown".to_string(), |b| b.to_string()),
        ),
        ("BytesTransferred", job.bytes_transferred.to_string()),
        ("Progress", progress(job.bytes_transferred, job.bytes_total)),
        ("FilesTotal", job.files_total.to_string()),
        ("FilesTransferred", job.files_transferred.to_string()),
        ("CreationTime", job.creation_time.clone()),
        ("ModificationTime", job.modification_time.clone()),
        (
            "TransferCompletionTime",
            job.transfer_completion_time.clone().unwrap_or_default(),
        ),
        ("TransientErrorCount", job.transient_error_count.to_string()),
        ("MinimumRetryDelay", job.minimum_retry_delay.to_string()),
        ("NoProgressTimeout", job.no_progress_timeout.to_string()),
        ("MaxDownloadTime", job.max_download_time.to_string()),
        ("Connections", job.connections.to_string()),
        ("ProxyUsage", job.connection.proxy_usage.clone()),
    ];
    let c = &job.connection;
    let joined = |v: &[String]| (!v.is_empty()).then(|| v.join(", "));
    for (key, value) in [
        ("ProxyList", joined(&c.proxy_list)),
        ("ProxyBypass", joined(&c.proxy_bypass)),
        ("ProxyUsed", c.proxy_used.clone()),
        ("SecurityFlags", joined(&c.security_flags)),
        ("CaCertFile", c.ca_cert_file.clone()),
        (
            "MaxBandwidth",
            job.max_bandwidth.map(|r| format!("{r} bytes/s")),
        ),
        ("NotifyCmdLine", job.notify_cmd_line.clone()),
        (
            "NotifyFlags",
            job.notify_cmd_line
                .as_ref()
                .and_then(|_| joined(&job.notify_flags)),
        ),
        (
            "CustomHeaders",
            if c.custom_headers_write_only {
                Some("(write-only)".to_string())
            } else {
                c.custom_headers.as_deref().and_then(joined)
            },
        ),
    ] {
        if let Some(value) = value {
            props.push((key, value));
        }
    }
    for (key, value) in [
        ("NextRetryTime", &job.next_retry_time),
        ("GiveUpTime", &job.give_up_time),
        ("ErrorContext", &job.error_context),
        ("ErrorCode", &job.error_code),
        ("ErrorDescription", &job.error_description),
        ("ReplyFileName", &job.reply_file_name),
    ] {
        if let Some(value) = value {
            props.push((key, value.clone()));
        }
    }
    let mut text = key_values(&props, "");
    text.push_str(&format!(
        "FileList ({}):\n",
        count(job.file_list.len(), "file")
    ));
    // After Complete the files are under their names: no temporary file is
    // left to show.
    let completed = job.job_state == "Acknowledged";
    for file in &job.file_list {
        text.push('\n');
        text.push_str(&key_values(&file_props(file, !completed), "    "));
    }
    text
}

/// `1 file`, `2 files`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn file_props(file: &FileObject, with_temporary: bool) -> Vec<(&'static str, String)> {
    let mut props = vec![
        ("RemoteName", file.remote_name.clone()),
        ("LocalName", file.local_name.clone()),
        (
            "Progress",
            progress(file.bytes_transferred, file.bytes_total),
        ),
        (
            "IsTransferComplete",
            if file.is_transfer_complete {
                "True"
            } else {
                "False"
            }
            .to_string(),
        ),
    ];
    if with_temporary {
        props.push(("TemporaryName", file.temporary_name.clone()));
    }
    props
}

/// `Key   : value` lines with the colons aligned, as Format-List does.
fn key_values(props: &[(&str, String)], indent: &str) -> String {
    let width = props.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (key, value) in props {
        let line = format!("{indent}{key:<width$} : {value}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `1.50 MiB / 3.00 MiB (50%)`, or `512 B / ?` while the size is unknown.
pub fn progress(done: u64, total: Option<u64>) -> String {
    match total {
        Some(0) => format!("{} / {}", HumanBytes(done), HumanBytes(0)),
        Some(total) => format!(
            "{} / {} ({}%)",
            HumanBytes(done),
            HumanBytes(total),
            done.saturating_mul(100) / total
        ),
        None => format!("{} / ?", HumanBytes(done)),
    }
}

pub mod live;

#[cfg(test)]
mod tests;

/// Tells stderr which files a partial Complete discarded (nothing when
/// every file was kept).
pub fn warn_partial_complete(job: &JobObject) {
    if let Some(text) = job.complete_result.as_ref().and_then(partial_complete) {
        eprint!("{text}");
    }
}

/// What a partial Complete did, for people; `None` when every file was kept.
pub fn partial_complete(result: &bits_proto::CompleteResult) -> Option<String> {
    if result.discarded.is_empty() {
        return None;
    }
    let total = result.kept.len() + result.discarded.len();
    let mut text = format!(
        "completed with BG_S_PARTIAL_COMPLETE ({}): {} of {} kept; the partial data of these \
         was discarded:\n",
        result.code,
        result.kept.len(),
        count(total, "file")
    );
    for f in &result.discarded {
        text.push_str("  ");
        text.push_str(f);
        text.push('\n');
    }
    Some(text)
}
