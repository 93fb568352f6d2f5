//! Turning `SOURCE... DESTINATION` (or a `--from-csv` file) into the
//! [`FileSpec`]s of a job.
//!
//! The daemon validates every file again, but only the client knows the
//! current directory and what the shell handed over, so relative paths are
//! made absolute and wildcards expanded here. The functions take the current
//! directory as an argument rather than reading it, and touch the file system
//! only to look (does it exist, is it a directory, what does a wildcard
//! match), so they are tested against temporary directories.
//!
//! Rules, from the contract:
//! - a source is an `http(s)://` URL (no wildcards), a `file://` URL, or a
//!   local path that may hold `*`, `?` and `[...]`; other schemes are refused;
//! - the destination may not hold wildcards;
//! - several sources, or a wildcard, need an existing destination directory,
//!   and each file keeps the name of its source;
//! - with one source, an existing directory receives the file under the
//!   source's name, anything else is the file's path and its directory must
//!   exist;
//! - two sources may not land on the same destination;
//! - an upload takes one local file and an http(s) URL.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use bits_proto::FileSpec;
use url::Url;

mod file_list;
#[cfg(test)]
mod tests;

pub use file_list::{parse_csv, CsvRow};

/// Why the files of a job could not be worked out. All of these are usage
/// errors (exit 2) and name the argument at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Only a SOURCE was given.
    #[error("a DESTINATION is needed after the SOURCE")]
    MissingDestination,
    /// An http(s) URL holds `*`, `?` or `[`.
    #[error("the URL {0} holds a wildcard (*, ? or [): wildcards only work with local paths")]
    WildcardInUrl(String),
    /// The destination holds `*`, `?` or `[`.
    #[error("the destination {0} holds a wildcard (*, ? or [): name a file or a directory")]
    WildcardInDestination(String),
    /// A URL scheme other than http, https and file.
    #[error("{arg}: the URL scheme '{scheme}' is not supported; use http://, https://, file:// or a local path")]
    UnsupportedScheme {
        /// The argument.
        arg: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL does not parse.
    #[error("{arg} is not a valid URL: {reason}")]
    BadUrl {
        /// The argument.
        arg: String,
        /// What the parser said.
        reason: String,
    },
    /// A wildcard matched no file.
    #[error("no file matches {0}")]
    NoMatch(String),
    /// A wildcard is not a valid pattern.
    #[error("{pattern} is not a valid wildcard pattern: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What the glob parser said.
        reason: String,
    },
    /// A local source does not exist.
    #[error("source {0} does not exist")]
    SourceMissing(String),
    /// A local source is a directory.
    #[error("source {0} is a directory; name the files in it (a wildcard such as {0}/* will do)")]
    SourceIsDirectory(String),
    /// Several sources, or a wildcard, and the destination is no directory.
    #[error("{0} is not a directory; several sources need a destination directory")]
    NotADirectory(String),
    /// One source, and the destination's parent is missing.
    #[error("destination directory {0} does not exist")]
    DestinationDirMissing(String),
    /// A URL whose path gives no file name, with a directory destination.
    #[error("cannot tell a file name from {0}; give the destination file name explicitly")]
    NoFileName(String),
    /// Two sources would write the same file.
    #[error("{first} and {second} would both be saved as {local}")]
    DuplicateDestination {
        /// The first source.
        first: String,
        /// The second source.
        second: String,
        /// The shared destination.
        local: String,
    },
    /// A download to a URL.
    #[error("the destination of a download must be a local path, not {0} (use --type upload to send a file to a server)")]
    DownloadToUrl(String),
    /// An upload from anything but one local file.
    #[error("the source of an upload must be a local file, not {0}")]
    UploadFromUrl(String),
    /// An upload to anything but an http(s) URL.
    #[error("the destination of an upload must be an http:// or https:// URL, not {0}")]
    UploadToPath(String),
    /// An upload with several files.
    #[error("an upload job takes exactly one file, but {0} were given")]
    TooManyUploadFiles(usize),
    /// A path that cannot travel as UTF-8 text.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(String),
    /// The CSV file list is malformed.
    #[error("line {line}: {reason}")]
    Csv {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A CSV row's file is wrong.
    #[error("line {line}")]
    AtLine {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        #[source]
        source: Box<SourceError>,
    },
}

