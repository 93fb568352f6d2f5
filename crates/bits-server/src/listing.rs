//! Minimal HTML directory listings.
//!
//! Requesting a directory shows its entries as links, which makes it easy to
//! browse what `bits serve` publishes and to copy URLs for `bits` jobs. Links
//! are relative to the directory's URL (which therefore ends in `/`, see
//! `static_files`), with names percent-encoded byte by byte so that any file
//! name — including non-UTF-8 ones — links back to exactly that file. Names
//! are HTML-escaped for display.

use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes left unencoded in links: the RFC 3986 unreserved characters. In
/// particular `:` is encoded, so a name like `a:b` is not read as a scheme.
const LINK_UNSAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The raw file name.
    name: Vec<u8>,
    /// Whether it is (or links to) a directory.
    is_dir: bool,
    /// Size in bytes, for files.
    size: Option<u64>,
}

impl Entry {
    /// The raw file name.
    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }
}

/// Reads the entries of `dir`, sorted by name. Entries whose metadata cannot
/// be read (e.g. dangling symlinks) are listed without size.
pub(crate) fn read_entries(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Follow symlinks so a link to a directory is shown as one.
        let meta = std::fs::metadata(entry.path()).ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        entries.push(Entry {
            name: entry.file_name().as_bytes().to_vec(),
            is_dir,
            size: meta.filter(|m| m.is_file()).map(|m| m.len()),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Renders the listing page for the directory at URL path `url_path` (as
/// received, still percent-encoded).
pub(crate) fn render(url_path: &str, entries: &[Entry]) -> String {
    let decoded = percent_encoding::percent_decode_str(url_path).decode_utf8_lossy();
    let title = format!("Index of {}", escape_html(&decoded));
    let mut html = String::with_capacity(256 + entries.len() * 96);
    // `write!` into a String cannot fail.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body>\n<h1>{title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for entry in entries {
        let slash = if entry.is_dir { "/" } else { "" };
        let href = encode_segment(&entry.name);
        let name = escape_html(&String::from_utf8_lossy(&entry.name));
        let _ = write!(html, "<li><a href=\"{href}{slash}\">{name}{slash}</a>");
        if let Some(size) = entry.size {
            let _ = write!(html, " ({size} bytes)");
        }
        html.push_str("</li>\n");
    }
    html.push_str("</ul>\n</body>\n</html>\n");
    html
}

/// Percent-encodes one path segment (a raw file name) for use in a URL.
pub(crate) fn encode_segment(name: &[u8]) -> String {
    percent_encode(name, LINK_UNSAFE).to_string()
}

/// Escapes text for use in HTML element content and attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_names_and_encoded_links() {
        let entries = vec![
            Entry {
                name: b"<b>&x.txt".to_vec(),
                is_dir: false,
                size: Some(3),
            },
            Entry {
                name: b"a:b dir".to_vec(),
                is_dir: true,
                size: None,
            },
        ];
        let html = render("/sub%20dir/", &entries);
        assert!(html.contains("<title>Index of /sub dir/</title>"));
        assert!(html.contains("<a href=\"../\">"));
        assert!(html.contains("<a href=\"%3Cb%3E%26x.txt\">&lt;b&gt;&amp;x.txt</a> (3 bytes)"));
        assert!(html.contains("<a href=\"a%3Ab%20dir/\">a:b dir/</a>"));
        assert!(!render("/", &[]).contains("../"));
    }
}
