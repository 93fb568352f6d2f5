//! `bits compat install`: the Windows command names as symbolic links to
//! the `bits` executable, which acts by the name it is called with.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::failure::Failure;

/// Installs the links into `dir` (default: the directory of the running
/// `bits`); replaces links of an earlier install, never other files unless
/// `force`. Returns the paths made.
pub fn install(dir: Option<&Path>, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("cannot find the bits executable")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => exe
            .parent()
            .context("the bits executable has no directory")?
            .to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(Failure::Usage(format!("{} is not a directory", dir.display())).into());
    }
    let mut made = Vec::new();
    for name in super::names() {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) => {
                let ours = meta.file_type().is_symlink()
                    && std::fs::canonicalize(&link).ok().as_deref() == Some(exe.as_path());
                let a_bits_link = meta.file_type().is_symlink()
                    && std::fs::read_link(&link)
                        .ok()
                        .and_then(|t| t.file_name().map(|n| n == "bits"))
                        .unwrap_or(false);
                if !(ours || a_bits_link || force) {
                    return Err(Failure::Usage(format!(
                        "{} exists and is not a link to bits; remove it, or give --force",
                        link.display()
                    ))
                    .into());
                }
                std::fs::remove_file(&link)
                    .with_context(|| format!("cannot replace {}", link.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot inspect {}", link.display()))
                )
            }
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
        made.push(link);
    }
    Ok(made)
}
