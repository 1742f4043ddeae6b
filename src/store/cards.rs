//! Card keys, one row each: `available → reserved(order) → delivered(order)`, `revoked` on a
//! completed refund, and back to `available` only when the send provably did not happen.
//!
//! `card_keys_available` indexes the available rows in import order, so reserving N keys is a
//! range read and N moves inside the caller's transaction: all units or none. How many keys a
//! pool has available is a counter in `meta` (`available:<pool>`), moved with every change of
//! the index, so a reservation or a delivery does not walk the pool to log what is left (with
//! 10 000 keys that walk was most of an order's CPU, issue 15). A missing counter (a store
//! from before it) is counted from the index once; a reservation never trusts it: it takes
//! the keys from the index and recounts when they fall short.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};
use sha2::{Digest, Sha256};

use super::records::*;
use super::write_tx::WriteTx;
use super::{
    CARDS, CARDS_AVAILABLE, LEDGER, Result, Store, StoreError, decode, encode_row, get_json,
    next_id,
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
            let mut added_to_index = 0;
            {
                let mut cards = tx.cards()?;
                let mut avail = tx.cards_available()?;
                let mut fps = tx.card_fingerprints()?;
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
                    if avail.insert((pool, id), ())?.is_none() {
                        added_to_index += 1;
                    }
                    fps.insert((pool, fp.as_str()), id)?;
                    report.added += 1;
                }
            }
            let remaining = adjust_available(tx, pool, added_to_index)?;
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

/// Keys available in `pool`: its counter, counted from the index (and kept) when missing.
fn available_count(tx: &WriteTx, pool: &str) -> Result<u64> {
    let key = counter_key(pool);
    let kept = tx.meta()?.get(key.as_str())?.map(|v| v.value());
    match kept {
        Some(n) => Ok(n),
        None => recount_available(tx, pool),
    }
}

/// Count `pool`'s available keys from the index and keep the count as its counter.
fn recount_available(tx: &WriteTx, pool: &str) -> Result<u64> {
    let n = {
        let t = tx.cards_available()?;
        t.range((pool, 0)..=(pool, u64::MAX))?.count() as u64
    };
    tx.meta()?.insert(counter_key(pool).as_str(), n)?;
    Ok(n)
}

/// Move `pool`'s counter by the `delta` index entries just written; returns the new count.
/// Without a counter yet, the index (which already has the change) is counted.
fn adjust_available(tx: &WriteTx, pool: &str, delta: i64) -> Result<u64> {
    let key = counter_key(pool);
    let mut meta = tx.meta()?;
    let kept = meta.get(key.as_str())?.map(|v| v.value());
    let Some(before) = kept else {
        drop(meta);
        return recount_available(tx, pool);
    };
    let after = before.saturating_add_signed(delta);
    if delta != 0 {
        meta.insert(key.as_str(), after)?;
    }
    Ok(after)
}

fn counter_key(pool: &str) -> String {
    format!("available:{pool}")
}