/// Splits `SOURCE... DESTINATION`.
pub fn split_positionals(paths: &[String]) -> Result<(&[String], &str), SourceError> {
    match paths.split_last() {
        Some((dest, sources)) if !sources.is_empty() => Ok((sources, dest.as_str())),
        _ => Err(SourceError::MissingDestination),
    }
}

/// As [`split_positionals`], but one path alone is a source to download
/// into the current directory, as Start-BitsTransfer does without
/// `-Destination`.
pub fn split_positionals_or_here(paths: &[String]) -> Result<(&[String], &str), SourceError> {
    match paths {
        [_] => Ok((paths, "./")),
        _ => split_positionals(paths),
    }
}

/// The files of a download: every source, with its local destination.
pub fn resolve_download(
    sources: &[String],
    destination: &str,
    cwd: &Path,
) -> Result<Vec<FileSpec>, SourceError> {
    resolve_download_in(sources, destination, cwd, &mut HashSet::new())
}

/// [`resolve_download`], with the destination directories already seen to
/// exist: a list of 100,000 rows into one directory checks it once.
fn resolve_download_in(
    sources: &[String],
    destination: &str,
    cwd: &Path,
    known_dirs: &mut HashSet<PathBuf>,
) -> Result<Vec<FileSpec>, SourceError> {
    let dest = match classify(destination, cwd)? {
        Location::Local(path) => path,
        Location::File(url) => url
            .to_file_path()
            .map_err(|()| SourceError::DownloadToUrl(destination.to_string()))?,
        Location::Http(_) => return Err(SourceError::DownloadToUrl(destination.to_string())),
    };
    if has_wildcard(destination) {
        return Err(SourceError::WildcardInDestination(destination.to_string()));
    }

    let mut expanded = Vec::new();
    let mut wildcard = false;
    for arg in sources {
        let (files, was_wildcard) = expand_source(arg, cwd)?;
        wildcard |= was_wildcard;
        expanded.extend(files);
    }

    let dest_is_dir = dest.is_dir();
    let several = expanded.len() > 1 || wildcard;
    if several && !dest_is_dir {
        return Err(SourceError::NotADirectory(destination.to_string()));
    }
    if !several && !dest_is_dir {
        // A trailing slash says "directory", so it must not become a file name.
        if destination.ends_with('/') {
            return Err(SourceError::DestinationDirMissing(destination.to_string()));
        }
        let parent = dest.parent().unwrap_or(Path::new("/"));
        if !known_dirs.contains(parent) {
            if !parent.is_dir() {
                return Err(SourceError::DestinationDirMissing(
                    parent.display().to_string(),
                ));
            }
            known_dirs.insert(parent.to_path_buf());
        }
    }

    let mut files = Vec::with_capacity(expanded.len());
    for source in expanded {
        let local = if dest_is_dir {
            dest.join(source.file_name()?)
        } else {
            dest.clone()
        };
        files.push(FileSpec {
            remote: source.remote,
            local: utf8(&local)?,
        });
    }
    check_duplicates(&files)?;
    Ok(files)
}

/// The one file of an upload: the local file as `local`, the URL as `remote`
/// (as BITS has it: RemoteName is the server's side). A URL that ends in `/`
/// gets the file's name appended, as `curl -T` does.
pub fn resolve_upload(
    sources: &[String],
    destination: &str,
    cwd: &Path,
) -> Result<FileSpec, SourceError> {
    let mut url = match classify(destination, cwd)? {
        Location::Http(url) => url,
        Location::File(_) | Location::Local(_) => {
            return Err(SourceError::UploadToPath(destination.to_string()))
        }
    };
    let mut expanded = Vec::new();
    for arg in sources {
        expanded.extend(expand_source(arg, cwd)?.0);
    }
    let source = match <[Source; 1]>::try_from(expanded) {
        Ok([source]) => source,
        Err(all) => return Err(SourceError::TooManyUploadFiles(all.len())),
    };
    let Some(path) = source.path.clone() else {
        return Err(SourceError::UploadFromUrl(source.arg));
    };
    if url.path().ends_with('/') {
        let name = source.file_name()?;
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&name);
        }
    }
    Ok(FileSpec {
        remote: url.to_string(),
        local: utf8(&path)?,
    })
}

