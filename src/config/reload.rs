//! Validate-then-swap: a reload builds the new config beside the running one and swaps the
//! `Arc` only if it is entirely valid.
//!
//! A rejected reload keeps the last good config and records every error (`file:line:col`) for
//! the log and the status page. Settings that cannot change under a running daemon (the status
//! page's listen address; the state directory is a command-line flag) reject the whole reload
//! with "requires restart": nothing of that edit applies until the daemon restarts, so the
//! running config is always exactly one version of the files. Account cookies are compared by
//! fingerprint so that only accounts whose cookies changed reconnect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

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
}

pub struct Reloader {
    dir: PathBuf,
    handle: ConfigHandle,
    clock: SharedClock,
    cookies: Mutex<BTreeMap<String, String>>,
    report: Mutex<ReloadReport>,
    changes: broadcast::Sender<ConfigChange>,
}

impl Reloader {
    pub fn new(dir: PathBuf, handle: ConfigHandle, clock: SharedClock) -> Self {
        let current = handle.load_full();
        let (changes, _) = broadcast::channel(16);
        Self {
            dir,
            cookies: Mutex::new(cookie_fingerprints(&current)),
            report: Mutex::new(ReloadReport {
                version: current.version.clone(),
                ok: true,
                at: 0,
                errors: Vec::new(),
            }),
            handle,
            clock,
            changes,
        }
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

    /// Re-read the files and swap them in if valid. Blocking (file reads); call from a
    /// blocking-friendly context.
    pub fn reload(&self) -> ReloadOutcome {
        let outcome = match super::load(&self.dir) {
            Err(errors) => {
                ReloadOutcome::Rejected(errors.0.iter().map(ToString::to_string).collect())
            }
            Ok(new) => self.swap(new),
        };
        self.record(&outcome);
        outcome
    }

    fn swap(&self, new: Arc<Config>) -> ReloadOutcome {
        let old = self.handle.load_full();
        if let Some(what) = restart_only_change(&old, &new) {
            return ReloadOutcome::Rejected(vec![format!(
                "pipeline.yaml: {what} requires a restart; nothing of this edit was applied (the running config is unchanged)"
            )]);
        }
        let fingerprints = cookie_fingerprints(&new);
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
        }
        *lock(&self.report) = ReloadReport {
            version,
            ok: errors.is_empty(),
            at,
            errors,
        };
    }
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
