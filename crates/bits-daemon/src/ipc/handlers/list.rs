//! List (Get-BitsTransfer): the jobs that are not final, oldest first, a
//! page at a time so that no answer outgrows a frame.
//!
//! A [`Listing`] is the order of the jobs to show, taken once; its pages
//! are written from the view as it is when each is asked for. `List`
//! answers one page per request (the cursor says where the next begins);
//! `ListAll` streams every page, and the daemon writes the next while the
//! client reads the last.

use crate::access::Caller;
use crate::convert::{job_object, JobJson, REPLY_BUDGET};
use crate::state::Shared;
use crate::validate::bad;
use bits_core::JobId;
use bits_proto::{ApiError, ErrorKind, JobsFrame};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of a streamed page: small enough that the client reads one
/// while the daemon writes the next, large enough that a frame costs
/// nothing beside it. A job larger than this still goes whole (up to
/// [`REPLY_BUDGET`]) on a page of its own.
pub const STREAM_PAGE: usize = 1 << 20;

/// Files of a job above which its object is measured file by file.
const FILES_WHOLE: usize = 64;

/// The jobs a List shows, in order, and how far the pages got.
pub struct Listing {
    order: Vec<(SystemTime, JobId)>,
    next: usize,
    summary: bool,
}

/// One List request's page, as the frame of its answer.
pub fn handle(
    shared: &Arc<Shared>,
    ask: ListAsk,
    after: Option<String>,
    caller: &Caller,
) -> Result<Vec<u8>, ApiError> {
    let mut listing = Listing::new(shared, &ask, caller)?;
    if let Some(after) = after {
        listing.skip_to(&after)?;
    }
    listing.page(shared, REPLY_BUDGET)
}

/// What a List or ListAll asks for.
pub struct ListAsk {
    /// Every user's jobs (an administrator only).
    pub all_users: bool,
    /// Only jobs whose DisplayName matches this pattern.
    pub name: Option<String>,
    /// Totals only, no file lists.
    pub summary: bool,
}

impl Listing {
    /// The jobs `caller` may list (every user's with `all_users`, for an
    /// administrator), by `name` pattern, oldest first.
    pub fn new(shared: &Shared, ask: &ListAsk, caller: &Caller) -> Result<Listing, ApiError> {
        let ListAsk {
            all_users,
            ref name,
            summary,
        } = *ask;
        if all_users && !caller.admin {
            return Err(ApiError {
                kind: ErrorKind::Denied,
                message: "only root or an administrator may list every user's jobs (--all-users)"
                    .into(),
                code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
            });
        }
        let pattern = name
            .as_deref()
            .map(glob::Pattern::new)
            .transpose()
            .map_err(|e| bad(format!("--name: invalid pattern: {e}")))?;
        let mut order: Vec<_> = {
            let view = shared.read();
            view.jobs
                .values()
                .filter(|e| !e.job.state().is_final())
                .filter(|e| all_users || !shared.mode.is_system() || e.job.owner_uid == caller.uid)
                .filter(|e| {
                    pattern
                        .as_ref()
                        .is_none_or(|p| p.matches(&e.job.props.display_name))
                })
                .map(|e| (e.job.created, e.job.id))
                .collect()
        };
        order.sort_unstable();
        Ok(Listing {
            order,
            next: 0,
            summary,
        })
    }

    /// Goes on after the job a cursor names: its sort key, so that a page
    /// continues after it even if that job has ended meanwhile.
    pub fn skip_to(&mut self, after: &str) -> Result<(), ApiError> {
        let key = parse_cursor(after)
            .ok_or_else(|| bad("List: the page cursor is not one this bitsd gave"))?;
        self.next = self.order.partition_point(|k| *k <= key);
        Ok(())
    }

