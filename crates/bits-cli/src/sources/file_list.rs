//! `--from-csv` file lists: a header row naming `Source` and `Destination`,
//! then one file per row, read as a stream and bounded.

use super::SourceError;
use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// One row of a `--from-csv` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    /// 1-based line number, for messages.
    pub line: u64,
    /// The Source column, trimmed.
    pub source: String,
    /// The Destination column, trimmed.
    pub destination: String,
}

/// Reads a CSV file list: a header row naming `Source` and `Destination`
/// (any case, any order, other columns ignored), then one file per row.
/// Fields are trimmed, so `a.txt , b.txt` works. The input is read as a
/// stream, and reading stops with an error at the first row past
/// `max_rows`: a list too long for one job is refused before the rest of it
/// is read.
pub fn parse_csv(input: impl Read, max_rows: usize) -> Result<Vec<CsvRow>, SourceError> {
    let lines = Rc::new(RefCell::new(Lines::default()));
    let tracked = Tracked {
        inner: input,
        lines: lines.clone(),
        at: 0,
        in_run: false,
    };
    let line_of = |record: &csv::StringRecord| lines.borrow().line_of(record);
    let csv_error = |e: csv::Error| csv_error(&lines.borrow(), e);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        // Field counts are checked below, to name the line in our own words.
        .flexible(true)
        .from_reader(tracked);
    let mut records = reader.records();

    let header = match records.next() {
        Some(record) => record.map_err(csv_error)?,
        None => {
            return Err(SourceError::Csv {
                line: 1,
                reason: "the file is empty; a header row naming Source and Destination comes first"
                    .into(),
            })
        }
    };
    let header_line = line_of(&header);
    let column = |name: &str| -> Result<usize, SourceError> {
        let mut found = header.iter().enumerate().filter(|(_, h)| {
            // Spreadsheets on Windows start UTF-8 files with a byte-order mark.
            h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name)
        });
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (None, _) => Err(SourceError::Csv {
                line: header_line,
                reason: format!("the header row has no {name} column"),
            }),
            (Some(_), Some(_)) => Err(SourceError::Csv {
                line: header_line,
                reason: format!("the header row has several {name} columns"),
            }),
        }
    };
    let source_col = column("Source")?;
    let dest_col = column("Destination")?;

    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(csv_error)?;
        let line = line_of(&record);
        if rows.len() == max_rows {
            return Err(SourceError::Csv {
                line,
                reason: format!(
                    "the list has more than {max_rows} files, the most one job may hold: \
                     split it into several lists"
                ),
            });
        }
        if record.len() != header.len() {
            return Err(SourceError::Csv {
                line,
                reason: format!(
                    "{} field(s) where the header has {}",
                    record.len(),
                    header.len()
                ),
            });
        }
        let field = |col: usize, name: &str| -> Result<String, SourceError> {
            match record.get(col) {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(SourceError::Csv {
                    line,
                    reason: format!("the {name} field is empty"),
                }),
            }
        };
        rows.push(CsvRow {
            line,
            source: field(source_col, "Source")?,
            destination: field(dest_col, "Destination")?,
        });
    }
    if rows.is_empty() {
        return Err(SourceError::Csv {
            line: header_line + 1,
            reason: "no files are listed after the header row".into(),
        });
    }
    Ok(rows)
}

/// Line numbers of a CSV text, learnt as the bytes stream past: where each
/// line ends, and the runs of line breaks (a record the csv crate reports
/// at the start of a blank line really starts after it).
#[derive(Debug, Default)]
struct Lines {
    /// Offsets of every `\n`, in order.
    newlines: Vec<u64>,
    /// Maximal runs `[start, end)` of `\r` and `\n` bytes, in order.
    breaks: Vec<(u64, u64)>,
}

impl Lines {
    /// The 1-based line a record starts on.
    fn line_of(&self, record: &csv::StringRecord) -> u64 {
        record.position().map_or(1, |p| self.line_at(p.byte()))
    }

    /// The 1-based line of the first byte that is not a line break at or
    /// after `offset`.
    fn line_at(&self, offset: u64) -> u64 {
        let run = self.breaks.partition_point(|&(_, end)| end <= offset);
        let start = match self.breaks.get(run) {
            Some(&(s, e)) if s <= offset => e,
            _ => offset,
        };
        1 + self.newlines.partition_point(|&p| p < start) as u64
    }
}

/// The input, passed through to the csv reader, with its line breaks noted
/// on the way.
struct Tracked<R> {
    inner: R,
    lines: Rc<RefCell<Lines>>,
    /// Offset of the next byte.
    at: u64,
    /// Whether the last byte was a line break.
    in_run: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.borrow_mut();
        for &b in &buf[..n] {
            let is_break = matches!(b, b'\r' | b'\n');
            if b == b'\n' {
                lines.newlines.push(self.at);
            }
            match (is_break, self.in_run) {
                (true, true) => {
                    if let Some(run) = lines.breaks.last_mut() {
                        run.1 = self.at + 1;
                    }
                }
                (true, false) => lines.breaks.push((self.at, self.at + 1)),
                _ => {}
            }
            self.in_run = is_break;
            self.at += 1;
        }
        Ok(n)
    }
}

fn csv_error(lines: &Lines, e: csv::Error) -> SourceError {
    let line = e.position().map_or(1, |p| lines.line_at(p.byte()));
    let reason = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    SourceError::Csv { line, reason }
}
