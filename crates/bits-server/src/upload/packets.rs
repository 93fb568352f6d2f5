//! `BITS_POST`: parse the packet, dispatch on its type; Ping,
//! Create-Session, Close-Session and Cancel-Session.

use std::sync::Arc;

use bits_upload_proto::{choose_protocol, codes, header, parse_request, Ack, PacketError, Request};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use tokio::sync::OwnedMutexGuard;

use super::ack::{ack_response, Failure};
use super::fragment::{self, finish};
use super::sessions::{Session, SessionState};
use super::store::{self, Record};
use super::target::{self, TargetError};
use super::{drain, Uploads, DRAIN_LIMIT};
use crate::body::ResponseBody;
use crate::server::State;

/// Answers one `BITS_POST` request. Never fails: every problem is an Ack
/// with an error.
pub(crate) async fn bits_post(
    req: hyper::Request<Incoming>,
    up: &Uploads,
    state: &State,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    // Header values are read as (lossy) UTF-8 rather than refused when not
    // ASCII: Content-Name is a file name and may well be UTF-8.
    let get = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let request = match parse_request(get) {
        Ok(request) => request,
        Err(err) => {
            tracing::debug!(path = parts.uri.path(), error = %err, "refusing a malformed packet");
            drain(body, DRAIN_LIMIT).await;
            return packet_failure(&err).into_response(get(header::SESSION_ID));
        }
    };
    tracing::debug!(
        path = parts.uri.path(),
        packet = request.packet_type().as_str(),
        session = request.session_id().unwrap_or("-"),
        "packet"
    );
    match request {
        Request::Fragment {
            session_id,
            range,
            content_name,
            content_length: _,
        } => fragment::fragment(up, state, &parts, body, session_id, range, content_name).await,
        other => {
            // Only Fragments have a body; anything else is ignored.
            drain(body, DRAIN_LIMIT).await;
            match other {
                Request::Ping => ack_response(StatusCode::OK, &Ack::default()),
                Request::CreateSession { protocols } => {
                    create_session(up, &parts, &protocols, get(header::CONTENT_NAME)).await
                }
                Request::CloseSession { session_id } => {
                    end(up, state, &parts, session_id, End::Close).await
                }
                Request::CancelSession { session_id } => {
                    end(up, state, &parts, session_id, End::Cancel).await
                }
                Request::Fragment { .. } => unreachable!("handled above"),
            }
        }
    }
}

/// The failure for a packet that does not parse: 411 for a missing
/// `Content-Length` (`[MC-BUP]` 3.2.5.2.3), 400 `E_INVALIDARG` for the rest
/// (unknown packet type, missing headers, bad range, …).
fn packet_failure(err: &PacketError) -> Failure {
    match err {
        PacketError::MissingHeader(name) if *name == header::CONTENT_LENGTH => {
            Failure::server(StatusCode::LENGTH_REQUIRED, codes::E_INVALIDARG)
        }
        _ => Failure::invalid(),
    }
}

/// The failure for a refused destination.
pub(super) fn target_failure(err: TargetError) -> Failure {
    match err {
        TargetError::BadPath | TargetError::IsDirectory => Failure::invalid(),
        TargetError::Forbidden => Failure::server(StatusCode::FORBIDDEN, codes::E_ACCESSDENIED),
        TargetError::ParentMissing => {
            Failure::server(StatusCode::NOT_FOUND, codes::ERROR_PATH_NOT_FOUND)
        }
        TargetError::Exists => Failure::server(StatusCode::CONFLICT, codes::ERROR_FILE_EXISTS),
        TargetError::Io(e) => Failure::io("checking an upload target", &e),
    }
}

/// Create-Session.
async fn create_session(
    up: &Uploads,
    parts: &Parts,
    protocols: &[String],
    content_name: Option<String>,
) -> Response<ResponseBody> {
    match try_create(up, parts, protocols, content_name).await {
        Ok(ack) => ack_response(StatusCode::OK, &ack),
        Err(failure) => failure.into_response(None),
    }
}

