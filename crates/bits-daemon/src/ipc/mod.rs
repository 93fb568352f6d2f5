//! The local socket: accepts clients, checks who they are, reads requests
//! and dispatches each to its handler (one file per request in `handlers/`).

mod handlers;
mod resolve;

use crate::shared::Shared;
use bits_core::InvalidTransition;
use bits_proto::codec::{read_frame, write_frame};
use bits_proto::{ApiError, ErrorKind, Request, Response, PROTOCOL_VERSION};
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};

pub use resolve::resolve;

/// The refusal for an event the job's state does not allow.
pub fn invalid(e: InvalidTransition) -> ApiError {
    ApiError {
        kind: ErrorKind::InvalidState,
        message: e.to_string(),
        code: Some(format!("0x{:08X}", e.code())),
    }
}

/// Accepts connections until shutdown.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, shared).await {
                            tracing::debug!(cause = %e, "client connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

async fn connection(
    mut stream: UnixStream,
    shared: Arc<Shared>,
) -> Result<(), bits_proto::ProtoError> {
    // Only the daemon's own user (and root) may talk to it: the socket's
    // directory is 0700 already, this is the second lock on the door.
    let uid = stream.peer_cred()?.uid();
    if uid != shared.owner.uid && uid != 0 {
        tracing::warn!(uid, "refused a client of another user");
        let refusal = Response::Error(ApiError {
            kind: ErrorKind::Denied,
            message: format!("this bitsd serves uid {} only", shared.owner.uid),
            code: None,
        });
        return write_frame(&mut stream, &refusal).await;
    }
    let mut greeted = false;
    while let Some(req) = read_frame::<_, Request>(&mut stream).await? {
        let response = match req {
            Request::Hello { protocol } if protocol == PROTOCOL_VERSION => {
                greeted = true;
                Response::Hello {
                    protocol: PROTOCOL_VERSION,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    pid: std::process::id(),
                }
            }
            Request::Hello { protocol } => Response::Error(ApiError {
                kind: ErrorKind::Version,
                message: format!(
                    "bits speaks protocol {protocol}, this bitsd speaks {PROTOCOL_VERSION}; \
                     restart bitsd from the same installation as bits"
                ),
                code: None,
            }),
            _ if !greeted => Response::Error(ApiError {
                kind: ErrorKind::Version,
                message: "the first request must be Hello".into(),
                code: None,
            }),
            req => {
                tracing::debug!(?req, uid, "request");
                dispatch(&shared, req, uid)
                    .await
                    .unwrap_or_else(Response::Error)
            }
        };
        write_frame(&mut stream, &response).await?;
    }
    Ok(())
}

async fn dispatch(shared: &Arc<Shared>, req: Request, uid: u32) -> Result<Response, ApiError> {
    match req {
        Request::Hello { .. } => unreachable!("answered by the connection loop"),
        Request::Create(c) => handlers::create::handle(shared, c),
        Request::AddFiles { job, files } => handlers::add_files::handle(shared, &job, files),
        Request::Set { job, properties } => handlers::set::handle(shared, &job, properties),
        Request::Suspend { job } => handlers::suspend::handle(shared, &job),
        Request::Resume { job } => handlers::resume::handle(shared, &job),
        Request::Cancel { job } => handlers::cancel::handle(shared, &job).await,
        Request::Complete { job } => handlers::complete::handle(shared, &job).await,
        Request::List { all_users, name } => handlers::list::handle(shared, all_users, name, uid),
        Request::Info { job } => handlers::info::handle(shared, &job),
        Request::Watch {
            job,
            after_revision,
            timeout_ms,
            summary,
        } => handlers::watch::handle(shared, &job, after_revision, timeout_ms, summary).await,
    }
}