/// The files of a download listed in a CSV file: one job, every row resolved
/// as `SOURCE DESTINATION` would be.
pub fn resolve_download_rows(rows: &[CsvRow], cwd: &Path) -> Result<Vec<FileSpec>, SourceError> {
    let mut files = Vec::new();
    let mut known_dirs = HashSet::new();
    for row in rows {
        let got = resolve_download_in(
            std::slice::from_ref(&row.source),
            &row.destination,
            cwd,
            &mut known_dirs,
        )
        .map_err(|e| at_line(row.line, e))?;
        files.extend(got);
    }
    check_duplicates(&files)?;
    Ok(files)
}

/// The files of a download given as Source/Destination pairs (the
/// cmdlets' `-Source a,b -Destination x,y`): each pair resolved as
/// `SOURCE DESTINATION` would be, in one job.
pub fn resolve_download_pairs(
    pairs: &[(String, String)],
    cwd: &Path,
) -> Result<Vec<FileSpec>, SourceError> {
    let mut files = Vec::new();
    let mut known_dirs = HashSet::new();
    for (source, destination) in pairs {
        files.extend(resolve_download_in(
            std::slice::from_ref(source),
            destination,
            cwd,
            &mut known_dirs,
        )?);
    }
    check_duplicates(&files)?;
    Ok(files)
}

/// The uploads listed in a CSV file: one file (and one job) per row.
pub fn resolve_upload_rows(rows: &[CsvRow], cwd: &Path) -> Result<Vec<FileSpec>, SourceError> {
    rows.iter()
        .map(|row| {
            resolve_upload(std::slice::from_ref(&row.source), &row.destination, cwd)
                .map_err(|e| at_line(row.line, e))
        })
        .collect()
}

/// `path` made absolute against `cwd`, with `.` components dropped. `..` is
/// kept: removing it without the file system would be wrong across symlinks.
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = cwd.join(path);
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Where an argument points.
#[derive(Debug)]
enum Location {
    /// An http:// or https:// URL.
    Http(Url),
    /// A file:// URL.
    File(Url),
    /// A local path, absolute.
    Local(PathBuf),
}

/// One source file after wildcard expansion.
#[derive(Debug)]
struct Source {
    /// The argument as typed, for messages.
    arg: String,
    /// What goes into [`FileSpec::remote`].
    remote: String,
    /// The local file, when the source is one (a path or a file:// URL).
    path: Option<PathBuf>,
    /// The URL, for sources that are URLs.
    url: Option<Url>,
}

impl Source {
    /// The name the file gets in a destination directory.
    fn file_name(&self) -> Result<String, SourceError> {
        let name = match (&self.path, &self.url) {
            (Some(path), _) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, Some(url)) => url_file_name(url).unwrap_or_default(),
            (None, None) => String::new(),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(SourceError::NoFileName(self.arg.clone()));
        }
        Ok(name)
    }
}

