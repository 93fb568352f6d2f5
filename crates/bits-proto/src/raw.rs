//! Job objects as JSON text: a client that only passes the jobs of a List
//! on (`bits list --json`) reads them without building a [`JobObject`] of
//! each. The daemon writes its pages in place (see [`crate::JobsFrame`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{ApiError, ErrorKind, JobObject};

/// One job object as JSON text.
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

    /// Whether the job's file list continues in further pages
    /// (`FileListNext`). The key is looked for as a key: inside a string
    /// value its quotes would be escaped.
    pub fn has_more_files(&self) -> bool {
        self.json().contains("\"FileListNext\":")
    }

    /// The job object.
    pub fn parse(&self) -> serde_json::Result<JobObject> {
        serde_json::from_str(self.json())
    }
}

impl PartialEq for RawJob {
    fn eq(&self, other: &RawJob) -> bool {
        self.json() == other.json()
    }
}

impl Serialize for RawJob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawJob, D::Error> {
        Box::<RawValue>::deserialize(d).map(RawJob)
    }
}

/// A List answer read with its jobs left as text. A plain struct, not the
/// tagged [`crate::Response`], whose derived reader would first copy the whole
/// answer into an intermediate tree (and cannot hold raw text).
#[derive(Debug, Deserialize)]
pub struct RawJobsAnswer {
    response: String,
    #[serde(default)]
    jobs: Vec<RawJob>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    kind: Option<ErrorKind>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// What a List answer read by [`RawJobsAnswer`] holds.
#[derive(Debug)]
pub enum RawJobsPage {
    /// A page of jobs, and the cursor of the next page if any.
    Jobs(Vec<RawJob>, Option<String>),
    /// The daemon refused.
    Error(ApiError),
    /// Some other answer (named by its `response` tag).
    Other(String),
}

impl RawJobsAnswer {
    /// What the answer holds.
    pub fn page(self) -> RawJobsPage {
        match (self.response.as_str(), self.kind) {
            ("jobs", _) => RawJobsPage::Jobs(self.jobs, self.next),
            ("error", Some(kind)) => RawJobsPage::Error(ApiError {
                kind,
                message: self.message.unwrap_or_default(),
                code: self.code,
            }),
            _ => RawJobsPage::Other(self.response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;

    fn job(name: &str) -> JobObject {
        let mut job: JobObject = serde_json::from_str(
            r#"{"JobId":"5f0c2a4e-0000-4000-8000-000000000001","DisplayName":"x","Description":"",
            "TransferType":"Download","JobState":"Queued","Priority":"Normal","OwnerAccount":"a",
            "BytesTotal":null,"BytesTransferred":0,"FilesTotal":0,"FilesTransferred":0,
            "CreationTime":"t","ModificationTime":"t","TransientErrorCount":0,
            "MinimumRetryDelay":600,"NoProgressTimeout":1,"MaxDownloadTime":1,"FileList":[]}"#,
        )
        .expect("a job object");
        job.display_name = name.into();
        job
    }

    #[test]
    fn jobs_are_read_back_as_text_or_as_objects() {
        let jobs = vec![job("a \"FileListNext\": b"), job("b")];
        let sent = serde_json::to_string(&Response::Jobs {
            jobs: jobs.clone(),
            next: Some("cursor".into()),
        })
        .unwrap();
        let RawJobsPage::Jobs(raw, next) =
            serde_json::from_str::<RawJobsAnswer>(&sent).unwrap().page()
        else {
            panic!("a page of jobs")
        };
        assert_eq!(next.as_deref(), Some("cursor"));
        assert_eq!(raw[0].parse().unwrap(), jobs[0]);
        assert_eq!(raw[1], RawJob::new(&jobs[1]).unwrap());
        // A name holding the key's text is not taken for the key.
        assert!(!raw[0].has_more_files());
        let mut more = jobs[1].clone();
        more.file_list_next = Some(5);
        assert!(RawJob::new(&more).unwrap().has_more_files());
    }

    #[test]
    fn an_error_answer_is_read_as_an_error() {
        let sent = serde_json::to_string(&Response::Error(ApiError {
            kind: ErrorKind::Denied,
            message: "no".into(),
            code: Some("0x80070005".into()),
        }))
        .unwrap();
        match serde_json::from_str::<RawJobsAnswer>(&sent).unwrap().page() {
            RawJobsPage::Error(e) => {
                assert_eq!(e.kind, ErrorKind::Denied);
                assert_eq!(e.code.as_deref(), Some("0x80070005"));
            }
            other => panic!("{other:?}"),
        }
    }
}
