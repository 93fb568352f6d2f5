//! Upload sessions on disk: one private directory per session.
//!
//! ```text
//! DIR/.bits-sessions/                      0700, hidden from GET
//!     <session uuid>/                      0700
//!         state                            the Record (text, below)
//!         data                             the bytes received so far
//!         reply                            upload-reply: the application's reply
//!     put-<uuid>.tmp                       a plain PUT in progress
//! ```
//!
//! The session id on the wire is the uuid in braces and upper case (as IIS
//! sends it); the directory uses the plain lower-case form so the reply URL
//! needs no escaping.
//!
//! Durability follows the rule of the rest of bits: data first, then the
//! record that points at it. A fragment's bytes are written and
//! `fdatasync`ed before the record's `received` is raised; the record is
//! replaced atomically (write `state.tmp`, fsync, rename, fsync the
//! directory). So after a crash `received` never claims bytes that are not
//! on disk; bytes beyond it (a fragment cut short, or written but not yet
//! recorded) are cut off when the session is loaded.
//!
//! The record is a few `key=value` lines, because it is tiny, must be
//! readable by a person debugging a stuck upload, and this crate has no
//! serialization library. Paths are stored percent-encoded so any file name
//! (including non-UTF-8 ones) round-trips.
//!
//! Everything here does blocking file system calls and is meant to run on
//! tokio's blocking pool.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, CONTROLS};
use uuid::Uuid;

/// First line of every record; the number is the format version. A record
/// with another first line is not loaded (and its session is dropped).
const MAGIC: &str = "bits-upload-session 1";
/// The record's file name in the session directory.
pub(crate) const STATE_FILE: &str = "state";
/// The received bytes' file name in the session directory.
pub(crate) const DATA_FILE: &str = "data";
/// The upload-reply reply's file name in the session directory.
pub(crate) const REPLY_FILE: &str = "reply";
/// Prefix of the temporary files of plain PUT uploads.
pub(crate) const PUT_PREFIX: &str = "put-";

/// Bytes escaped in stored paths and strings: controls, `%` (the escape
/// itself), `=` and blanks, so a value never breaks a line or a key.
const STORED: &AsciiSet = &CONTROLS.add(b'%').add(b' ').add(b'=').add(b'\n');

/// What the server remembers about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Destination, relative to the (canonical) root; checked when the
    /// session was created and again when the file is committed.
    pub(crate) target: PathBuf,
    /// The client's file name (`Content-Name`), informational.
    pub(crate) content_name: Option<String>,
    /// The upload's size, known from the first fragment on.
    pub(crate) total: Option<u64>,
    /// Bytes `0..received` are in `data`, durably.
    pub(crate) received: u64,
    /// Creation time, ms since the Unix epoch.
    pub(crate) created_ms: u64,
    /// Last successful packet, ms since the Unix epoch; sessions idle for
    /// longer than the session timeout are swept.
    pub(crate) modified_ms: u64,
    /// The server application has been told (upload-reply), and answered.
    pub(crate) notified: bool,
    /// The file is to be stored under `target` once complete (always without
    /// notification; with one, when the application asks for it).
    pub(crate) copy_wanted: bool,
    /// `data` has been renamed to `target`.
    pub(crate) committed: bool,
    /// Upload-reply: where the client fetches the reply.
    pub(crate) reply_url: Option<String>,
}

impl Record {
    /// A fresh session for `target`, created now.
    pub(crate) fn new(target: PathBuf, content_name: Option<String>, copy_wanted: bool) -> Self {
        let now = now_ms();
        Self {
            target,
            content_name,
            total: None,
            received: 0,
            created_ms: now,
            modified_ms: now,
            notified: false,
            copy_wanted,
            committed: false,
            reply_url: None,
        }
    }

    /// Whether every byte has arrived.
    pub(crate) fn all_received(&self) -> bool {
        self.total == Some(self.received)
    }

