//! `bits list`: Get-BitsTransfer.

use bits_proto::Request;

use crate::args::ListArgs;
use crate::render;

/// Runs `bits list`: the table, or a JSON array with `--json`.
pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    if args.json {
        // Passed on as the daemon wrote them, one job per line.
        let jobs = conn.raw_jobs(args.all_users, args.name).await?;
        return render::print_json_lines(jobs.iter());
    }
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
    } else if jobs.is_empty() {
        // As `monitor` says it; silence reads as a hang or a failure.
        render::print("No jobs.\n")
    } else {
        render::print(&render::table(&jobs))
    }
}
