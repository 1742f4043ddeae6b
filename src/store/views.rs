//! Read-only views for the status page: one read transaction that summarises the shop, and
//! point lookups for one order.
//!
//! Nothing here writes, and no write path knows these views exist. The orders table is keyed by
//! order id, not by time, so "newest first" or "today" needs every row; [`Store::shop_view`] reads
//! each table once, decoding only the fields a page shows (a card key is skipped by the
//! parser, never even copied), and the status page caches the result (`status::snapshot`).
//! The queries on [`ShopView`] are then in-memory scans over compact rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::codec::Head;
use super::records::*;
use super::{
    CARDS, LEDGER, META, ORDER_JOBS, ORDERS, OUTBOX, OrderDetail, PoolCounts, Result, STOCK, Store,
    decode,
};
use crate::order::OrderStatus;
use crate::why::Why;

/// Most failing notifications a view keeps (newest first).
const OUTBOX_PROBLEMS: usize = 200;

/// One order as lists show it: the order row joined with its delivery-ledger state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    pub order_id: String,
    pub account: String,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub item_title: Option<String>,
    /// For the conversation link of an order that needs checking.
    #[serde(default)]
    pub buyer_id: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    pub quantity: u32,
    #[serde(default)]
    pub amount: Option<String>,
    pub status: OrderStatus,
    pub created_time: u64,
    #[serde(default)]
    pub payment_time: Option<u64>,
    #[serde(default)]
    pub ship_time: Option<u64>,
    #[serde(default)]
    pub ship_method: Option<ShipMethod>,
    /// Filled from the ledger, not the order row.
    #[serde(default)]
    pub delivery: Option<DeliveryState>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why the delivery waits for the seller or a retry (filled from the ledger).
    #[serde(default)]
    pub why: Option<Why>,
    #[serde(default)]
    pub due_ms: Option<u64>,
    /// A pipeline job is waiting for this order (a delay or a retry).
    #[serde(default)]
    pub has_job: bool,
}

impl OrderRow {
    /// The seller must act: paid, and the delivery was handed over (by rule, after an unknown
    /// send, or after the retries ran out).
    pub fn needs_manual_ship(&self) -> bool {
        self.status == OrderStatus::PendingShip
            && match self.delivery {
                Some(DeliveryState::Manual | DeliveryState::NeedsHuman) => true,
                Some(DeliveryState::FailedSafe) => !self.has_job,
                _ => false,
            }
    }

    /// Deadline to ship by, counted from payment.
    pub fn ship_deadline(&self) -> Option<u64> {
        self.payment_time.map(crate::order::ship_deadline)
    }

    /// The amount in fen (1/100 yuan), if it parses.
    pub fn amount_fen(&self) -> Option<i64> {
        self.amount.as_deref().and_then(parse_fen)
    }
}

/// The fields of an [`OrderRecord`] a list needs, in the record's order up to the last one
/// (positional rows, `codec::Head`); the others are skipped while parsing.
#[derive(Deserialize)]
#[allow(dead_code)] // the skipped fields hold their place only
struct OrderHead {
    order_id: String,
    account: String,
    #[serde(default)]
    chat_id: IgnoredAny,
    #[serde(default)]
    buyer_id: Option<String>,
    #[serde(default)]
    buyer_nick: IgnoredAny,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    item_title: Option<String>,
    #[serde(default)]
    sku: Option<String>,
    quantity: u32,
    #[serde(default)]
    amount: Option<String>,
    #[serde(with = "super::coded")]
    status: OrderStatus,
    #[serde(default)]
    payment_time: Option<u64>,
    #[serde(default)]
    ship_time: Option<u64>,
    #[serde(default, with = "super::coded::opt")]
    ship_method: Option<ShipMethod>,
    #[serde(default)]
    logistics_company: IgnoredAny,
    #[serde(default)]
    tracking_number: IgnoredAny,
    #[serde(default)]
    ship_content: IgnoredAny,
    #[serde(default)]
    paid_at: IgnoredAny,
    #[serde(default)]
    refunded_at: IgnoredAny,
    #[serde(default)]
    closed_at: IgnoredAny,
    created_time: u64,
}