    /// Serializes the record.
    fn to_text(&self) -> String {
        let mut out = String::from(MAGIC);
        out.push('\n');
        let mut line = |key: &str, value: String| {
            out.push_str(key);
            out.push('=');
            out.push_str(&value);
            out.push('\n');
        };
        line("target", encode(self.target.as_os_str().as_bytes()));
        if let Some(name) = &self.content_name {
            line("content-name", encode(name.as_bytes()));
        }
        if let Some(total) = self.total {
            line("total", total.to_string());
        }
        line("received", self.received.to_string());
        line("created-ms", self.created_ms.to_string());
        line("modified-ms", self.modified_ms.to_string());
        line("notified", u8::from(self.notified).to_string());
        line("copy-wanted", u8::from(self.copy_wanted).to_string());
        line("committed", u8::from(self.committed).to_string());
        if let Some(url) = &self.reply_url {
            line("reply-url", encode(url.as_bytes()));
        }
        out
    }

    /// Parses a record; `None` if it is not one this version wrote.
    fn from_text(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut record = Record::new(PathBuf::new(), None, false);
        let mut has_target = false;
        for line in lines {
            let (key, value) = line.split_once('=')?;
            let number = || value.parse::<u64>().ok();
            let flag = || match value {
                "0" => Some(false),
                "1" => Some(true),
                _ => None,
            };
            match key {
                "target" => {
                    record.target = PathBuf::from(OsStr::from_bytes(&decode(value)));
                    has_target = true;
                }
                "content-name" => record.content_name = Some(decode_string(value)?),
                "total" => record.total = Some(number()?),
                "received" => record.received = number()?,
                "created-ms" => record.created_ms = number()?,
                "modified-ms" => record.modified_ms = number()?,
                "notified" => record.notified = flag()?,
                "copy-wanted" => record.copy_wanted = flag()?,
                "committed" => record.committed = flag()?,
                "reply-url" => record.reply_url = Some(decode_string(value)?),
                // Keys from a newer minor revision are ignored.
                _ => {}
            }
        }
        let consistent = has_target
            && record.target.is_relative()
            && record.total.is_none_or(|t| record.received <= t);
        consistent.then_some(record)
    }
}

fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, STORED).to_string()
}

fn decode(value: &str) -> Vec<u8> {
    percent_decode_str(value).collect()
}

fn decode_string(value: &str) -> Option<String> {
    String::from_utf8(decode(value)).ok()
}

/// Now, in ms since the Unix epoch. Wall-clock time, because it must mean
/// the same thing after a restart.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The session directory store: `DIR/.bits-sessions`. Cheap to clone (a
/// path), so blocking work can take its own copy.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// The sessions directory (absolute, below the canonical root).
    dir: PathBuf,
}

/// A session found on disk at startup.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Its id.
    pub(crate) id: Uuid,
    /// Its record, reconciled with the data file.
    pub(crate) record: Record,
}

