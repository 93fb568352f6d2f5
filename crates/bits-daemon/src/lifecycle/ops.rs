//! The file work of Complete and Cancel, run beside the lifecycle loop (on
//! the blocking pool: renames, directory fsyncs and deletes may be slow on
//! a busy or remote disk) while the job is held.

use super::{Busy, Done, Manager};
use crate::fsops::{self, CompleteError};
use crate::state::store_failed;
use bits_core::{Event, JobId};
use bits_proto::{ApiError, CompleteResult, ErrorKind};
use std::time::{Duration, SystemTime};
use tokio::task::JoinError;

/// How long a removal waits for the server to drop an upload session.
const CANCEL_SESSION_WAIT: Duration = Duration::from_secs(5);

/// The end of a job's file work.
pub(super) enum OpEnd {
    Completed {
        id: JobId,
        result: Result<fsops::Completed, CompleteError>,
    },
    Discarded {
        id: JobId,
    },
    /// The work panicked (a bug): the job it held is answered and let go.
    Panicked {
        id: JobId,
        message: String,
    },
}

impl Manager {
    /// The end of an operation task, a panicked one included.
    pub(super) fn op_end(
        &mut self,
        joined: Result<(tokio::task::Id, OpEnd), JoinError>,
    ) -> Option<OpEnd> {
        match joined {
            Ok((task, end)) => {
                self.op_tasks.remove(&task);
                Some(end)
            }
            Err(e) => {
                let id = self.op_tasks.remove(&e.id())?;
                Some(OpEnd::Panicked {
                    id,
                    message: super::panic_message(e),
                })
            }
        }
    }
}

impl Manager {
    /// Complete's file work for job `id`, whose runner has stopped.
    pub(super) fn start_complete(&mut self, id: JobId) {
        let Some(job) = self.shared.read().jobs.get(&id).map(|e| e.job.clone()) else {
            return;
        };
        let shared = self.shared.clone();
        let task = self.ops.spawn(async move {
            let identity = shared.identity_for(job.owner_uid).await;
            // Renames and directory syncs with the owner's rights: Complete
            // can put a file only where its owner could.
            let result = tokio::task::spawn_blocking(move || {
                let identity = identity.map_err(|e| {
                    CompleteError::Failed(format!("cannot act for the job's owner: {e}"))
                })?;
                identity
                    .run(|| Ok(fsops::complete(&job)))
                    .unwrap_or_else(|e| {
                        Err(CompleteError::Failed(format!(
                            "cannot take the rights of the job's owner: {e}"
                        )))
                    })
            })
            .await
            .unwrap_or_else(|e| {
                Err(CompleteError::Failed(format!(
                    "the file work of Complete failed: {}",
                    super::panic_message(e)
                )))
            });
            OpEnd::Completed { id, result }
        });
        self.op_tasks.insert(task.id(), id);
    }

