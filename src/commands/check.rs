//! `check`: validate the config the way the daemon would load it.

use std::process::ExitCode;

use crate::cli::Dirs;
use crate::config;

pub fn run(dirs: &Dirs) -> ExitCode {
    match config::load(&dirs.config_dir) {
        Ok(c) => {
            println!(
                "config OK (version {}): {} account(s), {} stage(s) [{}], {} product(s), {} card pool(s), {} channel(s)",
                c.version,
                c.accounts.len(),
                c.stages.len(),
                c.stages
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(" → "),
                c.products.len(),
                c.pools.len(),
                c.channels.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); the config was not accepted", errors.0.len());
            ExitCode::FAILURE
        }
    }
}
