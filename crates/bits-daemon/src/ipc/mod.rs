//! The local socket: accepts clients, checks who they are, reads requests
//! and dispatches each to its handler (one file per request in `handlers/`).
//!
//! Every wait on a client is bounded and every client is counted: a Hello
//! must come within [`HELLO_WAIT`], a connection idle for [`IDLE_WAIT`] is
//! closed, an answer the client does not read within [`WRITE_WAIT`] is
//! dropped with its connection, and one user holds at most
//! [`clients::MAX_PER_USER`] connections (the oldest idle one makes room
//! for a new one). So idle or stuck clients cannot freeze the others.

mod clients;
mod handlers;
mod resolve;

use crate::lifecycle::Handle;
use crate::state::Shared;
use bits_core::InvalidTransition;
use bits_proto::codec::{read_frame, write_frame, write_frame_bytes, ProtoError};
use bits_proto::{ApiError, ErrorKind, Request, Response, PROTOCOL_VERSION};
use clients::{Admission, Clients};
use handlers::list::ListAsk;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

pub use resolve::resolve;

/// How long a new connection may take to say Hello.
const HELLO_WAIT: Duration = Duration::from_secs(5);
/// How long a connection may sit between requests.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// How long a client may take to read an answer.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// The refusal for an event the job's state does not allow.
pub fn invalid(e: InvalidTransition) -> ApiError {
    ApiError {
        kind: ErrorKind::InvalidState,
        message: e.to_string(),
        code: Some(format!("0x{:08X}", e.code())),
    }
}

