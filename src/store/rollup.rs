//! Statistics rollups: per day (in the seller's zone), per account and per item, kept in the
//! same write transaction as the order or delivery change that moves them.
//!
//! The rule that keeps them exact: the rollups are the sum of
//! [`contributions`](super::rollup_facts::contributions) over every stored order with its
//! delivery record. Every write of an order row goes through [`put_order`] and every write of a
//! ledger row through [`ledger_saved`]; each applies "contribution now minus contribution
//! before" in the caller's transaction, reading the other row as it is in that transaction.
//! [`rebuild`] computes the same sum from scratch (`stats rebuild`), and a store that predates
//! the rollups, or whose zone changed, is rebuilt once when it is opened or re-zoned.
//!
//! A change touches one or two rows of a few dozen bytes, and as many per-day-per-account
//! total rows ([`ROLLUP_TOTALS`], the sum over items, kept the same way); the reads of the
//! statistics page and `/api/stats` are range scans of these rows and never read an order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::tz::TimeZone;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::records::{DeliveryRecord, OrderRecord, OutboxDraft};
use super::rollup_facts::{
    Counters, DEFAULT_ZONE, Day, Facts, contributions, has_outcome, same_outcome, zone,
};
use super::write_tx::WriteTx;
use super::{ORDERS, Result, Store, StoreError, decode, encode_row, get_json};

/// `(day yyyymmdd, account, item id)` → [`Counters`] bytes.
pub(super) const ROLLUP: TableDefinition<(u32, &str, &str), &[u8]> =
    TableDefinition::new("stats_rollup");
/// `(day yyyymmdd, account)` → the sum of that day's [`ROLLUP`] rows of the account over every
/// item: what periods, day charts and day or account tables read (a year of two accounts is
/// 730 rows however many items sold).
pub(super) const ROLLUP_TOTALS: TableDefinition<(u32, &str), &[u8]> =
    TableDefinition::new("stats_rollup_totals");
/// `(day, account, chat stage)` → replies the buyer got from that stage that day.
pub(super) const REPLY_ROLLUP: TableDefinition<(u32, &str, &str), u64> =
    TableDefinition::new("stats_replies");
/// Settings and durable markers of the statistics (`zone`, `built`, daily-report claims).
pub(super) const STATS_META: TableDefinition<&str, &[u8]> = TableDefinition::new("stats_meta");

const ZONE_KEY: &str = "zone";
const BUILT_KEY: &str = "built";
/// Set once [`ROLLUP_TOTALS`] is filled: a store built before the totals lacks it and is
/// rebuilt once when opened.
const TOTALS_KEY: &str = "totals";
/// The `item` of the rows [`Store::rollup_totals`] returns: never an item id.
pub const ALL_ITEMS: &str = "*";

pub(super) fn create_tables(tx: &WriteTx) -> Result<()> {
    tx.rollup()?;
    tx.rollup_totals()?;
    tx.reply_rollup()?;
    tx.stats_meta()?;
    Ok(())
}

/// True when the rollups exist and were built (a store made before them lacks them).
pub(super) fn ready(tx: &redb::ReadTransaction) -> Result<bool> {
    match tx.open_table(STATS_META) {
        Ok(meta) => Ok(meta.get(BUILT_KEY)?.is_some() && meta.get(TOTALS_KEY)?.is_some()),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Parsed zones by name: the write path reads the name from the store and must not parse the
/// zone database on every change.
static ZONES: Mutex<Vec<(String, TimeZone)>> = Mutex::new(Vec::new());

fn cached_zone(name: &str) -> Option<TimeZone> {
    let mut cache = ZONES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, z)) = cache.iter().find(|(n, _)| n == name) {
        return Some(z.clone());
    }
    let z = zone(name)?;
    cache.push((name.to_string(), z.clone()));
    Some(z)
}

