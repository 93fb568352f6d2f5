//! `GET` and `HEAD` of files and directories below the root.
//!
//! Ties the pieces together: resolve the path (module `resolve`), evaluate
//! the preconditions (module `conditional`), pick the byte range (module
//! `range`) and stream it (module `body`). `HEAD` goes through exactly the
//! same steps as `GET` and only drops the body at the end, so its headers —
//! `Content-Length` included — are always those of the corresponding `GET`.
//!
//! `Range` is only honoured for `GET`: RFC 9110 §14.2 defines range handling
//! for `GET` alone, so `HEAD` with `Range` describes the whole file.
//!
//! The upload session store, `.bits-sessions` in the root, does not exist as
//! far as `GET` is concerned (404, left out of the listing), except for the
//! replies of upload-reply sessions, which module `upload` serves.

use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::SystemTime;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri};

use crate::body::{FileBody, ResponseBody};
use crate::conditional::{self, Precondition, Validators};
use crate::handler::text_response;
use crate::range::{self, RangeRequest};
use crate::resolve::{self, Target};
use crate::server::State;
use crate::upload::{self, SESSIONS_DIR};

/// Answers a `GET` or `HEAD` request.
pub(crate) async fn respond(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    state: &State,
) -> Response<ResponseBody> {
    let path = match resolve::decode(uri.path()) {
        Ok(path) => path,
        Err(refusal) => return refusal_response(refusal, method),
    };
    if let Ok(rest) = path.relative.strip_prefix(SESSIONS_DIR) {
        return upload::reply(state.uploads.as_deref(), rest, method, headers, state).await;
    }
    // One trip to the blocking pool for all of canonicalize, stat and open.
    let root = state.root.clone();
    let lookup = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || resolve::open(&root, &path)).await
    };
    let target = match lookup {
        Ok(Ok(target)) => target,
        Ok(Err(refusal)) => return refusal_response(refusal, method),
        Err(join_err) => {
            tracing::error!(error = %join_err, "file lookup task failed");
            return refusal_response(resolve::Refusal::Internal, method);
        }
    };
    match target {
        Target::File { file, meta } => {
            let content_type = content_type(&path.relative);
            file_response(method, headers, file, &meta, content_type, state)
        }
        Target::Directory(entries) => {
            if !path.trailing_slash {
                // Relative links in the listing need the URL to end in `/`.
                return redirect_to_directory(&path.relative, method);
            }
            let mut entries = entries;
            if path.relative.as_os_str().is_empty() {
                entries.retain(|e| e.name() != SESSIONS_DIR.as_bytes());
            }
            let html = crate::listing::render(uri.path(), &entries);
            let mut response = html_response(html, method);
            // Listings change whenever the directory does; don't cache them.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

/// Builds the response for a regular file (also used for upload-reply
/// replies).
pub(crate) fn file_response(
    method: &Method,
    headers: &HeaderMap,
    file: std::fs::File,
    meta: &std::fs::Metadata,
    content_type: &'static str,
    state: &State,
) -> Response<ResponseBody> {
    let size = meta.len();
    let validators = Validators::new(meta, SystemTime::now());

    let mut response = Response::new(ResponseBody::Empty);
    {
        let h = response.headers_mut();
        set(h, header::ETAG, &validators.etag);
        if let Some(last_modified) = validators.last_modified_header() {
            set(h, header::LAST_MODIFIED, &last_modified);
        }
    }

    match conditional::evaluate(headers, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            // 304 carries the validators but no content headers.
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
        Precondition::Failed => {
            return text_response(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed\n",
                method,
            )
        }
    }

    let range = match headers.get(header::RANGE) {
        Some(value) if method == Method::GET => {
            if conditional::if_range_allows_range(headers, &validators) {
                // A header that is not even visible ASCII is malformed: ignore.
                value
                    .to_str()
                    .map_or(RangeRequest::Full, |v| range::parse(v, size))
            } else {
                RangeRequest::Full
            }
        }
        _ => RangeRequest::Full,
    };

    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (start, len) = match range {
        RangeRequest::Full => (0, size),
        RangeRequest::Partial { start, end } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes {start}-{end}/{size}"),
            );
            (start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let mut refused = text_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable\n",
                method,
            );
            let h = refused.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            set(h, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return refused;
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method != Method::HEAD && len > 0 {
        *response.body_mut() =
            ResponseBody::File(FileBody::new(file, start, len, Arc::clone(&state.pool)));
    }
    response
}

/// Sets a header from a string we built ourselves. Our values (entity tags,
/// dates, ranges) are always valid header text; should one ever not be, the
/// header is left out rather than failing the request.
fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => tracing::warn!(header = %name, value, "not a valid header value; omitted"),
    }
}

/// The error response for a path that cannot be served.
fn refusal_response(refusal: resolve::Refusal, method: &Method) -> Response<ResponseBody> {
    let (status, message) = refusal.status();
    text_response(status, message, method)
}

/// `301` from `/dir` to `/dir/`. The target is rebuilt from the normalized
/// path rather than echoed from the request, so `//host` tricks cannot turn
/// it into a redirect to another site.
fn redirect_to_directory(relative: &std::path::Path, method: &Method) -> Response<ResponseBody> {
    let mut location = String::from("/");
    for component in relative.iter() {
        location.push_str(&crate::listing::encode_segment(component.as_bytes()));
        location.push('/');
    }
    let mut response = text_response(StatusCode::MOVED_PERMANENTLY, "moved\n", method);
    set(response.headers_mut(), header::LOCATION, &location);
    response
}

/// A `200` HTML page (the body is dropped for `HEAD`).
fn html_response(html: String, method: &Method) -> Response<ResponseBody> {
    let len = html.len();
    let body = if method == Method::HEAD {
        ResponseBody::Empty
    } else {
        ResponseBody::full(html)
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// A small guess of the media type from the file name extension. Downloads
/// do not need it, but browsers viewing the listing are happier with it.
/// Everything unknown is `application/octet-stream`.
fn content_type(path: &std::path::Path) -> &'static str {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return "application/octet-stream";
    };
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "log" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "iso" => "application/x-iso9660-image",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;
    use std::path::Path;

    #[test]
    fn guesses_a_few_content_types() {
        assert_eq!(
            content_type(Path::new("a/b.TXT")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.iso")),
            "application/x-iso9660-image"
        );
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
        assert_eq!(
            content_type(Path::new("x.weird")),
            "application/octet-stream"
        );
    }
}
