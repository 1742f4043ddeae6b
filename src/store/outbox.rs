//! The notification outbox: rows committed with the state change that caused them, drained by
//! the dispatcher, which records each attempt's outcome here.
//!
//! Three small tables ride along with the rows, all written in the caller's transaction:
//! the quiet index (de-duplication and cool-down keys, per channel), the open problems (so a
//! "restored" message goes out once, to the channels that heard about the problem) and the
//! alert groups (so the fallback chain starts only when every channel of an alert failed).

use redb::{ReadableTable, TableDefinition};

use super::records::*;
use super::write_tx::WriteTx;
use super::{OUTBOX, OUTBOX_DUE, Result, Store, StoreError, decode, encode, next_id};

/// `(group, row id)`: the rows that announce one alert, fallback rows included.
pub(super) const OUTBOX_GROUPS: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("outbox_groups");
/// `key@channel` → `(quiet until, row that stands for the suppressed repeats)`.
pub(super) const NOTIFY_QUIET: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("notify_quiet");
/// `problem@channel` → when the problem was first announced there.
pub(super) const NOTIFY_PROBLEMS: TableDefinition<&str, u64> =
    TableDefinition::new("notify_problems");

pub(super) fn enqueue(tx: &WriteTx, drafts: &[OutboxDraft], now: u64) -> Result<()> {
    for d in drafts {
        if !admit(tx, d, now)? {
            continue;
        }
        insert_row(tx, d, now)?;
    }
    Ok(())
}

/// The cool-down key of an ongoing problem (see [`ProblemMark`]).
pub fn problem_quiet_key(problem: &str) -> String {
    format!("problem:{problem}")
}

fn scoped(key: &str, channel: &str) -> String {
    format!("{key}@{channel}")
}

/// Whether a draft goes out: a recovery only for a problem that is open on its channel, any
/// draft only if its quiet key is not cooling down (a repeat bumps the standing row instead).
fn admit(tx: &WriteTx, d: &OutboxDraft, now: u64) -> Result<bool> {
    if let Some(ProblemMark::Clears(problem)) = &d.problem {
        let opened = tx
            .notify_problems()?
            .remove(scoped(problem, &d.channel).as_str())?
            .is_some();
        if !opened {
            return Ok(false);
        }
        // The next occurrence is a new problem and must be heard at once.
        tx.notify_quiet()?
            .remove(scoped(&problem_quiet_key(problem), &d.channel).as_str())?;
    }
    let Some(q) = &d.quiet else { return Ok(true) };
    let standing = tx
        .notify_quiet()?
        .get(scoped(&q.key, &d.channel).as_str())?
        .map(|v| v.value());
    match standing {
        Some((until, row_id)) if until > now => {
            bump_repeats(tx, row_id)?;
            Ok(false)
        }
        _ => Ok(true),
    }
}

fn bump_repeats(tx: &WriteTx, row_id: u64) -> Result<()> {
    let mut outbox = tx.outbox()?;
    let row: Option<OutboxRow> = match outbox.get(row_id)? {
        Some(v) => Some(decode("outbox", v.value())?),
        None => None,
    };
    if let Some(mut row) = row {
        row.repeats += 1;
        outbox.insert(row_id, encode(&row).as_slice())?;
    }
    Ok(())
}

fn insert_row(tx: &WriteTx, d: &OutboxDraft, now: u64) -> Result<u64> {
    let id = next_id(tx, "outbox")?;
    let group = if d.group == 0 { id } else { d.group };
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
        group,
        vars: d.vars.clone(),
        repeats: 0,
        quiet: d.quiet.clone(),
        problem: d.problem.clone(),
        last_class: None,
    };
    tx.outbox()?.insert(id, encode(&row).as_slice())?;
    tx.outbox_due()?.insert((now, id), ())?;
    tx.outbox_groups()?.insert((group, id), ())?;
    if let Some(q) = &d.quiet {
        tx.notify_quiet()?.insert(
            scoped(&q.key, &d.channel).as_str(),
            (now.saturating_add(q.window_ms), id),
        )?;
    }
    if let Some(ProblemMark::Opens(problem)) = &d.problem {
        let key = scoped(problem, &d.channel);
        let mut problems = tx.notify_problems()?;
        if problems.get(key.as_str())?.is_none() {
            problems.insert(key.as_str(), now)?;
        }
    }
    Ok(id)
}

