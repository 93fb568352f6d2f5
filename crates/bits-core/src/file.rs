//! One file of a job. Kept small on purpose: a job may queue 100,000 files,
//! and every byte of [`JobFile`] is paid for each. What a queued file does
//! not have yet (a version, a temporary file, missing ranges, a session, a
//! credential of its own) lives in one box that exists only once it has any.

use crate::job::{ByteRange, Credential, FileId, FileValidator, JobId, UploadSession};
use std::fmt;
use std::path::{Path, PathBuf};

/// One file of a job: where it comes from, where it goes, how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFile {
    /// RemoteName: an http(s) or file URL, or an absolute local path. Never
    /// holds credentials: a URL's userinfo is moved to the file's
    /// [`credential`](JobFile::credential).
    pub remote: Box<str>,
    /// LocalName: the absolute path the file gets when the job is completed.
    pub local: Box<Path>,
    /// The full size, once known.
    pub bytes_total: Option<u64>,
    /// Bytes durably on disk in the temporary file: the last checkpoint.
    /// Bytes received since are counted apart (the daemon's live progress)
    /// and never used as a resume point.
    pub bytes_transferred: u64,
    /// Everything else, `None` while all of it is at its default.
    rare: Option<Box<Rare>>,
    /// Whether every byte is on disk and fsynced.
    pub complete: bool,
}

/// The parts of a file that a queued file does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    /// Where the bytes wait for the job to complete.
    temp: TempName,
    /// The version of the remote file the bytes belong to (for uploads: of
    /// the local file being sent).
    validator: FileValidator,
    /// Downloads over several connections: the ranges not yet on disk,
    /// sorted. Empty when the file is written front to back, and then
    /// `bytes_transferred` is where it continues.
    missing: Vec<ByteRange>,
    /// The temporary file the bytes were written to, as it was opened.
    temp_id: Option<FileId>,
    /// Uploads: the server session (boxed again: downloads never have one).
    upload: Option<Box<UploadSession>>,
    /// The credentials for `remote`'s server, if its URL carried any.
    credential: Option<Box<Credential>>,
}

/// Where a file's bytes wait for the job to complete. Kept as a rule rather
/// than a path: the path is one more string per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum TempName {
    /// Hidden beside the destination, named after it and the job:
    /// `.NAME.bits-JOB.tmp`, so that two jobs never share one.
    #[default]
    Beside,
    /// An upload-reply job's reply: `.NAME.reply.bits-JOB.tmp` beside the
    /// file that is uploaded (the file's `local`).
    Reply,
    /// A path of its own.
    At(PathBuf),
}

impl JobFile {
    /// A file not yet started.
    pub fn new(remote: String, local: PathBuf) -> Self {
        JobFile {
            remote: remote.into_boxed_str(),
            local: local.into_boxed_path(),
            bytes_total: None,
            bytes_transferred: 0,
            rare: None,
            complete: false,
        }
    }

    /// The rare parts, made when first written to.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Sets a rare part with `set`; `default` says the value is the one a
    /// new file has, which a file without the box already holds (loading
    /// 100,000 queued files makes no box for them).
    fn update(&mut self, default: bool, set: impl FnOnce(&mut Rare)) {
        if default && self.rare.is_none() {
            return;
        }
        set(self.rare_mut());
        self.settle();
    }

    /// Gives back the box once nothing in it differs from a new file's.
    fn settle(&mut self) {
        if self.rare.as_deref().is_some_and(|r| *r == Rare::default()) {
            self.rare = None;
        }
    }

    /// The credentials for the file's server, if its URL carried any.
    pub fn credential(&self) -> Option<&Credential> {
        self.rare.as_ref()?.credential.as_deref()
    }

    /// Sets (or, with `None`, forgets) the file's own credentials.
    pub fn set_credential(&mut self, credential: Option<Credential>) {
        self.update(credential.is_none(), |r| {
            r.credential = credential.map(Box::new)
        });
    }

    /// Takes the file's own credentials out of it.
    pub fn take_credential(&mut self) -> Option<Credential> {
        let taken = self.rare.as_mut()?.credential.take();
        self.settle();
        taken.map(|c| *c)
    }

    /// The temporary file of job `job` (the file's own): where a
    /// download's bytes, or an upload-reply job's reply, wait until the
    /// job is completed. Unless set otherwise, hidden beside `local` and
    /// named after it and the job, so that two jobs never share one.
    pub fn temp(&self, job: JobId) -> PathBuf {
        match self.rare.as_deref().map(|r| &r.temp) {
            None | Some(TempName::Beside) => self.temp_beside(job, ""),
            Some(TempName::Reply) => self.temp_beside(job, ".reply"),
            Some(TempName::At(path)) => path.clone(),
        }
    }

