//! Watching the config on disk: `pipeline.yaml`, `products.yaml`, `templates/` and cookie
//! files under `state/`, plus SIGHUP.
//!
//! Directories are watched, not files, because editors save by writing a temp file and
//! renaming it over the original, which replaces the inode a file watch would follow. Events
//! are debounced (200 ms) and filtered to the files that make up the config, so the store's
//! own writes under `state/` never trigger a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::reload::{ReloadOutcome, Reloader};
use super::{PIPELINE_FILE, PRODUCTS_FILE, TEMPLATES_DIR};

const DEBOUNCE: Duration = Duration::from_millis(200);

/// Keeps the OS watches alive; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Start watching `config_dir` (and `state_dir` for cookie files); each relevant change sends
/// one `()` on `tx`.
pub fn watch(
    config_dir: &Path,
    state_dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> notify::Result<ConfigWatcher> {
    let filter = Relevant {
        config_dir: absolute(config_dir),
        state_dir: absolute(state_dir),
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        let relevant = events
            .iter()
            .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
            .flat_map(|e| e.paths.iter())
            .any(|p| filter.matches(p));
        if relevant {
            let _ = tx.send(());
        }
    })?;
    debouncer.watch(config_dir, RecursiveMode::NonRecursive)?;
    let templates = config_dir.join(TEMPLATES_DIR);
    if templates.is_dir() {
        debouncer.watch(&templates, RecursiveMode::Recursive)?;
    }
    if state_dir.is_dir() {
        debouncer.watch(state_dir, RecursiveMode::NonRecursive)?;
    }
    Ok(ConfigWatcher {
        _debouncer: debouncer,
    })
}

struct Relevant {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

impl Relevant {
    fn matches(&self, path: &Path) -> bool {
        let path = absolute(path);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') {
            return false; // editors' temp and backup files; the rename onto the target counts
        }
        if path.starts_with(self.config_dir.join(TEMPLATES_DIR)) {
            return true;
        }
        match path.parent() {
            Some(dir) if dir == self.config_dir => name == PIPELINE_FILE || name == PRODUCTS_FILE,
            // Anything in state/ but the store itself may be a cookie file.
            Some(dir) if dir == self.state_dir => {
                !name.starts_with(crate::store::DB_FILE) && name != crate::store::LOCK_FILE
            }
            _ => false,
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Reload on file changes and on SIGHUP until `shutdown`. `on_reload` runs after every
/// attempt, applied or rejected (status page, stock sync).
pub async fn run(
    reloader: Arc<Reloader>,
    config_dir: PathBuf,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    on_reload: impl Fn(&Reloader, &ReloadOutcome) + Send + Sync + 'static,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _watcher = match watch(&config_dir, &state_dir, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "Cannot watch the config directory; reload with SIGHUP.");
            None
        }
    };
    let mut hangup = hangup_signal();
    let on_reload = Arc::new(on_reload);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = rx.recv() => {}
            Some(()) = recv_hangup(&mut hangup) => tracing::info!("SIGHUP: reloading the config."),
        }
        while rx.try_recv().is_ok() {}
        let (r, cb) = (reloader.clone(), on_reload.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let outcome = r.reload();
            cb(&r, &outcome);
        })
        .await;
    }
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn recv_hangup(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Option<()>) -> Option<()> {
    std::future::pending().await
}