fn zone_name(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<String> {
    Ok(meta
        .get(ZONE_KEY)?
        .and_then(|v| String::from_utf8(v.value().to_vec()).ok())
        .unwrap_or_else(|| DEFAULT_ZONE.to_string()))
}

/// The statistics zone as stored (the default until a seller names one).
fn zone_in(tx: &WriteTx) -> Result<TimeZone> {
    let name = zone_name(&*tx.stats_meta()?)?;
    cached_zone(&name).ok_or_else(|| StoreError::Corrupt {
        table: "stats_meta",
        detail: format!("unknown time zone {name}"),
    })
}

/// Write `order` and move the rollups by what changed, in the caller's transaction. `before`
/// is [`Facts::of_order`] of the row it replaces as the caller read it in this transaction
/// (`None`: there was none), so the replaced row is not decoded again (issue 15); test builds
/// decode it anyway and check the caller's word.
pub(super) fn put_order(tx: &WriteTx, order: &OrderRecord, before: Option<&Facts>) -> Result<()> {
    put_order_row(tx, order, &encode_row(order), before)
}

/// [`put_order`] with the order already encoded.
pub(super) fn put_order_row(
    tx: &WriteTx,
    order: &OrderRecord,
    bytes: &[u8],
    before: Option<&Facts>,
) -> Result<()> {
    let mut orders = tx.orders()?;
    let replaced = orders.insert(order.order_id.as_str(), bytes)?;
    // Straight through the codec: the decode counts of tests are the release build's.
    #[cfg(debug_assertions)]
    {
        let was = replaced
            .as_ref()
            .map(|v| super::codec::decode::<OrderRecord>(v.value()).map(|o| Facts::of_order(&o)));
        debug_assert!(
            match (&was, before) {
                (None, None) => true,
                (Some(Ok(was)), Some(said)) => was == said,
                _ => false,
            },
            "order {}: put_order was told {before:?} about the row it replaced",
            order.order_id
        );
    }
    drop(replaced);
    drop(orders);
    let new_part = Facts::of_order(order);
    if let Some(old) = before
        && old.same_order_part(&new_part)
    {
        return Ok(());
    }
    let ledger: Option<DeliveryRecord> =
        get_json(&*tx.ledger()?, "delivery_ledger", &order.order_id)?;
    let old = before.map(|f| f.clone().with_ledger(ledger.as_ref()));
    let new = new_part.with_ledger(ledger.as_ref());
    apply(tx, old.as_ref(), Some(&new))
}

/// Write a ledger row and move the rollups if its outcome changed.
///
/// A delivery's outcome for the statistics is the first "delivered" or "handed over" entry of
/// its history, and the history only ever grows: a row without such an entry had none before
/// either, so nothing moves and neither the replaced row nor the order is decoded. That is
/// most saves (every step before the last; issue 15: those decodes were a good part of a
/// request's CPU). Test builds decode the replaced row anyway and check the rule.
pub(super) fn save_ledger(tx: &WriteTx, rec: &DeliveryRecord) -> Result<()> {
    let mut ledger = tx.ledger()?;
    let old = ledger.insert(rec.order_id.as_str(), encode_row(rec).as_slice())?;
    if !has_outcome(rec) {
        // Straight through the codec: the decode counts of tests are the release build's.
        #[cfg(debug_assertions)]
        if let Some(old) = &old {
            let before = super::codec::decode::<DeliveryRecord>(old.value());
            debug_assert!(
                !before.is_ok_and(|b| has_outcome(&b)),
                "order {}: a ledger save lost its outcome (the history must only grow)",
                rec.order_id
            );
        }
        return Ok(());
    }
    let before: Option<DeliveryRecord> = old
        .map(|v| decode("delivery_ledger", v.value()))
        .transpose()?;
    drop(ledger);
    ledger_saved(tx, before.as_ref(), rec)
}

/// The facts before and after a ledger save differ only in the outcome, so the order is read
/// only when that moved.
fn ledger_saved(tx: &WriteTx, before: Option<&DeliveryRecord>, rec: &DeliveryRecord) -> Result<()> {
    if same_outcome(before, rec) {
        return Ok(());
    }
    let Some(order) = get_json::<OrderRecord>(&*tx.orders()?, "orders", &rec.order_id)? else {
        return Ok(());
    };
    let old = Facts::of(&order, before);
    let new = Facts::of(&order, Some(rec));
    apply(tx, Some(&old), Some(&new))
}

type Key = (Day, String, String);

fn add_facts(into: &mut BTreeMap<Key, Counters>, f: &Facts, zone: &TimeZone, sign: i64) {
    for (day, c) in contributions(f, zone) {
        let slot = into
            .entry((day, f.account.clone(), f.item.clone()))
            .or_default();
        if sign > 0 { slot.add(&c) } else { slot.sub(&c) }
    }
}

fn apply(tx: &WriteTx, old: Option<&Facts>, new: Option<&Facts>) -> Result<()> {
    let zone = zone_in(tx)?;
    let mut delta = BTreeMap::new();
    if let Some(f) = new {
        add_facts(&mut delta, f, &zone, 1);
    }
    if let Some(f) = old {
        add_facts(&mut delta, f, &zone, -1);
    }
    let mut table = tx.rollup()?;
    let mut totals = tx.rollup_totals()?;
    for ((day, account, item), d) in delta {
        if d.is_zero() {
            continue;
        }
        bump(&mut table, (day.0, account.as_str(), item.as_str()), &d)?;
        bump(&mut totals, (day.0, account.as_str()), &d)?;
    }
    Ok(())
}

/// Add `d` to the counters row at `key` (a row that reaches zero is removed).
fn bump<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<'_, K, &'static [u8]>,
    key: K::SelfType<'k>,
    d: &Counters,
) -> Result<()> {
    let mut row = table
        .get(&key)?
        .map(|v| Counters::from_bytes(v.value()))
        .unwrap_or_default();
    row.add(d);
    if row.is_zero() {
        table.remove(&key)?;
    } else {
        table.insert(&key, row.to_bytes().as_slice())?;
    }
    Ok(())
}

