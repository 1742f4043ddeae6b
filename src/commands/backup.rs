//! `backup PATH`: a consistent copy of the store, safe while the daemon runs.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::Dirs;

pub fn run(dirs: &Dirs, path: &Path) -> anyhow::Result<ExitCode> {
    let store = super::open_store(dirs)?;
    let bytes = store.backup_to(path)?;
    println!("backup written to {} ({bytes} bytes)", path.display());
    Ok(ExitCode::SUCCESS)
}
