//! Where an upload may go, and putting it there.
//!
//! Uploads write, so their paths are checked more strictly than downloads'
//! (module `resolve`):
//!
//! 1. **lexically** ([`decode`]): the URL path is percent-decoded once and
//!    must then be valid UTF-8 (no overlong or odd encodings), contain no
//!    NUL or control characters, no backslash, and no separator that was
//!    percent-encoded (`%2F`, `%5C`: a name containing `/` cannot exist, so
//!    it can only be an attempt to smuggle one). `..` segments are refused;
//!    so is anything under `.bits-sessions`, and a path ending in `/`
//!    (a directory is no upload target);
//! 2. **physically** ([`check`]): the parent directory is canonicalized
//!    (resolving symlinks) and must lie inside the canonical root and outside
//!    the session store; the final name must not be a symlink (a rename
//!    would replace the link, never write through it, but a link there is a
//!    sign of mischief), a directory, or a special file; and an existing
//!    file is only replaced with `allow_overwrite`.
//!
//! The check runs at Create-Session and again just before the file is
//! committed ([`commit`]), which renames it atomically into place with
//! `RENAME_NOREPLACE` unless overwriting is allowed. What is left is the
//! window between that last check and the rename, in which someone with
//! write access *inside* the root could swap a directory for a symlink;
//! closing it would need `openat`-style walking, and such a user can write
//! there anyway.
//!
//! Everything but [`decode`] does blocking file system calls.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::store::sync_dir;
use super::SESSIONS_DIR;

/// Longest file name most Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Why an upload target is refused.
#[derive(Debug)]
pub(crate) enum TargetError {
    /// Not a usable path at all (odd encoding, empty, too long): 400.
    BadPath,
    /// Traversal, the session store, a symlink, a special file: 403.
    Forbidden,
    /// The target is a directory (or the URL ends in `/`): 400.
    IsDirectory,
    /// The directory to upload into does not exist: 404.
    ParentMissing,
    /// The file exists and may not be overwritten: 409.
    Exists,
    /// An unexpected I/O error: 500.
    Io(io::Error),
}

/// Decodes and checks an upload URL path; returns the path relative to the
/// root.
pub(crate) fn decode(uri_path: &str) -> Result<PathBuf, TargetError> {
    let Some(rest) = uri_path.strip_prefix('/') else {
        return Err(TargetError::BadPath);
    };
    let lower = uri_path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || uri_path.contains('\\') {
        return Err(TargetError::BadPath);
    }
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| TargetError::BadPath)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(TargetError::BadPath);
    }
    if decoded.is_empty() || decoded.ends_with('/') {
        return Err(TargetError::IsDirectory);
    }
    let mut relative = PathBuf::new();
    for (index, segment) in decoded.split('/').enumerate() {
        match segment {
            // `a//b` and `a/./b` are harmless spellings of `a/b`.
            "" | "." => {}
            ".." => return Err(TargetError::Forbidden),
            SESSIONS_DIR if index == 0 => return Err(TargetError::Forbidden),
            name if name.len() > NAME_MAX => return Err(TargetError::BadPath),
            name => relative.push(name),
        }
    }
    if relative.file_name().is_none() {
        return Err(TargetError::IsDirectory);
    }
    Ok(relative)
}

/// A checked target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Relative to the root, through the canonical parent (so a symlinked
    /// directory inside the root is recorded by its real place).
    pub(crate) relative: PathBuf,
    /// Absolute path: canonical parent + file name.
    pub(crate) absolute: PathBuf,
}

