//! Upload-reply jobs: the reply URL of the final Ack, and the reply itself,
//! fetched whole with the download engine.

use super::run::Run;
use crate::error::TransferError;
use crate::net;
use crate::progress::{FileState, FileTransfer, NoProgress};
use std::path::Path;
use tracing::info;
use url::Url;

impl Run<'_> {
    /// The reply URL of a final Ack, absolute (resolved against the URL the
    /// fragment went to) and without credentials (it is persisted; they are
    /// put back when it is fetched). Only http(s): a server must not make
    /// the daemon copy a local file (`file:`) into the reply.
    pub(super) fn reply_url(&self, target: &Url, reply: &str) -> Result<String, TransferError> {
        let resolved = target
            .join(reply.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        match resolved {
            Some(u) => Ok(net::without_userinfo(&u)),
            None => Err(TransferError::UploadProtocol {
                url: self.shown.clone(),
                detail: format!("its reply URL {reply:?} is not an http or https URL"),
            }),
        }
    }

    /// Downloads the reply whole into `to` with the download engine (a
    /// validated GET from byte 0; checkpoints are not needed since the reply
    /// is fetched again if this fails).
    pub(super) async fn fetch_reply(
        &mut self,
        reply: &str,
        to: &Path,
    ) -> Result<u64, TransferError> {
        let url = Url::parse(reply).map_err(|_| TransferError::UploadProtocol {
            url: self.shown.clone(),
            detail: format!("its reply URL {reply:?} is not a URL"),
        })?;
        // The job's credentials apply to the reply when it lives on the same
        // server (as a relative reply URL does).
        let credential = self.credential_for(&url);
        let nothing = FileState::default();
        let file = FileTransfer {
            remote: url.as_str(),
            credential,
            connection: self.connection(),
            temp: to,
            identity: self.identity,
            resume: &nothing,
            sync_on_finish: true,
            connections: 1,
            pace: None,
        };
        let out = self
            .engine
            .download(file, &mut NoProgress, self.cancel)
            .await?;
        info!(url = %self.shown, bytes = out.bytes, "upload reply received");
        Ok(out.bytes)
    }
}
