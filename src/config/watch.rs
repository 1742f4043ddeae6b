//! Watching the config on disk: `pipeline.yaml`, `products.yaml`, `templates/` and cookie
//! files under `state/`, plus SIGHUP.
//!
//! Directories are watched, not files, because editors save by writing a temp file and
//! renaming it over the original, which replaces the inode a file watch would follow. Events
//! are debounced (200 ms) and filtered to the files that make up the config, so the store's
//! own writes under `state/` never trigger a reload. When `templates/` or `state/` itself is
//! replaced (`mv templates templates.old && cp -r …`), its watch is registered again on the new
//! directory, because a recursive watch follows the old inode (issue 10 D8).
//!
//! The watcher never waits for a reload (issue 10 D4). Each reload runs on its own thread
//! ([`Reloader::prepare`] then [`Reloader::apply`]); the watcher keeps taking events, SIGHUP
//! and shutdown meanwhile, and remembers that another reload is due. A reload still running
//! after [`RELOAD_TIMEOUT`] is abandoned: it can no longer apply anything, the status page says
//! it is stuck, and the next save or SIGHUP starts a fresh one. Shutdown returns at once;
//! a reload thread never holds the process.
//!
//! Every [`DISK_POLL`] the version of the files on disk is compared with the running one; a
//! difference is shown ("files changed but not applied"), and a change that no event reported
//! starts a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::reload::{ReloadOutcome, Reloader, Trigger};
use super::{PIPELINE_FILE, PRODUCTS_FILE, TEMPLATES_DIR};

const DEBOUNCE: Duration = Duration::from_millis(200);
/// A reload that takes longer is abandoned and shown as stuck.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the files on disk are compared with the running config.
pub const DISK_POLL: Duration = Duration::from_secs(5);
/// Reload threads that may be alive at once (abandoned ones included) before the watcher
/// stops starting new ones.
const MAX_RELOAD_THREADS: usize = 4;

/// What the OS watch reports to the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A file of the config changed.
    Changed,
    /// `templates/` or `state/` itself was created, moved or removed: watch it again.
    Replaced(PathBuf),
}

/// Keeps the OS watches alive; dropping it stops watching.
pub struct ConfigWatcher {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    templates: PathBuf,
    state: PathBuf,
}

impl ConfigWatcher {
    /// Watch `dir` (`templates/` or `state/`) again, on whatever directory now has its name.
    pub fn rewatch(&mut self, dir: &Path) {
        let mode = if dir == self.templates {
            RecursiveMode::Recursive
        } else if dir == self.state {
            RecursiveMode::NonRecursive
        } else {
            return;
        };
        let _ = self.debouncer.unwatch(dir);
        if dir.is_dir() {
            match self.debouncer.watch(dir, mode) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "Watching a replaced directory again.")
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "Cannot watch a replaced directory; changes are still found within seconds.")
                }
            }
        }
    }
}

/// Start watching `config_dir` (and `state_dir` for cookie files); relevant changes are sent
/// on `tx`.
pub fn watch(
    config_dir: &Path,
    state_dir: &Path,
    tx: mpsc::UnboundedSender<Signal>,
) -> notify::Result<ConfigWatcher> {
    let filter = Relevant {
        config_dir: absolute(config_dir),
        state_dir: absolute(state_dir),
    };
    let templates = filter.config_dir.join(TEMPLATES_DIR);
    let state = filter.state_dir.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        let paths = events
            .iter()
            .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
            .flat_map(|e| e.paths.iter())
            .map(|p| absolute(p));
        let mut relevant = false;
        let mut replaced: Vec<PathBuf> = Vec::new();
        for path in paths {
            if (path == filter.templates() || path == filter.state_dir) && !replaced.contains(&path)
            {
                replaced.push(path.clone());
            }
            relevant |= filter.matches(&path);
        }
        for dir in replaced {
            let _ = tx.send(Signal::Replaced(dir));
        }
        if relevant {
            let _ = tx.send(Signal::Changed);
        }
    })?;
    debouncer.watch(config_dir, RecursiveMode::NonRecursive)?;
    if templates.is_dir() {
        debouncer.watch(&templates, RecursiveMode::Recursive)?;
    }
    if state_dir.is_dir() {
        debouncer.watch(state_dir, RecursiveMode::NonRecursive)?;
    }
    Ok(ConfigWatcher {
        debouncer,
        templates,
        state,
    })
}