    /// Makes `path` the temporary file, kept as a name of its own only when
    /// it is not one of the names derived from the destination and `job`.
    pub fn set_temp(&mut self, job: JobId, path: PathBuf) {
        let temp = if path == self.temp_beside(job, "") {
            TempName::Beside
        } else if path == self.temp_beside(job, ".reply") {
            TempName::Reply
        } else {
            TempName::At(path)
        };
        self.update(temp == TempName::Beside, |r| r.temp = temp);
    }

    /// The temporary file's path as text (lossy, as
    /// `temp(job).to_string_lossy()`), written without building the path:
    /// List writes one for every file it shows.
    pub fn temp_text(&self, job: JobId) -> impl fmt::Display + '_ {
        TempText { file: self, job }
    }

    /// `.NAME{kind}.bits-JOB.tmp` beside the destination.
    fn temp_beside(&self, job: JobId, kind: &str) -> PathBuf {
        let name = self.local.file_name().unwrap_or_default().to_string_lossy();
        self.local
            .with_file_name(format!(".{name}{kind}.bits-{job}.tmp"))
    }

    /// The version the bytes belong to, [`FileValidator::NONE`] before
    /// any is known.
    pub fn validator(&self) -> &FileValidator {
        self.rare
            .as_deref()
            .map_or(&FileValidator::NONE, |r| &r.validator)
    }

    /// Sets the version the bytes belong to.
    pub fn set_validator(&mut self, validator: FileValidator) {
        self.update(validator == FileValidator::NONE, |r| {
            r.validator = validator
        });
    }

    /// The upload session, [`UploadSession::NONE`] when there is none.
    pub fn upload_session(&self) -> &UploadSession {
        self.rare
            .as_deref()
            .and_then(|r| r.upload.as_deref())
            .unwrap_or(&UploadSession::NONE)
    }

    /// Sets the upload session ([`UploadSession::NONE`]: none).
    pub fn set_upload_session(&mut self, session: UploadSession) {
        let none = session == UploadSession::NONE;
        self.update(none, |r| r.upload = (!none).then(|| Box::new(session)));
    }

    /// Downloads over several connections: the ranges not yet on disk,
    /// sorted. Empty when the file is written front to back, and then
    /// `bytes_transferred` is where it continues.
    pub fn missing(&self) -> &[ByteRange] {
        self.rare.as_deref().map_or(&[], |r| &r.missing)
    }

    /// Sets the ranges not yet on disk.
    pub fn set_missing(&mut self, missing: Vec<ByteRange>) {
        self.update(missing.is_empty(), |r| r.missing = missing);
    }

    /// The temporary file the bytes were written to, as it was opened; its
    /// bytes are trusted (resumed, renamed into place) only while the path
    /// still names this file.
    pub fn temp_id(&self) -> Option<FileId> {
        self.rare.as_deref().and_then(|r| r.temp_id)
    }

    /// Sets the identity of the temporary file.
    pub fn set_temp_id(&mut self, temp_id: Option<FileId>) {
        self.update(temp_id.is_none(), |r| r.temp_id = temp_id);
    }

    /// The same file to transfer again from byte 0: its destination,
    /// temporary name, session and credentials kept, its bytes and version
    /// forgotten.
    pub fn restarted(&self) -> JobFile {
        let mut file = self.clone();
        file.bytes_transferred = 0;
        file.complete = false;
        if let Some(rare) = file.rare.as_deref_mut() {
            rare.validator = FileValidator::NONE;
            rare.missing = Vec::new();
            rare.temp_id = None;
        }
        file.settle();
        file
    }
}

/// A file's temporary name as text (see [`JobFile::temp_text`]).
struct TempText<'a> {
    /// The file.
    file: &'a JobFile,
    /// Its job, whose id the derived names carry.
    job: JobId,
}

