//! Writes the manual pages of `bits`, each of its commands (`bits-start`,
//! ...) and `bitsd` (from their clap definitions) into DIR/man, and the
//! shell completions of `bits` into DIR, for packaging:
//! `cargo run -p bits --example docs -- DIR`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or_else(|| std::io::Error::other("usage: docs DIR"))?,
    );
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let bits = bits_cli::command();
    let mut pages = vec![
        ("bits".to_string(), bits.clone()),
        ("bitsd".to_string(), bits_daemon::command()),
    ];
    for sub in bits.get_subcommands() {
        let name = format!("bits-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, command) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(man.join(format!("{name}.1")), page)?;
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "bits.bash"),
        (Shell::Zsh, "_bits"),
        (Shell::Fish, "bits.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut bits_cli::command(), "bits", &mut out);
        std::fs::write(dir.join(file), out)?;
    }
    Ok(())
}
