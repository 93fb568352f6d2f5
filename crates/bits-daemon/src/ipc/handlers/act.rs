//! Suspend, Resume, Cancel (Remove-BitsTransfer) and Complete: asked of the
//! lifecycle owner, which answers once the action is done (for Complete and
//! Cancel, once the job's files are in place or gone).

use super::job_reply;
use crate::access::Caller;
use crate::ipc::resolve;
use crate::lifecycle::{Action, Command, Done, Handle};
use crate::state::Shared;
use bits_proto::{ApiError, Response};
use std::sync::Arc;

pub async fn handle(
    shared: &Arc<Shared>,
    manager: &Handle,
    job: &str,
    action: Action,
    summary: bool,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let id = resolve(&shared.read(), job, caller)?;
    let done = manager
        .ask(|reply| Command::Act { id, action, reply })
        .await?;
    let mut response = job_reply(&shared.read(), id, (!summary).then_some(0))?;
    if let (Done::Completed(result), Response::Job { job }) = (done, &mut response) {
        job.complete_result = Some(result);
    }
    Ok(response)
}