/// The last segment of a URL's path, percent-decoded.
fn url_file_name(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    Some(
        percent_encoding::percent_decode_str(last)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Works out what an argument is. URLs are recognised by `scheme://`, so a
/// local file named `a:b` stays a path.
fn classify(arg: &str, cwd: &Path) -> Result<Location, SourceError> {
    let Some(scheme) = url_scheme(arg) else {
        return Ok(Location::Local(absolute(Path::new(arg), cwd)));
    };
    let bad_url = |e: url::ParseError| SourceError::BadUrl {
        arg: arg.to_string(),
        reason: e.to_string(),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => {
            if url_has_wildcard(arg) {
                return Err(SourceError::WildcardInUrl(arg.to_string()));
            }
            Ok(Location::Http(Url::parse(arg).map_err(bad_url)?))
        }
        "file" => Ok(Location::File(Url::parse(arg).map_err(bad_url)?)),
        _ => Err(SourceError::UnsupportedScheme {
            arg: arg.to_string(),
            scheme: scheme.to_string(),
        }),
    }
}

/// The scheme of `scheme://...`, if the argument looks like a URL.
fn url_scheme(arg: &str) -> Option<&str> {
    let (scheme, _) = arg.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Whether an http(s) URL holds a wildcard.
///
/// `[` in the host is IPv6 (`http://[::1]/`), so only `*` counts there. In a
/// URL the first `?` always starts the query; the contract refuses it as a
/// wildcard, except where it clearly starts a `key=value` query
/// (`file?token=abc`), since signed download URLs need one.
fn url_has_wildcard(arg: &str) -> bool {
    let after_scheme = arg.split_once("://").map_or(arg, |(_, rest)| rest);
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    authority.contains('*')
        || path.contains(['*', '[', ']'])
        || query.is_some_and(|q| !q.contains('='))
}

/// Whether a local path holds a wildcard.
fn has_wildcard(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// Expands one source argument. Returns the files and whether the argument
/// was a wildcard (which asks for a destination directory even when it
/// matches one file).
fn expand_source(arg: &str, cwd: &Path) -> Result<(Vec<Source>, bool), SourceError> {
    match classify(arg, cwd)? {
        Location::Http(url) => Ok((
            vec![Source {
                arg: arg.to_string(),
                remote: url.to_string(),
                path: None,
                url: Some(url),
            }],
            false,
        )),
        Location::File(url) => {
            // A file:// URL on this machine is checked like a path; one on
            // another host is left to the daemon.
            let path = url.to_file_path().ok();
            if let Some(path) = &path {
                check_local_file(arg, path)?;
            }
            Ok((
                vec![Source {
                    arg: arg.to_string(),
                    remote: url.to_string(),
                    path,
                    url: Some(url),
                }],
                false,
            ))
        }
        Location::Local(path) => {
            if has_wildcard(arg) {
                if let Some(matches) = expand_glob(arg, &path, cwd)? {
                    return Ok((matches, true));
                }
                // A file really named `photo[1].jpg` is taken as it is.
            }
            check_local_file(arg, &path)?;
            Ok((vec![local_source(arg, path)?], false))
        }
    }
}

/// The regular files a wildcard matches, sorted; `None` when it matches
/// nothing but `literal`, the argument taken as a plain path, is a file.
fn expand_glob(arg: &str, literal: &Path, cwd: &Path) -> Result<Option<Vec<Source>>, SourceError> {
    let literal_exists = literal.is_file();
    // Only the argument is a pattern: brackets in the current directory's
    // name must match themselves.
    let pattern_text = if Path::new(arg).is_absolute() {
        arg.to_string()
    } else {
        let cwd = utf8(cwd)?;
        format!("{}/{arg}", glob::Pattern::escape(cwd.trim_end_matches('/')))
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        // As in the shell, `*` does not pick up hidden files.
        require_literal_leading_dot: true,
    };
    let paths = match glob::glob_with(&pattern_text, options) {
        Ok(paths) => paths,
        Err(_) if literal_exists => return Ok(None),
        Err(e) => {
            return Err(SourceError::BadPattern {
                pattern: arg.to_string(),
                reason: e.msg.to_string(),
            })
        }
    };
    let mut found = Vec::new();
    // Unreadable directories on the way are skipped, as the shell does.
    for path in paths.flatten() {
        // Directories cannot be transferred; a wildcard picks the files.
        if path.is_file() {
            let path = absolute(&path, cwd);
            let shown = path.display().to_string();
            found.push(local_source(&shown, path)?);
        }
    }
    match (found.is_empty(), literal_exists) {
        (false, _) => Ok(Some(found)),
        (true, true) => Ok(None),
        (true, false) => Err(SourceError::NoMatch(arg.to_string())),
    }
}

fn local_source(arg: &str, path: PathBuf) -> Result<Source, SourceError> {
    Ok(Source {
        arg: arg.to_string(),
        remote: utf8(&path)?,
        path: Some(path),
        url: None,
    })
}

fn check_local_file(arg: &str, path: &Path) -> Result<(), SourceError> {
    if path.is_dir() {
        Err(SourceError::SourceIsDirectory(arg.to_string()))
    } else if !path.exists() {
        Err(SourceError::SourceMissing(arg.to_string()))
    } else {
        Ok(())
    }
}

fn check_duplicates(files: &[FileSpec]) -> Result<(), SourceError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for file in files {
        if let Some(first) = seen.insert(&file.local, &file.remote) {
            return Err(SourceError::DuplicateDestination {
                first: first.to_string(),
                second: file.remote.clone(),
                local: file.local.clone(),
            });
        }
    }
    Ok(())
}

fn utf8(path: &Path) -> Result<String, SourceError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| SourceError::NotUtf8(path.display().to_string()))
}

fn at_line(line: u64, e: SourceError) -> SourceError {
    SourceError::AtLine {
        line,
        source: Box::new(e),
    }
}
