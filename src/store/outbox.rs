//! The notification outbox: rows committed with the state change that caused them, drained by
//! the dispatcher, which records each attempt's outcome here.

use redb::{ReadableTable, WriteTransaction};

use super::records::*;
use super::{OUTBOX, OUTBOX_DUE, Result, Store, StoreError, decode, encode, next_id};

pub(crate) fn enqueue(tx: &WriteTransaction, drafts: &[OutboxDraft], now: u64) -> Result<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let mut outbox = tx.open_table(OUTBOX)?;
    let mut due = tx.open_table(OUTBOX_DUE)?;
    for d in drafts {
        let id = next_id(tx, "outbox")?;
        let row = OutboxRow {
            id,
            event: d.event,
            channel: d.channel.clone(),
            fallback: d.fallback.clone(),
            title: d.title.clone(),
            text: d.text.clone(),
            order_id: d.order_id.clone(),
            state: OutboxState::Pending,
            attempts: 0,
            next_at: now,
            last_error: None,
            created_at: now,
            sent_at: None,
        };
        outbox.insert(id, encode(&row).as_slice())?;
        due.insert((now, id), ())?;
    }
    Ok(())
}

/// How one delivery attempt of a notification ended.
#[derive(Debug, Clone)]
pub enum OutboxAttempt {
    Sent,
    RetryAt {
        at: u64,
        error: String,
    },
    /// Permanent failure; `fallback` rows are enqueued in the same transaction.
    Failed {
        error: String,
        fallback: Vec<OutboxDraft>,
    },
}

impl Store {
    /// Commit notifications that are not tied to another state change.
    pub fn enqueue_notifications(&self, drafts: &[OutboxDraft]) -> Result<()> {
        let now = self.now();
        self.write(|tx| enqueue(tx, drafts, now))
    }

    /// Notifications due now, earliest first.
    pub fn due_notifications(&self, now: u64, limit: usize) -> Result<Vec<OutboxRow>> {
        self.read(|tx| {
            let due = tx.open_table(OUTBOX_DUE)?;
            let outbox = tx.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for row in due.range((0, 0)..=(now, u64::MAX))?.take(limit) {
                let (_, id) = row?.0.value();
                if let Some(v) = outbox.get(id)? {
                    out.push(decode("outbox", v.value())?);
                }
            }
            Ok(out)
        })
    }

    pub fn next_notification_due(&self) -> Result<Option<u64>> {
        self.read(|tx| {
            Ok(tx
                .open_table(OUTBOX_DUE)?
                .first()?
                .map(|(k, _)| k.value().0))
        })
    }

    pub fn record_attempt(&self, id: u64, attempt: &OutboxAttempt) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let mut row: OutboxRow = {
                let outbox = tx.open_table(OUTBOX)?;
                let v = outbox
                    .get(id)?
                    .ok_or_else(|| StoreError::Rejected(format!("no notification {id}")))?;
                decode("outbox", v.value())?
            };
            tx.open_table(OUTBOX_DUE)?.remove((row.next_at, id))?;
            row.attempts += 1;
            match attempt {
                OutboxAttempt::Sent => {
                    row.state = OutboxState::Sent;
                    row.sent_at = Some(now);
                    row.last_error = None;
                }
                OutboxAttempt::RetryAt { at, error } => {
                    row.next_at = *at;
                    row.last_error = Some(error.clone());
                    tx.open_table(OUTBOX_DUE)?.insert((*at, id), ())?;
                }
                OutboxAttempt::Failed { error, fallback } => {
                    row.state = OutboxState::Failed;
                    row.last_error = Some(error.clone());
                    enqueue(tx, fallback, now)?;
                }
            }
            tx.open_table(OUTBOX)?.insert(id, encode(&row).as_slice())?;
            Ok(())
        })
    }

    /// All notifications, newest first (status page, tests).
    pub fn notifications(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(OUTBOX)?.iter()?.rev().take(limit) {
                out.push(decode("outbox", row?.1.value())?);
            }
            Ok(out)
        })
    }
}
