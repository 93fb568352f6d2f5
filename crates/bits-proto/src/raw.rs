//! Job objects as JSON text: a client that only passes the jobs of a List
//! on (`bits list --json`) reads them without building a [`JobObject`] of
//! each, and without copying them out of the pages they came in. The
//! daemon writes its pages in place (see [`crate::JobsFrame`]).

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

use crate::codec::ProtoError;
use crate::{ApiError, ErrorKind, JobObject};

/// One job object as JSON text of its own.
#[derive(Debug, Clone)]
pub struct RawJob(Box<RawValue>);

impl RawJob {
    /// Serializes `job`.
    pub fn new(job: &JobObject) -> serde_json::Result<RawJob> {
        serde_json::value::to_raw_value(job).map(RawJob)
    }

    /// The JSON text (compact).
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJob {
    fn eq(&self, other: &RawJob) -> bool {
        self.json() == other.json()
    }
}

/// Whether a job object's file list continues in further pages
/// (`FileListNext`). The key is looked for as a key: inside a string value
/// its quotes would be escaped.
pub fn has_more_files(job: &str) -> bool {
    job.contains("\"FileListNext\":")
}

/// The jobs of a List as the daemon wrote them: each page's body is kept
/// whole and its job objects are read in place (10,000 jobs are 11 MB of
/// text: copying each into a string of its own, then all into the output,
/// was a third of the client's time).
#[derive(Debug, Default)]
pub struct JobTexts {
    /// The pages' bodies, as received.
    pages: Vec<String>,
    /// Every job, in order.
    jobs: Vec<JobText>,
}

/// Where a job's text is.
#[derive(Debug)]
enum JobText {
    /// In page `page`, at `at`.
    InPage { page: usize, at: Range<usize> },
    /// A text of its own (a job whose file list was filled in).
    Own(RawJob),
}

/// What a List page says besides its jobs.
#[derive(Debug)]
pub enum PageEnd {
    /// More pages follow when this is the next page's cursor.
    Jobs(Option<String>),
    /// The daemon refused.
    Error(ApiError),
    /// Some other answer (named by its `response` tag).
    Other(String),
}

/// A List answer read with its jobs left as text. A plain struct, not the
/// tagged [`crate::Response`], whose derived reader would first copy the
/// whole answer into an intermediate tree (and cannot hold raw text).
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    response: Cow<'a, str>,
    #[serde(default, borrow)]
    jobs: Vec<&'a RawValue>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    kind: Option<ErrorKind>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl JobTexts {
    /// Reads one page's frame body: its jobs are added, and what else it
    /// says is returned. A body that is not a valid answer is an error, and
    /// adds nothing.
    pub fn add_page(&mut self, body: Vec<u8>) -> Result<PageEnd, ProtoError> {
        let text =
            String::from_utf8(body).map_err(<serde_json::Error as serde::de::Error>::custom)?;
        let page: Page<'_> = serde_json::from_str(&text)?;
        let base = text.as_ptr() as usize;
        let index = self.pages.len();
        let end = match (&*page.response, page.kind) {
            ("jobs", _) => {
                // Each object is a slice of `text`: its place is where it
                // starts, counted from the start of the body.
                self.jobs.extend(page.jobs.iter().map(|job| {
                    let start = job.get().as_ptr() as usize - base;
                    JobText::InPage {
                        page: index,
                        at: start..start + job.get().len(),
                    }
                }));
                PageEnd::Jobs(page.next)
            }
            ("error", Some(kind)) => PageEnd::Error(ApiError {
                kind,
                message: page.message.unwrap_or_default(),
                code: page.code,
            }),
            (other, _) => PageEnd::Other(other.to_string()),
        };
        if matches!(end, PageEnd::Jobs(_)) {
            self.pages.push(text);
        }
        Ok(end)
    }

    /// How many jobs there are.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Job `i`'s JSON text (compact).
    pub fn get(&self, i: usize) -> &str {
        match &self.jobs[i] {
            JobText::InPage { page, at } => &self.pages[*page][at.clone()],
            JobText::Own(job) => job.json(),
        }
    }

    /// Replaces job `i`'s text (once its file list is filled in).
    pub fn replace(&mut self, i: usize, job: RawJob) {
        self.jobs[i] = JobText::Own(job);
    }

    /// Every job's text, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.jobs.len()).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;

    use crate::sample::job;

    /// Pages of jobs read back as text that parses to the same objects, in
    /// order across pages; a replaced job reads as its new text;
    /// `FileListNext` is found as a key only.
    #[test]
    fn jobs_are_read_back_as_text_in_order_across_pages() {
        let jobs = [job("a \"FileListNext\": b"), job("b"), job("c")];
        let mut texts = JobTexts::default();
        for (page, next) in [(&jobs[..2], Some("cursor")), (&jobs[2..], None)] {
            let sent = serde_json::to_vec(&Response::Jobs {
                jobs: page.to_vec(),
                next: next.map(String::from),
            })
            .unwrap();
            match texts.add_page(sent).unwrap() {
                PageEnd::Jobs(cursor) => assert_eq!(cursor.as_deref(), next),
                other => panic!("not a page of jobs: {other:?}"),
            }
        }
        assert_eq!(texts.len(), 3);
        for (i, j) in jobs.iter().enumerate() {
            let back: JobObject = serde_json::from_str(texts.get(i)).unwrap();
            assert_eq!(&back, j);
            assert_eq!(texts.get(i), RawJob::new(j).unwrap().json());
        }
        // A name holding the key's text is not taken for the key.
        assert!(!has_more_files(texts.get(0)));
        let mut more = jobs[1].clone();
        more.file_list_next = Some(5);
        let more = RawJob::new(&more).unwrap();
        assert!(has_more_files(more.json()));
        texts.replace(1, more.clone());
        assert_eq!(texts.iter().nth(1), Some(more.json()));
        assert_eq!(texts.iter().count(), 3);
    }

    /// An error answer is read as the daemon's error; a body that is not
    /// an answer is an error and adds no job.
    #[test]
    fn an_error_answer_is_read_as_an_error() {
        let sent = serde_json::to_vec(&Response::Error(ApiError {
            kind: ErrorKind::Denied,
            message: "no \"quoted\"".into(),
            code: Some("0x80070005".into()),
        }))
        .unwrap();
        let mut texts = JobTexts::default();
        match texts.add_page(sent).unwrap() {
            PageEnd::Error(e) => {
                assert_eq!(e.kind, ErrorKind::Denied);
                assert_eq!(e.message, "no \"quoted\"");
                assert_eq!(e.code.as_deref(), Some("0x80070005"));
            }
            other => panic!("not an error: {other:?}"),
        }
        for bad in [
            &b"{\"response\":\"jobs\",\"jobs\":[{]}"[..],
            b"\xff\xfe",
            b"[]",
        ] {
            assert!(texts.add_page(bad.to_vec()).is_err(), "{bad:?}");
        }
        assert!(texts.is_empty());
    }
}
