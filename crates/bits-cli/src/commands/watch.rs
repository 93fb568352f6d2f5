//! `bits watch`: one line per event of a job, or of every job.
//!
//! One job is followed with the daemon's long-poll ([`Request::Watch`]), so
//! a change is printed as soon as the daemon publishes it. Every job is
//! followed by listing them every [`PROGRESS_EVERY`]: a job that leaves the
//! list (Acknowledged, Cancelled) is asked for once more, so its last
//! change is printed too. Which observations become lines is
//! [`crate::events`]'s decision. Both ride out a restart of the daemon
//! ([`crate::connect::Connection::call_resilient`]); the first answer of a
//! new daemon that shows nothing new prints nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bits_proto::{ErrorKind, JobObject, Request, Response};
use chrono::{SecondsFormat, Utc};
use std::time::Instant;

use crate::args::WatchArgs;
use crate::connect::{unexpected, Connection};
use crate::events::{Kind, Line, Tracker, PROGRESS_EVERY};
use crate::failure::Failure;
use crate::render;

/// The longest one Watch waits: a daemon that died without closing the
/// socket is noticed this soon.
const WATCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `bits watch`.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut conn = super::connect().await?;
    let out = Output { json: args.json };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let watching = async {
        match &args.job {
            Some(job) => one_job(&mut conn, job, out).await,
            None => every_job(&mut conn, args.all_users, out).await,
        }
    };
    tokio::select! {
        done = watching => done,
        // Ctrl-C is how a watch of every job ends: not a failure.
        _ = &mut ctrl_c => Ok(()),
    }
}

/// Follows one job until it is Acknowledged, Cancelled or gone.
async fn one_job(conn: &mut Connection, job: &str, out: Output) -> anyhow::Result<()> {
    let mut tracker = Tracker::new();
    // The first Watch resolves a prefix or DisplayName to the JobId, which
    // is what is followed from then on: a name may stop being unique.
    let mut target = job.to_string();
    let mut revision = 0;
    loop {
        let wait = match tracker.next_due() {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => WATCH_TIMEOUT,
        };
        let watch = |fresh: bool| Request::Watch {
            job: target.clone(),
            // A restarted daemon counts revisions afresh.
            after_revision: if fresh { 0 } else { revision },
            timeout_ms: (wait.as_millis() as u64).max(1),
            summary: true,
        };
        match conn.call_resilient(watch).await {
            Ok(Response::Watch { revision: r, job }) => {
                revision = r;
                target.clone_from(&job.job_id);
                let now = Instant::now();
                if let Some((kind, job)) = tracker.observe(*job, now, Kind::Current) {
                    out.event(kind, &job)?;
                }
                if let Some((kind, job)) = tracker.due(now) {
                    out.event(kind, &job)?;
                }
            }
            Ok(other) => return Err(unexpected(&other)),
            Err(e) if not_found(&e) => match tracker.latest() {
                // The job was seen and is gone (removed while the daemon
                // was down, say): its end was missed, not the job lost.
                Some(job) => return out.event(Kind::Removed, job),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
        let finished = tracker
            .latest()
            .is_some_and(|job| matches!(job.job_state.as_str(), "Acknowledged" | "Cancelled"));
        if finished {
            return Ok(());
        }
    }
}

/// Follows every job of the user (of every user with `all_users`) until
/// Ctrl-C.
async fn every_job(conn: &mut Connection, all_users: bool, out: Output) -> anyhow::Result<()> {
    let mut trackers: HashMap<String, Tracker> = HashMap::new();
    let mut first_round = true;
    loop {
        let jobs = list(conn, all_users).await?;
        let now = Instant::now();
        let first = if first_round {
            Kind::Current
        } else {
            Kind::Created
        };
        let mut listed = HashSet::new();
        for job in jobs {
            listed.insert(job.job_id.clone());
            let tracker = trackers.entry(job.job_id.clone()).or_default();
            if let Some((kind, job)) = tracker.observe(job, now, first) {
                out.event(kind, &job)?;
            }
        }
        let gone: Vec<String> = trackers
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            let Some(mut tracker) = trackers.remove(&id) else {
                continue;
            };
            let info = |_fresh: bool| Request::Watch {
                job: id.clone(),
                after_revision: 0,
                timeout_ms: 1,
                summary: true,
            };
            match conn.call_resilient(info).await {
                Ok(Response::Watch { job, .. }) => {
                    if let Some((kind, job)) = tracker.observe(*job, now, first) {
                        out.event(kind, &job)?;
                    }
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(e) if not_found(&e) => {
                    if let Some(job) = tracker.latest() {
                        out.event(Kind::Removed, job)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for tracker in trackers.values_mut() {
            if let Some((kind, job)) = tracker.due(now) {
                out.event(kind, &job)?;
            }
        }
        first_round = false;
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
}

/// Every job, page after page, as summaries.
async fn list(conn: &mut Connection, all_users: bool) -> anyhow::Result<Vec<JobObject>> {
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = |_fresh: bool| Request::List {
            all_users,
            name: None,
            summary: true,
            after: after.clone(),
        };
        match conn.call_resilient(page).await? {
            Response::Jobs { jobs: more, next } => {
                jobs.extend(more);
                match next {
                    Some(n) => after = Some(n),
                    None => return Ok(jobs),
                }
            }
            other => return Err(unexpected(&other)),
        }
    }
}

/// Whether `e` is the daemon saying the job does not exist.
fn not_found(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref(), Some(Failure::Daemon(api)) if api.kind == ErrorKind::NotFound)
}

/// How events are printed.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn event(&self, kind: Kind, job: &JobObject) -> anyhow::Result<()> {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut text = if self.json {
            serde_json::to_string(&Line { kind, time, job })?
        } else {
            readable(kind, &time, job)
        };
        text.push('\n');
        render::print(&text)
    }
}

/// `2026-12-02T00:40:01.123Z  5f0c2a4e  "MyJob"  StateChanged  Transferring
/// 1.00 MiB / 2.00 MiB (50%)`, and the error when the job is in Error.
fn readable(kind: Kind, time: &str, job: &JobObject) -> String {
    let short: String = job.job_id.chars().take(8).collect();
    let mut line = format!(
        "{time}  {short}  {:?}  {kind:?}  {}  {}",
        job.display_name,
        job.job_state,
        render::progress(job.bytes_transferred, job.bytes_total)
    );
    if job.job_state == "Error" || job.job_state == "TransientError" {
        if let Some(code) = &job.error_code {
            line.push_str(&format!("  {code}"));
        }
        if let Some(context) = &job.error_context {
            line.push_str(&format!(" {context}"));
        }
        if let Some(description) = &job.error_description {
            line.push_str(&format!(": {description}"));
        }
    }
    line
}