impl From<OrderHead> for OrderRow {
    fn from(o: OrderHead) -> Self {
        Self {
            order_id: o.order_id,
            account: o.account,
            item_id: o.item_id,
            item_title: o.item_title,
            buyer_id: o.buyer_id,
            sku: o.sku,
            quantity: o.quantity,
            amount: o.amount,
            status: o.status,
            created_time: o.created_time,
            payment_time: o.payment_time,
            ship_time: o.ship_time,
            ship_method: o.ship_method,
            delivery: None,
            attempts: 0,
            last_error: None,
            why: None,
            due_ms: None,
            has_job: false,
        }
    }
}

/// The ledger fields a list needs, in the record's order up to `why`; the history and the
/// other fields are skipped while parsing.
#[derive(Deserialize)]
#[allow(dead_code)] // the skipped fields hold their place only
struct LedgerLite {
    #[serde(default)]
    order_id: IgnoredAny,
    #[serde(default)]
    account: IgnoredAny,
    #[serde(with = "super::coded")]
    state: DeliveryState,
    #[serde(default)]
    mode: IgnoredAny,
    #[serde(default)]
    item_id: IgnoredAny,
    #[serde(default)]
    holding: IgnoredAny,
    #[serde(default)]
    due_ms: Option<u64>,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    sent_at: IgnoredAny,
    #[serde(default)]
    confirmed_at: IgnoredAny,
    #[serde(default)]
    message_id: IgnoredAny,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    why: Option<Why>,
}

/// A card row without its secret: the parser skips the key without allocating it.
#[derive(Deserialize)]
#[allow(dead_code)] // the skipped fields hold their place only
struct CardLite {
    #[serde(default)]
    secret: IgnoredAny,
    #[serde(with = "super::coded")]
    state: CardState,
    #[serde(default)]
    order_id: IgnoredAny,
    #[serde(default)]
    reusable: bool,
}

#[derive(Deserialize)]
struct OutboxLite {
    id: u64,
    state: OutboxState,
    #[serde(default)]
    order_id: Option<String>,
    attempts: u32,
}

/// Notification rows per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    /// Pending rows that already failed at least once (being retried).
    pub retrying: u64,
}

/// Per-view aggregates computed once (lazily) instead of on every request.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Positions in `orders` of the manual queue, oldest payment first.
    manual: Vec<usize>,
    /// Positions in `orders` per delivery state, newest first.
    by_delivery: HashMap<&'static str, Vec<usize>>,
    /// Positions in `orders` per order status, newest first.
    by_status: HashMap<&'static str, Vec<usize>>,
}

/// The whole shop, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ShopView {
    /// Newest first (by creation time, then order id).
    pub orders: Vec<OrderRow>,
    pub pools: BTreeMap<String, PoolCounts>,
    pub stock: BTreeMap<String, StockRow>,
    pub pending_jobs: u64,
    pub outbox: OutboxCounts,
    /// Failed and retrying notifications, newest first.
    pub outbox_problems: Vec<OutboxRow>,
    /// Outbox ids per order, for the order detail without a scan.
    pub outbox_by_order: HashMap<String, Vec<u64>>,
    index: OnceLock<Index>,
    /// The last [`ShopView::day`] answer: a view never changes, so neither does its day.
    day_memo: OnceLock<((u64, u64), DayCounts)>,
}

/// Filter for the orders list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub account: Option<String>,
    /// Matches the item id exactly.
    pub item: Option<String>,
}

impl OrderFilter {
    pub fn matches(&self, o: &OrderRow) -> bool {
        self.status.is_none_or(|s| s == o.status)
            && self.account.as_ref().is_none_or(|a| *a == o.account)
            && self
                .item
                .as_ref()
                .is_none_or(|i| o.item_id.as_ref() == Some(i))
    }
}

/// Counts for one day `[from, to)` (unix ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayCounts {
    /// Orders first seen that day.
    pub orders: u64,
    pub paid: u64,
    pub shipped: u64,
    /// Automatic deliveries of orders paid that day that finished, and that failed or need a
    /// human; pending ones count in neither.
    pub auto_delivered: u64,
    pub auto_failed: u64,
    /// Sum of the amounts of orders paid that day, minus closed and refunded ones, in fen.
    pub revenue_fen: i64,
}

impl DayCounts {
    /// Share of finished automatic deliveries that succeeded, 0..=1; `None` with none finished.
    pub fn auto_success_rate(&self) -> Option<f64> {
        let done = self.auto_delivered + self.auto_failed;
        (done > 0).then(|| self.auto_delivered as f64 / done as f64)
    }
}

