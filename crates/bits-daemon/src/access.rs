//! Who may do what, and whose rights a job's files are touched with.
//!
//! A per-user daemon serves its own user (and root); every job is that
//! user's, and its files are opened with the daemon's own rights. The
//! system daemon serves every user of the machine: each job belongs to the
//! user who created it (the uid the socket's peer credentials give, never
//! anything the client says), a user sees and changes only their own jobs,
//! and administrators (root, and the members of `--admin-group`) may see
//! and manage every job. A job's files are opened with its owner's rights
//! (`bits_transfer::Identity`).

use bits_core::Job;
use bits_proto::{ApiError, ErrorKind};
use bits_transfer::{Identity, IdentityError};

/// Which daemon this is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Mode {
    /// One user's daemon.
    #[default]
    User,
    /// The machine's daemon, for every user.
    System {
        /// Members of this group (gid) administer every job, as root does.
        admin_group: Option<u32>,
    },
}

impl Mode {
    /// Whether this is the system daemon.
    pub fn is_system(&self) -> bool {
        matches!(self, Mode::System { .. })
    }
}

/// The user behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// From the socket's peer credentials.
    pub uid: u32,
    /// May see and manage every user's jobs.
    pub admin: bool,
}

impl Caller {
    /// Who `uid` is to a daemon of `mode` whose own user is `daemon_uid`.
    pub fn new(mode: &Mode, daemon_uid: u32, uid: u32) -> Caller {
        let admin = match mode {
            // The per-user daemon's own user administers it, as root may.
            Mode::User => uid == 0 || uid == daemon_uid,
            Mode::System { admin_group } => {
                uid == 0 || admin_group.is_some_and(|gid| member_of(uid, gid))
            }
        };
        Caller { uid, admin }
    }

    /// Whether this caller may see and change `job`.
    pub fn may_manage(&self, job: &Job) -> bool {
        self.admin || job.owner_uid == self.uid
    }

    /// The refusal when it may not.
    pub fn check(&self, job: &Job) -> Result<(), ApiError> {
        if self.may_manage(job) {
            return Ok(());
        }
        Err(ApiError {
            kind: ErrorKind::Denied,
            message: format!(
                "job {} belongs to another user; only its owner or an administrator may see or \
                 change it",
                job.id
            ),
            code: Some(format!("0x{:08X}", bits_core::error::codes::E_ACCESSDENIED)),
        })
    }
}

/// The name of `uid` in the user database, else the number.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Whether `uid` is in group `gid` (as its primary group or a member).
fn member_of(uid: u32, gid: u32) -> bool {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return false;
    };
    if user.gid.as_raw() == gid {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// Whose rights the files of a job owned by `owner_uid` are opened with:
/// the daemon's own in a per-user daemon; the owner's, from the user
/// database as it is now, in the system daemon.
pub fn identity_for(mode: &Mode, owner_uid: u32) -> Result<Identity, IdentityError> {
    match mode {
        Mode::User => Ok(Identity::own()),
        Mode::System { .. } => Identity::of_uid(owner_uid),
    }
}
