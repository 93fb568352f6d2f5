//! `GET`/`HEAD` of an upload-reply's reply: the URL handed out in
//! `BITS-Reply-URL`, `/.bits-sessions/<session>/reply`.
//!
//! Everything else under `/.bits-sessions` is answered 404, as if it did
//! not exist: session directories hold other people's partial uploads. The
//! reply is served like any static file (Range, validators), because BITS
//! downloads it with an ordinary resumable download job. It exists from the
//! server application's answer until the session is closed, cancelled or
//! swept.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use hyper::header::HeaderMap;
use hyper::{Method, Response, StatusCode};

use super::store::{self, REPLY_FILE};
use super::Uploads;
use crate::body::ResponseBody;
use crate::handler::text_response;
use crate::server::State;
use crate::static_files::file_response;

/// Answers a `GET`/`HEAD` whose path starts with `.bits-sessions`;
/// `rest` is what follows that first segment.
pub(crate) async fn respond(
    up: Option<&Uploads>,
    rest: &Path,
    method: &Method,
    headers: &HeaderMap,
    state: &State,
) -> Response<ResponseBody> {
    let not_found = || text_response(StatusCode::NOT_FOUND, "not found\n", method);
    let Some(up) = up else {
        return not_found();
    };
    let mut parts = rest.components();
    let (Some(Component::Normal(dir)), Some(Component::Normal(file)), None) =
        (parts.next(), parts.next(), parts.next())
    else {
        return not_found();
    };
    let Some(id) = dir.to_str().and_then(store::parse_dir_name) else {
        return not_found();
    };
    if file != REPLY_FILE {
        return not_found();
    }
    // Only a live session's reply, once the application has answered.
    let Some(session) = up.registry.get(id) else {
        return not_found();
    };
    let path = session.dir.join(REPLY_FILE);
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)?;
        let meta = file.metadata()?;
        Ok::<_, std::io::Error>((file, meta))
    })
    .await;
    match opened {
        Ok(Ok((file, meta))) if meta.is_file() => file_response(
            method,
            headers,
            file,
            &meta,
            "application/octet-stream",
            state,
        ),
        _ => not_found(),
    }
}
