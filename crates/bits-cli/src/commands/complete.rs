//! `bits complete`: Complete-BitsTransfer: the transferred files appear under their names; the job becomes Acknowledged.

use bits_proto::Request;

use crate::args::JobArgs;

/// Runs `bits complete`: prints nothing unless `--json`.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn.job(&Request::Complete { job: args.job }).await?;
    super::print_job_if(args.json, &job)
}