/// Count a reply that reached the buyer, in the caller's transaction (the chat store calls
/// this when a reply row becomes sent).
pub(super) fn count_reply(tx: &WriteTx, at: u64, account: &str, stage: &str) -> Result<()> {
    let day = Day::of(at, &zone_in(tx)?);
    let mut table = tx.reply_rollup()?;
    let n = table.get((day.0, account, stage))?.map_or(0, |v| v.value());
    table.insert((day.0, account, stage), n + 1)?;
    Ok(())
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    pub orders: u64,
    pub rows: u64,
}

/// Recompute every order rollup from the order and ledger rows, in the caller's transaction.
pub(super) fn rebuild(tx: &WriteTx) -> Result<RebuildReport> {
    let zone = zone_in(tx)?;
    let mut sums: BTreeMap<Key, Counters> = BTreeMap::new();
    let orders = tx.orders()?;
    let ledger = tx.ledger()?;
    let mut count = 0;
    for row in orders.iter()? {
        let (_, v) = row?;
        let order: OrderRecord = decode("orders", v.value())?;
        let rec: Option<DeliveryRecord> = get_json(&*ledger, "delivery_ledger", &order.order_id)?;
        add_facts(&mut sums, &Facts::of(&order, rec.as_ref()), &zone, 1);
        count += 1;
    }
    drop((orders, ledger));
    tx.delete_rollups()?;
    let mut table = tx.rollup()?;
    let mut totals = tx.rollup_totals()?;
    let mut rows = 0;
    for ((day, account, item), c) in sums {
        if !c.is_zero() {
            table.insert(
                (day.0, account.as_str(), item.as_str()),
                c.to_bytes().as_slice(),
            )?;
            bump(&mut totals, (day.0, account.as_str()), &c)?;
            rows += 1;
        }
    }
    mark_built(tx)?;
    Ok(RebuildReport {
        orders: count,
        rows,
    })
}

fn mark_built(tx: &WriteTx) -> Result<()> {
    let mut meta = tx.stats_meta()?;
    meta.insert(BUILT_KEY, &b"1"[..])?;
    meta.insert(TOTALS_KEY, &b"1"[..])?;
    Ok(())
}

/// One rollup row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    pub day: Day,
    pub account: String,
    pub item: String,
    pub counters: Counters,
}

impl Store {
    /// Recompute the statistics from the order records (`stats rebuild`).
    pub fn rebuild_rollups(&self) -> Result<RebuildReport> {
        self.write(rebuild)
    }

    /// The zone days are counted in (IANA name).
    pub fn stats_zone(&self) -> Result<String> {
        self.read(|tx| match tx.open_table(STATS_META) {
            Ok(meta) => zone_name(&meta),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(DEFAULT_ZONE.to_string()),
            Err(e) => Err(e.into()),
        })
    }

    /// Count days in `name` from now on; a change rebuilds the rollups in the same
    /// transaction, so no day is ever split between two zones. Returns whether it changed.
    pub fn set_stats_zone(&self, name: &str) -> Result<bool> {
        if cached_zone(name).is_none() {
            return Err(StoreError::Rejected(format!("unknown time zone {name}")));
        }
        if self.stats_zone()? == name {
            return Ok(false);
        }
        self.write(|tx| {
            tx.stats_meta()?.insert(ZONE_KEY, name.as_bytes())?;
            rebuild(tx)?;
            Ok(true)
        })
    }

