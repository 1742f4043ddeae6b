//! One daemon per state directory: an OS lock on the directory itself.
//!
//! The lock is `flock` on an open handle of the state directory, not on a file inside it: a
//! directory in use cannot be deleted from under the daemon, so the common "stale lock" reflex
//! (`rm state/daemon.lock`) no longer lets a second writer in. The OS drops the lock when the
//! process dies, so a crash never leaves a stale lock behind. `daemon.lock` is still written,
//! holding the pid, only so the refusal can name the process that holds the directory.
//!
//! Only `run` and a writing `replay` take it. The other commands (`cards import`, `orders …`,
//! `backup`) open the store in redb's multi-writer mode next to a running daemon, which is
//! exactly what they are for.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::{LOCK_FILE, Result, StoreError};

/// Held by `run` and a writing `replay` for as long as they run.
#[derive(Debug)]
pub struct DaemonLock {
    _dir: File,
}

impl DaemonLock {
    pub fn acquire(state_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| StoreError::StateDir(state_dir.to_path_buf(), e))?;
        let dir = File::open(state_dir).map_err(|e| StoreError::StateDir(state_dir.into(), e))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::DaemonRunning {
                    dir: state_dir.to_path_buf(),
                    holder: holder(state_dir),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::StateDir(state_dir.to_path_buf(), e));
            }
        }
        // Informational only: the lock is the directory's, this file just names the holder.
        let pid_file = state_dir.join(LOCK_FILE);
        if let Ok(mut f) = File::create(&pid_file) {
            let _ = write!(f, "{}", std::process::id());
        }
        Ok(Self { _dir: dir })
    }
}

fn holder(state_dir: &Path) -> String {
    let pid = std::fs::read_to_string(state_dir.join(LOCK_FILE)).unwrap_or_default();
    if pid.trim().is_empty() {
        "pid 未知 (pid unknown)".to_string()
    } else {
        format!("pid {}", pid.trim())
    }
}
