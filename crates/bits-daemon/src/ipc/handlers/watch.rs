//! Watch: answers when the job changes after a revision the client has
//! seen, or when the timeout passes. Clients follow jobs with it instead of
//! polling.

use crate::access::Caller;
use crate::convert::{job_object, job_summary, REPLY_BUDGET};
use crate::ipc::resolve;
use crate::lifecycle::stopping as command_stopping;
use crate::state::Shared;
use bits_proto::{ApiError, Response};
use std::sync::Arc;
use std::time::Duration;

/// The longest a client may ask to wait: keeps a forgotten client from
/// holding a task for ever.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(
    shared: &Arc<Shared>,
    job: &str,
    after: u64,
    timeout_ms: u64,
    summary: bool,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let mut changes = shared.changes.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms).min(MAX_WAIT);
    let id = resolve(&shared.read(), job, caller)?;
    loop {
        {
            let view = shared.read();
            let Some(e) = view.jobs.get(&id) else {
                return Err(resolve(&view, job, caller)
                    .err()
                    .unwrap_or_else(|| crate::validate::bad(format!("job {id} disappeared"))));
            };
            if e.revision() > after || tokio::time::Instant::now() >= deadline {
                let job = if summary {
                    job_summary(e)
                } else {
                    job_object(e, 0, REPLY_BUDGET)
                };
                return Ok(Response::Watch {
                    revision: e.revision(),
                    job: Box::new(job),
                });
            }
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return Err(command_stopping()) },
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shared.shutdown.cancelled() => return Err(command_stopping()),
        }
    }
}
