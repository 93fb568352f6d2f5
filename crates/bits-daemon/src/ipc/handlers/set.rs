//! Set: changes job properties.

use super::job_response;
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
) -> Result<Response, ApiError> {
    let id = resolve(&shared.read(), job)?;
    // The file is read here, before the job's owner applies the change
    // (which it does under the view's lock).
    let connection = properties.connection.clone();
    tokio::task::spawn_blocking(move || crate::validate::ca_file(&connection))
        .await
        .map_err(|e| crate::validate::bad(format!("checking --ca-cert failed: {e}")))??;
    manager
        .ask(|reply| Command::Set {
            id,
            properties: Box::new(properties),
            reply,
        })
        .await?;
    job_response(&shared.read(), id, 0)
}
