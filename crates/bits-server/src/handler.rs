//! Per-request entry point: dispatch on the method, log the outcome.
//!
//! This is the one place that knows which methods the server speaks. Static
//! files answer `GET` and `HEAD`; the planned BITS upload protocol
//! (`BITS_POST`, enabled by `bits serve --upload`) will be one more arm of
//! the `match` in [`handle`], with its own module and its settings in
//! [`State`].

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::ResponseBody;
use crate::server::State;
use crate::static_files;

/// Methods advertised in the `Allow` header of `405` responses.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Answers one request. Never fails: every problem becomes an HTTP status.
pub(crate) async fn handle(req: Request<Incoming>, state: &State) -> Response<ResponseBody> {
    let response = match *req.method() {
        Method::GET | Method::HEAD => {
            static_files::respond(req.method(), req.uri(), req.headers(), state).await
        }
        _ => method_not_allowed(req.method()),
    };
    tracing::debug!(
        method = %req.method(),
        path = req.uri().path(),
        status = response.status().as_u16(),
        range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-"),
        "request"
    );
    response
}

/// `405 Method Not Allowed` with the mandatory `Allow` header.
fn method_not_allowed(method: &Method) -> Response<ResponseBody> {
    let mut response = text_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n",
        method,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
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