/// Accepts connections until shutdown.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>, manager: Handle) {
    let clients = Arc::new(Clients::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Admitted here, in the order connections arrive, so a
                    // burst of connections never makes room by closing one
                    // that came after it.
                    let admission = admit(&stream, &shared, &clients);
                    let (shared, manager, clients) = (shared.clone(), manager.clone(), clients.clone());
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, admission, &shared, &manager, &clients).await {
                            tracing::debug!(cause = %e, "client connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to close.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

/// Who a new connection is, and whether it may stay.
enum Arrival {
    Admitted(u32, Arc<clients::Ticket>),
    Full(u32, usize),
    Stranger(u32),
    Unknown(std::io::Error),
}

fn admit(stream: &UnixStream, shared: &Shared, clients: &Clients) -> Arrival {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => return Arrival::Unknown(e),
    };
    // Only the daemon's own user (and root) may talk to a user's daemon:
    // the socket's directory is 0700 already, this is the second lock on
    // the door. The system daemon serves everyone, each as who they are.
    if !shared.mode.is_system() && uid != shared.owner.uid && uid != 0 {
        return Arrival::Stranger(uid);
    }
    match clients.admit(uid) {
        Admission::Admitted(me) => Arrival::Admitted(uid, me),
        Admission::Full(limit) => Arrival::Full(uid, limit),
    }
}

async fn connection(
    mut stream: UnixStream,
    arrival: Arrival,
    shared: &Arc<Shared>,
    manager: &Handle,
    clients: &Clients,
) -> Result<(), ProtoError> {
    let (uid, me) = match arrival {
        Arrival::Unknown(e) => return Err(e.into()),
        Arrival::Stranger(uid) => {
            tracing::warn!(uid, "refused a client of another user");
            let refusal = Response::Error(ApiError {
                kind: ErrorKind::Denied,
                message: format!("this bitsd serves uid {} only", shared.owner.uid),
                code: None,
            });
            return send(&mut stream, &refusal).await;
        }
        Arrival::Admitted(uid, me) => (uid, me),
        Arrival::Full(uid, limit) => {
            let refusal = Response::Error(ApiError {
                kind: ErrorKind::Denied,
                message: format!(
                    "uid {uid} already has {limit} connections to bitsd busy with requests; \
                     try again when some have finished"
                ),
                code: None,
            });
            return send(&mut stream, &refusal).await;
        }
    };
    let result = serve_client(&mut stream, shared, manager, clients, &me, uid).await;
    clients.leave(&me);
    result
}

async fn serve_client(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    manager: &Handle,
    clients: &Clients,
    me: &clients::Ticket,
    uid: u32,
) -> Result<(), ProtoError> {
    let mut greeted = false;
    // Whether the request just answered moved many files (see `memory`).
    let mut big = false;
    loop {
        let wait = if greeted { IDLE_WAIT } else { HELLO_WAIT };
        let req = tokio::select! {
            _ = me.kicked() => {
                tracing::debug!(uid, "closing an idle connection to make room for a new one");
                return Ok(());
            }
            r = tokio::time::timeout(wait, read_frame::<_, Request>(stream)) => match r {
                Err(_) => {
                    tracing::debug!(uid, secs = wait.as_secs(), "closing a connection that sent nothing");
                    return Ok(());
                }
                Ok(r) => match r? {
                    Some(req) => req,
                    None => return Ok(()),
                },
            },
        };
        clients.busy(me, true);
        let response = match req {
            Request::Hello { protocol } if protocol == PROTOCOL_VERSION => {
                greeted = true;
                clients.greeted(me);
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
                let files = match &req {
                    Request::Create(c) => c.files.len(),
                    Request::AddFiles { files, .. } => files.len(),
                    _ => 0,
                };
                big = files >= crate::memory::MANY_FILES;
                // The request's kind only: its URLs may carry credentials.
                tracing::debug!(request = req.kind(), uid, "request");
                // List's answers are frames written in place.
                match req {
                    Request::ListAll {
                        all_users,
                        name,
                        summary,
                    } => {
                        let ask = ListAsk {
                            all_users,
                            name,
                            summary,
                        };
                        list_all(stream, shared, clients, uid, ask).await?;
                        clients.busy(me, false);
                        continue;
                    }
                    Request::List {
                        all_users,
                        name,
                        summary,
                        after,
                    } => {
                        let ask = ListAsk {
                            all_users,
                            name,
                            summary,
                        };
                        list(stream, shared, clients, uid, ask, after).await?;
                        clients.busy(me, false);
                        continue;
                    }
                    _ => {}
                }
                // Users take turns in the system daemon; a Watch mostly
                // waits, and takes none. A turn covers the work, not the
                // writing of its answer.
                let _turn = match &req {
                    Request::Watch { .. } => None,
                    _ if shared.mode.is_system() => Some(clients.turn(uid).await),
                    _ => None,
                };
                dispatch(shared, manager, req, uid)
                    .await
                    .unwrap_or_else(Response::Error)
            }
        };
        if std::mem::take(&mut big) {
            // Runs a second from now: by then the answer is written and
            // freed (or the connection is gone).
            crate::memory::give_back();
        }
        send(stream, &response).await?;
        clients.busy(me, false);
    }
}

/// Answers ListAll: every page, one frame after the other (an error as
/// the last frame). The view is read for each page apart, never across a
/// write; in the system daemon each page takes the user's turn, which no
/// write holds, so a client that reads slowly delays only itself.
async fn list_all(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    clients: &Clients,
    uid: u32,
    ask: ListAsk,
) -> Result<(), ProtoError> {
    use handlers::list::{Listing, STREAM_PAGE};
    let turn = || async {
        if shared.mode.is_system() {
            Some(clients.turn(uid).await)
        } else {
            None
        }
    };
    let caller = shared.caller(uid).await;
    let listing = {
        let _turn = turn().await;
        Listing::new(shared, &ask, &caller)
    };
    let mut listing = match listing {
        Ok(listing) => listing,
        Err(e) => return send(stream, &Response::Error(e)).await,
    };
    loop {
        let page = {
            let _turn = turn().await;
            listing.page(shared, STREAM_PAGE)
        };
        let frame = match page {
            Ok(frame) => frame,
            Err(e) => return send(stream, &Response::Error(e)).await,
        };
        send_frame(stream, &frame).await?;
        if listing.done() {
            return Ok(());
        }
    }
}

/// Answers List: one page, from the cursor `after`.
async fn list(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    clients: &Clients,
    uid: u32,
    ask: ListAsk,
    after: Option<String>,
) -> Result<(), ProtoError> {
    let caller = shared.caller(uid).await;
    let page = {
        let _turn = if shared.mode.is_system() {
            Some(clients.turn(uid).await)
        } else {
            None
        };
        handlers::list::handle(shared, ask, after, &caller)
    };
    match page {
        Ok(frame) => send_frame(stream, &frame).await,
        Err(e) => send(stream, &Response::Error(e)).await,
    }
}

/// Writes a frame already built, giving up on a client that does not
/// read it.
async fn send_frame(stream: &mut UnixStream, frame: &[u8]) -> Result<(), ProtoError> {
    tokio::time::timeout(WRITE_WAIT, write_frame_bytes(stream, frame))
        .await
        .unwrap_or(Err(ProtoError::TimedOut {
            secs: WRITE_WAIT.as_secs(),
        }))
}

/// Writes an answer, giving up on a client that does not read it.
async fn send(stream: &mut UnixStream, response: &Response) -> Result<(), ProtoError> {
    tokio::time::timeout(WRITE_WAIT, write_frame(stream, response))
        .await
        .unwrap_or(Err(ProtoError::TimedOut {
            secs: WRITE_WAIT.as_secs(),
        }))
}

async fn dispatch(
    shared: &Arc<Shared>,
    manager: &Handle,
    req: Request,
    uid: u32,
) -> Result<Response, ApiError> {
    use crate::lifecycle::Action;
    let caller = shared.caller(uid).await;
    let me = &caller;
    match req {
        Request::Hello { .. } => unreachable!("answered by the connection loop"),
        Request::Create(c) => handlers::create::handle(shared, manager, c, me).await,
        Request::AddFiles { job, files } => {
            handlers::add_files::handle(shared, manager, &job, files, me).await
        }
        Request::Set { job, properties } => {
            handlers::set::handle(shared, manager, &job, properties, me).await
        }
        Request::Suspend { job } => {
            handlers::act::handle(shared, manager, &job, Action::Suspend, false, me).await
        }
        Request::Resume { job } => {
            handlers::act::handle(shared, manager, &job, Action::Resume, false, me).await
        }
        Request::Cancel { job } => {
            handlers::act::handle(shared, manager, &job, Action::Cancel, false, me).await
        }
        Request::Complete { job, summary } => {
            handlers::act::handle(shared, manager, &job, Action::Complete, summary, me).await
        }
        Request::List { .. } | Request::ListAll { .. } => {
            unreachable!("written in place by the connection loop")
        }
        Request::Info { job, files_from } => handlers::info::handle(shared, &job, files_from, me),
        Request::Watch {
            job,
            after_revision,
            timeout_ms,
            summary,
        } => handlers::watch::handle(shared, &job, after_revision, timeout_ms, summary, me).await,
        Request::Policy { change } => handlers::policy::handle(shared, manager, change, me).await,
    }
}
