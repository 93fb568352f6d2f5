//! Checks what a client asks for before anything is created: every refusal
//! names the argument at fault, and a job with one bad file is not created
//! at all.

mod connection;
pub use connection::ca_file;

use bits_core::{AuthScheme, Credential, Job, JobFile, JobId, JobProps, JobType, Priority, Secret};
use bits_proto::{ApiError, CredentialSpec, ErrorKind, FileSpec, JobProperties};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// BITS' limit on DisplayName.
const MAX_DISPLAY_NAME: usize = 256;
/// BITS' limit on Description.
const MAX_DESCRIPTION: usize = 1024;
/// BITS' limit on a remote URL.
const MAX_URL: usize = 2200;
/// The longest notification command (BITS allows 4,000 characters of
/// parameters after a program path).
const MAX_NOTIFY_CMD: usize = 4096;
/// The longest user name or password accepted.
const MAX_CREDENTIAL: usize = 1024;
/// The longest delay or timeout accepted, in seconds (about a century): a
/// bound every clock and the store can represent.
const MAX_SECONDS: u64 = 3_153_600_000;

fn seconds(option: &str, s: u64) -> Result<Duration, ApiError> {
    if s > MAX_SECONDS {
        return Err(bad(format!(
            "{option} must be at most {MAX_SECONDS} seconds (about a century)"
        )));
    }
    Ok(Duration::from_secs(s))
}

pub fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        kind: ErrorKind::BadRequest,
        message: message.into(),
        code: None,
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The refusal for a job that would hold more than `max` files.
pub fn quota(existing: usize, added: usize, max: usize) -> Result<(), ApiError> {
    let total = existing.saturating_add(added);
    if total <= max {
        return Ok(());
    }
    Err(ApiError {
        kind: ErrorKind::BadRequest,
        message: if existing == 0 {
            format!("a job holds at most {max} files; this one would hold {total}: split the list into several jobs")
        } else {
            format!(
                "a job holds at most {max} files; it has {existing}, and {added} more would make {total}"
            )
        },
        code: Some(format!(
            "0x{:08X}",
            bits_core::error::codes::BG_E_TOO_MANY_FILES_IN_JOB
        )),
    })
}

/// Refuses files whose destinations are already used in the job (checked
/// again when files are appended: another request may have added some).
pub fn distinct_destinations(existing: &[JobFile], added: &[JobFile]) -> Result<(), ApiError> {
    let mut seen: HashSet<&Path> = existing.iter().map(|f| &*f.local).collect();
    for f in added {
        if !seen.insert(&f.local) {
            return Err(bad(format!(
                "destination '{}' is used by two files of the job",
                f.local.display()
            )));
        }
    }
    Ok(())
}

/// Checks a remote name and returns it normalised. `spec` carries no
/// credentials any more (see [`files`]).
fn remote(spec: &str) -> Result<String, ApiError> {
    if spec.len() > MAX_URL {
        return Err(bad(format!(
            "source is longer than {MAX_URL} characters: {}…",
            &spec[..60.min(spec.len())]
        )));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let url = url::Url::parse(spec)
            .map_err(|e| bad(format!("source '{spec}' is not a valid URL: {e}")))?;
        // '?' starts a query string in a URL; '*' and '[' can only be
        // wildcards, which BITS accepts for local sources alone.
        if url.path().contains(['*', '[']) {
            return Err(bad(format!(
                "source '{spec}' contains a wildcard; wildcards work only for local sources"
            )));
        }
        return Ok(spec.to_string());
    }
    let path = if lower.starts_with("file://") {
        let url = url::Url::parse(spec)
            .map_err(|e| bad(format!("source '{spec}' is not a valid file URL: {e}")))?;
        url.to_file_path()
            .map_err(|_| bad(format!("source '{spec}' is not a local file URL")))?
    } else if spec.starts_with('/') {
        PathBuf::from(spec)
    } else if let Some((scheme, _)) = spec.split_once("://") {
        return Err(bad(format!(
            "source '{spec}': the scheme '{scheme}' is not supported; use http, https, file or a local path"
        )));
    } else {
        return Err(bad(format!(
            "source '{spec}' must be an absolute path or a URL"
        )));
    };
    if has_wildcard(&path.to_string_lossy()) {
        return Err(bad(format!(
            "source '{spec}' contains a wildcard; expand it before adding files"
        )));
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(spec.to_string()),
        Ok(_) => Err(bad(format!(
            "source '{}' is not a regular file",
            path.display()
        ))),
        Err(e) => Err(bad(format!(
            "source '{}' cannot be read: {e}",
            path.display()
        ))),
    }
}

