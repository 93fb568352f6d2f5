//! The Windows front ends: the BitsTransfer cmdlets under their PowerShell
//! names, and bitsadmin.
//!
//! `bits` acts by the name it was called with: `bits compat install` makes
//! links named `Start-BitsTransfer`, `Get-BitsTransfer`, … and `bitsadmin`
//! to the `bits` executable, and [`program_named`] recognises them (also as
//! `bits Start-BitsTransfer …`, for machines without the links). Each front
//! end parses its own syntax ([`params`] for PowerShell's parameter rules,
//! [`bitsadmin`] for the switches) and then does what the native command
//! would, with the building blocks of `commands/` and the same daemon
//! requests; only the output is shaped like Windows'.
//!
//! Nothing here is reachable from `commands/`: the native CLI does not
//! depend on its imitations.

pub mod bitsadmin;
mod cmdlets;
mod install;
pub mod jobrefs;
pub mod params;
mod powershell;

pub use cmdlets::Cmdlet;
pub use install::install;

/// A program `bits` can act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// One of the BitsTransfer cmdlets.
    Cmdlet(Cmdlet),
    /// bitsadmin.
    Bitsadmin,
}

/// Every name `bits compat install` installs, as the contract lists them.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Cmdlet::ALL.iter().map(|c| c.name()).collect();
    names.push("bitsadmin");
    names
}

/// The program called `name` (an executable's file name; case-insensitive,
/// `.exe` allowed), if it is one of ours.
pub fn program_named(name: &str) -> Option<Program> {
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = strip_suffix_ignore_case(name, ".exe").unwrap_or(name);
    if name.eq_ignore_ascii_case("bitsadmin") {
        return Some(Program::Bitsadmin);
    }
    Cmdlet::ALL
        .iter()
        .find(|c| c.name().eq_ignore_ascii_case(name))
        .map(|c| Program::Cmdlet(*c))
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    (text.is_char_boundary(cut) && text[cut..].eq_ignore_ascii_case(suffix)).then(|| &text[..cut])
}

/// Runs `program` with `args` (those after its name); returns the exit
/// code.
pub fn main(program: Program, args: Vec<String>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return crate::failure::exit::FAILED;
        }
    };
    let name = match program {
        Program::Cmdlet(c) => c.name(),
        Program::Bitsadmin => "bitsadmin",
    };
    let result = match program {
        Program::Cmdlet(cmdlet) => runtime.block_on(powershell::run(cmdlet, args)),
        Program::Bitsadmin => runtime.block_on(bitsadmin::run(args)),
    };
    // "Start-BitsTransfer: …", as PowerShell names the cmdlet that failed.
    result.unwrap_or_else(|err| crate::failure::print_report(&err, Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_known_by_name_whatever_the_case_or_path() {
        assert_eq!(
            program_named("/usr/local/bin/Start-BitsTransfer"),
            Some(Program::Cmdlet(Cmdlet::Start))
        );
        assert_eq!(
            program_named("get-bitstransfer"),
            Some(Program::Cmdlet(Cmdlet::Get))
        );
        assert_eq!(program_named("BITSADMIN.EXE"), Some(Program::Bitsadmin));
        assert_eq!(program_named("bits"), None);
        assert_eq!(program_named("Start-Bits"), None);
        assert_eq!(names().len(), 9);
    }
}
