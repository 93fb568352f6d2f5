//! The request loop of an HTTP(S) download: ask for what is missing of
//! the version on disk, turn each answer into a plan (`version::plan`),
//! write the body front to back or hand the rest to several connections.

use super::body::{self, Body};
use super::segmented::{self, SegEnd, Segmented};
use super::sink::Sink;
use super::start::{start_point, MAX_RESTARTS};
use crate::auth::Authorizer;
use crate::engine::Engine;
use crate::error::TransferError;
use crate::net::shown;
use crate::progress::{FileTransfer, Outcome, Progress};
use crate::route::Route;
use crate::version::{self, Answer, Ask, Plan};
use bits_core::{ByteRange, FileValidator};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use url::Url;

impl Engine {
    pub(super) async fn download_http(
        &self,
        url: &Url,
        file: &FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        let route = Arc::new(Route::new(self, &file.connection, url, file.identity)?);
        let mut outcome = self
            .download_http_on(url, &route, file, progress, cancel)
            .await?;
        outcome.remote_name = route.reported_name();
        outcome.via = route.via();
        Ok(outcome)
    }

    async fn download_http_on(
        &self,
        url: &Url,
        route: &Arc<Route>,
        file: &FileTransfer<'_>,
        progress: &mut dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, TransferError> {
        let shown = shown(url);
        let auth = Authorizer::new(file.credential, url).map(Arc::new);
        // Round trips are measured while this file moves, so the pace
        // follows the path to this server (through its proxy, if any).
        let _probe = file.pace.as_ref().map(|p| p.probe(route.probe_url(url)));
        let start = start_point(file, &shown, None).await?;
        let mut restarts = 0u32;
        // Set once the server has shown it does not really serve ranges.
        let mut single = false;
        let mut sink = Sink::new(start.temp.clone(), self.config.checkpoint, progress);
        let mut offset = start.offset;
        let mut stored = start.stored;
        if !start.missing.is_empty() {
            // Ranges were being fetched side by side: carry on with them.
            let job = Segmented {
                url,
                auth: auth.clone(),
                route: route.clone(),
                shown: &shown,
                temp: start.temp.clone(),
                validator: &stored,
                missing: start.missing,
                first: None,
                connections: file.connections.max(1) as usize,
                sync_on_finish: file.sync_on_finish,
                pace: file.pace.clone(),
            };
            match self.download_segments(job, sink.progress(), cancel).await {
                Ok(outcome) => return Ok(outcome),
                Err(SegEnd::Failed(e)) => return Err(e),
                Err(end) => {
                    if matches!(end, SegEnd::NoRanges) {
                        single = true;
                    } else {
                        restarts += 1;
                    }
                    info!(url = %shown, reason = end.reason(), "cannot continue the ranges, restarting from 0");
                    stored = FileValidator::default();
                    offset = 0;
                }
            }
        }

        loop {
            let ask = Ask {
                start: offset,
                end: None,
                stored: &stored,
            };
            let landed = route
                .get(
                    url,
                    &ask.headers(),
                    auth.as_deref(),
                    self.config.read_timeout,
                    cancel,
                )
                .await;
            let mut response = match landed {
                Err(TransferError::Cancelled) => return Err(sink.cancel().await),
                Err(e) => {
                    sink.checkpoint().await?;
                    return Err(e.with_written(sink.written()));
                }
                Ok(landed) => {
                    if landed.url != *url {
                        debug!(url = %shown, to = %crate::net::shown(&landed.url), "redirected");
                    }
                    landed.response
                }
            };
            let answer = Answer::from_headers(
                response.status().as_u16(),
                response.headers(),
                SystemTime::now(),
            );
            match version::plan(&ask, &answer) {
                Plan::Refuse(refusal) => {
                    sink.checkpoint().await?;
                    return Err(TransferError::refused(refusal, &shown));
                }
                plan @ (Plan::Restart(_) | Plan::NoRanges) => {
                    // (NoRanges is only given for ranges with an end, which
                    // this loop never asks for; it restarts all the same.)
                    let why = match plan {
                        Plan::Restart(why) => why,
                        _ => "the server answered a range with the whole file",
                    };
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        sink.checkpoint().await?;
                        return Err(TransferError::SourceChanged {
                            source_name: shown,
                            restarts: MAX_RESTARTS,
                        });
                    }
                    info!(url = %shown, offset, reason = why, "remote file changed, restarting from 0");
                    offset = 0;
                    stored = FileValidator::default();
                }
                Plan::Complete => {
                    debug!(url = %shown, offset, "every byte was already on disk");
                    sink.begin(&stored, offset, false).await?;
                    return sink
                        .finish(
                            version::mtime(&stored),
                            file.sync_on_finish,
                            stored.clone(),
                            offset,
                        )
                        .await;
                }
                Plan::Write {
                    at,
                    skip,
                    end,
                    version,
                    fresh,
                } => {
                    if fresh && offset > 0 {
                        info!(url = %shown, offset, "remote file changed, restarting from 0");
                    }
                    sink.begin(&version, at, fresh).await?;
                    let segments = (!single)
                        .then(|| segmentable(file, &answer, at, skip, end, &version))
                        .flatten();
                    if let Some(missing) = segments {
                        let job = Segmented {
                            url,
                            auth: auth.clone(),
                            route: route.clone(),
                            shown: &shown,
                            temp: sink.temp(),
                            validator: &version,
                            connections: missing.len(),
                            missing,
                            first: Some(response),
                            sync_on_finish: file.sync_on_finish,
                            pace: file.pace.clone(),
                        };
                        match self.download_segments(job, sink.progress(), cancel).await {
                            Ok(outcome) => return Ok(outcome),
                            Err(SegEnd::Failed(e)) => return Err(e),
                            Err(SegEnd::NoRanges) => single = true,
                            Err(end) => {
                                restarts += 1;
                                if restarts > MAX_RESTARTS {
                                    return Err(TransferError::SourceChanged {
                                        source_name: shown,
                                        restarts: MAX_RESTARTS,
                                    });
                                }
                                info!(url = %shown, reason = end.reason(), "restarting from 0");
                            }
                        }
                        offset = 0;
                        stored = FileValidator::default();
                        continue;
                    }
                    sink.expect(end.map(|e| e.saturating_sub(at)));
                    body::stream(
                        &mut response,
                        &mut sink,
                        Body {
                            skip,
                            end,
                            shown: &shown,
                            pace: file.pace.as_deref(),
                            read_timeout: self.config.read_timeout,
                        },
                        cancel,
                    )
                    .await?;
                    let pos = sink.pos();
                    match version.size {
                        // A server may answer an open range with a shorter
                        // one: ask for the rest of the same version.
                        Some(total) if pos < total && version.can_prove() => {
                            debug!(url = %shown, pos, total, "partial answer; requesting the rest");
                            offset = pos;
                            stored = version;
                        }
                        Some(total) if pos < total => {
                            sink.checkpoint().await?;
                            return Err(TransferError::BodyCut {
                                url: shown,
                                received: pos,
                                expected: Some(total),
                                written: sink.written(),
                                source: None,
                            });
                        }
                        _ => {
                            let version = FileValidator {
                                size: Some(pos),
                                ..version
                            };
                            return sink
                                .finish(version::mtime(&version), file.sync_on_finish, version, pos)
                                .await;
                        }
                    }
                }
            }
        }
    }
}

/// How to fetch the rest of a file over several connections, if that is
/// worth it: the file may use more than one (or is paced), the server allows
/// ranges, the answer covers the rest of a version `If-Range` can name, and
/// enough is left. Gives the ranges, one per connection.
fn segmentable(
    file: &FileTransfer<'_>,
    answer: &Answer,
    at: u64,
    skip: u64,
    end: Option<u64>,
    version: &FileValidator,
) -> Option<Vec<ByteRange>> {
    let total = version.size?;
    let ranges_allowed = answer.status == 206 || answer.accepts_ranges;
    let left = total.checked_sub(at)?;
    // A paced (background) file goes by ranges even over one connection: a
    // request per chunk keeps the server from sending far ahead of the pace.
    let paced = file.pace.as_ref().is_some_and(|p| p.limited()) && left >= segmented::MIN_SEGMENT;
    if (file.connections <= 1 && !paced)
        || !ranges_allowed
        || skip != 0
        || end != Some(total)
        || (left < 2 * segmented::MIN_SEGMENT && !paced)
    {
        return None;
    }
    version::if_range(version)?;
    let n = u64::from(file.connections)
        .min(left / segmented::MIN_SEGMENT)
        .max(1) as usize;
    Some(segmented::split(at, total, n))
}
