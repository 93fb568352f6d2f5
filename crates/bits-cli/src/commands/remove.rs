//! `bits remove`: Remove-BitsTransfer (alias `cancel`): the job becomes Cancelled and its files are deleted.

use bits_proto::Request;

use crate::args::JobArgs;

/// Runs `bits remove`: prints nothing unless `--json`.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn.job(&Request::Cancel { job: args.job }).await?;
    super::print_job_if(args.json, &job)
}