impl fmt::Display for TempText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TempText { file, job } = *self;
        let kind = match file.rare.as_deref().map(|r| &r.temp) {
            None | Some(TempName::Beside) => "",
            Some(TempName::Reply) => ".reply",
            Some(TempName::At(path)) => return write!(f, "{}", path.to_string_lossy()),
        };
        // What `with_file_name` makes of an absolute path with a name: the
        // parent, a separator unless the parent is the root, the new name.
        match (file.local.parent(), file.local.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = parent.to_string_lossy();
                f.write_str(&parent)?;
                if !parent.is_empty() && !parent.ends_with('/') {
                    f.write_str("/")?;
                }
                write!(f, ".{}{kind}.bits-{job}.tmp", name.to_string_lossy())
            }
            _ => write!(f, "{}", file.temp(job).to_string_lossy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory a queued file costs is this struct plus its two names:
    /// the target is 200 bytes per file in all.
    #[test]
    fn a_queued_file_stays_small() {
        assert!(
            std::mem::size_of::<JobFile>() <= 72,
            "{}",
            std::mem::size_of::<JobFile>()
        );
        let f = JobFile::new("http://x/a".into(), "/home/alice/a.iso".into());
        assert!(f.rare.is_none());
    }

    /// Setting what a queued file lacks makes the box, each part reads
    /// back as set, a restarted file keeps only what a restart keeps, and
    /// the box goes once every part is back to its default.
    #[test]
    fn a_rare_part_set_back_to_its_default_gives_the_box_back() {
        let mut f = JobFile::new("http://x/a".into(), "/d/a".into());
        f.set_temp_id(Some(FileId { dev: 1, ino: 2 }));
        f.set_missing(vec![ByteRange { start: 0, end: 5 }]);
        assert_eq!(f.temp_id(), Some(FileId { dev: 1, ino: 2 }));
        assert_eq!(f.missing(), &[ByteRange { start: 0, end: 5 }]);
        f.set_credential(Some(Credential {
            user: "u".into(),
            ..Credential::default()
        }));
        let restarted = f.restarted();
        assert_eq!(restarted.temp_id(), None);
        assert!(restarted.missing().is_empty());
        assert_eq!(restarted.credential().map(|c| c.user.as_str()), Some("u"));
        f.set_temp_id(None);
        f.set_missing(Vec::new());
        assert!(f.rare.is_some(), "the credential is still there");
        assert_eq!(f.take_credential().map(|c| c.user), Some("u".into()));
        assert!(f.rare.is_none());
        f.set_upload_session(UploadSession {
            id: Some("{S}".into()),
            ..UploadSession::NONE
        });
        assert_eq!(f.upload_session().id.as_deref(), Some("{S}"));
        f.set_upload_session(UploadSession::NONE);
        assert!(f.rare.is_none());
    }

    /// A new file's temporary name is hidden beside its destination and
    /// named after its job.
    #[test]
    fn temp_name_is_hidden_beside_destination() {
        let id = JobId::new_random();
        let f = JobFile::new("http://x/a".into(), "/home/alice/a.iso".into());
        assert_eq!(
            f.temp(id),
            PathBuf::from(format!("/home/alice/.a.iso.bits-{id}.tmp"))
        );
    }

    /// The text List writes without building the path is the path's own
    /// lossy text, for every kind of name and for non-UTF-8 paths.
    #[test]
    fn temp_text_is_the_temp_path_as_text() {
        use std::os::unix::ffi::OsStrExt;
        let id = JobId::new_random();
        let odd = std::ffi::OsStr::from_bytes(b"/srv/d\xff\xfe/n\xe9.bin");
        for local in [
            PathBuf::from("/home/alice/a.iso"),
            PathBuf::from("/a"),
            PathBuf::from("/srv/x y/\u{e9}t\u{e9}.txt"),
            PathBuf::from(odd),
        ] {
            let mut f = JobFile::new("http://x/a".into(), local.clone());
            assert_eq!(
                f.temp_text(id).to_string(),
                f.temp(id).to_string_lossy(),
                "{local:?}"
            );
            f.rare_mut().temp = TempName::Reply;
            assert_eq!(
                f.temp_text(id).to_string(),
                f.temp(id).to_string_lossy(),
                "{local:?}"
            );
            f.set_temp(id, PathBuf::from("/elsewhere/t.tmp"));
            assert_eq!(f.temp_text(id).to_string(), "/elsewhere/t.tmp");
        }
    }

    /// A stored temporary path that is one of the derived names is kept
    /// as its rule; any other (another job's too) is kept as it is.
    #[test]
    fn a_temp_name_of_its_own_is_kept_and_a_derived_one_is_recognised() {
        let id = JobId::new_random();
        let mut f = JobFile::new("http://x/a".into(), "/srv/r/reply.xml".into());
        let reply = PathBuf::from(format!("/srv/r/.reply.xml.reply.bits-{id}.tmp"));
        f.set_temp(id, reply.clone());
        assert_eq!(f.rare.as_deref().map(|r| &r.temp), Some(&TempName::Reply));
        assert_eq!(f.temp(id), reply);
        f.set_temp(
            id,
            PathBuf::from(format!("/srv/r/.reply.xml.bits-{id}.tmp")),
        );
        assert!(f.rare.is_none(), "the derived name is the default");
        f.set_temp(id, PathBuf::from("/elsewhere/t.tmp"));
        assert_eq!(f.temp(id), PathBuf::from("/elsewhere/t.tmp"));
        // Another job's name is a name of its own.
        let other = JobId::new_random();
        let theirs = PathBuf::from(format!("/srv/r/.reply.xml.bits-{other}.tmp"));
        f.set_temp(id, theirs.clone());
        assert!(matches!(
            f.rare.as_deref().map(|r| &r.temp),
            Some(TempName::At(_))
        ));
        assert_eq!(f.temp(id), theirs);
    }
}
