//! Mapping a URL path to a file below the published root, safely.
//!
//! This is the security boundary of `bits serve`: whatever the request says,
//! only files inside the root may be read. It is enforced twice:
//!
//! 1. lexically — the percent-decoded path may not contain NUL bytes or `..`
//!    segments at all (not even ones that would stay inside the root: there
//!    is no legitimate use, and refusing them is simpler to reason about);
//! 2. physically — the joined path is canonicalized (resolving every symlink)
//!    and must still lie below the canonical root, so symlinks leading out of
//!    the root are refused too; so are paths into the upload session store
//!    (`.bits-sessions`), which look as if they did not exist.
//!
//! The file is then opened by its canonical path with `O_NOFOLLOW` (so the
//! last component cannot be swapped for a symlink after the check) and
//! `O_NONBLOCK` (so a FIFO cannot hang the request), and its type is checked
//! on the open descriptor. Only regular files and directories are served.
//!
//! Everything here does blocking file system calls and is meant to run on
//! tokio's blocking pool.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hyper::StatusCode;
use percent_encoding::percent_decode_str;

use crate::listing::{self, Entry};

/// A request path, decoded and checked lexically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPath {
    /// The path relative to the root (no `.`/`..`/empty segments).
    pub(crate) relative: PathBuf,
    /// Whether the URL path ended in `/`, i.e. named a directory.
    pub(crate) trailing_slash: bool,
}

/// Why a request path could not be resolved to something servable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `400`: not an origin-form path at all.
    BadRequest,
    /// `403`: traversal attempt, symlink out of the root, special file, or
    /// permission denied.
    Forbidden,
    /// `404`: nothing there.
    NotFound,
    /// `500`: an unexpected I/O error (logged).
    Internal,
}

impl Refusal {
    /// The HTTP status and short explanation to send.
    pub(crate) fn status(self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest => (StatusCode::BAD_REQUEST, "bad request path\n"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not found\n"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        }
    }
}

/// Percent-decodes the path of a request URI and checks it lexically.
pub(crate) fn decode(uri_path: &str) -> Result<RequestPath, Refusal> {
    if !uri_path.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let decoded: Vec<u8> = percent_decode_str(uri_path).collect();
    if decoded.contains(&0) {
        return Err(Refusal::Forbidden);
    }
    // Split only after decoding, so an encoded `%2F` or `%2e%2e` cannot
    // smuggle a `..` segment past the check.
    let mut relative = PathBuf::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Refusal::Forbidden),
            name => relative.push(OsStr::from_bytes(name)),
        }
    }
    Ok(RequestPath {
        relative,
        trailing_slash: decoded.ends_with(b"/"),
    })
}

/// What a request path resolved to.
#[derive(Debug)]
pub(crate) enum Target {
    /// A regular file, opened, with the metadata of the open descriptor.
    File {
        /// The open file.
        file: File,
        /// Its metadata (size, inode, mtime).
        meta: Metadata,
    },
    /// A directory and its entries, sorted by name.
    Directory(Vec<Entry>),
}

/// Resolves `path` below `root` (which must be canonical) and opens it.
pub(crate) fn open(root: &Path, path: &RequestPath) -> Result<Target, Refusal> {
    let joined = root.join(&path.relative);
    let canonical = std::fs::canonicalize(&joined).map_err(|e| io_refusal(&joined, &e))?;
    if !canonical.starts_with(root) {
        tracing::debug!(path = %joined.display(), "refusing a path that leads out of the root");
        return Err(Refusal::Forbidden);
    }
    // The upload session store is private (other clients' partial uploads),
    // also when reached through a symlink.
    if canonical.starts_with(root.join(crate::upload::SESSIONS_DIR)) {
        return Err(Refusal::NotFound);
    }
    // Check the type before opening: opening some special files (devices)
    // can have side effects.
    let meta = std::fs::metadata(&canonical).map_err(|e| io_refusal(&canonical, &e))?;
    if meta.is_dir() {
        let entries = listing::read_entries(&canonical).map_err(|e| io_refusal(&canonical, &e))?;
        return Ok(Target::Directory(entries));
    }
    if !meta.is_file() {
        return Err(Refusal::Forbidden);
    }
    if path.trailing_slash {
        // `/file.txt/` names a directory that does not exist.
        return Err(Refusal::NotFound);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&canonical)
        .map_err(|e| io_refusal(&canonical, &e))?;
    // Re-check on the descriptor: the path may have been replaced meanwhile.
    let meta = file.metadata().map_err(|e| io_refusal(&canonical, &e))?;
    if !meta.is_file() {
        return Err(Refusal::Forbidden);
    }
    Ok(Target::File { file, meta })
}

/// Maps a file system error to the status the client gets.
fn io_refusal(path: &Path, err: &io::Error) -> Refusal {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Refusal::NotFound,
        io::ErrorKind::PermissionDenied => Refusal::Forbidden,
        _ => match err.raw_os_error() {
            // Symlink loops, a symlink swapped in after the check, sockets.
            Some(libc::ELOOP | libc::ENXIO) => Refusal::Forbidden,
            Some(libc::ENAMETOOLONG) => Refusal::NotFound,
            _ => {
                tracing::warn!(path = %path.display(), error = %err, "cannot access file");
                Refusal::Internal
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn decodes_and_normalizes() {
        let p = decode("/a/b%20c/./d.txt").expect("valid");
        assert_eq!(p.relative, rel("a/b c/d.txt"));
        assert!(!p.trailing_slash);
        let p = decode("//dir//").expect("valid");
        assert_eq!(p.relative, rel("dir"));
        assert!(p.trailing_slash);
        assert_eq!(decode("/").expect("valid").relative, rel(""));
        // An encoded slash separates segments like a plain one.
        assert_eq!(decode("/a%2Fb").expect("valid").relative, rel("a/b"));
    }

    #[test]
    fn non_utf8_names_are_kept_as_bytes() {
        let p = decode("/%FF.bin").expect("valid");
        assert_eq!(p.relative.as_os_str().as_bytes(), b"\xff.bin");
    }

    #[test]
    fn refuses_traversal_and_nul() {
        for path in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/a/%2e%2e/b",
            "/a/%2E%2E",
            "/a/..%2Fb",
            "/a%2F..%2Fb",
            "/a%00b",
        ] {
            assert_eq!(decode(path), Err(Refusal::Forbidden), "{path}");
        }
        // `..` as part of a name is fine.
        assert_eq!(decode("/a..b").expect("valid").relative, rel("a..b"));
    }

    #[test]
    fn requires_origin_form() {
        assert_eq!(decode("*"), Err(Refusal::BadRequest));
        assert_eq!(decode(""), Err(Refusal::BadRequest));
    }
}
