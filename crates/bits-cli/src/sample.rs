//! A job object for unit tests: one file, half transferred.

use bits_proto::{FileObject, JobObject};

/// A Transferring download of one 2 MiB file, 1 MiB of it on disk.
pub fn job() -> JobObject {
    JobObject {
        job_id: "5f0c2a4e-0000-4000-8000-000000000001".into(),
        display_name: "BITS Transfer".into(),
        description: String::new(),
        transfer_type: "Download".into(),
        job_state: "Transferring".into(),
        priority: "Foreground".into(),
        owner_account: "alice".into(),
        bytes_total: Some(2 * 1024 * 1024),
        bytes_transferred: 1024 * 1024,
        files_total: 1,
        files_transferred: 0,
        creation_time: "2026-11-26T10:00:00Z".into(),
        modification_time: "2026-11-26T10:00:01Z".into(),
        transfer_completion_time: None,
        transient_error_count: 0,
        next_retry_time: None,
        give_up_time: None,
        minimum_retry_delay: 600,
        no_progress_timeout: 1209600,
        max_download_time: 7776000,
        connections: 1,
        connection: Default::default(),
        notify_cmd_line: None,
        notify_flags: Vec::new(),
        max_bandwidth: None,
        error_context: None,
        error_code: None,
        error_description: None,
        file_list: vec![FileObject {
            remote_name: "http://h/a".into(),
            local_name: "/home/alice/a".into(),
            bytes_total: Some(2 * 1024 * 1024),
            bytes_transferred: 1024 * 1024,
            is_transfer_complete: false,
            temporary_name: "/home/alice/.a.tmp".into(),
        }],
        file_list_next: None,
        complete_result: None,
        reply_file_name: None,
    }
}