/// Checks a destination path. `dirs` holds directories already known to
/// exist (a job of thousands of files usually has one).
fn local(spec: &str, dirs: &mut HashSet<PathBuf>) -> Result<PathBuf, ApiError> {
    let path = Path::new(spec);
    if !path.is_absolute() {
        return Err(bad(format!(
            "destination '{spec}' must be an absolute path"
        )));
    }
    if has_wildcard(spec) {
        return Err(bad(format!(
            "destination '{spec}' contains a wildcard; destinations cannot"
        )));
    }
    if path.is_dir() {
        return Err(bad(format!(
            "destination '{spec}' is a directory; name the file to create"
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| bad(format!("destination '{spec}' has no directory")))?;
    if !dirs.contains(parent) {
        if !parent.is_dir() {
            return Err(bad(format!(
                "destination directory '{}' does not exist",
                parent.display()
            )));
        }
        dirs.insert(parent.to_path_buf());
    }
    if path.file_name().is_none() {
        return Err(bad(format!("destination '{spec}' does not name a file")));
    }
    Ok(path.to_path_buf())
}

/// Turns file specs into new job files, checking each and refusing a
/// destination used twice in the job. Upload jobs hold exactly one file.
pub fn files(
    id: JobId,
    job_type: JobType,
    specs: &[FileSpec],
    existing: &[JobFile],
) -> Result<Vec<JobFile>, ApiError> {
    if job_type != JobType::Download {
        return upload_files(id, job_type, specs, existing);
    }
    let mut out: Vec<JobFile> = Vec::with_capacity(specs.len());
    let mut dirs = HashSet::new();
    // Destinations seen, by hash: a job may bring 100,000 files, and a copy
    // of each path, freed right after, would only fragment the daemon's
    // heap. A hash met again is checked against the paths themselves.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut seen: HashSet<u64> = existing
        .iter()
        .map(|f| hasher.hash_one(&*f.local))
        .collect();
    for spec in specs {
        // A URL's userinfo is a credential: kept apart, never shown.
        let (url, credential) = bits_transfer::split_credential(&spec.remote);
        let remote = remote(&url)?;
        let local = local(&spec.local, &mut dirs)?;
        let twice = !seen.insert(hasher.hash_one(local.as_path()))
            && existing.iter().chain(&out).any(|f| *f.local == *local);
        if twice {
            return Err(bad(format!(
                "destination '{}' is used by two files of the job",
                local.display()
            )));
        }
        let mut file = JobFile::new(remote, local);
        file.set_credential(credential);
        out.push(file);
    }
    Ok(out)
}

/// An upload job's one file: an http(s) URL to send to, and an existing
/// local file to send.
fn upload_files(
    id: JobId,
    job_type: JobType,
    specs: &[FileSpec],
    existing: &[JobFile],
) -> Result<Vec<JobFile>, ApiError> {
    if existing.len() + specs.len() > 1 {
        return Err(ApiError {
            kind: ErrorKind::BadRequest,
            message: format!(
                "an {} job holds exactly one file; create one job per file",
                job_type.as_str().to_ascii_lowercase()
            ),
            code: Some(format!(
                "0x{:08X}",
                bits_core::error::codes::BG_E_TOO_MANY_FILES
            )),
        });
    }
    let mut out = Vec::new();
    for spec in specs {
        let (remote, credential) = bits_transfer::split_credential(&spec.remote);
        let spec = FileSpec {
            remote,
            local: spec.local.clone(),
        };
        let lower = spec.remote.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(bad(format!(
                "upload destination '{}' must be an http or https URL",
                spec.remote
            )));
        }
        let url = url::Url::parse(&spec.remote).map_err(|e| {
            bad(format!(
                "upload destination '{}' is not a valid URL: {e}",
                spec.remote
            ))
        })?;
        if url.path().contains(['*', '[']) {
            return Err(bad(format!(
                "upload destination '{}' contains a wildcard",
                spec.remote
            )));
        }
        let path = Path::new(&spec.local);
        if !path.is_absolute() {
            return Err(bad(format!(
                "upload source '{}' must be an absolute path",
                spec.local
            )));
        }
        let size = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                return Err(bad(format!(
                    "upload source '{}' is not a regular file",
                    spec.local
                )))
            }
            Err(e) => {
                return Err(bad(format!(
                    "upload source '{}' cannot be read: {e}",
                    spec.local
                )))
            }
        };
        let mut file = JobFile::new(spec.remote.clone(), path.to_path_buf());
        file.set_credential(credential);
        // Known from the start (an upload that failed before its session
        // showed `0 B / ?`); the upload checks it again when it begins.
        file.bytes_total = Some(size);
        // The temporary file of an upload holds the server's reply
        // (upload-reply jobs); it sits beside the file that was sent.
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        file.set_temp(
            id,
            path.with_file_name(format!(".{name}.reply.bits-{id}.tmp")),
        );
        out.push(file);
    }
    Ok(out)
}

