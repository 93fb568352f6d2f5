//! Waiting for a job: synchronous `start` and `resume`, and `wait`.
//!
//! The daemon long-polls: [`Request::Watch`] answers as soon as the job
//! changes after the revision we have seen, or after a second without
//! change, so following a job costs no polling interval. On a terminal a
//! progress bar on stderr shows the bytes, the rate, the ETA and the state.
//!
//! How following ends:
//! - Transferred: the job is completed when asked (the files appear) and
//!   returned; Acknowledged is returned as it is;
//! - Error, Cancelled, Suspended: a [`Failure`] (exit 1, 1, 4); a suspended
//!   job will not finish by itself, so waiting on would hang;
//! - Ctrl-C: [`Failure::Stopped`] (exit 130), the job stays queued;
//! - the timeout: [`Failure::TimedOut`] (exit 5).
//!
//! If the daemon goes away (a restart), we reconnect, autostarting it, and
//! carry on (see [`Connection::call_resilient`]).

use std::io::IsTerminal;
use std::time::Duration;

use bits_proto::{JobObject, Request, Response};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::connect::{unexpected, Connection};
use crate::failure::Failure;

/// The longest a single Watch waits for a change. Short enough that a daemon
/// which died without closing the socket is noticed soon.
const WATCH_TIMEOUT_MS: u64 = 1000;