    /// Rollup rows of days `from..=to`, optionally of one account, in key order.
    pub fn rollups(&self, from: Day, to: Day, account: Option<&str>) -> Result<Vec<RollupRow>> {
        self.read(|tx| {
            let table = tx.open_table(ROLLUP)?;
            let mut out = Vec::new();
            for row in table.range((from.0, "", "")..(to.0.saturating_add(1), "", ""))? {
                let (k, v) = row?;
                let (day, acc, item) = k.value();
                if account.is_some_and(|a| a != acc) {
                    continue;
                }
                out.push(RollupRow {
                    day: Day(day),
                    account: acc.to_string(),
                    item: item.to_string(),
                    counters: Counters::from_bytes(v.value()),
                });
            }
            Ok(out)
        })
    }

    /// The per-day totals over every item for days `from..=to` (one account, or all), as rows
    /// whose `item` is [`ALL_ITEMS`]: for sums, and for grouping by day or account.
    pub fn rollup_totals(
        &self,
        from: Day,
        to: Day,
        account: Option<&str>,
    ) -> Result<Vec<RollupRow>> {
        self.read(|tx| {
            let table = tx.open_table(ROLLUP_TOTALS)?;
            let mut out = Vec::new();
            for row in table.range((from.0, "")..(to.0.saturating_add(1), ""))? {
                let (k, v) = row?;
                let (day, acc) = k.value();
                if account.is_some_and(|a| a != acc) {
                    continue;
                }
                out.push(RollupRow {
                    day: Day(day),
                    account: acc.to_string(),
                    item: ALL_ITEMS.to_string(),
                    counters: Counters::from_bytes(v.value()),
                });
            }
            Ok(out)
        })
    }

