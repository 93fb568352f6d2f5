//! `bits info`: Get-BitsTransfer -JobId, shown as Format-List would.

use bits_proto::Request;

use crate::args::InfoArgs;
use crate::render;

/// Runs `bits info`.
pub async fn run(args: InfoArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let job = conn
        .job(&Request::Info {
            job: args.job,
            files_from: 0,
        })
        .await?;
    if args.json {
        render::print(&render::json(&job)?)
    } else {
        render::print(&render::format_list(&job))
    }
}
