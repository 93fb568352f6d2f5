//! Per-request entry point: dispatch on the method, log the outcome.
//!
//! This is the one place that knows which methods the server speaks. Static
//! files answer `GET` and `HEAD`; with uploads enabled (`bits serve
//! --upload`) the BITS Upload Protocol's `BITS_POST` and plain `PUT` go to
//! module `upload`. Without uploads those get `405` like any unknown method.

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::ResponseBody;
use crate::server::State;
use crate::{static_files, upload};

/// Methods advertised in the `Allow` header of `405` responses.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// The same with uploads enabled.
const ALLOWED_METHODS_WITH_UPLOADS: &str = "GET, HEAD, PUT, BITS_POST";

/// Answers one request. Never fails: every problem becomes an HTTP status.
pub(crate) async fn handle(req: Request<Incoming>, state: &State) -> Response<ResponseBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let uploads = state.uploads.as_deref();
    let response = match (&method, uploads) {
        (&Method::GET | &Method::HEAD, _) => {
            static_files::respond(req.method(), req.uri(), req.headers(), state).await
        }
        (m, Some(up)) if m.as_str() == bits_upload_proto::METHOD => {
            upload::bits_post(req, up, state).await
        }
        (&Method::PUT, Some(up)) => upload::put(req, up).await,
        _ => method_not_allowed(&method, uploads.is_some()),
    };
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        range,
        "request"
    );
    response
}

/// `405 Method Not Allowed` with the mandatory `Allow` header.
fn method_not_allowed(method: &Method, uploads: bool) -> Response<ResponseBody> {
    let mut response = text_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n",
        method,
    );
    let allowed = if uploads {
        ALLOWED_METHODS_WITH_UPLOADS
    } else {
        ALLOWED_METHODS
    };
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// A short `text/plain` response, used for every error. For `HEAD` the
/// headers (including `Content-Length`) are those a `GET` would get, but no
/// body is sent.
pub(crate) fn text_response(
    status: StatusCode,
    message: &'static str,
    method: &Method,
) -> Response<ResponseBody> {
    let body = if method == Method::HEAD {
        ResponseBody::Empty
    } else {
        ResponseBody::full(message)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(message.len()));
    response
}
