//! `bits add`: Add-BitsFile.
//!
//! The files are resolved as for a download (`bits start`): only download
//! jobs take more than one file, and the daemon refuses the rest.

use anyhow::Context;
use bits_proto::Request;

use crate::args::AddArgs;
use crate::sources;

/// Runs `bits add`.
pub async fn run(args: AddArgs) -> anyhow::Result<()> {
    let cwd = super::cwd()?;
    let files = match &args.from_csv {
        Some(csv) => {
            let rows = super::read_csv(csv, bits_proto::MAX_FILES_PER_JOB)?;
            sources::resolve_download_rows(&rows, &cwd)
                .with_context(|| format!("in the file list {csv}"))?
        }
        None => {
            let (from, to) = sources::split_positionals(&args.paths)?;
            sources::resolve_download(from, to, &cwd)?
        }
    };
    let mut conn = super::connect().await?;
    let job = conn
        .job(&Request::AddFiles {
            job: args.job,
            files,
        })
        .await?;
    super::print_job_if(args.json, &job)
}
