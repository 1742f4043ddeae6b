//! Drains the outbox: sends each due notification through its channel, records the outcome,
//! retries with exponential backoff and jitter, and falls back to the next channel on a
//! permanent failure. Rows are only ever marked sent after the channel accepted them, so a
//! crash re-sends at most the notification that was in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Channel, Notification, SendResult, build_channel};
use crate::config::ConfigHandle;
use crate::store::{OutboxAttempt, OutboxDraft, OutboxRow, Store, StoreError};

/// A notification that keeps failing is given up (and falls back) after this many attempts.
pub const MAX_ATTEMPTS: u32 = 8;
const BATCH: usize = 64;
/// Upper bound on one sleep, so rows written by another process (the CLI) are picked up.
const MAX_IDLE: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    store: Store,
    config: ConfigHandle,
    http: reqwest::Client,
    wake: Arc<Notify>,
    channels: Mutex<(String, HashMap<String, Arc<dyn Channel>>)>,
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
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.drain_due().await {
                tracing::error!(error = %e, "Outbox dispatch failed.");
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

    /// Send everything due now; returns how many rows were attempted.
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
        let result = match self.channel(&row.channel) {
            Ok(ch) => ch.send(&notification(row)).await,
            Err(e) => SendResult::Permanent { error: e },
        };
        let now = self.store.now();
        match result {
            SendResult::Accepted => OutboxAttempt::Sent,
            SendResult::Retryable { error, .. } if row.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(channel = %row.channel, event = %row.event, error = %error, "Notification given up after retries.");
                OutboxAttempt::Failed {
                    error,
                    fallback: fallback_drafts(row),
                }
            }
            SendResult::Retryable {
                error,
                retry_after_ms,
            } => {
                let wait = retry_after_ms.unwrap_or_else(|| backoff_ms(row.attempts));
                tracing::info!(channel = %row.channel, event = %row.event, error = %error, wait_ms = wait, "Notification will be retried.");
                OutboxAttempt::RetryAt {
                    at: now + wait,
                    error,
                }
            }
            SendResult::Permanent { error } => {
                tracing::warn!(channel = %row.channel, event = %row.event, error = %error, "Notification failed permanently.");
                OutboxAttempt::Failed {
                    error,
                    fallback: fallback_drafts(row),
                }
            }
        }
    }

    fn channel(&self, name: &str) -> Result<Arc<dyn Channel>, String> {
        let config = self.config.load();
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
        let ch: Arc<dyn Channel> = Arc::from(build_channel(cfg, &self.http)?);
        cache.1.insert(name.to_string(), ch.clone());
        Ok(ch)
    }
}

fn notification(row: &OutboxRow) -> Notification {
    Notification {
        id: row.id,
        event: row.event,
        title: row.title.clone(),
        text: row.text.clone(),
        order_id: row.order_id.clone(),
    }
}

/// The next channel of the row's fallback chain, carrying the rest of the chain along.
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
    }]
}

/// 5 s, 10 s, 20 s … capped at 30 min, with ±20 % jitter so many alerts do not retry in step.
pub fn backoff_ms(attempts: u32) -> u64 {
    let base = 5_000u64
        .saturating_mul(1u64 << attempts.min(20))
        .min(30 * 60 * 1000);
    let jitter = rand::rng().random_range(0.8..1.2);
    (base as f64 * jitter) as u64
}
