//! Fragment: appending a range of the file, and finishing the upload when
//! its last byte arrives.
//!
//! The server keeps one number per session, `received`: bytes
//! `0..received` are durably in the session's `data` file. A fragment
//! `first..=last` is then
//!
//! * a **gap** if `first > received`: 416, nothing read;
//! * **old** if `last < received`: nothing written (a retry whose Ack was
//!   lost), Ack with `received`;
//! * otherwise the bytes from `received` on are **new**: the body's first
//!   `received - first` bytes are skipped (an overlap never overwrites, the
//!   Fragment page's rule), the rest written at `received..=last`.
//!
//! The data file is cut back to `received` before writing, so bytes of an
//! earlier fragment that broke off half-way are never kept.
//!
//! Durability comes in batches: a fragment's bytes are acknowledged once
//! written (the page cache holds them while the server runs), and every
//! [`SYNC_BYTES`] or [`SYNC_INTERVAL`] the data is `fdatasync`ed and only
//! then is the record's `received` raised on disk (atomically). These
//! batches run in the background while the next fragments arrive (a sync
//! slower than the upload holds the Acks once twice a batch waits); the
//! last byte's batch runs before its Ack. A failed background sync takes back
//! the acknowledgement of every byte past the durable point: the next
//! fragment is answered from there (a 416 naming it), and until a sync
//! succeeds again every batch is synced before its Ack. A crash loses at
//! most the bytes since the last batch, and loses them *honestly*: the
//! restarted server knows only the durable count, answers the client's
//! next Fragment with a 416 naming it, and the client (which still has the
//! file) resends from there. The upload itself is never called complete,
//! nor renamed into place, before every byte is durable. Four fsyncs per
//! 4 MiB fragment had made uploads 1.66 x slower than a plain PUT; a 64 MiB
//! batch synced before its Ack held every eighth 8 MiB fragment about
//! 20 ms.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

use bits_upload_proto::{Ack, FragmentRange};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::ack::{ack_response, Failure};
use super::notify::Notification;
use super::packets::{blocking, lookup, target_failure};
use super::sessions::{CatchUp, Session, SessionState};
use super::store::{self, Record, DATA_FILE, REPLY_FILE};
use super::{drain, target, Uploads, BODY_IDLE_TIMEOUT, DRAIN_LIMIT, SESSIONS_DIR};
use crate::body::ResponseBody;
use crate::server::State;

/// A batch of acknowledged bytes is made durable (data fsynced, record
/// persisted) once this many bytes wait (no more than twice this many are
/// ever acknowledged and not durable)… Syncing as the upload goes keeps few
/// pages dirty, which makes the writes themselves cheaper: on loopback a
/// 1 GiB upload took a median 1.10 s with 32 MiB batches, 1.16 s with
/// 64 MiB, and 1.26-1.37 s with none before the last byte (nine runs of
/// each size, three without).
pub(crate) const SYNC_BYTES: u64 = 32 * 1024 * 1024;

/// …and at least this often.
pub(crate) const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Received buffers are written together once this many bytes wait: large
/// enough that a blocking-pool round trip per write costs little, small
/// enough that the bytes are still in the CPU's cache when the kernel
/// copies them (1 MiB writes cost the server more CPU on loopback).
const WRITE_CHUNK: usize = 256 * 1024;

/// Answers a Fragment.
pub(crate) async fn fragment(
    up: &Uploads,
    state: &State,
    parts: &Parts,
    body: Incoming,
    session_id: String,
    range: FragmentRange,
    content_name: Option<String>,
) -> Response<ResponseBody> {
    let Some(id) = store::parse_wire_id(&session_id) else {
        drain(body, DRAIN_LIMIT).await;
        return Failure::session_not_found().into_response(Some(session_id));
    };
    let Some((session, mut guard)) = lookup(up, id).await else {
        drain(body, DRAIN_LIMIT).await;
        return Failure::session_not_found().into_response(Some(session_id));
    };
    let result = receive(
        up,
        state,
        parts,
        &session,
        &mut guard,
        body,
        range,
        content_name,
    )
    .await;
    match result {
        Ok(()) => {
            let record = &guard.record;
            let ack = Ack {
                session_id: Some(session_id),
                received_content_range: Some(record.received),
                // Only on the Ack of the last fragment, and only for
                // upload-reply (never for a simple upload, [MC-BUP] 2.2.7.2).
                reply_url: if up.notifier.is_some() && record.all_received() {
                    record.reply_url.clone()
                } else {
                    None
                },
                ..Ack::default()
            };
            ack_response(StatusCode::OK, &ack)
        }
        Err(failure) => failure.into_response(Some(session_id)),
    }
}

