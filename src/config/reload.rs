//! Validate-then-swap: a reload builds the new config beside the running one and swaps the
//! `Arc` only if it is entirely valid.
//!
//! A rejected reload keeps the last good config and records every error (`file:line:col`) for
//! the log and the status page. Settings that cannot change under a running daemon (the status
//! page's listen address; the state directory is a command-line flag) reject the whole reload
//! with "requires restart": nothing of that edit applies until the daemon restarts, so the
//! running config is always exactly one version of the files. Account cookies are compared by
//! fingerprint so that only accounts whose cookies changed reconnect.
//!
//! A reload is two steps. [`Reloader::prepare`] does everything slow (waits until the files
//! hold still, reads and validates them, reads cookie files) and may run on a thread that the
//! watcher abandons when it takes too long; [`Reloader::apply`] compares and swaps, and does so
//! only for the newest attempt, so an abandoned one that finishes late changes nothing.
//! A file that was part of the running config and is now missing or empty rejects a reload
//! that files triggered (`rm products.yaml`, `mv templates templates.old`, a save caught
//! half-way); SIGHUP is the seller saying the removal is meant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::overlay::Overlay;
use super::stable;
use super::{Config, ConfigHandle};
use crate::clock::SharedClock;

/// The result of the last reload attempt, as the status page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadReport {
    /// The running config version (unchanged by a rejected reload).
    pub version: String,
    pub ok: bool,
    /// Unix ms of the attempt; 0 before the first reload.
    pub at: u64,
    pub errors: Vec<String>,
    /// Unix ms since when a reload has been running longer than the watcher allows (it was
    /// abandoned; later saves and SIGHUP start fresh ones).
    pub stuck_since: Option<u64>,
    /// The version of the files on disk when it is not the running one: saved but not applied
    /// (rejected, still being checked, or not noticed yet).
    pub unapplied: Option<String>,
}

impl ReloadReport {
    /// The config a daemon started with: loaded, nothing stuck, nothing unapplied.
    pub fn started(version: String, at: u64) -> Self {
        Self {
            version,
            ok: true,
            at,
            errors: Vec::new(),
            stuck_since: None,
            unapplied: None,
        }
    }
}

/// What a successful reload changed, for the parts of the daemon that must react.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigChange {
    pub version: String,
    /// Accounts whose cookies (value, or where they come from) changed, or that are new.
    pub accounts_with_new_cookies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    Applied(ConfigChange),
    /// The files are valid and identical in effect to the running config.
    Unchanged,
    Rejected(Vec<String>),
    /// A newer attempt was started meanwhile (this one was abandoned); nothing was changed.
    Superseded,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file changed: strict, a file of the running config must not have vanished.
    Files,
    /// SIGHUP: the seller asks for exactly what is on disk, removals included.
    Hangup,
}

/// A config read and checked from disk, not yet applied.
#[derive(Debug)]
pub struct Prepared {
    generation: u64,
    loaded: Result<(Arc<Config>, BTreeMap<String, String>), Vec<String>>,
}

pub struct Reloader {
    dir: PathBuf,
    /// Laid over `pipeline.yaml` on every load (`demo`); empty otherwise.
    overlay: Overlay,
    handle: ConfigHandle,
    clock: SharedClock,
    cookies: Mutex<BTreeMap<String, String>>,
    report: Mutex<ReloadReport>,
    changes: broadcast::Sender<ConfigChange>,
    /// The newest attempt; only it may apply.
    generation: AtomicU64,
    /// Serialises applies (and their `on_reload` work) against each other.
    applying: Mutex<()>,
}

impl Reloader {
    pub fn new(dir: PathBuf, handle: ConfigHandle, clock: SharedClock) -> Self {
        let current = handle.load_full();
        let (changes, _) = broadcast::channel(16);
        Self {
            dir,
            overlay: Overlay::default(),
            cookies: Mutex::new(cookie_fingerprints(&current)),
            report: Mutex::new(ReloadReport::started(current.version.clone(), 0)),
            handle,
            clock,
            changes,
            generation: AtomicU64::new(0),
            applying: Mutex::new(()),
        }
    }

