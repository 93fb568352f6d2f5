//! Passwords at rest: sealed (ChaCha20-Poly1305) with a key kept in a file
//! of its own beside the database, never in it.
//!
//! What this protects against: the database (or its WAL, a backup of it, a
//! copy attached to a bug report) read without the key file shows no
//! password, and a sealed value moved to another job or column does not
//! open (the job and the column are the associated data). What it does not:
//! anyone who can read both files, which includes the user the daemon runs
//! as and root, can open every password; the key is not derived from
//! anything the user types. That is the same trust as the daemon itself,
//! which must be able to answer a server's challenge unattended.
//!
//! A value is `v1:` followed by the hex of a random 96-bit nonce and the
//! ciphertext with its tag: versioned, so the format can change.

use crate::error::StoreError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;

/// Seals and opens the passwords of one store.
pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

/// A sealed value that does not open: the key file was replaced, or the
/// value was damaged or moved.
#[derive(Debug)]
pub(crate) struct Unopened;

impl Sealer {
    /// The sealer of the database at `db`: its key is `<db>.key`, created
    /// (0600, synced with its directory) the first time.
    pub(crate) fn for_database(db: &Path) -> Result<Sealer, StoreError> {
        let path = key_path(db);
        let key = match read_key(&path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(&path)?,
            Err(source) => return Err(StoreError::Key { path, source }),
        };
        let key = UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key is valid");
        Ok(Sealer {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// `plain` sealed for `context` (which job, which column).
    pub(crate) fn seal(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing a short value cannot fail");
        let mut out = String::with_capacity(PREFIX.len() + 2 * (NONCE_LEN + data.len()));
        out.push_str(PREFIX);
        hex(&nonce, &mut out);
        hex(&data, &mut out);
        out
    }

    /// The plain text of a value [`Sealer::seal`]ed for `context`.
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Result<String, Unopened> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(unhex)
            .ok_or(Unopened)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unopened);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unopened)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| Unopened)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Unopened)
    }

    /// Whether `value` is sealed (rather than written by a bits that kept
    /// passwords in the clear).
    pub(crate) fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn key_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn read_key(path: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    let mut file = File::open(path)?;
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key)?;
    let mut rest = [0u8; 1];
    if file.read(&mut rest)? != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the key file is longer than a key",
        ));
    }
    Ok(key)
}

/// Writes a new random key durably: a key that could vanish in a power cut
/// would take every password sealed with it along.
fn create_key(path: &Path) -> Result<[u8; KEY_LEN], StoreError> {
    let failed = |source| StoreError::Key {
        path: path.to_path_buf(),
        source,
    };
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| failed(std::io::Error::other("no random bytes from the system")))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(&key).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(failed)?;
    }
    Ok(key)
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context_and_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        let s = Sealer::for_database(&db).unwrap();
        let sealed = s.seal("hunter2", "job-a/server");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, s.seal("hunter2", "job-a/server"), "random nonce");
        assert_eq!(s.open(&sealed, "job-a/server").unwrap(), "hunter2");
        assert!(s.open(&sealed, "job-b/server").is_err());
        // The same key file opens it again (a restart).
        let again = Sealer::for_database(&db).unwrap();
        assert_eq!(again.open(&sealed, "job-a/server").unwrap(), "hunter2");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(key_path(&db)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // Another key does not.
        std::fs::remove_file(key_path(&db)).unwrap();
        let other = Sealer::for_database(&db).unwrap();
        assert!(other.open(&sealed, "job-a/server").is_err());
        for junk in ["", "v1:", "v1:zz", "v1:00", &sealed[..sealed.len() - 2]] {
            assert!(other.open(junk, "job-a/server").is_err(), "{junk}");
        }
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        std::fs::write(key_path(&db), b"short").unwrap();
        assert!(matches!(
            Sealer::for_database(&db),
            Err(StoreError::Key { .. })
        ));
    }
}
