//! `bits complete`: Complete-BitsTransfer: the transferred files appear
//! under their names; the job becomes Acknowledged. Files that were not
//! fully transferred are discarded, and the command says so
//! (BG_S_PARTIAL_COMPLETE).

use bits_proto::Request;

use crate::args::JobArgs;
use crate::render;

/// Runs `bits complete`: the job object with `--json` (its `CompleteResult`
/// lists what was kept and what was discarded); otherwise a message when
/// anything was discarded, nothing when every file was kept.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn
        .job(&Request::Complete {
            job: args.job,
            summary: !args.json,
        })
        .await?;
    if args.json {
        return render::print(&render::json(&job)?);
    }
    render::warn_partial_complete(&job);
    Ok(())
}
