//! Set: changes job properties.

use super::job_response;
use crate::access::Caller;
use crate::ipc::resolve;
use crate::lifecycle::{Command, Handle};
use crate::state::Shared;
use bits_proto::{ApiError, JobProperties, Response};
use std::sync::Arc;

pub async fn handle(
    shared: &Arc<Shared>,
    manager: &Handle,
    job: &str,
    properties: JobProperties,
    caller: &Caller,
) -> Result<Response, ApiError> {
    let (id, owner_uid) = {
        let view = shared.read();
        let id = resolve(&view, job, caller)?;
        (id, view.jobs[&id].job.owner_uid)
    };
    let new_owner = if properties.take_ownership {
        if !shared.mode.is_system() {
            return Err(denied(
                "--take-ownership: the jobs of a user's own daemon are that user's; owners \
                 change only in the system daemon (bits --system)",
            ));
        }
        if !caller.admin {
            return Err(denied(
                "--take-ownership: only root or an administrator may take a job's ownership",
            ));
        }
        Some((caller.uid, shared.account_of(caller.uid).await))
    } else {
        None
    };
    // The file is read here, before the job's owner applies the change
    // (which it does under the view's lock), with the rights of the user
    // the job will belong to.
    let identity =
        super::identity_of(shared, new_owner.as_ref().map_or(owner_uid, |o| o.0)).await?;
    let connection = properties.connection.clone();
    tokio::task::spawn_blocking(move || identity.run(|| Ok(crate::validate::ca_file(&connection))))
        .await
        .map_err(|e| crate::validate::bad(format!("checking --ca-cert failed: {e}")))?
        .map_err(super::as_owner_failed)??;
    manager
        .ask(|reply| Command::Set {
            id,
            properties: Box::new(properties),
            new_owner,
            reply,
        })
        .await?;
    job_response(&shared.read(), id, 0)
}

fn denied(message: &str) -> ApiError {
    ApiError {
        kind: bits_proto::ErrorKind::Denied,
        message: message.into(),
        code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
    }
}
