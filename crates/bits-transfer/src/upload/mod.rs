//! The upload engine: sends one local file to a BITS upload server with the
//! BITS Upload Protocol ("BITS 1.5 Upload Protocol", method `BITS_POST`),
//! and for upload-reply jobs fetches the server application's reply.
//!
//! One upload is one server *session*: Create-Session, then Fragments in
//! order, then Close-Session once every byte is acknowledged (Cancel-Session
//! when the job is removed, see [`Engine::cancel_upload`]). The packet
//! vocabulary comes from `bits-upload-proto`, shared with the server.
//!
//! The promises, in order of importance:
//!
//! 1. **Never send a mix of two versions of the file.** The local file's
//!    size and modification time (nanoseconds) are recorded before the first
//!    byte is sent ([`UploadProgress::session`]) and checked again after
//!    every fragment is read from disk and before it is sent; any difference
//!    is a fatal `BG_E_LOCAL_FILE_CHANGED` (BITS' BG_E_FILE_CHANGED), as in
//!    BITS: the server holds bytes of the old version, so the job cannot
//!    honestly continue.
//! 2. **Resend as little as possible.** The resume point is the server's
//!    own `BITS-Received-Content-Range`; it is saved through
//!    [`UploadProgress::acknowledged`] at the engine's checkpoint cadence
//!    (and at the end), shown through [`UploadProgress::moved`] in between.
//!    After a cut connection the same session continues from the last Ack;
//!    after a daemon restart from the saved point, whose first fragment the
//!    server answers with what it holds, so at most one fragment goes
//!    again. A server that lost bytes (a power cut before its batch was
//!    synced) names what it holds and the rest is sent again; only a server
//!    that lost the session (BG_E_SESSION_NOT_FOUND) costs a new session
//!    from byte 0.
//! 3. **Always end.** A server that does not speak BITS, refuses the upload
//!    or breaks the protocol is a fatal error with a sentence that says so;
//!    only network trouble, 5xx/408/429 and a reply not produced yet are
//!    transient. Loops that could spin (a session lost on every packet, a
//!    416 that never moves) are bounded.
//!
//! Packets go over the engine's shared `reqwest` client, so consecutive
//! fragments reuse one kept-alive connection. A packet whose connection
//! closes before any answer is sent again at once, twice at most (see
//! [`Engine::exchange`]); a connection that stays broken ends the call with
//! a transient error, and the daemon's retry resumes from the last
//! acknowledgement. Fragment bodies are read with `pread` on tokio's
//! blocking pool, one fragment at a time: memory use is one fragment,
//! whatever the file's size. See [`crate::DEFAULT_UPLOAD_FRAGMENT`] for the size.
//!
//! An empty file cannot be uploaded: a Fragment's `Content-Range` holds at
//! least one byte, so it is refused up front ([`TransferError::EmptyUpload`]).
//!
//! **Host affinity.** A server in a web farm may answer Create-Session with
//! `BITS-Host-Id` (the one machine holding the session) and
//! `BITS-Host-Id-Fallback-Timeout`. Every later packet of the session goes
//! to the job's URL with its host (and port, if given) replaced by that host.
//! `host_fallback_at` is Create-Session time plus the timeout. Until then a
//! failure to connect to the host is an ordinary transient error (the machine
//! may be rebooting and the session is still there); once it has passed, a
//! failure to connect means the machine is gone: the session is dropped and
//! a new one is created at the job's URL (its bytes are lost with the
//! machine). Without a fallback timeout the host is used for ever.

//!
//! Parts: `api` (what an upload is given and reports), `run` (one upload:
//! sessions, fragments, the resume point), `exchange` (one packet and its
//! answer), `fragment` (a fragment's bytes as a body), `session` (where a
//! session's packets go), `reply` (upload-reply jobs). This file only
//! declares them; no part depends on it.

mod api;
mod exchange;
mod fragment;
mod reply;
mod run;
mod session;

pub use api::{UploadOutcome, UploadProgress, UploadTransfer};