struct Relevant {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

impl Relevant {
    fn templates(&self) -> PathBuf {
        self.config_dir.join(TEMPLATES_DIR)
    }

    fn matches(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') {
            return false; // editors' temp and backup files; the rename onto the target counts
        }
        if path.starts_with(self.templates()) {
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

/// Called after every reload attempt with its outcome (status page, stock sync; on the reload
/// thread), and with `None` when only the report changed (stuck, files not applied).
pub type OnReload = dyn Fn(&Reloader, Option<&ReloadOutcome>) + Send + Sync;

/// The watcher's clocks; [`Timing::default`] is what the daemon uses, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A reload running longer is abandoned and shown as stuck.
    pub reload_timeout: Duration,
    /// How often the files on disk are compared with the running config.
    pub disk_poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            reload_timeout: RELOAD_TIMEOUT,
            disk_poll: DISK_POLL,
        }
    }
}

/// Reload on file changes and on SIGHUP until `shutdown`, never waiting for a reload.
pub async fn run(
    reloader: Arc<Reloader>,
    config_dir: PathBuf,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    on_reload: impl Fn(&Reloader, Option<&ReloadOutcome>) + Send + Sync + 'static,
) {
    let dirs = (config_dir, state_dir);
    run_with(reloader, dirs, shutdown, on_reload, Timing::default(), None).await;
}

/// [`run`] with other timings. `ready`, when given, is told once the OS watches are installed
/// (`true`) or could not be (`false`: only the disk poll and SIGHUP notice changes then), so a
/// caller can edit files knowing the edit will be seen.
pub async fn run_with(
    reloader: Arc<Reloader>,
    (config_dir, state_dir): (PathBuf, PathBuf),
    shutdown: CancellationToken,
    on_reload: impl Fn(&Reloader, Option<&ReloadOutcome>) + Send + Sync + 'static,
    timing: Timing,
    ready: Option<oneshot::Sender<bool>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = match watch(&config_dir, &state_dir, tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "Cannot watch the config directory; changes are found within seconds, or reload with SIGHUP.");
            None
        }
    };
    if let Some(ready) = ready {
        let _ = ready.send(watcher.is_some());
    }
    let mut hangup = hangup_signal();
    let mut reloads = Reloads {
        reloader,
        on_reload: Arc::new(on_reload),
        running: None,
        pending: None,
        threads: Arc::new(AtomicUsize::new(0)),
        freed: Arc::new(tokio::sync::Notify::new()),
        disk: None,
        disk_seen: None,
        timeout: timing.reload_timeout,
    };
    let mut poll = tokio::time::interval(timing.disk_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let freed = reloads.freed.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(signal) = rx.recv() => {
                if let (Signal::Replaced(dir), Some(w)) = (&signal, watcher.as_mut()) {
                    w.rewatch(dir);
                }
                reloads.want(Trigger::Files);
            }
            Some(()) = recv_hangup(&mut hangup) => {
                tracing::info!("SIGHUP: reloading the config.");
                reloads.want(Trigger::Hangup);
            }
            end = running_end(&mut reloads.running) => reloads.ended(end),
            _ = poll.tick() => reloads.check_disk(),
            Some(version) = disk_result(&mut reloads.disk) => reloads.disk_version(version),
            _ = freed.notified() => {} // a thread slot is free: start what is due
        }
        reloads.start_due();
    }
}