/// Checks a fragment against the session, takes its new bytes, and
/// finishes the upload when complete. `st.record` changes once the bytes
/// are written, `st.durable` once they are synced and the record saying so
/// is written.
#[allow(clippy::too_many_arguments)] // one call site, all of them needed
async fn receive(
    up: &Uploads,
    state: &State,
    parts: &Parts,
    session: &Session,
    st: &mut SessionState,
    body: Incoming,
    range: FragmentRange,
    content_name: Option<String>,
) -> Result<(), Failure> {
    // A background batch that has ended moves the durable point on. If its
    // fsync failed, that is not this fragment's failure: the bytes past the
    // durable point are no longer acknowledged, and this fragment is
    // answered from there like any other (a 416 naming it, when the
    // fragment starts later), so the client resends them at once.
    if settle(st, false).await.is_err() {
        tracing::info!(session = %session.id, durable = st.durable, "answering from the durable point after a failed sync");
    }
    let record = &st.record;
    if record.total.is_some_and(|total| total != range.total) {
        tracing::debug!(session = %session.id, ?record.total, range.total, "upload size changed");
        drain(body, DRAIN_LIMIT).await;
        return Err(Failure::invalid());
    }
    if up
        .config
        .max_upload_size
        .is_some_and(|max| range.total > max)
    {
        tracing::info!(session = %session.id, size = range.total, "upload too large");
        drain(body, DRAIN_LIMIT).await;
        return Err(Failure::too_large());
    }
    let received = record.received;
    if range.first > received {
        drain(body, DRAIN_LIMIT).await;
        return Err(Failure::gap(received));
    }
    let mut next = record.clone();
    let data = session.dir.join(DATA_FILE);
    if range.last >= received {
        write_body(&data, body, range, received).await?;
        next.received = range.last + 1;
    } else {
        drain(body, DRAIN_LIMIT).await;
    }
    next.total = Some(range.total);
    if next.content_name.is_none() {
        next.content_name = content_name;
    }
    next.modified_ms = store::now_ms();
    let behind = next.received > st.durable;
    let changed = next.content_name != st.record.content_name || next.total != st.record.total;
    if next.all_received() || changed || (behind && st.sync_failed) {
        // The last byte is durable before its Ack (and before the upload
        // is handed on); a changed record is written at once; after a
        // failed sync, every fragment is synced before its Ack. All wait
        // for the batch in flight: one writer of the record at a time.
        settle(st, true).await?;
        let behind = next.received > st.durable;
        if let Err(e) = run_batch(session, behind.then_some(&data), &next).await {
            // The bytes since the last batch may be gone (a failed fsync
            // forgets them): take back their acknowledgement, so that the
            // client is sent back to what is durable.
            st.record.received = st.durable;
            return Err(e);
        }
        if behind {
            st.durable = next.received;
            st.synced_at = std::time::Instant::now();
            st.sync_failed = false;
        }
    } else if behind {
        // A sync slower than the upload holds the Acks once twice a batch
        // is acknowledged and not durable: that much at most is lost to a
        // crash, and a stalled disk stalls the upload.
        if st.catch_up.is_some() && next.received - st.durable >= 2 * SYNC_BYTES {
            settle(st, true).await?;
        }
        if st.catch_up.is_none()
            && (next.received - st.durable >= SYNC_BYTES || st.synced_at.elapsed() >= SYNC_INTERVAL)
        {
            start_batch(st, session, &data, &next);
        }
    }
    st.record = next;
    if st.record.all_received() {
        finish(up, state, parts, session, &mut st.record).await?;
    }
    Ok(())
}

/// Starts making the bytes up to `next.received` durable in the
/// background, then the record saying so, while the client sends on:
/// waiting for the fsync before the Ack idled the link for the whole sync
/// (20 ms of every 64 MiB on loopback). Until it ends, the durable point
/// stays where it was.
fn start_batch(st: &mut SessionState, session: &Session, data: &Path, next: &Record) {
    st.catch_up = Some(CatchUp {
        upto: next.received,
        task: tokio::task::spawn_blocking(batch(session, Some(data), next)),
    });
    st.synced_at = std::time::Instant::now();
}

