//! Plain `PUT` uploads: the whole file in one request, for clients that do
//! not speak BITS (`curl -T`, WebDAV-ish tools).
//!
//! Same destination rules as BITS (module `target`), same size limit and
//! overwrite policy. The body goes to a temporary file in the session store,
//! is fsynced, and is renamed into place only when complete, so a broken
//! connection never leaves a partial file under the real name. There is no
//! resuming: that is what BITS is for. Answers are plain HTTP: 201 Created
//! for a new file, 204 No Content for a replaced one; 400, 403, 404, 409,
//! 413 on refusal.

use std::path::Path;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Method, Response, StatusCode};
use tokio::io::AsyncWriteExt;

use super::packets::blocking;
use super::target::{self, TargetError};
use super::{drain, Uploads, BODY_IDLE_TIMEOUT, DRAIN_LIMIT};
use crate::body::ResponseBody;
use crate::handler::text_response;

/// Answers a `PUT`.
pub(crate) async fn put(req: hyper::Request<Incoming>, up: &Uploads) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let reply =
        |status: StatusCode, message: &'static str| text_response(status, message, &Method::PUT);
    let relative = match target::decode(parts.uri.path()) {
        Ok(relative) => relative,
        Err(e) => {
            drain(body, DRAIN_LIMIT).await;
            return refusal(e);
        }
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max = up.config.max_upload_size;
    if let (Some(max), Some(len)) = (max, declared) {
        if len > max {
            drain(body, DRAIN_LIMIT).await;
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n");
        }
    }
    let root = up.root.clone();
    let allow_overwrite = up.config.allow_overwrite;
    let checked = {
        let relative = relative.clone();
        let root = root.clone();
        blocking(move || target::check(&root, &relative, allow_overwrite)).await
    };
    let existed = match checked {
        Ok(Ok(t)) => t.absolute.exists(),
        Ok(Err(e)) => {
            drain(body, DRAIN_LIMIT).await;
            return refusal(e);
        }
        Err(e) => {
            drain(body, DRAIN_LIMIT).await;
            return refusal(TargetError::Io(e));
        }
    };

    let tmp = up.store.put_temp();
    match receive(body, &tmp, max).await {
        Ok(()) => {}
        Err(Received::TooLarge) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n");
        }
        Err(Received::Broken) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return reply(StatusCode::BAD_REQUEST, "upload broke off\n");
        }
        Err(Received::Io(e)) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            tracing::error!(error = %e, "storing a PUT upload failed");
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the upload\n",
            );
        }
    }
    let committed = {
        let tmp = tmp.clone();
        let relative = relative.clone();
        blocking(move || target::commit(&root, &tmp, &relative, allow_overwrite)).await
    };
    match committed {
        Ok(Ok(_)) => {
            tracing::info!(target = %target::display(&relative), "PUT upload stored");
            if existed {
                let mut response = Response::new(ResponseBody::Empty);
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            } else {
                reply(StatusCode::CREATED, "created\n")
            }
        }
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            refusal(e)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            refusal(TargetError::Io(e))
        }
    }
}

/// Why a PUT body could not be stored.
enum Received {
    TooLarge,
    Broken,
    Io(std::io::Error),
}

/// Streams the body into `tmp` (fsynced), counting against `max`.
async fn receive(mut body: Incoming, tmp: &Path, max: Option<u64>) -> Result<(), Received> {
    let mut file = tokio::fs::File::create(tmp).await.map_err(Received::Io)?;
    let mut total = 0u64;
    loop {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    if max.is_some_and(|max| total > max) {
                        return Err(Received::TooLarge);
                    }
                    file.write_all(&data).await.map_err(Received::Io)?;
                }
            }
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => return Err(Received::Broken),
        }
    }
    file.sync_all().await.map_err(Received::Io)
}

/// The plain-HTTP answer for a refused destination.
fn refusal(e: TargetError) -> Response<ResponseBody> {
    let (status, message) = match e {
        TargetError::BadPath | TargetError::IsDirectory => {
            (StatusCode::BAD_REQUEST, "not a file path\n")
        }
        TargetError::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n"),
        TargetError::ParentMissing => (StatusCode::NOT_FOUND, "no such directory\n"),
        TargetError::Exists => (StatusCode::CONFLICT, "file exists\n"),
        TargetError::Io(e) => {
            tracing::error!(error = %e, "checking a PUT target failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    };
    text_response(status, message, &Method::PUT)
}
