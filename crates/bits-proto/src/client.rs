//! The client side of the socket, used by the CLI and by tests.

use crate::codec::{read_frame, write_frame, ProtoError};
use crate::{Request, Response, PROTOCOL_VERSION};
use std::path::Path;
use tokio::net::UnixStream;

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
            daemon: Response::Jobs { jobs: vec![] },
        };
        client.daemon = client
            .call(&Request::Hello {
                protocol: PROTOCOL_VERSION,
            })
            .await?;
        Ok(client)
    }

    /// Sends one request and reads its response.
    pub async fn call(&mut self, req: &Request) -> Result<Response, ProtoError> {
        write_frame(&mut self.stream, req).await?;
        read_frame(&mut self.stream)
            .await?
            .ok_or(ProtoError::Closed)
    }
}
