//! Card keys, one row each: `available → reserved(order) → delivered(order)`, `revoked` on a
//! completed refund, and back to `available` only when the send provably did not happen.
//!
//! `card_keys_available` indexes the available rows in import order, so reserving N keys is a
//! range read and N moves inside the caller's transaction: all units or none.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sha2::{Digest, Sha256};

use super::records::*;
use super::{
    CARD_FINGERPRINTS, CARDS, CARDS_AVAILABLE, LEDGER, Result, STOCK_LOG, Store, StoreError,
    decode, encode_row, get_json, next_id,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub added: u64,
    /// Blank lines are ignored; these are keys already in the pool or repeated in the file.
    pub skipped_duplicates: u64,
}

/// Counts per state for one pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolCounts {
    pub by_state: BTreeMap<CardState, u64>,
    pub reusable: u64,
}

impl PoolCounts {
    pub fn get(&self, s: CardState) -> u64 {
        self.by_state.get(&s).copied().unwrap_or(0)
    }
}

fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn card_table_name() -> &'static str {
    "card_keys"
}

impl Store {
    /// Import keys (one per line) into `pool`, skipping blanks and duplicates.
    pub fn import_cards(
        &self,
        pool: &str,
        text: &str,
        reusable: bool,
        operator: &str,
    ) -> Result<ImportReport> {
        let now = self.now();
        self.write(|tx| {
            let mut report = ImportReport::default();
            {
                let mut cards = tx.open_table(CARDS)?;
                let mut avail = tx.open_table(CARDS_AVAILABLE)?;
                let mut fps = tx.open_table(CARD_FINGERPRINTS)?;
                for line in text.lines() {
                    let secret = line.trim();
                    if secret.is_empty() {
                        continue;
                    }
                    let fp = fingerprint(secret);
                    if fps.get((pool, fp.as_str()))?.is_some() {
                        report.skipped_duplicates += 1;
                        continue;
                    }
                    let id = next_id(tx, "card_key")?;
                    let row = CardRow {
                        secret: secret.to_string(),
                        state: CardState::Available,
                        order_id: None,
                        reusable,
                        imported_at: now,
                        updated_at: now,
                    };
                    cards.insert((pool, id), encode_row(&row).as_slice())?;
                    avail.insert((pool, id), ())?;
                    fps.insert((pool, fp.as_str()), id)?;
                    report.added += 1;
                }
            }
            let remaining = available_count(tx, pool)?;
            log_stock(
                tx,
                &pool_subject(pool),
                StockAction::Restock,
                report.added as i64,
                remaining as i64,
                None,
                now,
            )?;
            super::audit::append(
                tx,
                now,
                operator,
                "cards.import",
                &format!(
                    "pool {pool}: {} added, {} duplicates skipped",
                    report.added, report.skipped_duplicates
                ),
            )?;
            Ok(report)
        })
    }

    /// Counts per pool and state; never the keys.
    pub fn card_counts(&self) -> Result<BTreeMap<String, PoolCounts>> {
        self.read(|tx| {
            let mut out: BTreeMap<String, PoolCounts> = BTreeMap::new();
            for row in tx.open_table(CARDS)?.iter()? {
                let (k, v) = row?;
                let (pool, _) = k.value();
                let card: CardRow = decode(card_table_name(), v.value())?;
                let entry = out.entry(pool.to_string()).or_default();
                *entry.by_state.entry(card.state).or_default() += 1;
                entry.reusable += u64::from(card.reusable);
            }
            Ok(out)
        })
    }

    /// Number of keys that can still be reserved from `pool`.
    pub fn available_cards(&self, pool: &str) -> Result<u64> {
        self.read(|tx| {
            let t = tx.open_table(CARDS_AVAILABLE)?;
            Ok(t.range((pool, 0)..=(pool, u64::MAX))?.count() as u64)
        })
    }