impl ShopView {
    /// Orders matching `filter`, newest first: the page `[offset, offset+limit)` and the total.
    pub fn orders_page(
        &self,
        filter: &OrderFilter,
        offset: usize,
        limit: usize,
    ) -> (Vec<&OrderRow>, usize) {
        if *filter == OrderFilter::default() {
            let end = offset.saturating_add(limit).min(self.orders.len());
            let page = self.orders.get(offset..end).unwrap_or_default();
            return (page.iter().collect(), self.orders.len());
        }
        // A status filter walks that status's rows only (a few percent of a busy shop).
        let candidates: Box<dyn Iterator<Item = &OrderRow>> = match filter.status {
            Some(s) => Box::new(
                self.index()
                    .by_status
                    .get(s.as_str())
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.orders[i]),
            ),
            None => Box::new(self.orders.iter()),
        };
        let mut total = 0;
        let mut page = Vec::with_capacity(limit.min(256));
        for o in candidates.filter(|o| filter.matches(o)) {
            if total >= offset && page.len() < limit {
                page.push(o);
            }
            total += 1;
        }
        (page, total)
    }

    /// Orders waiting for the seller to ship, oldest payment first.
    pub fn manual_queue(&self) -> Vec<&OrderRow> {
        self.index()
            .manual
            .iter()
            .map(|&i| &self.orders[i])
            .collect()
    }

    /// Deliveries in `state`, newest first.
    pub fn deliveries_in(&self, state: DeliveryState) -> Vec<&OrderRow> {
        self.index()
            .by_delivery
            .get(state.as_str())
            .map(|ix| ix.iter().map(|&i| &self.orders[i]).collect())
            .unwrap_or_default()
    }

    /// Counts for the window `[from, to)`.
    pub fn day(&self, from: u64, to: u64) -> DayCounts {
        if let Some((window, counts)) = self.day_memo.get()
            && *window == (from, to)
        {
            return counts.clone();
        }
        let counts = day_counts(&self.orders, from, to);
        let _ = self.day_memo.set(((from, to), counts.clone()));
        counts
    }

    pub fn count_by_status(&self) -> BTreeMap<&'static str, u64> {
        self.index()
            .by_status
            .iter()
            .map(|(s, ix)| (*s, ix.len() as u64))
            .collect()
    }

    pub fn count_by_delivery(&self) -> BTreeMap<&'static str, u64> {
        self.index()
            .by_delivery
            .iter()
            .map(|(s, ix)| (*s, ix.len() as u64))
            .collect()
    }

    /// Build the per-view aggregates now (off the async runtime) rather than on first use.
    pub fn prepare(&self) {
        self.index();
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| build_index(&self.orders))
    }
}

fn build_index(orders: &[OrderRow]) -> Index {
    let mut ix = Index::default();
    for (i, o) in orders.iter().enumerate() {
        ix.by_status.entry(o.status.as_str()).or_default().push(i);
        if let Some(d) = o.delivery {
            ix.by_delivery.entry(d.as_str()).or_default().push(i);
        }
        if o.needs_manual_ship() {
            ix.manual.push(i);
        }
    }
    ix.manual.sort_by_key(|&i| {
        let o = &orders[i];
        (o.payment_time.unwrap_or(o.created_time), o.created_time)
    });
    ix
}

fn day_counts(orders: &[OrderRow], from: u64, to: u64) -> DayCounts {
    let within = |t: Option<u64>| t.is_some_and(|t| t >= from && t < to);
    let mut c = DayCounts::default();
    // Payments and shipments of older orders fall on this day too, so every row is read.
    for o in orders {
        c.orders += u64::from(within(Some(o.created_time)));
        c.shipped += u64::from(within(o.ship_time));
        if !within(o.payment_time) {
            continue;
        }
        c.paid += 1;
        match o.delivery {
            Some(DeliveryState::Delivered) => c.auto_delivered += 1,
            Some(DeliveryState::NeedsHuman) => c.auto_failed += 1,
            Some(DeliveryState::FailedSafe) if !o.has_job => c.auto_failed += 1,
            _ => {}
        }
        if !matches!(
            o.status,
            OrderStatus::Closed | OrderStatus::Refunding | OrderStatus::Refunded
        ) {
            c.revenue_fen += o.amount_fen().unwrap_or(0);
        }
    }
    c
}

