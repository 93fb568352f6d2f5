use super::*;

fn job() -> JobObject {
    crate::sample::job()
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

/// "FileList (1 files)" read badly; after Complete the temporary file is
/// gone, so it is not shown.
#[test]
fn format_list_counts_files_in_words_and_drops_temporary_names_once_completed() {
    let mut j = job();
    j.file_list.truncate(1);
    let text = format_list(&j);
    assert!(text.contains("FileList (1 file):\n"), "{text}");
    assert!(text.contains("TemporaryName"), "{text}");
    j.job_state = "Acknowledged".into();
    assert!(!format_list(&j).contains("TemporaryName"));
    assert_eq!(count(2, "file"), "2 files");
}

/// `--json` lists: `[]` for none, else one job a line, indented, commas
/// between them only, and a final newline.
#[test]
fn job_texts_are_printed_one_a_line_in_an_array() {
    let text = |jobs: &[&str]| {
        let mut out = Vec::new();
        write_json_lines(&mut out, jobs.iter().copied()).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert_eq!(text(&[]), "[]\n");
    assert_eq!(text(&["{\"a\":1}"]), "[\n  {\"a\":1}\n]\n");
    assert_eq!(
        text(&["{\"a\":1}", "{\"b\":2}"]),
        "[\n  {\"a\":1},\n  {\"b\":2}\n]\n"
    );
    let parsed: serde_json::Value =
        serde_json::from_str(&text(&["{\"a\":1}", "{\"b\":2}"])).unwrap();
    assert_eq!(parsed.as_array().map(Vec::len), Some(2));
}
