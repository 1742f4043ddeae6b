//! The CLI's work, one file per command family. Each returns the process exit code; errors
//! bubble up as `anyhow` and are printed by `main`.

mod backup;
mod cards;
mod chat_test;
mod check;
mod compact;
mod decode;
mod demo;
mod healthcheck;
mod notify_test;
mod orders;
mod replay;
mod stats;
mod table;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;

use crate::cli::{Cli, Command, Dirs};
use crate::config::{self, Config};
use crate::store::Store;

pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let dirs = cli.dirs;
    if uses_state(&cli.command) {
        refuse_missing_state_dir(&dirs)?;
    }
    match cli.command {
        Command::Run => crate::app::run_daemon(&dirs.config_dir, &dirs.state_dir())
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Check => Ok(check::run(&dirs)),
        Command::Demo {
            orders,
            rate,
            notify_real,
            speed,
        } => {
            let args = demo::DemoArgs {
                orders,
                rate,
                notify_real,
                speed,
            };
            demo::run(&dirs, args).await
        }
        Command::Replay {
            file,
            dry_run,
            no_wait,
        } => replay::run(&dirs, &file, dry_run, no_wait).await,
        Command::Cards(c) => cards::run(&dirs, c),
        Command::Orders(c) => orders::run(&dirs, c),
        Command::Backup { path } => backup::run(&dirs, &path),
        Command::Compact => compact::run(&dirs),
        Command::Stats {
            command,
            from,
            to,
            by,
            account,
        } => {
            let args = stats::StatsArgs {
                from,
                to,
                by,
                account,
            };
            stats::run(&dirs, command, args)
        }
        Command::NotifyTest { channel, event } => notify_test::run(&dirs, &channel, &event).await,
        Command::Healthcheck { url } => healthcheck::run(&url).await,
        Command::Decode {
            input,
            account_id,
            raw,
        } => decode::run(&input, account_id.as_deref(), raw),
        Command::ChatTest {
            account,
            item,
            history,
            verbose,
            text,
        } => {
            let args = chat_test::ChatTestArgs {
                account,
                item,
                history,
                verbose,
                text,
            };
            chat_test::run(&dirs, args).await
        }
    }
}

/// Whether a command reads or writes the state directory.
fn uses_state(command: &Command) -> bool {
    !matches!(
        command,
        Command::Check | Command::Decode { .. } | Command::Healthcheck { .. }
    )
}

/// An explicit `--state-dir` must exist unless `--init` says to create it: a typo would
/// otherwise open a fresh, empty store and report "0 order(s)" as if the shop were empty.
fn refuse_missing_state_dir(dirs: &Dirs) -> anyhow::Result<()> {
    match &dirs.state_dir {
        Some(dir) if !dirs.init && !dir.exists() => Err(anyhow!(
            "状态目录 {0} 不存在：--state-dir 是否写错了？第一次使用这个目录请加 --init 创建它。\n\
             (the state directory {0} does not exist; pass --init to create it)",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Load the config or fail with every error, as `check` prints them.
pub(crate) fn load_config(dirs: &Dirs) -> anyhow::Result<Arc<Config>> {
    config::load(&dirs.config_dir).map_err(|e| {
        anyhow!(
            "the config in {} is invalid:\n{e}",
            dirs.config_dir.display()
        )
    })
}

pub(crate) fn open_store(dirs: &Dirs) -> anyhow::Result<Store> {
    Ok(Store::open(&dirs.state_dir(), crate::clock::system())?)
}

/// Who did it, for the audit log.
pub(crate) fn operator() -> String {
    std::env::var("USER")
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}
