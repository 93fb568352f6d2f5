//! Jobs handed from one command to the next.
//!
//! PowerShell passes BitsJob objects (`$Job = Start-BitsTransfer …
//! -Asynchronous`, `Get-BitsTransfer | Complete-BitsTransfer`); a POSIX
//! shell passes text. So wherever a cmdlet takes a BitsJob, the text it is
//! given — an argument, or standard input — may be what another cmdlet
//! printed: every JobId in it (bare or in braces, as bitsadmin prints them)
//! names a job. Text without a JobId is one job reference as `bits` takes
//! it: a unique prefix or a DisplayName.

use std::io::Read;

use crate::failure::Failure;

/// The most standard input read for job ids: 100,000 table rows.
const MAX_STDIN: u64 = 16 << 20;

/// The jobs `text` names.
pub fn parse(text: &str) -> Vec<String> {
    let ids = job_ids(text);
    if !ids.is_empty() {
        return ids;
    }
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    if text.is_empty() {
        Vec::new()
    } else {
        vec![text.to_string()]
    }
}

/// Every JobId in `text`, in order, each once, lowercase.
pub fn job_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        if is_job_id(word) {
            let id = word.to_ascii_lowercase();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_job_id(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The jobs piped in on standard input (what `Get-BitsTransfer` or
/// `Start-BitsTransfer -Asynchronous` printed, or ids one per line); an
/// error naming the parameter when standard input is a terminal or holds
/// none.
pub fn from_stdin(parameter: &str) -> anyhow::Result<Vec<String>> {
    use std::io::IsTerminal;
    let missing = || {
        Failure::Usage(format!(
            "no job given: name it with -{parameter}, or pipe in what Get-BitsTransfer \
             printed (or JobIds, one per line)"
        ))
    };
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(missing().into());
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(MAX_STDIN)
        .read_to_string(&mut text)
        .map_err(|e| Failure::Usage(format!("cannot read jobs from standard input: {e}")))?;
    // Where the text holds JobIds (a table, bitsadmin's list), they are
    // the jobs, and its other lines ("Listed 2 job(s).") name none; text
    // without any is names, a line each.
    let mut ids = job_ids(&text);
    if ids.is_empty() {
        ids = text.lines().flat_map(parse_line).collect();
    }
    if ids.is_empty() {
        return Err(missing().into());
    }
    Ok(ids)
}

/// One line of piped input: its JobIds; a table's header and rule lines
/// have none and name nothing.
fn parse_line(line: &str) -> Vec<String> {
    let ids = job_ids(line);
    if !ids.is_empty() || line.trim().is_empty() {
        return ids;
    }
    let trimmed = line.trim();
    let is_rule = trimmed.chars().all(|c| c == '-' || c.is_whitespace());
    let is_header = trimmed.starts_with("JobId ");
    if is_rule || is_header {
        Vec::new()
    } else {
        parse(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f0c2d4e-1a2b-4c3d-8e9f-0123456789ab";

    #[test]
    fn a_table_names_the_jobs_of_its_rows() {
        let table = format!(
            "JobId                                 DisplayName    TransferType  JobState     OwnerAccount\n\
             -----                                 -----------    ------------  --------     ------------\n\
             {ID}  BITS Transfer  Download      Transferred  alice\n"
        );
        assert_eq!(parse(&table), [ID]);
        let piped: Vec<String> = table.lines().flat_map(parse_line).collect();
        assert_eq!(piped, [ID]);
    }

    #[test]
    fn braces_and_case_do_not_matter() {
        let upper = format!("{{{}}}", ID.to_ascii_uppercase());
        assert_eq!(parse(&upper), [ID]);
        assert_eq!(parse(&format!("{ID}\n{ID}\n")), [ID]);
    }

    #[test]
    fn text_without_an_id_is_a_name_or_prefix() {
        assert_eq!(parse("  Nightly backup "), ["Nightly backup"]);
        assert_eq!(parse("5f0c"), ["5f0c"]);
        assert!(parse("   ").is_empty());
        assert_eq!(parse_line("Nightly"), ["Nightly"]);
        // Almost an id: a group too short.
        assert_eq!(
            job_ids("5f0c2d4e-1a2b-4c3d-8e9f-0123456789a"),
            Vec::<String>::new()
        );
    }
}
