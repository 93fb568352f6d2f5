//! `bits list`: Get-BitsTransfer.

use bits_proto::Request;

use crate::args::ListArgs;
use crate::render;

/// Runs `bits list`: the table, or a JSON array with `--json`.
pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let jobs = conn
        .jobs(&Request::List {
            all_users: args.all_users,
            name: args.name,
            // The table shows no files.
            summary: !args.json,
            after: None,
        })
        .await?;
    if args.json {
        render::print(&render::json(&jobs)?)
    } else {
        render::print(&render::table(&jobs))
    }
}