/// Checks that `relative` (from [`decode`] or a stored record) may receive
/// an upload now. `root` must be canonical.
pub(crate) fn check(
    root: &Path,
    relative: &Path,
    allow_overwrite: bool,
) -> Result<Target, TargetError> {
    // Stored records are checked again here, so they get the lexical rules
    // too: nothing but plain names.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(TargetError::Forbidden);
    }
    let name = relative.file_name().ok_or(TargetError::IsDirectory)?;
    let parent = root.join(relative.parent().unwrap_or(Path::new("")));
    let parent = match fs::canonicalize(&parent) {
        Ok(p) => p,
        Err(e) => return Err(io_error(e)),
    };
    let sessions = root.join(SESSIONS_DIR);
    if !parent.starts_with(root) || parent.starts_with(&sessions) {
        tracing::debug!(parent = %parent.display(), "refusing an upload outside the root");
        return Err(TargetError::Forbidden);
    }
    if !fs::metadata(&parent).map_err(io_error)?.is_dir() {
        return Err(TargetError::ParentMissing);
    }
    let absolute = parent.join(name);
    match fs::symlink_metadata(&absolute) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(TargetError::Forbidden),
        Ok(meta) if meta.is_dir() => return Err(TargetError::IsDirectory),
        Ok(meta) if !meta.is_file() => return Err(TargetError::Forbidden),
        Ok(_) if !allow_overwrite => return Err(TargetError::Exists),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let relative = parent
        .strip_prefix(root)
        .map_err(|_| TargetError::Forbidden)?
        .join(name);
    Ok(Target { relative, absolute })
}

/// Moves a complete upload (`data`, already fsynced) to `relative` below
/// `root`: checks the target again, renames atomically (never replacing an
/// existing file unless `allow_overwrite`), and fsyncs the directory.
///
/// If `data` is on another file system than the target (a mount point
/// inside the root), it is copied to a hidden temporary beside the target,
/// fsynced, and renamed from there, so the target still only ever appears
/// complete.
pub(crate) fn commit(
    root: &Path,
    data: &Path,
    relative: &Path,
    allow_overwrite: bool,
) -> Result<Target, TargetError> {
    let target = check(root, relative, allow_overwrite)?;
    let parent = target.absolute.parent().unwrap_or(root).to_path_buf();
    match rename(data, &target.absolute, allow_overwrite) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_across(data, &target.absolute, &parent, allow_overwrite)?;
        }
        Err(e) => return Err(io_error(e)),
    }
    sync_dir(&parent).map_err(TargetError::Io)?;
    Ok(target)
}

/// The cross-file-system fallback of [`commit`].
fn copy_across(
    data: &Path,
    target: &Path,
    parent: &Path,
    allow_overwrite: bool,
) -> Result<(), TargetError> {
    let tmp = parent.join(format!(
        ".bits-upload-{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut from = File::open(data)?;
        let mut to = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        io::copy(&mut from, &mut to)?;
        to.sync_all()?;
        rename(&tmp, target, allow_overwrite)
    })();
    match result {
        Ok(()) => {
            let _ = fs::remove_file(data);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io_error(e))
        }
    }
}

/// `rename`, or with `!overwrite` a rename that fails with `EEXIST` rather
/// than replace an existing file: `renameat2(RENAME_NOREPLACE)`, falling
/// back to `link` + `unlink` on file systems without it.
fn rename(from: &Path, to: &Path, overwrite: bool) -> io::Result<()> {
    if overwrite {
        return fs::rename(from, to);
    }
    let c_from = c_path(from)?;
    let c_to = c_path(to)?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(err),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Maps a file system error on the way to the target.
fn io_error(e: io::Error) -> TargetError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => TargetError::ParentMissing,
        io::ErrorKind::AlreadyExists => TargetError::Exists,
        io::ErrorKind::PermissionDenied => TargetError::Forbidden,
        io::ErrorKind::IsADirectory => TargetError::IsDirectory,
        _ => match e.raw_os_error() {
            Some(libc::ELOOP) => TargetError::Forbidden,
            Some(libc::ENAMETOOLONG) => TargetError::BadPath,
            _ => TargetError::Io(e),
        },
    }
}

