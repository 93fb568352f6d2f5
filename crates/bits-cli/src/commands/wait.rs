//! `bits wait`: the polling loop of the BITS documentation as one command.
//!
//! Unlike a synchronous `start`, it does not complete the job: a script that
//! waits decides itself when the files should appear.

use bits_proto::Request;

use crate::args::WaitArgs;
use crate::failure::Failure;
use crate::follow::{self, FollowOptions};

/// Runs `bits wait`.
pub async fn run(args: WaitArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    // Info turns a prefix or DisplayName into the full JobId to watch.
    let job = conn
        .job(&Request::Info {
            job: args.job,
            files_from: 0,
        })
        .await?;
    let opts = FollowOptions {
        complete: false,
        timeout: args.timeout,
        files: args.json,
    };
    match follow::follow(&mut conn, job, &opts).await {
        Ok(job) => super::print_job_if(args.json, &job),
        Err(e) => {
            // A job that ended in Error is still a job to report.
            if let Some(Failure::JobError(job)) = e.downcast_ref::<Failure>() {
                super::print_job_if(args.json, job)?;
            }
            Err(e)
        }
    }
}
