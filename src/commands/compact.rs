//! `compact`: shrink the store file to what its records use (see `store/compact.rs`); refused
//! while the daemon runs on the same state directory.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Dirs;
use crate::store::DaemonLock;
use crate::store::compact;

pub fn run(dirs: &Dirs) -> anyhow::Result<ExitCode> {
    let state_dir = dirs.state_dir();
    let lock = DaemonLock::acquire(&state_dir)?;
    let done = compact::compact(&lock, &state_dir).context(
        "整理数据库失败，数据库没有改动；如果有别的命令（cards import、orders、backup）正在用它，等它结束后再试 (compacting the store failed; nothing was changed)",
    )?;
    println!(
        "数据库已整理：{} → {}（腾出 {}；记录没有任何改动）(store compacted: {} -> {} bytes)",
        mib(done.before.file),
        mib(done.after.file),
        mib(done.before.file.saturating_sub(done.after.file)),
        done.before.file,
        done.after.file,
    );
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
