//! These switch real credentials: they need root, and say so when skipped.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// `nobody` on Debian and most distributions.
const NOBODY: u32 = 65534;

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: switching file-system identities needs root");
    false
}

fn nobody() -> Identity {
    Identity::user(NOBODY, NOBODY, vec![NOBODY])
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_user_cannot_reach_through_a_directory_only_root_may_search() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o700);
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"root's").unwrap();
    chmod(&secret, 0o644);
    let denied = nobody().run(|| std::fs::read(&secret)).unwrap_err();
    assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied, "{denied}");
    assert_eq!(
        Identity::own().run(|| std::fs::read(&secret)).unwrap(),
        b"root's"
    );
}

#[test]
fn a_symbolic_link_leads_only_where_the_user_may_go() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o755);
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"root's").unwrap();
    chmod(&secret, 0o600);
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let link = theirs.join("dest");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let write = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&link)
            .map(drop)
    };
    assert_eq!(
        nobody().run(write).unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert_eq!(std::fs::read(&secret).unwrap(), b"root's");
    // ... and `..` no further than the user's own rights either.
    let up = theirs.join("..").join("secret");
    assert!(nobody().run(|| std::fs::read(&up)).is_err());
}

#[test]
fn files_a_user_creates_are_the_users_and_the_thread_is_root_again_after() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o777);
    let made = d.path().join("made");
    nobody().run(|| std::fs::write(&made, b"x")).unwrap();
    let meta = std::fs::metadata(&made).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_eq!(current_fs_ids(), (0, 0));
    // Root's overrides are back: a 0000 file of nobody's is readable.
    chmod(&made, 0o000);
    assert_eq!(std::fs::read(&made).unwrap(), b"x");
    // Even when the operation panics.
    let unwound = std::panic::catch_unwind(|| {
        nobody()
            .run(|| -> io::Result<()> { panic!("in the middle of it") })
            .ok();
    });
    assert!(unwound.is_err());
    assert_eq!(current_fs_ids(), (0, 0));
}

#[test]
fn other_threads_keep_their_rights_while_one_acts_for_a_user() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    chmod(d.path(), 0o700);
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"root's").unwrap();
    let inside = std::sync::Barrier::new(2);
    let done = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            nobody()
                .run(|| {
                    inside.wait();
                    done.wait();
                    Ok(())
                })
                .unwrap();
        });
        inside.wait();
        // The other thread is nobody now; this one is still root.
        let read = std::fs::read(&secret);
        done.wait();
        assert_eq!(read.unwrap(), b"root's");
    });
}

#[test]
fn the_user_database_gives_the_groups() {
    let id = Identity::of_uid(0).unwrap();
    assert_eq!(id.uid(), 0);
    assert!(matches!(
        Identity::of_uid(4_000_000_000),
        Err(IdentityError::NoSuchUser(_))
    ));
}
