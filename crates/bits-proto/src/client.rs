//! The client side of the socket, used by the CLI and by tests.
//!
//! Every exchange is bounded: a daemon that accepts and never answers (hung,
//! or something else listening on the socket) is reported as
//! [`ProtoError::TimedOut`] instead of being waited for forever.

use crate::codec::{read_frame, read_frame_body, write_frame, ProtoError};
use crate::{Request, Response, PROTOCOL_VERSION};
use std::path::Path;
use std::time::Duration;
use tokio::net::UnixStream;

/// How long a daemon may take to answer Hello: it answers from memory.
pub const HELLO_WAIT: Duration = Duration::from_secs(5);

/// How long any other request may go unanswered (a Watch adds its own
/// wait). Generous: creating or completing a job of 100,000 files takes
/// seconds, on a slow disk tens of seconds.
pub const ANSWER_WAIT: Duration = Duration::from_secs(120);

/// A connection to `bitsd` that has said Hello.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    /// What the daemon said in answer to Hello.
    pub daemon: Response,
}

impl Client {
    /// Connects and says Hello. Connection errors come back as
    /// [`ProtoError::Io`] so the caller can tell "no daemon" from "bad daemon".
    pub async fn connect(socket: &Path) -> Result<Client, ProtoError> {
        let stream = UnixStream::connect(socket).await?;
        let mut client = Client {
            stream,
            daemon: Response::Jobs {
                jobs: vec![],
                next: None,
            },
        };
        client.daemon = client
            .call_within(
                &Request::Hello {
                    protocol: PROTOCOL_VERSION,
                },
                HELLO_WAIT,
            )
            .await?;
        Ok(client)
    }

    /// Sends one request and reads its response, waiting at most
    /// [`ANSWER_WAIT`] (plus a Watch's own timeout).
    pub async fn call(&mut self, req: &Request) -> Result<Response, ProtoError> {
        let extra = match req {
            Request::Watch { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            _ => Duration::ZERO,
        };
        self.call_within(req, ANSWER_WAIT + extra).await
    }

    /// Sends one request and reads its answer's frame body undecoded
    /// (the first page of a [`Request::ListAll`]), waiting at most
    /// [`ANSWER_WAIT`].
    pub async fn call_body(&mut self, req: &Request) -> Result<Vec<u8>, ProtoError> {
        let stream = &mut self.stream;
        within(ANSWER_WAIT, async {
            write_frame(stream, req).await?;
            read_frame_body(stream).await?.ok_or(ProtoError::Closed)
        })
        .await
    }

    /// Reads one more answer to the last request, undecoded (the further
    /// pages of a [`Request::ListAll`]), waiting at most [`ANSWER_WAIT`].
    pub async fn next_body(&mut self) -> Result<Vec<u8>, ProtoError> {
        let stream = &mut self.stream;
        within(ANSWER_WAIT, async {
            read_frame_body(stream).await?.ok_or(ProtoError::Closed)
        })
        .await
    }

    /// Sends one request and reads its response, waiting at most `limit`.
    pub async fn call_within<T: serde::de::DeserializeOwned>(
        &mut self,
        req: &Request,
        limit: Duration,
    ) -> Result<T, ProtoError> {
        let stream = &mut self.stream;
        within(limit, async {
            write_frame(stream, req).await?;
            read_frame(stream).await?.ok_or(ProtoError::Closed)
        })
        .await
    }
}

/// `exchange`, given up after `limit`.
async fn within<T>(
    limit: Duration,
    exchange: impl std::future::Future<Output = Result<T, ProtoError>>,
) -> Result<T, ProtoError> {
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or(Err(ProtoError::TimedOut {
            secs: limit.as_secs(),
        }))
}