/// Where an upload-reply job's reply goes when the user did not say: beside
/// the file that was sent, named after it.
pub fn default_reply_file(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    local.with_file_name(format!("{name}.reply"))
}

/// Applies requested credential changes to `job`: clearing first, then the
/// new server and proxy credentials.
pub fn credentials(job: &mut Job, p: &JobProperties) -> Result<(), ApiError> {
    if p.clear_credentials {
        job.server_credential = None;
        job.proxy_credential = None;
    }
    if let Some(c) = &p.credential {
        job.server_credential = Some(credential("--credential", c)?);
    }
    if let Some(c) = &p.proxy_credential {
        job.proxy_credential = Some(credential("--proxy-credential", c)?);
    }
    Ok(())
}

fn credential(option: &str, c: &CredentialSpec) -> Result<Credential, ApiError> {
    if c.user.is_empty() {
        return Err(bad(format!("{option}: the user name is empty")));
    }
    if c.user.len() > MAX_CREDENTIAL || c.password.len() > MAX_CREDENTIAL {
        return Err(bad(format!(
            "{option}: a user name or password is longer than {MAX_CREDENTIAL} bytes"
        )));
    }
    let scheme = c
        .scheme
        .as_deref()
        .map(|s| s.parse::<AuthScheme>())
        .transpose()
        .map_err(|e| bad(format!("{}: {e}", auth_option(option))))?;
    if option == "--proxy-credential" {
        if let Some(s @ (AuthScheme::Digest | AuthScheme::Ntlm | AuthScheme::Negotiate)) = scheme {
            return Err(bad(format!(
                "--proxy-auth {}: not supported; bits authenticates to proxies with basic",
                s.as_str()
            )));
        }
    }
    if let Some(s @ (AuthScheme::Ntlm | AuthScheme::Negotiate)) = scheme {
        return Err(bad(format!(
            "{} {}: not supported; bits authenticates with basic and digest",
            auth_option(option),
            s.as_str()
        )));
    }
    Ok(Credential {
        user: c.user.clone(),
        password: Secret::new(c.password.clone()),
        scheme,
    })
}

/// The option naming the scheme of a credential option.
fn auth_option(credential_option: &str) -> &'static str {
    if credential_option == "--proxy-credential" {
        "--proxy-auth"
    } else {
        "--auth"
    }
}