/// The file name as text for logs.
pub(crate) fn display(relative: &Path) -> String {
    String::from_utf8_lossy(OsStr::as_bytes(relative.as_os_str())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain_and_encoded_names() {
        assert_eq!(
            decode("/a/b%20c.txt").expect("ok"),
            PathBuf::from("a/b c.txt")
        );
        assert_eq!(decode("//a/./b").expect("ok"), PathBuf::from("a/b"));
        assert_eq!(
            decode("/%C3%A9t%C3%A9.txt").expect("utf-8"),
            PathBuf::from("été.txt")
        );
        assert_eq!(decode("/a..b").expect("ok"), PathBuf::from("a..b"));
        assert_eq!(
            decode("/.bits-sessions-not").expect("ok"),
            PathBuf::from(".bits-sessions-not")
        );
    }

    #[test]
    fn refuses_traversal_odd_encodings_and_directories() {
        for (path, want) in [
            ("/../x", "Forbidden"),
            ("/a/../../x", "Forbidden"),
            ("/a/%2e%2e/x", "Forbidden"),
            ("/.bits-sessions/x", "Forbidden"),
            ("/%2E%62its-sessions/x", "Forbidden"),
            ("/a%2F..%2Fx", "BadPath"),
            ("/a%2fb", "BadPath"),
            ("/a%5Cb", "BadPath"),
            ("/a\\b", "BadPath"),
            ("/a%00b", "BadPath"),
            ("/a%0Ab", "BadPath"),
            ("/%FF.bin", "BadPath"),
            ("/%C0%AE%C0%AE/x", "BadPath"),
            ("relative", "BadPath"),
            ("/", "IsDirectory"),
            ("/dir/", "IsDirectory"),
            ("/.", "IsDirectory"),
        ] {
            let got = format!("{:?}", decode(path).expect_err(path));
            assert!(got.starts_with(want), "{path}: {got}");
        }
        let long = format!("/{}", "x".repeat(256));
        assert!(matches!(decode(&long), Err(TargetError::BadPath)));
    }

    #[test]
    fn check_confines_to_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::create_dir_all(root.join(SESSIONS_DIR)).expect("mkdir");
        fs::create_dir_all(dir.path().join("outside")).expect("mkdir");
        std::os::unix::fs::symlink("../outside", root.join("out")).expect("symlink");
        std::os::unix::fs::symlink("sub", root.join("in")).expect("symlink");
        std::os::unix::fs::symlink(SESSIONS_DIR, root.join("sess")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("link.txt")).expect("symlink");
        fs::write(root.join("exists.txt"), b"x").expect("write");
        let root = fs::canonicalize(&root).expect("canonical");

        let t = check(&root, Path::new("in/new.bin"), false).expect("inside");
        assert_eq!(t.relative, PathBuf::from("sub/new.bin"));
        assert_eq!(t.absolute, root.join("sub/new.bin"));
        for (path, want) in [
            ("out/x", "Forbidden"),
            ("sess/x", "Forbidden"),
            ("link.txt", "Forbidden"),
            ("sub", "IsDirectory"),
            ("missing/x", "ParentMissing"),
            ("exists.txt/x", "ParentMissing"),
            ("exists.txt", "Exists"),
        ] {
            let got = format!(
                "{:?}",
                check(&root, Path::new(path), false).expect_err(path)
            );
            assert!(got.starts_with(want), "{path}: {got}");
        }
        assert!(check(&root, Path::new("exists.txt"), true).is_ok());
        assert!(check(&root, Path::new("/etc/passwd"), true).is_err());
    }

    #[test]
    fn commit_never_replaces_without_permission() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("canonical");
        let data = root.join("data");
        fs::write(&data, b"new").expect("write");
        fs::write(root.join("t.bin"), b"old").expect("write");
        assert!(matches!(
            commit(&root, &data, Path::new("t.bin"), false),
            Err(TargetError::Exists)
        ));
        commit(&root, &data, Path::new("t.bin"), true).expect("overwrite");
        assert_eq!(fs::read(root.join("t.bin")).expect("read"), b"new");
        assert!(!data.exists());
        fs::write(&data, b"fresh").expect("write");
        commit(&root, &data, Path::new("u.bin"), false).expect("new file");
        assert_eq!(fs::read(root.join("u.bin")).expect("read"), b"fresh");
    }
}