/// Cheap fingerprint of the store's write activity: the id counters every table family bumps.
/// Equal fingerprints mean no order status, job, notification, card or stock change happened
/// in between (ledger-only steps may still have; callers bound staleness by age too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeMark([u64; 6]);

const MARK_COUNTERS: [&str; 6] = [
    "order_status_log",
    "job",
    "outbox",
    "card_key",
    "stock_log",
    "audit",
];

impl Store {
    /// The whole shop for the status page, in one read transaction.
    pub fn shop_view(&self) -> Result<ShopView> {
        self.read(|tx| {
            let mut v = ShopView {
                orders: scan_orders(&tx)?,
                pools: scan_pools(&tx)?,
                stock: scan_stock(&tx)?,
                pending_jobs: count_order_jobs(&tx)?,
                ..ShopView::default()
            };
            scan_outbox(&tx, &mut v)?;
            Ok(v)
        })
    }

    /// See [`ChangeMark`].
    pub fn change_mark(&self) -> Result<ChangeMark> {
        self.read(|tx| {
            let meta = tx.open_table(META)?;
            let mut mark = [0; 6];
            for (slot, name) in mark.iter_mut().zip(MARK_COUNTERS) {
                *slot = meta.get(name)?.map_or(0, |v| v.value());
            }
            Ok(ChangeMark(mark))
        })
    }

    /// One order with its status log, ledger, masked keys and the notifications with the given
    /// outbox ids (from [`ShopView::outbox_by_order`]), without scanning the outbox.
    pub fn order_view(&self, order_id: &str, outbox_ids: &[u64]) -> Result<Option<OrderDetail>> {
        self.read(|tx| {
            self.order_detail_in(tx, order_id, |outbox| {
                let mut notifications = Vec::with_capacity(outbox_ids.len());
                for id in outbox_ids {
                    if let Some(v) = outbox.get(*id)? {
                        notifications.push(decode("outbox", v.value())?);
                    }
                }
                Ok(notifications)
            })
        })
    }
}

/// Jobs of orders (the delay queue); the after-sale task jobs, whose keys start with a
/// control character no order id has, are not orders waiting.
fn count_order_jobs(tx: &ReadTransaction) -> Result<u64> {
    let mut n = 0;
    for row in tx.open_table(ORDER_JOBS)?.iter()? {
        if !row?.0.value().starts_with('\u{1}') {
            n += 1;
        }
    }
    Ok(n)
}

fn scan_orders(tx: &ReadTransaction) -> Result<Vec<OrderRow>> {
    let with_job: HashSet<String> = {
        let t = tx.open_table(ORDER_JOBS)?;
        let mut s = HashSet::new();
        for row in t.iter()? {
            s.insert(row?.0.value().to_string());
        }
        s
    };
    let orders = tx.open_table(ORDERS)?;
    let ledger = tx.open_table(LEDGER)?;
    // Both tables are keyed by order id, so one merge walk joins them without lookups.
    let mut ledger_rows = ledger.iter()?.peekable();
    let mut out = Vec::with_capacity(orders.len()? as usize);
    for row in orders.iter()? {
        let (k, v) = row?;
        let id = k.value();
        let Head(head): Head<OrderHead> = decode("orders", v.value())?;
        let mut o = OrderRow::from(head);
        while let Some(Ok((lk, _))) = ledger_rows.peek() {
            if lk.value() >= id {
                break;
            }
            ledger_rows.next();
        }
        if let Some(Ok((lk, lv))) = ledger_rows.peek()
            && lk.value() == id
        {
            let Head(l): Head<LedgerLite> = decode("delivery_ledger", lv.value())?;
            o.delivery = Some(l.state);
            o.attempts = l.attempts;
            o.last_error = l.last_error;
            o.why = l.why;
            o.due_ms = l.due_ms;
        }
        o.has_job = with_job.contains(id);
        out.push(o);
    }
    out.sort_by(|a, b| {
        b.created_time
            .cmp(&a.created_time)
            .then_with(|| b.order_id.cmp(&a.order_id))
    });
    Ok(out)
}

fn scan_pools(tx: &ReadTransaction) -> Result<BTreeMap<String, PoolCounts>> {
    let mut out: BTreeMap<String, PoolCounts> = BTreeMap::new();
    for row in tx.open_table(CARDS)?.iter()? {
        let (k, v) = row?;
        let Head(card): Head<CardLite> = decode("card_keys", v.value())?;
        let entry = out.entry(k.value().0.to_string()).or_default();
        *entry.by_state.entry(card.state).or_default() += 1;
        entry.reusable += u64::from(card.reusable);
    }
    Ok(out)
}

