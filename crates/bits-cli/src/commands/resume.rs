//! `bits resume`: Resume-BitsTransfer; synchronous by default, like
//! `bits start`: follows the job and completes it on success.

use bits_proto::Request;

use crate::args::ResumeArgs;
use crate::follow::{self, FollowOptions};

/// Runs `bits resume`.
pub async fn run(args: ResumeArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn.job(&Request::Resume { job: args.job }).await?;
    if args.asynchronous {
        return super::print_job_if(args.json, &job);
    }
    let opts = FollowOptions {
        complete: true,
        timeout: None,
        files: args.json,
    };
    let done = follow::follow(&mut conn, job, &opts).await?;
    super::print_job_if(args.json, &done)
}
