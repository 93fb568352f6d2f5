//! `bits suspend`: Suspend-BitsTransfer.

use bits_proto::Request;

use crate::args::JobArgs;

/// Runs `bits suspend`: prints nothing unless `--json`.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn.job(&Request::Suspend { job: args.job }).await?;
    super::print_job_if(args.json, &job)
}