    /// Cancel's file work for job `id` (already Cancelled and saved), whose
    /// runner has stopped: its temporary files go, and an upload's session
    /// is dropped on the server.
    pub(super) fn start_discard(&mut self, id: JobId) {
        let Some((files, credential, connection, proxy_credential, owner_uid)) =
            self.shared.read().jobs.get(&id).map(|e| {
                (
                    e.job.files.clone(),
                    e.job.server_credential.clone(),
                    e.job.props.connection.clone(),
                    e.job.proxy_credential.clone(),
                    e.job.owner_uid,
                )
            })
        else {
            return;
        };
        let engine = self.shared.engine.clone();
        let shared = self.shared.clone();
        let task = self.ops.spawn(async move {
            let identity = shared.identity_for(owner_uid).await;
            let temps = files.clone();
            let owner = identity.as_ref().ok().cloned();
            // With the owner's rights: only what the owner could delete goes.
            let discarded = tokio::task::spawn_blocking(move || match identity {
                Ok(identity) => identity.run(|| {
                    fsops::discard(id, &temps);
                    Ok(())
                }),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            })
            .await;
            match discarded {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(job = %id, cause = %e, "cannot delete the temporary files as their owner")
                }
                Err(e) => {
                    tracing::error!(job = %id, cause = %e, "deleting the temporary files failed")
                }
            }
            // An unfinished upload leaves a session on the server: ask it to
            // drop the partial file. Best effort, and bounded, so that an
            // unreachable server cannot hold up the user.
            // Sent with the owner's rights (the route may read the job's CA
            // file); for an owner gone from the user database, none is.
            let Some(owner) = owner else {
                return OpEnd::Discarded { id };
            };
            for f in files
                .iter()
                .filter(|f| f.upload_session().id.is_some() && !f.complete)
            {
                let credential = f.credential().or(credential.as_ref());
                let route = bits_transfer::Connection {
                    props: &connection,
                    proxy_credential: proxy_credential.as_ref(),
                };
                let cancel = engine.cancel_upload(&f.remote, credential, route, f.upload_session(), &owner);
                match tokio::time::timeout(CANCEL_SESSION_WAIT, cancel).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(job = %id, cause = %e, "Cancel-Session failed"),
                    Err(_) => tracing::warn!(job = %id, "Cancel-Session timed out"),
                }
            }
            OpEnd::Discarded { id }
        });
        self.op_tasks.insert(task.id(), id);
    }

    /// A job's file work ended: the held job is answered and let go.
    pub(super) async fn op_ended(&mut self, op: OpEnd) {
        let id = match op {
            OpEnd::Completed { id, result } => {
                let answer = self.completed(id, result).await;
                if let Some(Busy::Completing(reply)) = self.owned(id).busy.take() {
                    let _ = reply.send(answer);
                }
                id
            }
            OpEnd::Discarded { id } => {
                tracing::info!(job = %id, "job cancelled");
                if let Some(Busy::Cancelling(reply)) = self.owned(id).busy.take() {
                    let _ = reply.send(Ok(Done::Changed));
                }
                id
            }
            OpEnd::Panicked { id, message } => {
                tracing::error!(job = %id, panic = %message, "the file work of a job panicked");
                let error = ApiError {
                    kind: ErrorKind::Internal,
                    message: format!("bitsd hit an internal error ({message}); the job is kept"),
                    code: None,
                };
                match self.owned(id).busy.take() {
                    Some(Busy::Completing(reply) | Busy::Cancelling(reply)) => {
                        let _ = reply.send(Err(error));
                    }
                    None => {}
                }
                id
            }
        };
        self.dirty = true;
        self.replay(id).await;
    }

    /// After Complete's file work: the job ends Acknowledged, or, when a
    /// transferred file turned out to be lost, goes to Error with that file
    /// to be transferred again.
    async fn completed(
        &mut self,
        id: JobId,
        result: Result<fsops::Completed, CompleteError>,
    ) -> Result<Done, ApiError> {
        match result {
            Ok(done) => {
                self.transition(id, Event::Complete).await?;
                tracing::info!(job = %id, kept = done.kept.len(), discarded = done.discarded.len(), "job completed");
                let code = if done.discarded.is_empty() {
                    0
                } else {
                    bits_core::error::codes::BG_S_PARTIAL_COMPLETE
                };
                let shown = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
                Ok(Done::Completed(CompleteResult {
                    code: format!("0x{code:08X}"),
                    kept: done.kept.iter().map(shown).collect(),
                    discarded: done.discarded.iter().map(shown).collect(),
                }))
            }
            Err(CompleteError::Failed(message)) => Err(ApiError {
                kind: ErrorKind::Internal,
                message: format!("{message}; the job is kept: fix the cause and complete it again"),
                code: None,
            }),
            Err(CompleteError::Lost { index, error }) => {
                let message = error.description.clone();
                self.file_lost(id, index, error).await?;
                Err(ApiError {
                    kind: ErrorKind::Internal,
                    message,
                    code: Some(format!(
                        "0x{:08X}",
                        bits_core::error::codes::E_FILE_NOT_FOUND
                    )),
                })
            }
        }
    }

    /// File `index` of job `id` is no longer what was transferred: it is
    /// marked to be transferred again from byte 0 and the job goes to
    /// Error, both in one save.
    async fn file_lost(
        &mut self,
        id: JobId,
        index: usize,
        error: bits_core::JobError,
    ) -> Result<(), ApiError> {
        let now = SystemTime::now();
        let (row, file) = {
            let view = self.shared.read();
            let e = view.jobs.get(&id).ok_or_else(|| super::gone(id))?;
            let mut row = e.job.row();
            row.apply_given(Event::FileLost { error }, now, &e.job.files)
                .map_err(crate::ipc::invalid)?;
            let Some(f) = e.job.files.get(index) else {
                return Err(super::gone(id));
            };
            (row, f.restarted())
        };
        let (saved_row, saved_file) = (row.clone(), file.clone());
        self.shared
            .store
            .call(move |s| s.save_job_and_file(&saved_row, index, &saved_file))
            .await
            .map_err(store_failed)?;
        if let Some(e) = self.shared.write().jobs.get_mut(&id) {
            if let Some(f) = e.job.files.get_mut(index) {
                *f = file;
            }
        }
        self.publish(id, row);
        Ok(())
    }
}
