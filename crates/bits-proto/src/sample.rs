//! A job object for tests.

use crate::JobObject;

/// A queued job object named `name`, with every required field.
pub(crate) fn job(name: &str) -> JobObject {
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