    /// The rows of days `from..=to` (one account, or all) summed per item, in one pass that
    /// allocates once per item, not once per row.
    pub fn rollups_by_item(
        &self,
        from: Day,
        to: Day,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, Counters>> {
        self.read(|tx| {
            let table = tx.open_table(ROLLUP)?;
            let mut out: BTreeMap<String, Counters> = BTreeMap::new();
            for row in table.range((from.0, "", "")..(to.0.saturating_add(1), "", ""))? {
                let (k, v) = row?;
                let (_, acc, item) = k.value();
                if account.is_some_and(|a| a != acc) {
                    continue;
                }
                let c = Counters::from_bytes(v.value());
                match out.get_mut(item) {
                    Some(sum) => sum.add(&c),
                    None => {
                        out.insert(item.to_string(), c);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Replies by chat stage for days `from..=to`: `(day, account, stage, count)`.
    pub fn reply_rollups(&self, from: Day, to: Day) -> Result<Vec<(Day, String, String, u64)>> {
        self.read(|tx| {
            let table = tx.open_table(REPLY_ROLLUP)?;
            let mut out = Vec::new();
            for row in table.range((from.0, "", "")..(to.0.saturating_add(1), "", ""))? {
                let (k, v) = row?;
                let (day, acc, stage) = k.value();
                out.push((Day(day), acc.to_string(), stage.to_string(), v.value()));
            }
            Ok(out)
        })
    }

    /// Every order in key order, in one read transaction, until `f` returns false (the
    /// orders export streams from this).
    pub fn each_order(&self, mut f: impl FnMut(&OrderRecord) -> bool) -> Result<()> {
        self.read(|tx| {
            for row in tx.open_table(ORDERS)?.iter()? {
                let order: OrderRecord = decode("orders", row?.1.value())?;
                if !f(&order) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Claim the daily report of `day` and queue its notification rows in one transaction;
    /// false when that day's report was claimed before (the marker stays forever).
    pub fn claim_daily_report(&self, day: &str, drafts: &[OutboxDraft]) -> Result<bool> {
        let now = self.now();
        let key = format!("report:{day}");
        self.write(|tx| {
            let mut meta = tx.stats_meta()?;
            if meta.get(key.as_str())?.is_some() {
                return Ok(false);
            }
            meta.insert(key.as_str(), now.to_le_bytes().as_slice())?;
            drop(meta);
            super::outbox::enqueue(tx, drafts, now)?;
            Ok(true)
        })
    }

    /// Number of rollup rows (for the benchmark's write-cost figure).
    pub fn rollup_row_count(&self) -> Result<u64> {
        self.read(|tx| Ok(tx.open_table(ROLLUP)?.len()?))
    }

    /// Add `counters` to one rollup row directly: only for benchmarks that need a year of
    /// statistics without a year of orders.
    #[doc(hidden)]
    pub fn add_rollup_for_bench(&self, rows: &[(Day, String, String, Counters)]) -> Result<()> {
        self.write(|tx| {
            let mut table = tx.rollup()?;
            let mut totals = tx.rollup_totals()?;
            for (day, account, item, c) in rows {
                bump(&mut table, (day.0, account.as_str(), item.as_str()), c)?;
                bump(&mut totals, (day.0, account.as_str()), c)?;
            }
            drop((table, totals));
            mark_built(tx)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::codec::decodes;
    use super::*;
    use crate::event::{EventStatus, OrderEvent};
    use crate::store::orders::fixtures;
    use crate::store::{
        DeliveryState, JobDone, PartFinish, PartKind, PartPlan, PartResult, SendClaim, SendThen,
        StepResult,
    };

    fn store_with_keys() -> Store {
        let store = Store::in_memory(crate::clock::system()).unwrap();
        store
            .import_cards("keys", "K-1\nK-2\n", false, "test")
            .unwrap();
        store
    }

    fn counts(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
        pairs.iter().copied().collect()
    }

    /// A virtual order delivered with `send_then_confirm` (the four write requests of
    /// ARCHITECTURE.md "Durability"): each request decodes only the rows it works on, never
    /// the replaced ledger row or the order again for the statistics unless the delivery's
    /// outcome moved (issue 15), and the statistics kept this way equal a rebuild.
    #[test]
    fn a_delivery_decodes_each_row_only_where_it_is_needed_and_its_statistics_equal_a_rebuild() {
        let store = store_with_keys();
        let mut ev = OrderEvent::new("main", "O1", EventStatus::Paid);
        ev.item_id = Some("900000000001".into());
        ev.amount = Some("9.90".into());
        let (start, early) = (fixtures::start(), fixtures::one_key);
        decodes::take();
        store.ingest_reserving(&ev, &start, &early).unwrap();
        // The new order's facts need its ledger row; the reservation loads it; one key moves.
        let want = counts(&[("card_keys", 1), ("delivery_ledger", 2)]);
        assert_eq!(decodes::take(), want, "ingest with its reservation");

        let mut build = |_: &OrderRecord, keys: &[String]| {
            assert_eq!(keys, ["K-1"]);
            Ok(vec![PartPlan {
                kind: PartKind::Text,
                summary: "卡密：***".into(),
                fingerprint: "f".into(),
                url: None,
            }])
        };
        store
            .begin_send_with("O1", &SendClaim::default(), &mut build)
            .unwrap();
        let want = counts(&[("card_keys", 1), ("delivery_ledger", 1), ("orders", 1)]);
        assert_eq!(decodes::take(), want, "the send claim");

        let accepted = PartResult::Accepted {
            message_id: Some("m1".into()),
        };
        let finish = PartFinish {
            then: SendThen::Confirm(&|_: &OrderRecord, _: &[String]| None),
            masked: "卡密：***",
            alerts: &[],
            echo: None,
            read_back: None,
        };
        store.finish_part_with("O1", 0, &accepted, &finish).unwrap();
        // The key moves to delivered and is read again for the confirm's proof; the order
        // gets its ship content (its facts for the statistics are taken before the change,
        // not decoded again from the row it replaces).
        let want = counts(&[("card_keys", 2), ("delivery_ledger", 1), ("orders", 1)]);
        assert_eq!(
            decodes::take(),
            want,
            "the send result with the confirm claim"
        );

        let job = store.due_jobs(u64::MAX, 1).unwrap().remove(0);
        decodes::take();
        let done = JobDone {
            job_id: job.id,
            announce: Vec::new(),
        };
        let state = store
            .finish_step("O1", &StepResult::Confirmed, true, &[], Some(&done))
            .unwrap();
        assert_eq!(state, DeliveryState::Delivered);
        // Delivered is the outcome: the replaced ledger row and the order are read once each
        // for it, besides the order's move to 已发货 and the job's removal.
        let want = counts(&[("delivery_ledger", 2), ("jobs", 1), ("orders", 2)]);
        assert_eq!(
            decodes::take(),
            want,
            "the confirm result with the job's end"
        );

        let kept = store.rollups(Day(0), Day(99991231), None).unwrap();
        let one = kept
            .iter()
            .map(|r| r.counters)
            .fold(Counters::default(), |mut a, c| {
                a.add(&c);
                a
            });
        assert_eq!((one.created, one.paid, one.paid_fen), (1, 1, 990));
        assert_eq!((one.auto_delivered, one.latency_count), (1, 1));
        store.rebuild_rollups().unwrap();
        assert_eq!(store.rollups(Day(0), Day(99991231), None).unwrap(), kept);
    }
}
