//! `bits start`: Start-BitsTransfer.
//!
//! Creates the job with its files in one request (so a refused file leaves
//! no half-made job behind), resumed unless `--suspended`. Then either prints
//! the job and returns (`--async`, `--suspended`) or follows it to the end
//! and completes it, so that the files appear.
//!
//! Uploads take one file per job, so an upload `--from-csv` creates one job
//! per row and follows them all.

use std::path::Path;

use anyhow::Context;
use bits_proto::{CreateJob, FileSpec, JobObject, Request};

use crate::args::StartArgs;
use crate::connect::Connection;
use crate::follow::{self, FollowOptions};
use crate::render;
use crate::sources;

/// Runs `bits start`.
pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    let cwd = super::cwd()?;
    let requests = plan(&args, &cwd)?;
    // With an upload file list the number of jobs depends on the input, so
    // its JSON is always an array.
    let several = args.from_csv.is_some() && args.transfer_type.is_upload();

    let mut conn = super::connect().await?;
    let jobs = create_all(&mut conn, requests).await?;

    if args.suspended || args.asynchronous {
        return print_jobs(&jobs, args.json, several);
    }
    let opts = FollowOptions {
        complete: true,
        timeout: None,
        files: args.json,
    };
    let done = follow::follow_all(&mut conn, jobs, &opts).await?;
    if args.json {
        print_jobs(&done, true, several)?;
    }
    Ok(())
}

/// Sends the Create requests in order; a failure names the jobs already
/// created, which stay.
pub(crate) async fn create_all(
    conn: &mut Connection,
    requests: Vec<CreateJob>,
) -> anyhow::Result<Vec<JobObject>> {
    let mut jobs: Vec<JobObject> = Vec::with_capacity(requests.len());
    for create in requests {
        let created = conn.job(&Request::Create(create)).await;
        match created {
            Ok(job) => jobs.push(job),
            Err(e) if jobs.is_empty() => return Err(e),
            Err(e) => {
                let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
                return Err(e.context(format!(
                    "creating job {} of the file list failed; already created: {}",
                    jobs.len() + 1,
                    ids.join(", ")
                )));
            }
        }
    }
    Ok(jobs)
}

/// The Create requests: parses the files first, so that a bad argument is
/// reported before anything is sent.
fn plan(args: &StartArgs, cwd: &Path) -> anyhow::Result<Vec<CreateJob>> {
    if args.properties.password_stdin && args.from_csv.as_deref() == Some("-") {
        return Err(crate::failure::Failure::Usage(
            "--password-stdin and --from-csv - both read standard input; give the file list as a file".into(),
        )
        .into());
    }
    let file_lists: Vec<Vec<FileSpec>> = match &args.from_csv {
        Some(csv) => {
            // Uploads make one job per row; a download list is one job.
            let max_rows = if args.transfer_type.is_upload() {
                usize::MAX
            } else {
                bits_proto::MAX_FILES_PER_JOB
            };
            let rows = super::read_csv(csv, max_rows)?;
            let in_list = || format!("in the file list {csv}");
            if args.transfer_type.is_upload() {
                sources::resolve_upload_rows(&rows, cwd)
                    .with_context(in_list)?
                    .into_iter()
                    .map(|file| vec![file])
                    .collect()
            } else {
                vec![sources::resolve_download_rows(&rows, cwd).with_context(in_list)?]
            }
        }
        None => {
            let (from, to) = if args.transfer_type.is_upload() {
                sources::split_positionals(&args.paths)?
            } else {
                // Start-BitsTransfer without -Destination saves into the
                // current directory.
                sources::split_positionals_or_here(&args.paths)?
            };
            if args.transfer_type.is_upload() {
                vec![vec![sources::resolve_upload(from, to, cwd)?]]
            } else {
                vec![sources::resolve_download(from, to, cwd)?]
            }
        }
    };
    let properties = super::properties(&args.properties, cwd, true)?;
    Ok(file_lists
        .into_iter()
        .map(|files| CreateJob {
            transfer_type: args.transfer_type.as_protocol().to_string(),
            properties: properties.clone(),
            files,
            resume: !args.suspended,
            // The created job is printed in full only as --json of a job
            // that is not followed; else its JobId is all that is needed.
            summary: !(args.json && (args.suspended || args.asynchronous)),
        })
        .collect())
}

/// The JobIds one per line, or the JSON object (an array when `several`).
fn print_jobs(jobs: &[JobObject], json: bool, several: bool) -> anyhow::Result<()> {
    let text = match (json, jobs) {
        (true, [job]) if !several => render::json(job)?,
        (true, _) => render::json(jobs)?,
        (false, _) => jobs.iter().map(|j| format!("{}\n", j.job_id)).collect(),
    };
    render::print(&text)
}