    /// The next page, as the frame of its answer: the jobs that fit
    /// `budget` bytes (at least one), and the cursor after the last of
    /// them if more follow. A job that ended or went away since the order
    /// was taken is left out.
    pub fn page(&mut self, shared: &Shared, budget: usize) -> Result<Vec<u8>, ApiError> {
        // Room for the jobs left at about 1 KB each (a page of one job
        // does not reserve a megabyte); larger ones grow the buffer.
        let left = self.order.len() - self.next.min(self.order.len());
        let mut frame = JobsFrame::with_capacity(budget.min(STREAM_PAGE).min(left * 1536));
        let view = shared.read();
        while let Some(&(_, id)) = self.order.get(self.next) {
            let Some(e) = view.jobs.get(&id).filter(|e| !e.job.state().is_final()) else {
                self.next += 1;
                continue;
            };
            // Written once, straight into the frame, and taken back if it
            // does not fit. A job of a few files is written whole
            // (FILES_WHOLE URLs and paths of at most a few kilobytes each
            // cannot outgrow a page); a larger one is measured file by
            // file and its list paged (see `job_object`). It gets a page's
            // room when it comes first, a whole answer's at most: a job
            // that would be cut short on a page others share waits for the
            // next page, where it comes first.
            let first = frame.jobs() == 0;
            let mark = frame.mark();
            if self.summary {
                frame.push(|out| JobJson::summary(e).write(out));
            } else if e.job.files.len() <= FILES_WHOLE {
                frame.push(|out| JobJson::whole(e).write(out));
            } else if first {
                let object = job_object(e, 0, budget.max(REPLY_BUDGET));
                frame.push_serialized(&object).map_err(unwritable)?;
            } else {
                let object = job_object(e, 0, budget.saturating_sub(frame.jobs_len()));
                if object.file_list_next.is_some() {
                    break;
                }
                frame.push_serialized(&object).map_err(unwritable)?;
            }
            if frame.jobs_len() > budget && !first {
                frame.rollback(mark);
                break;
            }
            self.next += 1;
        }
        drop(view);
        let more = self.next < self.order.len();
        let cursor = more
            .then(|| self.order[self.next - 1])
            .map(|(created, id)| format!("{}:{}", nanos(created), id));
        frame.finish(cursor.as_deref()).map_err(unwritable)
    }

    /// Whether every page has been written.
    pub fn done(&self) -> bool {
        self.next >= self.order.len()
    }
}