/// What to do while following.
#[derive(Debug, Clone, Default)]
pub struct FollowOptions {
    /// Send Complete when the job is Transferred.
    pub complete: bool,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Whether the job returned at the end needs its `FileList` (it is
    /// printed as JSON); without it, a job of thousands of files is not
    /// sent again in full once it ends.
    pub files: bool,
}

/// Follows one job until it ends (see the module documentation). `job` is
/// the job as last seen; its full JobId is watched, since a DisplayName may
/// stop being unique meanwhile.
pub async fn follow(
    conn: &mut Connection,
    job: JobObject,
    opts: &FollowOptions,
) -> anyhow::Result<JobObject> {
    let id = job.job_id.clone();
    let mut state = job.job_state.clone();
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    progress.update(&job);

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut revision = 0;

    loop {
        let watch = |fresh: bool| Request::Watch {
            job: id.clone(),
            // A restarted daemon counts revisions afresh: start over.
            after_revision: if fresh { 0 } else { revision },
            timeout_ms: WATCH_TIMEOUT_MS,
            // Totals are enough to follow; the full object is fetched once
            // at the end.
            summary: true,
        };
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let answer = tokio::select! {
            answer = conn.call_resilient(watch) => answer,
            _ = &mut ctrl_c => {
                progress.stopped();
                return Err(Failure::Stopped { id, state }.into());
            }
            () = timeout => {
                progress.abandon();
                return Err(Failure::TimedOut {
                    id,
                    state,
                    after: opts.timeout.unwrap_or_default(),
                }
                .into());
            }
        };
        let job = match answer {
            Ok(Response::Watch { revision: r, job }) => {
                revision = r;
                *job
            }
            Ok(other) => {
                progress.abandon();
                return Err(unexpected(&other));
            }
            Err(e) => {
                progress.abandon();
                return Err(e);
            }
        };
        state = job.job_state.clone();
        progress.update(&job);
        match state.as_str() {
            "Transferred" if opts.complete => {
                let done = conn
                    .job(&Request::Complete {
                        job: id.clone(),
                        summary: !opts.files,
                    })
                    .await
                    .inspect_err(|_| progress.abandon())?;
                progress.finish(&done);
                return Ok(done);
            }
            "Transferred" | "Acknowledged" if !opts.files => {
                // The watch's answer is that summary.
                progress.finish(&job);
                return Ok(job);
            }
            "Transferred" | "Acknowledged" => {
                let full = conn
                    .job(&Request::Info {
                        job: id.clone(),
                        files_from: 0,
                    })
                    .await
                    .inspect_err(|_| progress.abandon())?;
                progress.finish(&full);
                return Ok(full);
            }
            "Error" => {
                progress.abandon();
                // The job in error is reported too: in full when asked (the
                // watch's answer is a summary), else as the watch gave it.
                let job = if opts.files {
                    let full = conn
                        .job(&Request::Info {
                            job: id.clone(),
                            files_from: 0,
                        })
                        .await;
                    full.unwrap_or(job)
                } else {
                    job
                };
                return Err(Failure::JobError(Box::new(job)).into());
            }
            "Cancelled" => {
                progress.abandon();
                return Err(Failure::JobCancelled(id).into());
            }
            "Suspended" => {
                progress.abandon();
                return Err(Failure::JobSuspended(id).into());
            }
            _ => {}
        }
    }
}

/// Follows several jobs (one per uploaded file), one after the other; they
/// all transfer meanwhile. A job that fails is reported at once and the
/// others are still followed; the result is the first failure. Ctrl-C and a
/// lost daemon end everything at once.
pub async fn follow_all(
    conn: &mut Connection,
    jobs: Vec<JobObject>,
    opts: &FollowOptions,
) -> anyhow::Result<Vec<JobObject>> {
    if jobs.len() == 1 {
        let job = jobs.into_iter().next().expect("one job");
        return Ok(vec![follow(conn, job, opts).await?]);
    }
    let mut done = Vec::with_capacity(jobs.len());
    let mut first_failure: Option<anyhow::Error> = None;
    for job in jobs {
        match follow(conn, job, opts).await {
            Ok(job) => done.push(job),
            Err(e) => {
                let job_failed = matches!(
                    e.downcast_ref::<Failure>(),
                    Some(
                        Failure::JobError(_) | Failure::JobCancelled(_) | Failure::JobSuspended(_)
                    )
                );
                if !job_failed {
                    return Err(e);
                }
                if first_failure.is_some() {
                    eprintln!("error: {e:#}");
                } else {
                    first_failure = Some(e);
                }
            }
        }
    }
    match first_failure {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// The progress bar on stderr; when stderr is not a terminal, a line per
/// change of state instead.
struct Progress {
    /// The bar, when shown.
    bar: Option<ProgressBar>,
    /// Whether the bar's style is the one with a known total; switched when
    /// the total becomes known (or unknown again).
    total_known: Option<bool>,
    /// The position last shown: the rate and ETA count only what moves
    /// while we watch, not the bytes already on disk when we started (a
    /// resumed job showed 96 MiB/s at a real 3.8 MiB/s).
    last: Option<u64>,
    /// The state (and its reason) last printed, off a terminal.
    said: Option<String>,
}

impl Progress {
    fn new(shown: bool) -> Progress {
        let bar = shown.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            total_known: None,
            last: None,
            said: None,
        }
    }

    fn update(&mut self, job: &JobObject) {
        let Some(bar) = &self.bar else {
            self.say(job);
            return;
        };
        let known = job.bytes_total.is_some();
        if self.total_known != Some(known) {
            let template = if known {
                "{spinner} {prefix:<14} [{wide_bar}] {bytes}/{total_bytes} \
                 {binary_bytes_per_sec} ETA {eta} {msg}"
            } else {
                "{spinner} {prefix:<14} {bytes} {binary_bytes_per_sec} {msg}"
            };
            let style = ProgressStyle::with_template(template)
                .expect("the progress template is valid")
                .progress_chars("=> ");
            bar.set_style(style);
            self.total_known = Some(known);
        }
        match job.bytes_total {
            Some(total) => bar.set_length(total),
            None => bar.unset_length(),
        }
        bar.set_position(job.bytes_transferred);
        if self.last.is_none_or(|last| job.bytes_transferred < last) {
            // The first sight (or a restart from an earlier point): the
            // rate starts here.
            bar.reset_eta();
        }
        self.last = Some(job.bytes_transferred);
        bar.set_prefix(job.job_state.clone());
        let message = match (job.job_state.as_str(), &job.error_description) {
            ("TransientError", Some(description)) => match &job.next_retry_time {
                Some(at) => format!("{description} (next try {at})"),
                None => description.clone(),
            },
            ("Error", Some(description)) => description.clone(),
            _ if job.files_total > 1 => {
                format!("{}/{} files", job.files_transferred, job.files_total)
            }
            _ => String::new(),
        };
        bar.set_message(message);
    }

    /// Off a terminal: one line on stderr per change of state (with its
    /// reason and, for a transient error, the next try).
    fn say(&mut self, job: &JobObject) {
        let mut line = job.job_state.clone();
        if let ("TransientError" | "Error", Some(description)) =
            (job.job_state.as_str(), &job.error_description)
        {
            line.push_str(": ");
            line.push_str(description);
        }
        if let Some(at) = job
            .next_retry_time
            .as_ref()
            .filter(|_| job.job_state == "TransientError")
        {
            line.push_str(&format!(" (next try {at}"));
            if let Some(end) = &job.give_up_time {
                line.push_str(&format!(", Error if no progress by {end}"));
            }
            line.push(')');
        }
        if self.said.as_ref() != Some(&line) {
            eprintln!("{line}");
            self.said = Some(line);
        }
    }

    /// Leaves the bar on screen in its final state: the size, without a
    /// rate (indicatif's for a finished bar would count the bytes that were
    /// on disk before we watched) or an ETA.
    fn finish(&mut self, job: &JobObject) {
        self.update(job);
        if let Some(bar) = &self.bar {
            let style =
                ProgressStyle::with_template("  {prefix:<14} [{wide_bar}] {total_bytes} {msg}")
                    .expect("the progress template is valid")
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.finish();
        }
    }

    /// Ctrl-C: the bar stays without its rate and ETA (which would freeze
    /// at their last values, "ETA 0s"), saying that the job goes on.
    fn stopped(&self) {
        if let Some(bar) = &self.bar {
            let template = if self.total_known == Some(true) {
                "  {prefix:<14} {bytes}/{total_bytes} {msg}"
            } else {
                "  {prefix:<14} {bytes} {msg}"
            };
            let style =
                ProgressStyle::with_template(template).expect("the progress template is valid");
            bar.set_style(style);
            bar.abandon_with_message("(stopped waiting; the job goes on)");
        }
    }

    /// Leaves the bar as it is, for the message that follows.
    fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