async fn try_create(
    up: &Uploads,
    parts: &Parts,
    protocols: &[String],
    content_name: Option<String>,
) -> Result<Ack, Failure> {
    let Some(protocol) = choose_protocol(protocols) else {
        tracing::debug!(?protocols, "no common upload protocol");
        return Err(Failure::invalid());
    };
    let relative = target::decode(parts.uri.path()).map_err(target_failure)?;
    if up.registry.len() >= up.config.max_sessions {
        tracing::info!(
            limit = up.config.max_sessions,
            "upload session limit reached"
        );
        return Err(Failure::busy());
    }
    let root = up.root.clone();
    let allow_overwrite = up.config.allow_overwrite;
    let checked = blocking(move || target::check(&root, &relative, allow_overwrite))
        .await
        .map_err(|e| Failure::io("checking an upload target", &e))?
        .map_err(target_failure)?;

    let id = uuid::Uuid::new_v4();
    let record = Record::new(
        checked.relative.clone(),
        content_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        up.notifier.is_none(),
    );
    let dir = up.store.session_dir(id);
    let store = up.store.clone();
    let to_create = record.clone();
    blocking(move || store.create(id, &to_create))
        .await
        .and_then(|r| r)
        .map_err(|e| Failure::io("creating an upload session", &e))?;
    if up
        .registry
        .insert(id, dir, record, up.config.max_sessions)
        .is_err()
    {
        // Lost a race for the last slot; undo.
        let store = up.store.clone();
        let _ = blocking(move || store.remove(id)).await;
        return Err(Failure::busy());
    }
    tracing::info!(
        session = %id,
        target = %target::display(&checked.relative),
        "upload session created"
    );
    Ok(Ack {
        session_id: Some(store::wire_id(id)),
        protocol: Some(protocol.to_owned()),
        host_id: up.config.host_id.clone(),
        host_id_fallback_timeout: up
            .config
            .host_id
            .as_ref()
            .and(up.config.host_id_fallback_timeout),
        ..Ack::default()
    })
}

/// Which way a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Close-Session: finish if complete, then clean up.
    Close,
    /// Cancel-Session: clean up.
    Cancel,
}

/// Close-Session and Cancel-Session.
async fn end(
    up: &Uploads,
    state: &State,
    parts: &Parts,
    session_id: String,
    how: End,
) -> Response<ResponseBody> {
    let ok = |session_id: String| {
        ack_response(
            StatusCode::OK,
            &Ack {
                session_id: Some(session_id),
                ..Ack::default()
            },
        )
    };
    let Some(id) = store::parse_wire_id(&session_id) else {
        return Failure::session_not_found().into_response(Some(session_id));
    };
    let Some((session, mut guard)) = lookup(up, id).await else {
        if up.registry.recently_ended(id) {
            return ok(session_id);
        }
        return Failure::session_not_found().into_response(Some(session_id));
    };
    // (Every byte received: the last fragment's batch was synced before
    // its Ack, so no background batch is left to wait for.)
    if how == End::Close && guard.record.all_received() {
        let mut record = guard.record.clone();
        let finished = finish(up, state, parts, &session, &mut record).await;
        guard.record = record;
        if let Err(failure) = finished {
            return failure.into_response(Some(session_id));
        }
    }
    if let Err(e) = remove(up, &session, &mut guard, true).await {
        return Failure::io("deleting an upload session", &e).into_response(Some(session_id));
    }
    tracing::info!(
        session = %id,
        complete = guard.record.all_received(),
        "upload session {}",
        if how == End::Close { "closed" } else { "cancelled" }
    );
    ok(session_id)
}

/// The active, unexpired session with this id, locked. An expired session
/// found on the way is deleted (as the sweeper would).
pub(super) async fn lookup(
    up: &Uploads,
    id: uuid::Uuid,
) -> Option<(Arc<Session>, OwnedMutexGuard<SessionState>)> {
    let session = up.registry.get(id)?;
    let mut guard = Arc::clone(&session.state).lock_owned().await;
    if guard.gone {
        return None;
    }
    if up.expired(guard.record.modified_ms, store::now_ms()) {
        tracing::info!(session = %id, "upload session expired");
        let _ = remove(up, &session, &mut guard, false).await;
        return None;
    }
    Some((session, guard))
}

/// Deletes a session's directory and forgets it (remembering that it ended
/// when `tombstone`). On failure the session stays, so the client can retry.
pub(super) async fn remove(
    up: &Uploads,
    session: &Session,
    guard: &mut SessionState,
    tombstone: bool,
) -> std::io::Result<()> {
    let id = session.id;
    // A background sync of the session's data ends before its files go
    // (and, should they stay, sends the client back where it failed).
    if super::fragment::settle(guard, true).await.is_err() {
        tracing::debug!(session = %id, "removing a session whose background sync failed");
    }
    let store = up.store.clone();
    blocking(move || store.remove(id)).await??;
    guard.gone = true;
    up.registry.remove(id, tombstone);
    Ok(())
}

/// Runs blocking file system work on tokio's blocking pool; a panic or
/// cancellation of that work is an I/O error of the request.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)
}