fn unwritable(e: bits_proto::ProtoError) -> ApiError {
    ApiError {
        kind: ErrorKind::Internal,
        message: format!("cannot write a page of jobs: {e}"),
        code: None,
    }
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// `NANOS:JOBID` back into the sort key it was made from.
fn parse_cursor(text: &str) -> Option<(SystemTime, JobId)> {
    let (nanos, id) = text.split_once(':')?;
    let nanos: u64 = nanos.parse().ok()?;
    let at = UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))?;
    Some((at, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Entry, View};
    use bits_core::{Job, JobProps, JobType};
    use bits_proto::JobObject;

    /// A daemon's shared state holding `n` queued jobs created a second
    /// apart, in a store of its own.
    fn shared_with(n: usize, dir: &std::path::Path) -> (Arc<Shared>, Vec<JobId>) {
        let store = bits_store::Store::open(&dir.join("jobs.sqlite3")).unwrap();
        let mut view = View::default();
        let mut ids = Vec::new();
        for i in 0..n {
            let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64);
            let props = JobProps {
                display_name: format!("job {i} {}", "x".repeat(200)),
                ..JobProps::default()
            };
            let job = Job::new(
                JobId::new_random(),
                JobType::Download,
                props,
                "u".into(),
                0,
                created,
            );
            ids.push(job.id);
            view.jobs.insert(job.id, Entry::new(job));
        }
        (Shared::for_tests(view, store), ids)
    }

    /// The jobs and cursor of a page's frame, as a client reads them.
    fn read(frame: Vec<u8>) -> (Vec<JobObject>, Option<String>) {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let mut texts = bits_proto::JobTexts::default();
        match texts.add_page(frame[4..].to_vec()).unwrap() {
            bits_proto::PageEnd::Jobs(next) => {
                let jobs = texts.iter().map(|j| serde_json::from_str(j).unwrap());
                (jobs.collect(), next)
            }
            other => panic!("not a page of jobs: {other:?}"),
        }
    }

    /// An administrator's request.
    fn root() -> Caller {
        Caller {
            uid: 0,
            admin: true,
        }
    }

    /// A List of the caller's own jobs, with or without their files.
    fn ask(summary: bool) -> ListAsk {
        ListAsk {
            all_users: false,
            name: None,
            summary,
        }
    }

    fn ids_of(jobs: &[JobObject]) -> Vec<String> {
        jobs.iter().map(|j| j.job_id.clone()).collect()
    }

    #[tokio::test]
    async fn pages_give_every_job_once_oldest_first_and_a_cursor_goes_on_from_any_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, ids) = shared_with(40, dir.path());
        let caller = root();
        let want: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let mut listing = Listing::new(&shared, &ask(true), &caller).unwrap();
        let (mut got, mut cursors) = (Vec::new(), Vec::new());
        loop {
            // About five jobs a page.
            let (jobs, next) = read(listing.page(&shared, 5 * 1200).unwrap());
            assert!(!jobs.is_empty() && jobs.len() < 10, "{} jobs", jobs.len());
            got.extend(ids_of(&jobs));
            match next {
                Some(cursor) => cursors.push((got.len(), cursor)),
                None => break,
            }
        }
        assert_eq!(got, want);
        // List's own paging: a fresh listing from each cursor.
        for (done, cursor) in cursors {
            let (jobs, _) = read(handle(&shared, ask(true), Some(cursor), &caller).unwrap());
            assert_eq!(ids_of(&jobs)[0], want[done]);
        }
        assert!(handle(&shared, ask(true), Some("nonsense".into()), &caller).is_err());
    }

    /// Regression: with 1 MiB stream pages, a job of many files that came
    /// after others on a page was cut short (its list then filled in by
    /// further requests). It now waits for the next page, where it comes
    /// first and goes whole.
    #[tokio::test]
    async fn a_job_of_many_files_is_not_cut_short_on_a_shared_page() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, ids) = shared_with(3, dir.path());
        {
            let mut view = shared.write();
            let e = view.jobs.get_mut(&ids[1]).unwrap();
            let files: Vec<_> = (0..500)
                .map(|i| {
                    bits_core::JobFile::new(
                        format!("http://127.0.0.1:9/{i}/{}", "u".repeat(300)),
                        dir.path().join(format!("{i}-{}", "l".repeat(200))),
                    )
                })
                .collect();
            e.received.extend(files.len());
            e.job.files = files;
        }
        let caller = root();
        let mut listing = Listing::new(&shared, &ask(false), &caller).unwrap();
        // Room for the first job and part of the second.
        let (first, next) = read(listing.page(&shared, 60_000).unwrap());
        assert_eq!(ids_of(&first), vec![ids[0].to_string()]);
        assert!(next.is_some());
        let (second, _) = read(listing.page(&shared, 60_000).unwrap());
        assert_eq!(ids_of(&second)[0], ids[1].to_string());
        let job = &second[0];
        assert_eq!(job.file_list.len(), 500);
        assert_eq!(job.file_list_next, None);
    }

    #[tokio::test]
    async fn a_job_gone_between_pages_is_left_out_and_one_bigger_than_a_page_still_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, ids) = shared_with(6, dir.path());
        let caller = root();
        let mut listing = Listing::new(&shared, &ask(true), &caller).unwrap();
        // A budget smaller than any job: one job a page all the same.
        let (first, next) = read(listing.page(&shared, 10).unwrap());
        assert_eq!(ids_of(&first), vec![ids[0].to_string()]);
        assert!(next.is_some());
        shared.write().jobs.remove(&ids[1]);
        let (second, _) = read(listing.page(&shared, 10).unwrap());
        assert_eq!(ids_of(&second), vec![ids[2].to_string()]);
        let (rest, next) = read(listing.page(&shared, usize::MAX).unwrap());
        assert_eq!(
            ids_of(&rest),
            ids[3..].iter().map(|i| i.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(next, None);
        let (none, next) = read(listing.page(&shared, usize::MAX).unwrap());
        assert!(none.is_empty() && next.is_none());
    }
}
