//! `bits policy show` and `bits policy set`: the daemon-wide policy.

use bits_core::policy::bandwidth::format_rate;
use bits_proto::{PolicyChange, PolicyObject, Request, Response};

use crate::args::PolicyCommand;
use crate::connect::unexpected;
use crate::render;

/// Runs `bits policy`.
pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let (change, json) = match command {
        PolicyCommand::Show(args) => (None, args.json),
        PolicyCommand::Set(args) => (
            Some(PolicyChange {
                max_background_bandwidth: args.max_background_bandwidth,
                bandwidth_schedule: args.bandwidth_schedule,
                background_jobs: args.background_jobs,
                max_jobs_per_user: args.max_jobs_per_user,
                max_files_per_job: args.max_files_per_job,
            }),
            args.json,
        ),
    };
    let mut conn = super::connect().await?;
    let policy = match conn.request(&Request::Policy { change }).await? {
        Response::Policy { policy } => policy,
        other => return Err(unexpected(&other)),
    };
    if json {
        render::print(&render::json(&policy)?)
    } else {
        render::print(&readable(&policy))
    }
}

/// Format-List style: `Key : value` lines.
fn readable(p: &PolicyObject) -> String {
    let rate = |r: Option<u64>| {
        r.map_or_else(
            || "off".to_string(),
            |r| format!("{} ({r} bytes/s)", format_rate(r)),
        )
    };
    let now = if p.background_blocked {
        "blocked by the schedule".to_string()
    } else {
        rate(p.background_bandwidth_now)
    };
    let rows = [
        ("MaxBackgroundBandwidth", rate(p.max_background_bandwidth)),
        (
            "BandwidthSchedule",
            p.bandwidth_schedule.clone().unwrap_or_else(|| "off".into()),
        ),
        ("BackgroundBandwidthNow", now),
        (
            "NextScheduleChange",
            p.next_schedule_change
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
        ("BackgroundJobs", p.background_jobs.to_string()),
        ("MaxJobsPerUser", p.max_jobs_per_user.to_string()),
        ("MaxFilesPerJob", p.max_files_per_job.to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$} : {v}\n"))
        .collect()
}
