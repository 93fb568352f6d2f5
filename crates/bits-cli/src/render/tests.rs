use super::*;

fn job() -> JobObject {
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
        minimum_retry_delay: 600,
        no_progress_timeout: 1209600,
        max_download_time: 7776000,
        connections: 1,
        connection: Default::default(),
        notify_cmd_line: None,
        notify_flags: Vec::new(),
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

/// The table has a header, a rule and one aligned line per job.
#[test]
fn table_aligns_columns() {
    let text = table(&[job()]);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("JobId"));
    assert!(lines[0].contains("DisplayName") && lines[0].ends_with("Progress"));
    assert!(lines[2].contains("1.00 MiB / 2.00 MiB (50%)"), "{text}");
    let col = lines[0].find("DisplayName").unwrap();
    assert_eq!(&lines[2][col..col + 13], "BITS Transfer");
    assert_eq!(table(&[]), "");
}

/// Format-List shows properties, error fields only when set, then files.
#[test]
fn format_list_shows_properties_and_files() {
    let mut j = job();
    let text = format_list(&j);
    assert!(
        text.contains("JobState               : Transferring\n"),
        "{text}"
    );
    assert!(!text.contains("ErrorCode"));
    assert!(text.contains("    IsTransferComplete : False\n"), "{text}");
    j.error_code = Some("0x80190194".into());
    assert!(format_list(&j).contains("ErrorCode              : 0x80190194\n"));
}

#[test]
fn progress_handles_unknown_and_empty_totals() {
    assert_eq!(progress(512, None), "512 B / ?");
    assert_eq!(progress(0, Some(0)), "0 B / 0 B");
}
