use super::*;
use clap::CommandFactory;

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn seconds_accept_fractions_and_refuse_nonsense() {
    assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_seconds("5"), Ok(Duration::from_secs(5)));
    assert!(parse_seconds("0").is_err());
    assert!(parse_seconds("-1").is_err());
    assert!(parse_seconds("soon").is_err());
}

#[test]
fn csv_and_positional_files_exclude_each_other() {
    let err = Cli::try_parse_from(["bits", "start", "--from-csv", "x.csv", "a", "b"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let cli = Cli::try_parse_from(["bits", "start", "--from-csv", "-"]).unwrap();
    assert!(matches!(cli.command, Command::Start(s) if s.from_csv.as_deref() == Some("-")));
}

#[test]
fn remove_answers_to_cancel_and_types_are_kebab_case() {
    let cli = Cli::try_parse_from(["bits", "cancel", "abcd"]).unwrap();
    assert!(matches!(cli.command, Command::Remove(j) if j.job == "abcd"));
    let cli = Cli::try_parse_from(["bits", "start", "--type", "upload-reply", "a", "b"]).unwrap();
    assert!(matches!(cli.command,
        Command::Start(s) if s.transfer_type == TransferType::UploadReply));
}