impl Store {
    /// Opens (creating if needed) the sessions directory. It must be a real
    /// directory, not a symlink: everything in it is trusted.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => sync_dir(dir.parent().unwrap_or(&dir))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let meta = fs::symlink_metadata(&dir)?;
        if !meta.is_dir() {
            return Err(io::Error::other(
                "it exists and is not a directory (or is a symlink)",
            ));
        }
        Ok(Self { dir })
    }

    /// The sessions directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A session's directory.
    pub(crate) fn session_dir(&self, id: Uuid) -> PathBuf {
        self.dir.join(dir_name(id))
    }

    /// Creates a session's directory, empty data file and record, durably,
    /// so the session survives a crash as soon as the client has its id.
    pub(crate) fn create(&self, id: Uuid, record: &Record) -> io::Result<()> {
        let dir = self.session_dir(id);
        fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let result = (|| {
            let data = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(DATA_FILE))?;
            data.sync_all()?;
            write_record(&dir, record)?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    /// Deletes a session's directory (data, record, reply) and makes the
    /// deletion durable.
    pub(crate) fn remove(&self, id: Uuid) -> io::Result<()> {
        match fs::remove_dir_all(self.session_dir(id)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A fresh temporary file for a plain PUT.
    pub(crate) fn put_temp(&self) -> PathBuf {
        self.dir
            .join(format!("{PUT_PREFIX}{}.tmp", Uuid::new_v4().simple()))
    }

    /// Loads every session on disk, repairing what a crash can leave:
    ///
    /// * a directory without a valid record is a Create-Session that never
    ///   answered (or a foreign file): removed;
    /// * data beyond `received` is cut off (it was never acknowledged);
    /// * data shorter than `received` (lost despite fsync) lowers `received`,
    ///   so the client is asked for the bytes again;
    /// * a complete upload whose data file is gone was renamed to its target
    ///   just before the crash: marked committed;
    /// * leftover PUT temporaries are removed (a PUT cannot be resumed).
    pub(crate) fn load_all(&self) -> io::Result<Vec<Loaded>> {
        let mut loaded = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let path = entry.path();
            let name_str = name.to_str().unwrap_or("");
            if name_str.starts_with(PUT_PREFIX) && name_str.ends_with(".tmp") {
                tracing::info!(path = %path.display(), "removing an interrupted PUT upload");
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = parse_dir_name(name_str) else {
                tracing::warn!(path = %path.display(), "ignoring a foreign entry in the session directory");
                continue;
            };
            match load_one(&path) {
                Ok(Some(record)) => loaded.push(Loaded { id, record }),
                Ok(None) => {
                    tracing::warn!(session = %id, "removing a session without a valid record");
                    let _ = fs::remove_dir_all(&path);
                }
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "removing a session that cannot be read");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
        sync_dir(&self.dir)?;
        Ok(loaded)
    }
}

/// Loads and reconciles one session directory.
fn load_one(dir: &Path) -> io::Result<Option<Record>> {
    let text = match fs::read_to_string(dir.join(STATE_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(mut record) = Record::from_text(&text) else {
        return Ok(None);
    };
    let data_path = dir.join(DATA_FILE);
    let mut changed = false;
    match fs::metadata(&data_path) {
        Ok(meta) => {
            let len = meta.len();
            if len != record.received {
                let data = OpenOptions::new().write(true).open(&data_path)?;
                if len > record.received {
                    data.set_len(record.received)?;
                    data.sync_all()?;
                } else {
                    tracing::warn!(path = %data_path.display(), len, received = record.received,
                        "upload data shorter than recorded; asking the client again");
                    record.received = len;
                    changed = true;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if record.all_received() && record.copy_wanted {
                // Renamed into place, crash before the record said so.
                if !record.committed {
                    record.committed = true;
                    changed = true;
                }
            } else if !record.committed {
                File::create(&data_path)?.sync_all()?;
                record.received = 0;
                changed = true;
            }
        }
        Err(e) => return Err(e),
    }
    if changed {
        write_record(dir, &record)?;
    }
    Ok(Some(record))
}

/// Replaces a session's record atomically and durably.
pub(crate) fn write_record(dir: &Path, record: &Record) -> io::Result<()> {
    let tmp = dir.join("state.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(record.to_text().as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(STATE_FILE))?;
    sync_dir(dir)
}

/// Makes a directory's entries (creations, renames, deletions) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory name of a session: the plain lower-case uuid.
pub(crate) fn dir_name(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// The session id of a directory name, if it is one.
pub(crate) fn parse_dir_name(name: &str) -> Option<Uuid> {
    (name.len() == 36 && name == name.to_ascii_lowercase())
        .then(|| Uuid::try_parse(name).ok())
        .flatten()
}

/// The session id as sent on the wire: `{UPPER-CASE-UUID}`, as IIS does.
pub(crate) fn wire_id(id: Uuid) -> String {
    format!("{{{}}}", id.hyphenated().to_string().to_ascii_uppercase())
}

/// Reads a session id from a `BITS-Session-Id` header: a hyphenated GUID,
/// braces optional, any case. Anything else is no session of ours.
pub(crate) fn parse_wire_id(value: &str) -> Option<Uuid> {
    let v = value.trim();
    let v = v.strip_prefix('{').unwrap_or(v);
    let v = v.strip_suffix('}').unwrap_or(v);
    if v.len() != 36 {
        return None;
    }
    Uuid::try_parse(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            target: PathBuf::from(OsStr::from_bytes(b"dir/a b=c%\xff.bin")),
            content_name: Some("report 1.bin".into()),
            total: Some(100),
            received: 42,
            created_ms: 1,
            modified_ms: 2,
            notified: true,
            copy_wanted: false,
            committed: false,
            reply_url: Some("http://h/.bits-sessions/x/reply".into()),
        }
    }

    #[test]
    fn record_round_trips_through_text() {
        let record = sample();
        assert_eq!(Record::from_text(&record.to_text()), Some(record));
        let bare = Record::new(PathBuf::from("x"), None, true);
        assert_eq!(Record::from_text(&bare.to_text()), Some(bare));
    }

    #[test]
    fn foreign_or_inconsistent_records_are_refused() {
        assert_eq!(Record::from_text(""), None);
        assert_eq!(Record::from_text("bits-upload-session 2\ntarget=x\n"), None);
        assert_eq!(
            Record::from_text("bits-upload-session 1\nreceived=1\n"),
            None,
            "no target"
        );
        assert_eq!(
            Record::from_text("bits-upload-session 1\ntarget=/etc/passwd\n"),
            None,
            "absolute target"
        );
        assert_eq!(
            Record::from_text("bits-upload-session 1\ntarget=x\ntotal=1\nreceived=2\n"),
            None
        );
        assert_eq!(
            Record::from_text("bits-upload-session 1\ntarget=x\nreceived=-1\n"),
            None
        );
    }

    #[test]
    fn wire_ids_are_braced_upper_case_and_read_tolerantly() {
        let id = Uuid::new_v4();
        let wire = wire_id(id);
        assert!(wire.starts_with('{') && wire.ends_with('}'));
        assert_eq!(wire, wire.to_ascii_uppercase());
        assert_eq!(parse_wire_id(&wire), Some(id));
        assert_eq!(parse_wire_id(&wire.to_ascii_lowercase()), Some(id));
        assert_eq!(parse_wire_id(&dir_name(id)), Some(id));
        assert_eq!(parse_dir_name(&dir_name(id)), Some(id));
        for bad in ["", "{}", "../../etc", "{x}", &id.simple().to_string()] {
            assert_eq!(parse_wire_id(bad), None, "{bad}");
        }
        assert_eq!(parse_dir_name(&dir_name(id).to_ascii_uppercase()), None);
    }

    #[test]
    fn load_repairs_what_a_crash_leaves() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path().join(".bits-sessions")).expect("open");

        // Data beyond `received` is cut off.
        let long = Uuid::new_v4();
        let mut record = Record::new(PathBuf::from("long.bin"), None, true);
        record.total = Some(10);
        record.received = 3;
        store
            .create(long, &Record::new(PathBuf::from("long.bin"), None, true))
            .expect("create");
        write_record(&store.session_dir(long), &record).expect("write");
        fs::write(store.session_dir(long).join(DATA_FILE), b"abcdefg").expect("data");

        // A complete upload whose data was renamed away is committed.
        let done = Uuid::new_v4();
        let mut complete = Record::new(PathBuf::from("done.bin"), None, true);
        complete.total = Some(2);
        complete.received = 2;
        store.create(done, &complete).expect("create");
        fs::remove_file(store.session_dir(done).join(DATA_FILE)).expect("rm");

        // A directory without a record is removed, as are PUT leftovers.
        let half = Uuid::new_v4();
        fs::create_dir(store.session_dir(half)).expect("mkdir");
        let put = store.put_temp();
        fs::write(&put, b"x").expect("put");

        let mut loaded = store.load_all().expect("load");
        loaded.sort_by_key(|l| l.record.target.clone());
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].record.target, PathBuf::from("done.bin"));
        assert!(loaded[0].record.committed);
        assert_eq!(loaded[1].id, long);
        assert_eq!(loaded[1].record.received, 3);
        assert_eq!(
            fs::read(store.session_dir(long).join(DATA_FILE)).expect("data"),
            b"abc"
        );
        assert!(!store.session_dir(half).exists());
        assert!(!put.exists());
    }
}
