//! Drains the outbox: sends each due notification through its channel and records the
//! classified outcome.
//!
//! - A channel's local rate limit postpones a row (no attempt counted) to the moment a slot
//!   frees, so the daemon never earns a vendor's penalty.
//! - Retryable answers wait for the channel's hint (`retry_after`, 45009 → 65 s) or an
//!   exponential backoff with jitter, up to [`MAX_ATTEMPTS`].
//! - Permanent answers, quotas (when a fallback exists) and exhausted retries fail the row;
//!   the store starts the alert's fallback chain once every row of the alert has failed.
//!
//! Rows are only ever marked sent after the channel accepted them, so a crash re-sends at most
//! the notification that was in flight (with the same idempotency key where the channel has
//! one: DingTalk `msgUuid`, webhook `webhook-id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::rate::RateLimits;
use crate::channels::{Channel, Notification, SendResult, build_channel};
use crate::config::{Config, ConfigHandle};
use crate::store::{OutboxAttempt, OutboxDraft, OutboxRow, Store, StoreError};

/// A notification that keeps failing is given up (and falls back) after this many attempts:
/// with the backoff below that is about ten minutes for an urgent alert.
pub const MAX_ATTEMPTS: u32 = 8;
const BATCH: usize = 64;
/// Upper bound on one sleep, so rows written by another process (the CLI) are picked up.
const MAX_IDLE: Duration = Duration::from_secs(1);
const BACKOFF_BASE_MS: u64 = 2_000;
const BACKOFF_CAP_MS: u64 = 5 * 60 * 1000;
/// Expired de-duplication keys are dropped this often.
const PRUNE_EVERY_MS: u64 = 60 * 60 * 1000;

type ChannelCache = (String, HashMap<String, Arc<dyn Channel>>);

pub struct Dispatcher {
    store: Store,
    config: ConfigHandle,
    http: reqwest::Client,
    wake: Arc<Notify>,
    channels: Mutex<ChannelCache>,
    limits: RateLimits,
}

impl Dispatcher {
    pub fn new(store: Store, config: ConfigHandle, wake: Arc<Notify>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            store,
            config,
            http,
            wake,
            channels: Mutex::new((String::new(), HashMap::new())),
            limits: RateLimits::default(),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_prune = 0;
        loop {
            if self.store.now().saturating_sub(last_prune) >= PRUNE_EVERY_MS {
                last_prune = self.store.now();
                if let Err(e) = self.store.call(|s| s.prune_notify_keys()).await {
                    if !e.is_unavailable() {
                        tracing::warn!(error = %e, "Pruning notification keys failed.");
                    }
                }
            }
            match self.drain_due().await {
                // The store said it once (a full disk); the rows wait in the outbox.
                Err(e) if e.is_unavailable() => {}
                Err(e) => tracing::error!(error = %e, "Outbox dispatch failed."),
                Ok(_) => {}
            }
            let sleep = self.sleep_for().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn sleep_for(&self) -> Duration {
        let now = self.store.now();
        match self.store.call(|s| s.next_notification_due()).await {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now)).min(MAX_IDLE),
            _ => MAX_IDLE,
        }
    }