    /// Audit of key ownership, empty when sound: every key that is not `available` names its
    /// order and that order's delivery holds it; every `available` key names no order and is
    /// in the availability index (and only those are). Tests and the chaos run call this after
    /// crashes and resolutions.
    pub fn card_owner_problems(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let ledger = tx.open_table(LEDGER)?;
            let avail = tx.open_table(CARDS_AVAILABLE)?;
            let mut problems = Vec::new();
            for row in tx.open_table(CARDS)?.iter()? {
                let (k, v) = row?;
                let (pool, id) = k.value();
                let card: CardRow = decode(card_table_name(), v.value())?;
                let indexed = avail.get((pool, id))?.is_some();
                if let Some(p) = ownership_problem(&ledger, pool, id, &card, indexed)? {
                    problems.push(p);
                }
            }
            let cards = tx.open_table(CARDS)?;
            for row in avail.iter()? {
                let key = row?.0;
                let (pool, id) = key.value();
                if cards.get((pool, id))?.is_none() {
                    problems.push(format!("{pool}#{id}: indexed as available but missing"));
                }
            }
            Ok(problems)
        })
    }

    pub(super) fn cards_masked(
        &self,
        tx: &ReadTransaction,
        pool: &str,
        ids: &[u64],
    ) -> Result<Vec<(u64, String, CardState)>> {
        let cards = tx.open_table(CARDS)?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = cards.get((pool, *id))? {
                let row: CardRow = decode(card_table_name(), v.value())?;
                out.push((*id, mask_secret(&row.secret), row.state));
            }
        }
        Ok(out)
    }
}

fn ownership_problem(
    ledger: &impl ReadableTable<&'static str, &'static [u8]>,
    pool: &str,
    id: u64,
    card: &CardRow,
    indexed: bool,
) -> Result<Option<String>> {
    let key = format!("{pool}#{id} ({})", card.state.as_str());
    if card.state == CardState::Available || card.reusable {
        return Ok(match (&card.order_id, indexed) {
            (Some(o), _) if !card.reusable => Some(format!("{key}: available yet owned by {o}")),
            (_, false) => Some(format!("{key}: not in the availability index")),
            _ => None,
        });
    }
    if indexed {
        return Ok(Some(format!("{key}: still in the availability index")));
    }
    let Some(owner) = &card.order_id else {
        return Ok(Some(format!("{key}: has no owner")));
    };
    let rec: Option<DeliveryRecord> = get_json(ledger, "delivery_ledger", owner)?;
    let held = rec.is_some_and(
        |r| matches!(&r.holding, Holding::Cards { pool: p, ids } if p == pool && ids.contains(&id)),
    );
    Ok((!held).then(|| format!("{key}: owner {owner}'s delivery does not hold it")))
}

fn pool_subject(pool: &str) -> String {
    format!("pool:{pool}")
}

fn available_count(tx: &WriteTransaction, pool: &str) -> Result<u64> {
    let t = tx.open_table(CARDS_AVAILABLE)?;
    Ok(t.range((pool, 0)..=(pool, u64::MAX))?.count() as u64)
}

/// Reserve `count` keys for an order. `Err(available)` when the pool is short (nothing is
/// changed). On success, also says whether the pool just crossed its low-stock threshold.
pub(super) fn take(
    tx: &WriteTransaction,
    pool: &str,
    count: u64,
    reusable_pool: bool,
    order_id: &str,
    low_stock_alert: u32,
    now: u64,
) -> Result<std::result::Result<(Holding, Option<i64>), u64>> {
    let before = available_count(tx, pool)?;
    // A reusable pool needs one key whatever the count; any other pool must hold all of them.
    // Checked before anything is read or allocated, so an absurd count costs nothing.
    let wanted = if reusable_pool { 1 } else { count };
    if before < wanted {
        return Ok(Err(before));
    }
    let ids: Vec<u64> = {
        let avail = tx.open_table(CARDS_AVAILABLE)?;
        let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
        let mut ids = Vec::with_capacity(wanted);
        for row in avail.range((pool, 0)..=(pool, u64::MAX))?.take(wanted) {
            ids.push(row?.0.value().1);
        }
        ids
    };
    if reusable_pool {
        // A reusable pool hands out the same key(s) again; one is enough for any quantity.
        return Ok(match ids.first() {
            Some(id) => Ok((
                Holding::Cards {
                    pool: pool.to_string(),
                    ids: vec![*id],
                },
                None,
            )),
            None => Err(0),
        });
    }
    move_cards(tx, pool, &ids, CardState::Reserved, order_id, now)?;
    let after = before - ids.len() as u64;
    log_stock(
        tx,
        &pool_subject(pool),
        StockAction::Reserve,
        -(ids.len() as i64),
        after as i64,
        Some(order_id),
        now,
    )?;
    let crossed = (before > u64::from(low_stock_alert) && after <= u64::from(low_stock_alert))
        .then_some(after as i64);
    Ok(Ok((
        Holding::Cards {
            pool: pool.to_string(),
            ids,
        },
        crossed,
    )))
}