/// Applies requested property changes to `props`.
pub fn properties(
    props: &mut JobProps,
    p: &JobProperties,
    job_type: JobType,
) -> Result<(), ApiError> {
    if let Some(name) = &p.display_name {
        if name.chars().count() > MAX_DISPLAY_NAME {
            return Err(bad(format!(
                "--name is longer than {MAX_DISPLAY_NAME} characters"
            )));
        }
        props.display_name = name.clone();
    }
    if let Some(d) = &p.description {
        if d.chars().count() > MAX_DESCRIPTION {
            return Err(bad(format!(
                "--description is longer than {MAX_DESCRIPTION} characters"
            )));
        }
        props.description = d.clone();
    }
    if let Some(pr) = &p.priority {
        props.priority = pr
            .parse::<Priority>()
            .map_err(|e| bad(format!("--priority: {e}")))?;
    }
    if let Some(s) = p.retry_interval {
        if s == 0 {
            return Err(bad("--retry-interval must be at least 1 second"));
        }
        props.min_retry_delay = seconds("--retry-interval", s)?;
    }
    if let Some(s) = p.retry_timeout {
        props.no_progress_timeout = seconds("--retry-timeout", s)?;
    }
    if let Some(s) = p.max_download_time {
        if s == 0 {
            return Err(bad("--max-download-time must be at least 1 second"));
        }
        props.max_download_time = seconds("--max-download-time", s)?;
    }
    if let Some(n) = p.connections {
        if !(1..=JobProps::MAX_CONNECTIONS).contains(&n) {
            return Err(bad(format!(
                "--connections must be between 1 and {}",
                JobProps::MAX_CONNECTIONS
            )));
        }
        if n > 1 && job_type != JobType::Download {
            return Err(bad(
                "--connections applies only to download jobs (an upload is one session)",
            ));
        }
        props.connections = n;
    }
    if let Some(r) = &p.reply_file {
        if job_type != JobType::UploadReply {
            return Err(bad("--reply-file applies only to upload-reply jobs"));
        }
        props.reply_file = Some(PathBuf::from(r));
    }
    if let Some(cmd) = &p.notify_cmd {
        if cmd.len() > MAX_NOTIFY_CMD {
            return Err(bad(format!(
                "--notify-cmd is longer than {MAX_NOTIFY_CMD} bytes"
            )));
        }
        if cmd.contains('\0') {
            return Err(bad("--notify-cmd holds a NUL character"));
        }
        props.notify.cmd = (!cmd.trim().is_empty()).then(|| cmd.clone());
    }
    if let Some(rate) = p.max_bandwidth {
        props.max_bandwidth = (rate > 0).then_some(rate);
    }
    if let Some(flags) = &p.notify_flags {
        props.notify.flags = flags
            .parse()
            .map_err(|e| bad(format!("--notify-flags: {e}")))?;
    }
    connection::apply(&mut props.connection, &p.connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(remote: &str, local: &Path) -> FileSpec {
        FileSpec {
            remote: remote.into(),
            local: local.to_string_lossy().into_owned(),
        }
    }

    /// Regression: checking destinations by hash must still find a
    /// destination used twice, before looking at the files after it, and
    /// one the job already holds.
    #[test]
    fn a_destination_used_twice_is_refused_where_it_is_met() {
        let dir = tempfile::tempdir().unwrap();
        let (f, g) = (dir.path().join("f"), dir.path().join("g"));
        let id = JobId::new_random();
        let twice = [
            spec("http://127.0.0.1:9/a", &f),
            spec("http://127.0.0.1:9/b", &f),
            spec("ftp://127.0.0.1:9/c", &g),
        ];
        let e = files(id, JobType::Download, &twice, &[]).unwrap_err();
        assert!(e.message.contains("used by two files"), "{}", e.message);

        let held = files(id, JobType::Download, &twice[..1], &[]).unwrap();
        let e = files(id, JobType::Download, &twice[1..2], &held).unwrap_err();
        assert!(e.message.contains("used by two files"), "{}", e.message);

        // The same directory through another spelling is the same file.
        let again = dir.path().join(".").join("f");
        let e = files(
            id,
            JobType::Download,
            &[spec("http://127.0.0.1:9/d", &again)],
            &held,
        )
        .unwrap_err();
        assert!(e.message.contains("used by two files"), "{}", e.message);

        let fine = [
            spec("http://127.0.0.1:9/a", &f),
            spec("http://127.0.0.1:9/b", &g),
        ];
        assert_eq!(files(id, JobType::Download, &fine, &[]).unwrap().len(), 2);
    }
}
