//! A List answer written in place: the frame of a [`crate::Response::Jobs`]
//! built job by job, each job object written straight into it by the
//! daemon. Serializing a page of 1,000 jobs through `serde` wrote each
//! object into a string of its own (escaping every key on the way), then
//! copied it into the frame; here each byte is written once.
//!
//! On the wire nothing changes: the bytes are those `write_frame` makes of
//! the `Response::Jobs` holding the same jobs (see the tests).

use crate::codec::{ProtoError, MAX_FRAME_LEN};

/// What comes before the first job object.
const HEAD: &[u8] = br#"{"response":"jobs","jobs":["#;

/// A frame of one page of jobs, being written.
#[derive(Debug)]
pub struct JobsFrame {
    /// The frame: 4 bytes of length (filled in by [`JobsFrame::finish`]),
    /// then the body.
    buf: Vec<u8>,
    /// Job objects written so far.
    jobs: usize,
}

/// Where a frame stood before a job was added (see [`JobsFrame::rollback`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// The frame's length then.
    len: usize,
    /// Its jobs then.
    jobs: usize,
}

impl JobsFrame {
    /// An empty page, with room for `capacity` bytes of job objects (and
    /// for the end of the answer: the next page's cursor is some 60).
    pub fn with_capacity(capacity: usize) -> JobsFrame {
        let mut buf = Vec::with_capacity(4 + HEAD.len() + capacity.min(MAX_FRAME_LEN) + 128);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(HEAD);
        JobsFrame { buf, jobs: 0 }
    }

    /// How many jobs the page holds.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Bytes of job objects (and the commas between them) so far.
    pub fn jobs_len(&self) -> usize {
        self.buf.len() - 4 - HEAD.len()
    }

    /// Where the frame stands now.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            jobs: self.jobs,
        }
    }

    /// Takes out everything added since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.len);
        self.jobs = mark.jobs;
    }

    /// Adds one job object, which `write` appends to the buffer it is
    /// given: exactly one JSON object, and nothing else.
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.jobs > 0 {
            self.buf.push(b',');
        }
        write(&mut self.buf);
        self.jobs += 1;
    }

    /// Adds one job object serialized by `serde` (a [`crate::JobObject`]).
    pub fn push_serialized<T: serde::Serialize>(&mut self, job: &T) -> Result<(), ProtoError> {
        let mark = self.mark();
        if self.jobs > 0 {
            self.buf.push(b',');
        }
        if let Err(e) = serde_json::to_writer(&mut self.buf, job) {
            self.rollback(mark);
            return Err(e.into());
        }
        self.jobs += 1;
        Ok(())
    }

    /// The whole frame, ready to be written: the page closed with the
    /// cursor of the next one, if more follow.
    pub fn finish(mut self, next: Option<&str>) -> Result<Vec<u8>, ProtoError> {
        self.buf.extend_from_slice(br#"],"next":"#);
        serde_json::to_writer(&mut self.buf, &next)?;
        self.buf.push(b'}');
        let len = self.buf.len() - 4;
        if len > MAX_FRAME_LEN {
            return Err(ProtoError::FrameTooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        self.buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::read_frame_body;
    use crate::codec::{read_frame, write_frame};
    use crate::{JobTexts, PageEnd, Response};

    use crate::sample::job;

    async fn framed(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, response).await.unwrap();
        out
    }

    /// A page of 0 to 3 jobs, written in place or through serde, with or
    /// without a cursor, is byte for byte the frame of `Response::Jobs`,
    /// and reads back as either kind of answer.
    #[tokio::test]
    async fn a_page_written_in_place_is_the_frame_of_its_jobs() {
        let jobs = [job("a \"quoted\" \u{1}"), job("b"), job("c")];
        for next in [None, Some("17:cursor")] {
            for n in 0..=jobs.len() {
                let mut frame = JobsFrame::with_capacity(0);
                for (i, j) in jobs[..n].iter().enumerate() {
                    if i % 2 == 0 {
                        frame.push_serialized(j).unwrap();
                    } else {
                        frame.push(|out| serde_json::to_writer(out, j).unwrap());
                    }
                }
                assert_eq!(frame.jobs(), n);
                let bytes = frame.finish(next).unwrap();
                let expected = framed(&Response::Jobs {
                    jobs: jobs[..n].to_vec(),
                    next: next.map(String::from),
                })
                .await;
                assert_eq!(
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&expected)
                );
                let back: Response = read_frame(&mut &bytes[..]).await.unwrap().unwrap();
                assert_eq!(
                    back,
                    Response::Jobs {
                        jobs: jobs[..n].to_vec(),
                        next: next.map(String::from)
                    }
                );
                let body = read_frame_body(&mut &bytes[..]).await.unwrap().unwrap();
                let mut texts = JobTexts::default();
                let PageEnd::Jobs(cursor) = texts.add_page(body).unwrap() else {
                    panic!("a page of jobs")
                };
                assert_eq!(texts.len(), n);
                assert_eq!(cursor.as_deref(), next);
            }
        }
    }

    /// Rolling back to a mark leaves the frame as if the job had never
    /// been added.
    #[test]
    fn a_job_taken_back_leaves_the_page_as_it_was() {
        let mut frame = JobsFrame::with_capacity(0);
        frame.push_serialized(&job("a")).unwrap();
        let before = frame.jobs_len();
        let mark = frame.mark();
        frame.push_serialized(&job("b")).unwrap();
        assert!(frame.jobs_len() > before);
        frame.rollback(mark);
        assert_eq!((frame.jobs(), frame.jobs_len()), (1, before));
        let one = JobsFrame::with_capacity(0);
        let mut one_more = one;
        one_more.push_serialized(&job("a")).unwrap();
        assert_eq!(one_more.finish(None).unwrap(), frame.finish(None).unwrap());
    }
}