    /// Lay `overlay` over `pipeline.yaml` on every reload, as on the first load.
    pub fn with_overlay(mut self, overlay: Overlay) -> Self {
        self.overlay = overlay;
        self
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn handle(&self) -> &ConfigHandle {
        &self.handle
    }

    /// Reacts to applied reloads (e.g. an account supervisor reconnecting on new cookies).
    pub fn subscribe(&self) -> broadcast::Receiver<ConfigChange> {
        self.changes.subscribe()
    }

    pub fn report(&self) -> ReloadReport {
        lock(&self.report).clone()
    }

    /// Re-read the files and swap them in if valid, as a file change would. Blocking (waits
    /// for the files to hold still, reads them); call from a blocking-friendly context.
    pub fn reload(&self) -> ReloadOutcome {
        self.reload_for(Trigger::Files)
    }

    pub fn reload_for(&self, trigger: Trigger) -> ReloadOutcome {
        let prepared = self.prepare(trigger);
        self.apply(prepared, |_| {})
    }

    /// The slow half of a reload, which makes this attempt the newest: wait for the files to
    /// hold still, load and validate them, check that no file of the running config vanished
    /// (unless SIGHUP), and fingerprint the cookies. Changes nothing.
    pub fn prepare(&self, trigger: Trigger) -> Prepared {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let running = self.handle.load_full();
        let loaded = match stable::when_stable(&self.dir, &running, || {
            super::load_with(&self.dir, &self.overlay)
        }) {
            Err(waited) => Err(vec![waited]),
            Ok((result, snapshot)) => {
                let mut errors = match trigger {
                    Trigger::Files => vanished(&running, &snapshot),
                    Trigger::Hangup => Vec::new(),
                };
                match result {
                    Err(e) => {
                        errors.extend(e.0.iter().map(ToString::to_string));
                        Err(errors)
                    }
                    Ok(_) if !errors.is_empty() => Err(errors),
                    Ok(new) => {
                        let fingerprints = cookie_fingerprints(&new);
                        Ok((new, fingerprints))
                    }
                }
            }
        };
        Prepared { generation, loaded }
    }

    /// Give up on every attempt started so far (the watcher found one stuck); none of them
    /// will apply.
    pub fn abandon(&self, since_ms: u64) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.report).stuck_since = Some(since_ms);
    }

    /// The fast half: swap in a prepared config if it is valid, restartless and the newest
    /// attempt; record the outcome, and run `then` (status page, stock sync) before the next
    /// apply can start.
    pub fn apply(&self, prepared: Prepared, then: impl FnOnce(&ReloadOutcome)) -> ReloadOutcome {
        let _serial = lock(&self.applying);
        if prepared.generation != self.generation.load(Ordering::SeqCst) {
            tracing::warn!("A reload finished after it was given up on; its result is dropped.");
            return ReloadOutcome::Superseded;
        }
        let outcome = match prepared.loaded {
            Err(errors) => ReloadOutcome::Rejected(errors),
            Ok((new, fingerprints)) => self.swap(new, fingerprints),
        };
        self.record(&outcome);
        then(&outcome);
        outcome
    }

    /// Note the version of the files on disk (`None` when it is the running one).
    pub fn set_unapplied(&self, disk_version: Option<String>) -> bool {
        let mut report = lock(&self.report);
        let changed = report.unapplied != disk_version;
        report.unapplied = disk_version;
        changed
    }

    fn swap(&self, new: Arc<Config>, fingerprints: BTreeMap<String, String>) -> ReloadOutcome {
        let old = self.handle.load_full();
        if let Some(what) = restart_only_change(&old, &new) {
            return ReloadOutcome::Rejected(vec![format!(
                "pipeline.yaml: {what} requires a restart; nothing of this edit was applied (the running config is unchanged)"
            )]);
        }
        let changed: Vec<String> = {
            let previous = lock(&self.cookies);
            fingerprints
                .iter()
                .filter(|(id, fp)| previous.get(*id) != Some(fp))
                .map(|(id, _)| id.clone())
                .collect()
        };
        if new.version == old.version && changed.is_empty() {
            return ReloadOutcome::Unchanged;
        }
        let change = ConfigChange {
            version: new.version.clone(),
            accounts_with_new_cookies: changed,
        };
        *lock(&self.cookies) = fingerprints;
        self.handle.store(new);
        let _ = self.changes.send(change.clone());
        ReloadOutcome::Applied(change)
    }

    fn record(&self, outcome: &ReloadOutcome) {
        let version = self.handle.load().version.clone();
        let at = self.clock.now_ms();
        let errors = match outcome {
            ReloadOutcome::Rejected(e) => e.clone(),
            _ => Vec::new(),
        };
        match outcome {
            ReloadOutcome::Applied(c) => {
                tracing::info!(version = %c.version, reconnect = ?c.accounts_with_new_cookies, "Config reloaded.")
            }
            ReloadOutcome::Unchanged => {
                tracing::debug!("Config files changed but the config did not.")
            }
            ReloadOutcome::Rejected(errs) => {
                for e in errs {
                    tracing::error!(error = %e, "Config reload rejected; keeping the running config.");
                }
            }
            ReloadOutcome::Superseded => return,
        }
        let mut report = lock(&self.report);
        let unapplied = match outcome {
            ReloadOutcome::Rejected(_) => report.unapplied.take(),
            _ => None,
        };
        *report = ReloadReport {
            version,
            ok: errors.is_empty(),
            at,
            errors,
            stuck_since: None,
            unapplied,
        };
    }
}

