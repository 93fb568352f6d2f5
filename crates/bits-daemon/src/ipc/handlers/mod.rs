//! One file per request.

pub mod add_files;
pub mod cancel;
pub mod complete;
pub mod create;
pub mod info;
pub mod list;
pub mod resume;
pub mod set;
pub mod suspend;
pub mod watch;

use crate::convert::job_object;
use crate::shared::State;
use bits_core::JobId;
use bits_proto::Response;

/// The response carrying job `id` as it is now.
fn job_response(state: &State, id: JobId) -> Response {
    match state.jobs.get(&id) {
        Some(e) => Response::Job {
            job: Box::new(job_object(&e.job)),
        },
        None => Response::Jobs { jobs: vec![] },
    }
}