    /// Send everything due now; returns how many rows were looked at.
    pub async fn drain_due(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let now = self.store.now();
            let rows = self
                .store
                .call(move |s| s.due_notifications(now, BATCH))
                .await?;
            if rows.is_empty() {
                return Ok(total);
            }
            total += rows.len();
            for row in rows {
                let attempt = self.attempt(&row).await;
                let id = row.id;
                self.store
                    .call(move |s| s.record_attempt(id, &attempt))
                    .await?;
            }
        }
    }

    async fn attempt(&self, row: &OutboxRow) -> OutboxAttempt {
        let config = self.config.load_full();
        let limit = config
            .channels
            .get(&row.channel)
            .and_then(|c| c.max_per_minute);
        if let Some(Err(at)) = limit.map(|n| self.limits.take(&row.channel, n, self.store.now())) {
            tracing::debug!(channel = %row.channel, id = row.id, "Local rate limit reached; postponed.");
            return OutboxAttempt::Postpone { at };
        }
        let result = match self.channel(&config, &row.channel) {
            Ok(ch) => ch.send(&Notification::from_row(row)).await,
            Err(e) => SendResult::permanent(e),
        };
        self.verdict(row, result)
    }

    fn verdict(&self, row: &OutboxRow, result: SendResult) -> OutboxAttempt {
        let class = result.class();
        let (error, hint) = match result {
            SendResult::Accepted => {
                tracing::info!(channel = %row.channel, event = %row.event, id = row.id, attempts = row.attempts + 1, "Notification sent.");
                return OutboxAttempt::Sent;
            }
            SendResult::Permanent { error } => return give_up(row, error, class),
            // A quota will not lift soon: move on if there is anywhere to move on to.
            SendResult::Quota { error, .. } if !row.fallback.is_empty() => {
                return give_up(row, error, class);
            }
            SendResult::Quota {
                error,
                retry_after_ms,
            }
            | SendResult::Retryable {
                error,
                retry_after_ms,
            } => (error, retry_after_ms),
        };
        if row.attempts + 1 >= MAX_ATTEMPTS {
            return give_up(
                row,
                format!("{error} (gave up after {MAX_ATTEMPTS} attempts)"),
                class,
            );
        }
        let wait = retry_wait_ms(row.attempts, hint);
        tracing::info!(channel = %row.channel, event = %row.event, id = row.id, class, error = %error, wait_ms = wait, "Notification will be retried.");
        OutboxAttempt::RetryAt {
            at: self.store.now() + wait,
            error,
            class,
        }
    }

    fn channel(&self, config: &Config, name: &str) -> Result<Arc<dyn Channel>, String> {
        let mut cache = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != config.version {
            *cache = (config.version.clone(), HashMap::new());
        }
        if let Some(ch) = cache.1.get(name) {
            return Ok(ch.clone());
        }
        let cfg = config
            .channels
            .get(name)
            .ok_or_else(|| format!("channel `{name}` is not configured"))?;
        let ch: Arc<dyn Channel> =
            Arc::from(build_channel(cfg, &self.http).map_err(|e| e.to_string())?);
        cache.1.insert(name.to_string(), ch.clone());
        Ok(ch)
    }
}

fn give_up(row: &OutboxRow, error: String, class: &'static str) -> OutboxAttempt {
    tracing::warn!(channel = %row.channel, event = %row.event, id = row.id, class, error = %error, next = row.fallback.first().map_or("none", String::as_str), "Notification failed.");
    OutboxAttempt::Failed {
        error,
        class,
        fallback: fallback_drafts(row),
    }
}

/// The next channel of the row's fallback chain, carrying the rest of the chain along. The
/// store enqueues it only if the alert's other rows failed too.
fn fallback_drafts(row: &OutboxRow) -> Vec<OutboxDraft> {
    let Some((next, rest)) = row.fallback.split_first() else {
        return Vec::new();
    };
    vec![OutboxDraft {
        event: row.event,
        channel: next.clone(),
        fallback: rest.to_vec(),
        title: row.title.clone(),
        text: row.text.clone(),
        order_id: row.order_id.clone(),
        group: row.group,
        vars: row.vars.clone(),
        quiet: row.quiet.clone(),
        problem: row.problem.clone(),
    }]
}

/// The channel's hint when it gave one (never less, up to 10 % more so a burst of rows that
/// got the same hint does not return in step); otherwise [`backoff_ms`].
pub fn retry_wait_ms(attempts: u32, hint_ms: Option<u64>) -> u64 {
    match hint_ms {
        Some(ms) => ms + rand::rng().random_range(0..=ms / 10),
        None => backoff_ms(attempts),
    }
}

/// Exponential backoff with "equal jitter": 2 s, 4 s, 8 s … capped at 5 min, each drawn from
/// the upper half of its step so a retry never comes immediately.
pub fn backoff_ms(attempts: u32) -> u64 {
    let step = BACKOFF_BASE_MS
        .saturating_mul(1u64 << attempts.min(20))
        .min(BACKOFF_CAP_MS);
    step / 2 + rand::rng().random_range(0..=step / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempts in 0..12 {
            let step = (BACKOFF_BASE_MS << attempts).min(BACKOFF_CAP_MS);
            let w = backoff_ms(attempts);
            assert!(w >= step / 2 && w <= step, "attempt {attempts}: {w}");
        }
        let w = retry_wait_ms(0, Some(65_000));
        assert!((65_000..=71_500).contains(&w));
    }
}
