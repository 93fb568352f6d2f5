//! Whose rights a job's file operations use.
//!
//! The system daemon runs as root and acts for every user. Every path a job
//! names (a destination's temporary file, a local source, a file to upload,
//! the renames and directory syncs of Complete) is resolved and opened with
//! the rights of the job's owner, so a user can never make the daemon read
//! or write a file that user could not: the thread doing the operation
//! takes the owner's file-system identity (fsuid, fsgid and supplementary
//! groups) for that operation alone, and its own back afterwards.
//!
//! Why this cannot be bypassed: the kernel checks every step of a path
//! (each directory searched, each `..`, each symbolic link followed, the
//! final open, create, rename or unlink) against the calling thread's
//! file-system identity at the moment of the call. There is no separate
//! check that a later use could slip past (no check-then-use window): the
//! use is the check. A symbolic link planted in place of a destination
//! leads only where its owner's victim could go anyway, and the kernel's
//! `protected_symlinks` applies to the owner's uid. Changing the fsuid
//! from 0 also drops the file-system capabilities (`CAP_DAC_OVERRIDE`,
//! `CAP_FOWNER`, ...) from the thread's effective set, so root's overrides
//! are gone too; they come back when the fsuid returns to 0.
//!
//! These are per-thread credentials on Linux, set here with the raw system
//! calls: glibc's `setgroups` would change every thread of the process.
//! Operations on descriptors already open (read, write, fsync) need no
//! rights and run as they are. An [`Identity::own`] (the per-user daemon,
//! where every job is the daemon's user's) switches nothing.

use std::io;
use std::sync::Arc;

/// The rights a job's file operations run with. Cheap to clone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Identity(Option<Arc<Creds>>);

#[derive(PartialEq, Eq)]
struct Creds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => write!(f, "Identity(own)"),
            Some(c) => write!(f, "Identity(uid {}, gid {})", c.uid, c.gid),
        }
    }
}

/// Why an identity cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No such user in the user database.
    #[error("uid {0} is not a user of this machine")]
    NoSuchUser(u32),
    /// The user database could not be read.
    #[error("cannot look up uid {uid}: {source}")]
    Lookup {
        /// The user.
        uid: u32,
        /// Why.
        source: io::Error,
    },
}

impl Identity {
    /// The daemon's own rights: nothing is switched.
    pub fn own() -> Identity {
        Identity(None)
    }

    /// The rights of `uid`, with primary group `gid` and supplementary
    /// `groups`.
    pub fn user(uid: u32, gid: u32, groups: Vec<u32>) -> Identity {
        Identity(Some(Arc::new(Creds { uid, gid, groups })))
    }

    /// The rights of `uid` as the user database has them now: its primary
    /// group and every group it is a member of.
    pub fn of_uid(uid: u32) -> Result<Identity, IdentityError> {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| IdentityError::Lookup {
                uid,
                source: io::Error::from(e),
            })?
            .ok_or(IdentityError::NoSuchUser(uid))?;
        let name = std::ffi::CString::new(user.name.as_bytes())
            .map_err(|_| IdentityError::NoSuchUser(uid))?;
        let groups =
            nix::unistd::getgrouplist(&name, user.gid).map_err(|e| IdentityError::Lookup {
                uid,
                source: io::Error::from(e),
            })?;
        Ok(Identity::user(
            uid,
            user.gid.as_raw(),
            groups.into_iter().map(|g| g.as_raw()).collect(),
        ))
    }

    /// The uid files are opened as: the owner's, or the daemon's own.
    pub fn uid(&self) -> u32 {
        match &self.0 {
            Some(c) => c.uid,
            None => nix::unistd::geteuid().as_raw(),
        }
    }

    /// Runs `f` on this thread with these rights. `f` is synchronous, so
    /// nothing else runs on the thread meanwhile; the thread's own rights
    /// are back when this returns (or unwinds).
    pub fn run<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let Some(creds) = &self.0 else {
            return f();
        };
        let euid = nix::unistd::geteuid().as_raw();
        if euid != 0 {
            // Without root, the only rights to be had are one's own.
            if creds.uid == euid {
                return f();
            }
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "bitsd runs as uid {euid} and cannot act for uid {}",
                    creds.uid
                ),
            ));
        }
        let _back = Switched::to(creds)?;
        f()
    }
}

/// The thread's file-system identity switched to a user's; switched back
/// to what it was when dropped.
struct Switched {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<libc::gid_t>,
}

impl Switched {
    fn to(creds: &Creds) -> io::Result<Switched> {
        let (fsuid, fsgid) = current_fs_ids();
        let back = Switched {
            fsuid,
            fsgid,
            groups: thread_groups()?,
        };
        // From here on, dropping `back` restores whatever was changed.
        set_thread_groups(&creds.groups)?;
        set_fs_ids(creds.uid, creds.gid);
        let now = current_fs_ids();
        if now != (creds.uid, creds.gid) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "cannot take the rights of uid {} (gid {}): the thread has uid {}, gid {}",
                    creds.uid, creds.gid, now.0, now.1
                ),
            ));
        }
        Ok(back)
    }
}

impl Drop for Switched {
    fn drop(&mut self) {
        set_fs_ids(self.fsuid, self.fsgid);
        let restored =
            set_thread_groups(&self.groups).is_ok() && current_fs_ids() == (self.fsuid, self.fsgid);
        if !restored {
            // A thread left with a user's rights would do other users'
            // work with them: nothing is safe after that.
            eprintln!(
                "bitsd: cannot restore a thread's own rights after acting for a user; stopping"
            );
            std::process::abort();
        }
    }
}

/// Sets this thread's fsuid and fsgid. The calls report nothing: the caller
/// checks with [`current_fs_ids`]. The gid first: with the fsuid still the
/// daemon's, nothing stands in its way.
fn set_fs_ids(uid: u32, gid: u32) {
    // SAFETY: plain system calls with integer arguments; they change only
    // this thread's credentials.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid as libc::c_long);
        libc::syscall(libc::SYS_setfsuid, uid as libc::c_long);
    }
}

fn current_fs_ids() -> (u32, u32) {
    // SAFETY: -1 is no valid id: nothing changes, the current id returns.
    unsafe {
        (
            libc::syscall(libc::SYS_setfsuid, -1 as libc::c_long) as u32,
            libc::syscall(libc::SYS_setfsgid, -1 as libc::c_long) as u32,
        )
    }
}

/// This thread's supplementary groups.
fn thread_groups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a size query (count 0, null list), then a read into a buffer
    // of the size returned.
    unsafe {
        let n = libc::syscall(
            libc::SYS_getgroups,
            0 as libc::c_long,
            std::ptr::null_mut::<libc::gid_t>(),
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let got = libc::syscall(libc::SYS_getgroups, n, groups.as_mut_ptr());
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        groups.truncate(got as usize);
        Ok(groups)
    }
}

/// Sets this thread's supplementary groups (the raw call: glibc's wrapper
/// would set them for every thread).
fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the list is valid for `len` entries for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::c_long,
            groups.as_ptr() as *const libc::gid_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