fn scan_stock(tx: &ReadTransaction) -> Result<BTreeMap<String, StockRow>> {
    let mut out = BTreeMap::new();
    for row in tx.open_table(STOCK)?.iter()? {
        let (k, v) = row?;
        out.insert(k.value().to_string(), decode("stock", v.value())?);
    }
    Ok(out)
}

fn scan_outbox(tx: &ReadTransaction, v: &mut ShopView) -> Result<()> {
    let table = tx.open_table(OUTBOX)?;
    let mut problem_ids = Vec::new();
    for row in table.iter()? {
        let (_, bytes) = row?;
        let n: OutboxLite = decode("outbox", bytes.value())?;
        match n.state {
            OutboxState::Sent => v.outbox.sent += 1,
            OutboxState::Failed => v.outbox.failed += 1,
            OutboxState::Pending => v.outbox.pending += 1,
        }
        let retrying = n.state == OutboxState::Pending && n.attempts > 0;
        v.outbox.retrying += u64::from(retrying);
        if retrying || n.state == OutboxState::Failed {
            problem_ids.push(n.id);
        }
        if let Some(order) = n.order_id {
            v.outbox_by_order.entry(order).or_default().push(n.id);
        }
    }
    for id in problem_ids.iter().rev().take(OUTBOX_PROBLEMS) {
        if let Some(row) = table.get(*id)? {
            let full: OutboxRow = decode("outbox", row.value())?;
            v.outbox_problems.push(full);
        }
    }
    Ok(())
}

/// `"12.5"`, `"¥12.50"`, `"12"` → fen. Anything else (or more than two decimals) is `None`:
/// revenue shown on the page must never be a guess.
pub fn parse_fen(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches(['¥', '￥']).trim();
    let (yuan, fen) = s.split_once('.').unwrap_or((s, ""));
    if yuan.is_empty() || fen.len() > 2 || !yuan.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fen.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fen = format!("{fen:0<2}");
    Some(yuan.parse::<i64>().ok()? * 100 + fen.parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::{encode, encode_row};
    use crate::store::codec_golden::{card, ledger, order};

    /// The views read the fields they show from full and sparse records, stored as arrays
    /// (schema 4, coded enums) or as maps (schema 2).
    #[test]
    fn views_read_their_fields_from_arrays_and_maps() {
        for full in [true, false] {
            let o = order(full);
            for bytes in [encode_row(&o), encode(&o)] {
                let Head(head): Head<OrderHead> = decode("orders", &bytes).unwrap();
                let row = OrderRow::from(head);
                assert_eq!(
                    (&row.order_id, &row.account, &row.buyer_id, &row.item_id),
                    (&o.order_id, &o.account, &o.buyer_id, &o.item_id)
                );
                assert_eq!(
                    (
                        &row.item_title,
                        &row.sku,
                        row.quantity,
                        &row.amount,
                        row.status
                    ),
                    (&o.item_title, &o.sku, o.quantity, &o.amount, o.status)
                );
                assert_eq!(
                    (
                        row.created_time,
                        row.payment_time,
                        row.ship_time,
                        row.ship_method
                    ),
                    (o.created_time, o.payment_time, o.ship_time, o.ship_method)
                );
            }
            let l = ledger(full);
            for bytes in [encode_row(&l), encode(&l)] {
                let Head(lite): Head<LedgerLite> = decode("delivery_ledger", &bytes).unwrap();
                assert_eq!(
                    (
                        lite.state,
                        lite.attempts,
                        &lite.last_error,
                        &lite.why,
                        lite.due_ms
                    ),
                    (l.state, l.attempts, &l.last_error, &l.why, l.due_ms)
                );
            }
            let c = card(full);
            for bytes in [encode_row(&c), encode(&c)] {
                let Head(lite): Head<CardLite> = decode("card_keys", &bytes).unwrap();
                assert_eq!((lite.state, lite.reusable), (c.state, c.reusable));
            }
        }
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_fen("12.5"), Some(1250));
        assert_eq!(parse_fen("¥0.07"), Some(7));
        assert_eq!(parse_fen("199"), Some(19900));
        assert_eq!(parse_fen("1.234"), None);
        assert_eq!(parse_fen("abc"), None);
        assert_eq!(parse_fen("-1"), None);
    }
}