/// Ends the batch being made durable in the background, if any: when
/// `wait`, waiting for it; otherwise only if it has ended. Its bytes become
/// durable; if it failed, the acknowledgement of every byte past the
/// durable point is taken back, so the client is sent back there.
///
/// Cancel-safe: the batch stays in the session until it has ended, so a
/// request dropped while waiting (its client went away) leaves it to the
/// next one rather than running on unwatched.
pub(super) async fn settle(st: &mut SessionState, wait: bool) -> Result<(), Failure> {
    let Some(catch_up) = st
        .catch_up
        .as_mut()
        .filter(|c| wait || c.task.is_finished())
    else {
        return Ok(());
    };
    let result = (&mut catch_up.task)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let upto = catch_up.upto;
    st.catch_up = None;
    match result {
        Ok(()) => {
            st.durable = st.durable.max(upto);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "an upload's background sync failed");
            st.record.received = st.durable;
            st.sync_failed = true;
            Err(Failure::io("syncing an upload fragment", &e))
        }
    }
}

/// Writes the bytes of a fragment body that lie at or after `received`
/// into `data` at their offsets (unsynced). Fails if the body is not
/// exactly the range's length.
async fn write_body(
    data: &Path,
    mut body: Incoming,
    range: FragmentRange,
    received: u64,
) -> Result<(), Failure> {
    let writing = |e: &std::io::Error| Failure::io("writing an upload fragment", e);
    let path = data.to_path_buf();
    let file = blocking(move || {
        let file = OpenOptions::new().write(true).open(&path)?;
        // Drop whatever an interrupted earlier fragment left past the
        // acknowledged bytes.
        file.set_len(received)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .and_then(|r| r)
    .map_err(|e| writing(&e))?;
    let file = Arc::new(file);

    // `pos`: offset of the next body byte; `at`: offset where `pending`
    // goes. The body's own buffers are written as they came (one
    // `pwritev`), not copied into one of ours first.
    let end = range.last + 1;
    let mut pos = range.first;
    let mut at = received;
    let mut pending = Pending::default();
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // The client went away mid-body; it will send the fragment
                // again (and nothing of this one is acknowledged).
                tracing::debug!(error = %e, "fragment body broke off");
                return Err(Failure::invalid());
            }
            Err(_) => {
                tracing::debug!("fragment body stalled");
                return Err(Failure::server(
                    StatusCode::REQUEST_TIMEOUT,
                    bits_upload_proto::codes::E_FAIL,
                ));
            }
        };
        let Ok(mut chunk) = frame.into_data() else {
            continue; // trailers
        };
        let len = chunk.len() as u64;
        if pos + len > end {
            return Err(Failure::invalid());
        }
        let skip = usize::try_from(received.saturating_sub(pos).min(len)).unwrap_or(chunk.len());
        pos += len;
        drop(chunk.split_to(skip));
        if pending.push(chunk) {
            (pending, at) = write_at(&file, pending, at)
                .await
                .map_err(|e| writing(&e))?;
        }
    }
    if pos != end {
        tracing::debug!(
            got = pos - range.first,
            want = range.len(),
            "fragment body too short"
        );
        return Err(Failure::invalid());
    }
    if !pending.chunks.is_empty() {
        write_at(&file, pending, at)
            .await
            .map_err(|e| writing(&e))?;
    }
    Ok(())
}

/// Body buffers waiting to be written together.
#[derive(Default)]
struct Pending {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Pending {
    /// Most buffers one write takes (well under the kernel's `IOV_MAX`).
    const MAX_CHUNKS: usize = 128;

