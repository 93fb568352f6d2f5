//! `bits monitor`: a live view of the jobs, as `bitsadmin /monitor`.
//!
//! On a terminal the screen is cleared and the table (with each job's rate
//! and time left since the last refresh) redrawn at each refresh, fitted to
//! the terminal's width; otherwise (a pipe, a log file) each refresh
//! appends the table, 120 columns at most, followed by a blank line. Ctrl-C ends the view (exit 0). A daemon that
//! goes away is reconnected to, and restarted if need be.

use std::io::IsTerminal;

use bits_proto::{Request, Response};

use crate::args::MonitorArgs;
use crate::connect::unexpected;
use crate::render;

/// Moves the cursor home and clears the screen (ANSI, as `clear` does).
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Runs `bits monitor`.
pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let mut conn = super::connect().await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let list = |_fresh: bool| Request::List {
        all_users: args.all_users,
        name: None,
        summary: true,
        after: None,
    };

    let mut seen = render::live::Seen::default();
    loop {
        let answer = tokio::select! {
            answer = conn.call_resilient(list) => answer?,
            _ = &mut ctrl_c => return Ok(()),
        };
        let jobs = match answer {
            // One page is a screenful and more.
            Response::Jobs { jobs, .. } => jobs,
            other => return Err(unexpected(&other)),
        };

        if args.json {
            let line = serde_json::to_string(&jobs)?;
            render::print(&format!("{line}\n"))?;
            tokio::select! {
                () = tokio::time::sleep(args.refresh) => {}
                _ = &mut ctrl_c => return Ok(()),
            }
            continue;
        }
        let width = if terminal {
            console::Term::stdout()
                .size_checked()
                .map_or(120, |(_, cols)| usize::from(cols))
        } else {
            120
        };
        let table = render::live::table(&jobs, &mut seen, std::time::Instant::now(), width);
        let screen = if terminal {
            format!(
                "{CLEAR_SCREEN}bits monitor: refreshing every {} s; Ctrl-C to quit.\n\n{table}",
                args.refresh.as_secs_f64()
            )
        } else {
            format!("{table}\n")
        };
        render::print(&screen)?;

        tokio::select! {
            () = tokio::time::sleep(args.refresh) => {}
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}