/// How one delivery attempt of a notification ended.
#[derive(Debug, Clone)]
pub enum OutboxAttempt {
    Sent,
    RetryAt {
        at: u64,
        error: String,
        class: &'static str,
    },
    /// Not attempted (the local rate limit is full): try again at `at`, no attempt counted.
    Postpone {
        at: u64,
    },
    /// Given up. `fallback` rows are enqueued in the same transaction, but only when no other
    /// row of the alert's group was sent or is still pending.
    Failed {
        error: String,
        class: &'static str,
        fallback: Vec<OutboxDraft>,
    },
}

/// Sent / failed / pending counts, for the status page and `notify` commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub pending: usize,
    pub sent: usize,
    pub failed: usize,
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
                let outbox = tx.outbox()?;
                let v = outbox
                    .get(id)?
                    .ok_or_else(|| StoreError::Rejected(format!("no notification {id}")))?;
                decode("outbox", v.value())?
            };
            if row.state != OutboxState::Pending {
                return Ok(()); // already settled (a second recorder lost the race)
            }
            tx.outbox_due()?.remove((row.next_at, id))?;
            apply_attempt(tx, &mut row, attempt, now)?;
            tx.outbox()?.insert(id, encode(&row).as_slice())?;
            if let OutboxAttempt::Failed { fallback, .. } = attempt
                && group_exhausted(tx, row.group)?
            {
                enqueue(tx, fallback, now)?;
            }
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

    /// Notifications in one state, newest first.
    pub fn notifications_in(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxRow>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(OUTBOX)?.iter()?.rev() {
                let n: OutboxRow = decode("outbox", row?.1.value())?;
                if n.state == state {
                    out.push(n);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    pub fn notification_counts(&self) -> Result<OutboxCounts> {
        self.read(|tx| {
            let mut c = OutboxCounts::default();
            for row in tx.open_table(OUTBOX)?.iter()? {
                let n: OutboxRow = decode("outbox", row?.1.value())?;
                match n.state {
                    OutboxState::Pending => c.pending += 1,
                    OutboxState::Sent => c.sent += 1,
                    OutboxState::Failed => c.failed += 1,
                }
            }
            Ok(c)
        })
    }

    /// Forget quiet keys whose window has passed, so the index does not grow forever.
    pub fn prune_notify_keys(&self) -> Result<usize> {
        let now = self.now();
        self.write(|tx| {
            let mut quiet = tx.notify_quiet()?;
            let expired: Vec<String> = quiet
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value().0 <= now)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for k in &expired {
                quiet.remove(k.as_str())?;
            }
            Ok(expired.len())
        })
    }

    /// Problems announced and not yet cleared, as `problem@channel`.
    pub fn open_problems(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let table = match tx.open_table(NOTIFY_PROBLEMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for r in table.iter()? {
                out.push(r?.0.value().to_string());
            }
            Ok(out)
        })
    }
}

fn apply_attempt(
    tx: &WriteTx,
    row: &mut OutboxRow,
    attempt: &OutboxAttempt,
    now: u64,
) -> Result<()> {
    match attempt {
        OutboxAttempt::Sent => {
            row.attempts += 1;
            row.state = OutboxState::Sent;
            row.sent_at = Some(now);
            row.last_error = None;
            row.last_class = None;
        }
        OutboxAttempt::RetryAt { at, error, class } => {
            row.attempts += 1;
            row.next_at = *at;
            row.last_error = Some(error.clone());
            row.last_class = Some(class.to_string());
            tx.outbox_due()?.insert((*at, row.id), ())?;
        }
        OutboxAttempt::Postpone { at } => {
            row.next_at = *at;
            tx.outbox_due()?.insert((*at, row.id), ())?;
        }
        OutboxAttempt::Failed { error, class, .. } => {
            row.attempts += 1;
            row.state = OutboxState::Failed;
            row.last_error = Some(error.clone());
            row.last_class = Some(class.to_string());
        }
    }
    Ok(())
}

/// True when every row of the group has failed (none sent, none still pending).
fn group_exhausted(tx: &WriteTx, group: u64) -> Result<bool> {
    let groups = tx.outbox_groups()?;
    let outbox = tx.outbox()?;
    for entry in groups.range((group, 0)..=(group, u64::MAX))? {
        let (_, id) = entry?.0.value();
        if let Some(v) = outbox.get(id)? {
            let r: OutboxRow = decode("outbox", v.value())?;
            if r.state != OutboxState::Failed {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