/// Reserve `count` keys for an order. `Err(available)` when the pool is short (nothing is
/// changed). On success, also says whether the pool just crossed its low-stock threshold.
pub(super) fn take(
    tx: &WriteTx,
    pool: &str,
    count: u64,
    reusable_pool: bool,
    order_id: &str,
    low_stock_alert: u32,
    now: u64,
) -> Result<std::result::Result<(Holding, Option<i64>), u64>> {
    let mut before = available_count(tx, pool)?;
    // A reusable pool needs one key whatever the count; any other pool must hold all of them.
    // Checked before anything is read or allocated, so an absurd count costs nothing. A short
    // answer is never given from the counter alone.
    let wanted = if reusable_pool { 1 } else { count };
    if before < wanted {
        before = recount_available(tx, pool)?;
        if before < wanted {
            return Ok(Err(before));
        }
    }
    let ids: Vec<u64> = {
        let avail = tx.cards_available()?;
        let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
        let mut ids = Vec::with_capacity(wanted);
        for row in avail.range((pool, 0)..=(pool, u64::MAX))?.take(wanted) {
            ids.push(row?.0.value().1);
        }
        ids
    };
    if (ids.len() as u64) < wanted {
        // The counter was off (a store written by an older version): the index is the truth.
        return Ok(Err(recount_available(tx, pool)?));
    }
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
    let (_, after) = move_cards(tx, pool, &ids, CardState::Reserved, order_id, now)?;
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

pub(super) fn secrets(tx: &WriteTx, pool: &str, ids: &[u64]) -> Result<Vec<String>> {
    let cards = tx.cards()?;
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
    tx: &WriteTx,
    pool: &str,
    ids: &[u64],
    order_id: &str,
    now: u64,
) -> Result<()> {
    let (n, remaining) = move_cards(tx, pool, ids, CardState::Delivered, order_id, now)?;
    log_pool(
        tx,
        pool,
        (StockAction::Sold, -(n as i64)),
        remaining,
        order_id,
        now,
    )
}

pub(super) fn release(
    tx: &WriteTx,
    pool: &str,
    ids: &[u64],
    order_id: &str,
    now: u64,
) -> Result<()> {
    let (n, remaining) = move_cards(tx, pool, ids, CardState::Available, order_id, now)?;
    log_pool(
        tx,
        pool,
        (StockAction::Release, n as i64),
        remaining,
        order_id,
        now,
    )
}

/// One stock-log line for `pool`: what happened, by how many keys, and what is left.
fn log_pool(
    tx: &WriteTx,
    pool: &str,
    (action, change): (StockAction, i64),
    remaining: u64,
    order_id: &str,
    now: u64,
) -> Result<()> {
    log_stock(
        tx,
        &pool_subject(pool),
        action,
        change,
        remaining as i64,
        Some(order_id),
        now,
    )
}

pub(super) fn revoke(
    tx: &WriteTx,
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
/// changed and how many keys the pool has available after the move (its counter, which the
/// move keeps in step, so callers need not read it again).
fn move_cards(
    tx: &WriteTx,
    pool: &str,
    ids: &[u64],
    to: CardState,
    order_id: &str,
    now: u64,
) -> Result<(usize, u64)> {
    let mut cards = tx.cards()?;
    let mut avail = tx.cards_available()?;
    let mut changed = 0;
    let mut indexed: i64 = 0;
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
            if avail.insert((pool, *id), ())?.is_none() {
                indexed += 1;
            }
        } else if avail.remove((pool, *id))?.is_some() {
            indexed -= 1;
        }
        changed += 1;
    }
    drop((cards, avail));
    let available = adjust_available(tx, pool, indexed)?;
    Ok((changed, available))
}

pub(super) fn log_stock(
    tx: &WriteTx,
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
    tx.stock_log()?.insert(seq, encode_row(&entry).as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(keys: usize) -> Store {
        let store = Store::in_memory(crate::clock::system()).unwrap();
        let text: String = (0..keys).map(|i| format!("K-{i}\n")).collect();
        store.import_cards("p", &text, false, "test").unwrap();
        store
    }

    fn counter(store: &Store) -> Option<u64> {
        store
            .read(|tx| {
                Ok(tx
                    .open_table(crate::store::META)?
                    .get("available:p")?
                    .map(|v| v.value()))
            })
            .unwrap()
    }

    fn set_counter(store: &Store, n: Option<u64>) {
        store
            .write(|tx| {
                let mut meta = tx.meta()?;
                match n {
                    Some(n) => meta.insert("available:p", n)?,
                    None => meta.remove("available:p")?,
                };
                Ok(())
            })
            .unwrap();
    }

    fn take_keys(store: &Store, order: &str, n: u64) -> std::result::Result<usize, u64> {
        store
            .write(|tx| {
                Ok(
                    take(tx, "p", n, false, order, 0, 1)?.map(|(holding, _)| match holding {
                        Holding::Cards { ids, .. } => ids.len(),
                        _ => 0,
                    }),
                )
            })
            .unwrap()
    }

    #[test]
    fn the_counter_follows_the_index_through_imports_reservations_and_releases() {
        let store = store_with(5);
        assert_eq!(counter(&store), Some(5));
        assert_eq!(take_keys(&store, "A", 2), Ok(2));
        assert_eq!(counter(&store), Some(3));
        assert_eq!(store.available_cards("p").unwrap(), 3, "the index agrees");
    }

    #[test]
    fn a_store_without_the_counter_counts_the_index_once() {
        let store = store_with(4);
        set_counter(&store, None);
        assert_eq!(take_keys(&store, "A", 1), Ok(1));
        assert_eq!(counter(&store), Some(3));
    }

    #[test]
    fn a_wrong_counter_never_makes_a_partial_or_a_false_short_reservation() {
        let store = store_with(3);
        // Too high: the index has only 3, so 4 is short (nothing taken) and the counter repaired.
        set_counter(&store, Some(10));
        assert_eq!(take_keys(&store, "A", 4), Err(3));
        assert_eq!(counter(&store), Some(3));
        assert_eq!(store.available_cards("p").unwrap(), 3);
        // Too low: 2 keys are there, so 2 are reserved.
        set_counter(&store, Some(0));
        assert_eq!(take_keys(&store, "B", 2), Ok(2));
        assert_eq!(counter(&store), Some(1));
    }
}