    /// Adds a buffer; true when enough are waiting for a write.
    fn push(&mut self, chunk: Bytes) -> bool {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
        self.len >= WRITE_CHUNK || self.chunks.len() >= Self::MAX_CHUNKS
    }
}

/// Writes the waiting buffers at `at`; returns the emptied list and the
/// next offset.
async fn write_at(file: &Arc<File>, pending: Pending, at: u64) -> std::io::Result<(Pending, u64)> {
    let file = Arc::clone(file);
    blocking(move || {
        write_all_vectored_at(&file, &pending.chunks, at)?;
        let next = at + pending.len as u64;
        let mut pending = pending;
        pending.chunks.clear();
        pending.len = 0;
        Ok((pending, next))
    })
    .await?
}

/// `write_all_at` for several buffers: `pwritev` until every byte is
/// written.
fn write_all_vectored_at(file: &File, chunks: &[Bytes], mut at: u64) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let offset = libc::off_t::try_from(at).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset out of range")
        })?;
        let n = match nix::sys::uio::pwritev(file, rest, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        at += n as u64;
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// A batch, on the blocking pool: the data file's bytes made durable
/// (when `data` is given), then the record saying so. An error of the
/// sync means the bytes since the last batch may be gone: the caller takes
/// back their acknowledgement.
async fn run_batch(session: &Session, data: Option<&Path>, record: &Record) -> Result<(), Failure> {
    let what = if data.is_some() {
        "syncing an upload fragment"
    } else {
        "saving an upload session"
    };
    blocking(batch(session, data, record))
        .await
        .and_then(|r| r)
        .map_err(|e| Failure::io(what, &e))
}

/// The blocking work of a batch (see [`run_batch`]), also run in the
/// background by [`start_batch`].
fn batch(
    session: &Session,
    data: Option<&Path>,
    record: &Record,
) -> impl FnOnce() -> std::io::Result<()> + Send + 'static {
    let data = data.map(Path::to_path_buf);
    let dir = session.dir.clone();
    let record = record.clone();
    let writes = Arc::clone(&session.record_writes);
    move || {
        if let Some(data) = &data {
            File::open(data)?.sync_data()?;
        }
        write_record(&writes, &dir, &record)
    }
}

/// Rewrites a session's `state` file, one writer at a time.
fn write_record(writes: &std::sync::Mutex<()>, dir: &Path, record: &Record) -> std::io::Result<()> {
    // Nothing is left half-done under this lock by a panic: the file
    // operations are the writer's own.
    let _one_writer = writes.lock().unwrap_or_else(|e| e.into_inner());
    store::write_record(dir, record)
}

/// Finishes a complete upload, as far as it has not been finished: tells the
/// server application (upload-reply), then renames the file into place
/// (unless the application kept it). Each step is recorded when done, so a
/// repeated last fragment, a Close-Session, or a restart continues where a
/// failure stopped and never repeats a step that succeeded.
pub(super) async fn finish(
    up: &Uploads,
    state: &State,
    parts: &Parts,
    session: &Session,
    record: &mut Record,
) -> Result<(), Failure> {
    if let Some(notifier) = &up.notifier {
        if !record.notified {
            let host = request_host(parts);
            let original_url = format!(
                "http://{}{}",
                host.unwrap_or("localhost"),
                parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
            );
            let outcome = notifier
                .notify(Notification {
                    original_url: &original_url,
                    upload_query: parts.uri.query(),
                    data: &session.dir.join(DATA_FILE),
                    reply: &session.dir.join(REPLY_FILE),
                    pool: &state.pool,
                })
                .await?;
            let mut next = record.clone();
            next.notified = true;
            next.copy_wanted = outcome.copy;
            next.reply_url = Some(
                outcome
                    .static_url
                    .unwrap_or_else(|| reply_url(host, session.id)),
            );
            run_batch(session, None, &next).await?;
            *record = next;
            tracing::info!(session = %session.id, copy = record.copy_wanted, "server application notified");
        }
    } else if !record.copy_wanted {
        // Created while a notification was configured, finished without:
        // store the file rather than drop it.
        record.copy_wanted = true;
    }
    if record.copy_wanted && !record.committed {
        let root = up.root.clone();
        let data = session.dir.join(DATA_FILE);
        let relative = record.target.clone();
        let allow_overwrite = up.config.allow_overwrite;
        blocking(move || target::commit(&root, &data, &relative, allow_overwrite))
            .await
            .map_err(|e| Failure::io("storing an upload", &e))?
            .map_err(target_failure)?;
        let mut next = record.clone();
        next.committed = true;
        run_batch(session, None, &next).await?;
        *record = next;
        tracing::info!(
            session = %session.id,
            target = %target::display(&record.target),
            bytes = record.received,
            "upload complete"
        );
    }
    Ok(())
}

/// The request's `Host`, if it is a plain host name or address (with
/// port), so it can go into a URL unescaped.
fn request_host(parts: &Parts) -> Option<&str> {
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    (!host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b)))
    .then_some(host)
}

/// Where we serve a session's reply: an absolute URL on the host the client
/// talks to (so no client needs to resolve a relative one), or just the
/// path when the request named no usable host.
fn reply_url(host: Option<&str>, id: uuid::Uuid) -> String {
    let path = format!("/{SESSIONS_DIR}/{}/{REPLY_FILE}", store::dir_name(id));
    match host {
        Some(host) => format!("http://{host}{path}"),
        None => path,
    }
}