/// The loop's state: at most one reload running, at most one more due.
struct Reloads {
    reloader: Arc<Reloader>,
    on_reload: Arc<OnReload>,
    running: Option<Running>,
    /// A reload asked for while one runs; SIGHUP wins over a file change.
    pending: Option<Trigger>,
    /// Reload threads alive, abandoned ones included.
    threads: Arc<AtomicUsize>,
    /// Woken when a reload thread ends, so a reload held back at the thread cap starts then.
    freed: Arc<tokio::sync::Notify>,
    disk: Option<oneshot::Receiver<String>>,
    disk_seen: Option<String>,
    timeout: Duration,
}

struct Running {
    done: oneshot::Receiver<()>,
    deadline: tokio::time::Instant,
    started_ms: u64,
}

/// Counts a reload thread as alive until it ends (or panics).
struct Alive(Arc<AtomicUsize>, Arc<tokio::sync::Notify>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.notify_one();
    }
}

enum RunEnd {
    Finished,
    Stuck,
}

impl Reloads {
    fn want(&mut self, trigger: Trigger) {
        if self.pending != Some(Trigger::Hangup) {
            self.pending = Some(trigger);
        }
    }

    fn start_due(&mut self) {
        if self.running.is_some() {
            return;
        }
        let Some(trigger) = self.pending else { return };
        if self.threads.load(Ordering::SeqCst) >= MAX_RELOAD_THREADS {
            return; // shown as stuck; a thread that ends frees a slot
        }
        self.pending = None;
        let (tx, done) = oneshot::channel();
        let (r, cb, threads) = (
            self.reloader.clone(),
            self.on_reload.clone(),
            self.threads.clone(),
        );
        threads.fetch_add(1, Ordering::SeqCst);
        let alive = Alive(threads, self.freed.clone());
        let spawned = std::thread::Builder::new()
            .name("config-reload".into())
            .spawn(move || {
                let _alive = alive;
                let prepared = r.prepare(trigger);
                r.apply(prepared, |outcome| cb(&r, Some(outcome)));
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "Cannot start a config reload.");
            return;
        }
        self.running = Some(Running {
            done,
            deadline: tokio::time::Instant::now() + self.timeout,
            started_ms: self.reloader.now_ms(),
        });
    }

    fn ended(&mut self, end: RunEnd) {
        let Some(run) = self.running.take() else {
            return;
        };
        if let RunEnd::Stuck = end {
            tracing::error!(timeout = ?self.timeout, "A config reload is stuck; it was given up on and the running config is kept.");
            self.reloader.abandon(run.started_ms);
            (self.on_reload)(&self.reloader, None);
        }
    }

    /// Compute the version of the files on disk, off this task.
    fn check_disk(&mut self) {
        if self.disk.is_some() {
            return; // the last check has not finished
        }
        let (tx, rx) = oneshot::channel();
        let dir = self.reloader.dir().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("config-disk-version".into())
            .spawn(move || {
                let _ = tx.send(super::disk_version(&dir));
            });
        if spawned.is_ok() {
            self.disk = Some(rx);
        }
    }

    fn disk_version(&mut self, on_disk: String) {
        let running = self.reloader.handle().load().version.clone();
        let unapplied = (on_disk != running).then(|| on_disk.clone());
        let noticed_late = unapplied.is_some()
            && self.disk_seen.as_ref().is_some_and(|seen| *seen != on_disk)
            && self.running.is_none()
            && self.pending.is_none();
        if noticed_late {
            tracing::info!("The config files changed without a file event; reloading.");
            self.want(Trigger::Files);
        }
        self.disk_seen = Some(on_disk);
        if self.reloader.set_unapplied(unapplied) {
            (self.on_reload)(&self.reloader, None);
        }
    }
}

async fn running_end(running: &mut Option<Running>) -> RunEnd {
    match running {
        None => std::future::pending().await,
        Some(run) => tokio::select! {
            _ = &mut run.done => RunEnd::Finished,
            _ = tokio::time::sleep_until(run.deadline) => RunEnd::Stuck,
        },
    }
}

async fn disk_result(disk: &mut Option<oneshot::Receiver<String>>) -> Option<String> {
    let result = match disk {
        None => std::future::pending().await,
        Some(rx) => rx.await.ok(),
    };
    *disk = None;
    result
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