pub(super) fn secrets(tx: &WriteTransaction, pool: &str, ids: &[u64]) -> Result<Vec<String>> {
    let cards = tx.open_table(CARDS)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let v = cards.get((pool, *id))?.ok_or_else(|| StoreError::Corrupt {
            table: "card_keys",
            detail: format!("reserved key {pool}/{id} is missing"),
        })?;
        out.push(decode::<CardRow>(card_table_name(), v.value())?.secret);
    }
    Ok(out)
}

pub(super) fn deliver(
    tx: &WriteTransaction,
    pool: &str,
    ids: &[u64],
    order_id: &str,
    now: u64,
) -> Result<()> {
    let n = move_cards(tx, pool, ids, CardState::Delivered, order_id, now)?;
    log_pool(tx, pool, (StockAction::Sold, -(n as i64)), order_id, now)
}

pub(super) fn release(
    tx: &WriteTransaction,
    pool: &str,
    ids: &[u64],
    order_id: &str,
    now: u64,
) -> Result<()> {
    let n = move_cards(tx, pool, ids, CardState::Available, order_id, now)?;
    log_pool(tx, pool, (StockAction::Release, n as i64), order_id, now)
}

/// One stock-log line for `pool`: what happened, by how many keys, and what is left.
fn log_pool(
    tx: &WriteTransaction,
    pool: &str,
    (action, change): (StockAction, i64),
    order_id: &str,
    now: u64,
) -> Result<()> {
    let remaining = available_count(tx, pool)? as i64;
    log_stock(
        tx,
        &pool_subject(pool),
        action,
        change,
        remaining,
        Some(order_id),
        now,
    )
}

pub(super) fn revoke(
    tx: &WriteTransaction,
    pool: &str,
    ids: &[u64],
    order_id: &str,
    now: u64,
) -> Result<()> {
    move_cards(tx, pool, ids, CardState::Revoked, order_id, now)?;
    Ok(())
}

/// Move `order_id`'s keys to `to`, keeping the availability index in step. A key owned by
/// another order is never touched, and every key that is not `available` names its order, so
/// each key always has an owner. Reusable keys never leave `available`. Returns how many rows
/// changed.
fn move_cards(
    tx: &WriteTransaction,
    pool: &str,
    ids: &[u64],
    to: CardState,
    order_id: &str,
    now: u64,
) -> Result<usize> {
    let mut cards = tx.open_table(CARDS)?;
    let mut avail = tx.open_table(CARDS_AVAILABLE)?;
    let mut changed = 0;
    for id in ids {
        let Some(v) = cards.get((pool, *id))? else {
            continue;
        };
        let mut row: CardRow = decode(card_table_name(), v.value())?;
        drop(v);
        let owned_elsewhere = row.order_id.as_deref().is_some_and(|o| o != order_id);
        if row.reusable || row.state == to || owned_elsewhere {
            continue;
        }
        row.state = to;
        row.order_id = (to != CardState::Available).then(|| order_id.to_string());
        row.updated_at = now;
        cards.insert((pool, *id), encode_row(&row).as_slice())?;
        if to == CardState::Available {
            avail.insert((pool, *id), ())?;
        } else {
            avail.remove((pool, *id))?;
        }
        changed += 1;
    }
    Ok(changed)
}

pub(super) fn log_stock(
    tx: &WriteTransaction,
    subject: &str,
    action: StockAction,
    change: i64,
    remaining: i64,
    order_id: Option<&str>,
    now: u64,
) -> Result<()> {
    let seq = next_id(tx, "stock_log")?;
    let entry = StockLogEntry {
        at: now,
        subject: subject.to_string(),
        action,
        quantity_change: change,
        remaining,
        order_id: order_id.map(str::to_string),
    };
    tx.open_table(STOCK_LOG)?
        .insert(seq, encode_row(&entry).as_slice())?;
    Ok(())
}