/// Files the running config was built from that are now missing or empty.
fn vanished(running: &Config, now: &stable::Snapshot) -> Vec<String> {
    let present: std::collections::BTreeSet<&str> = now.non_empty().collect();
    running
        .files
        .iter()
        .filter(|f| !present.contains(f.as_str()))
        .map(|f| {
            format!("{f}:1:1: was part of the running config and is now missing or empty; the running config is kept. If you removed or emptied it on purpose, apply that with SIGHUP (systemctl reload xianyu-shopd)")
        })
        .collect()
}

/// Settings the running daemon was built from and cannot swap: the status page's socket and
/// token, the set of account connections, and the marketplace endpoints and timings.
fn restart_only_change(old: &Config, new: &Config) -> Option<String> {
    if new.status.listen != old.status.listen {
        return Some(format!(
            "status.listen: changing the listen address ({} → {})",
            old.status.listen, new.status.listen
        ));
    }
    if new.status.token != old.status.token {
        return Some(
            "status.token_env/token_file: changing where the status token comes from".into(),
        );
    }
    let accounts = |c: &Config| {
        c.accounts
            .iter()
            .map(|a| (a.id.clone(), a.cookies.clone()))
            .collect::<Vec<_>>()
    };
    if accounts(old) != accounts(new) {
        return Some("accounts: adding, removing or re-pointing an account's cookies".into());
    }
    if new.marketplace != old.marketplace {
        return Some("marketplace: changing endpoints or timings".into());
    }
    None
}

/// A fingerprint per account of where its cookies come from and what they are now, so a new
/// cookie file (or a switch from env to file) is noticed without ever keeping the value.
fn cookie_fingerprints(config: &Config) -> BTreeMap<String, String> {
    config
        .accounts
        .iter()
        .map(|a| {
            let value = a.cookies.resolve().unwrap_or_default();
            let mut h = Sha256::new();
            h.update(format!("{:?}", a.cookies).as_bytes());
            h.update([0]);
            h.update(value.as_bytes());
            (a.id.clone(), hex::encode(h.finalize()))
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
