//! Orders and their status log: ingest's transaction, the seller's manual shipment, queries.

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::jobs::NextRun;
use super::ledger::{ReserveOutcome, ReserveRequest};
use super::order_rows::{LogNote, append_log, stamp};
use super::records::*;
use super::rollup::put_order;
use super::rollup_facts::Facts;
use super::write_tx::WriteTx;
use super::{
    LEDGER, ORDER_LOG, ORDERS, OUTBOX, Result, Store, StoreError, closeout, decode, encode_row,
    get_json, jobs, ledger,
};
use crate::event::OrderEvent;
use crate::order::{Decision, OrderStatus, Work, decide};
use crate::why::Why;

/// What ingesting one event did.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOutcome {
    pub decision: Decision,
    /// Due time of a pipeline job this event scheduled, so the caller can wake the scheduler.
    pub scheduled: Option<u64>,
    /// The exact message was seen before (same source message id).
    pub repeat_message: bool,
}

/// Everything the CLI and status page show about one order.
#[derive(Debug, Clone)]
pub struct OrderDetail {
    pub order: OrderRecord,
    pub log: Vec<StatusLogEntry>,
    pub ledger: Option<DeliveryRecord>,
    /// (card id, masked key, state) of the keys this order holds or received.
    pub cards: Vec<(u64, String, CardState)>,
    pub notifications: Vec<OutboxRow>,
}

/// The stock-check stage's reservation, made by a paid order's ingest transaction instead of a
/// commit of its own ([`Store::ingest_reserving`]). Given the order as the event leaves it, the
/// request and the alerts for short and low stock, or `None` to leave it to the stage.
pub type EarlyReserve = dyn Fn(&OrderRecord) -> Option<Reservation<'static>> + Send + Sync;

/// What to hold for an order, as `Store::reserve` takes it: the request and the alerts for
/// short stock and for crossing the low-stock threshold.
pub struct Reservation<'a> {
    pub request: ReserveRequest,
    pub on_short: Box<dyn Fn(&Why) -> Vec<OutboxDraft> + Send + Sync + 'a>,
    pub low_stock: Box<dyn Fn(i64) -> Vec<OutboxDraft> + Send + Sync + 'a>,
}

impl Store {
    /// Apply one observed event: dedupe, state machine, status log, and the delivery work the
    /// transition implies, in one transaction.
    pub fn ingest(&self, ev: &OrderEvent, start: &NextRun) -> Result<IngestOutcome> {
        self.ingest_reserving(ev, start, &|_| None)
    }

    /// [`Store::ingest`], and for an order this event makes paid, the reservation `early`
    /// asks for in the same transaction (one durable point instead of two: nothing outside
    /// the store happens between them). Short stock hands the order over right here and
    /// schedules no job, as the stage would have.
    pub fn ingest_reserving(
        &self,
        ev: &OrderEvent,
        start: &NextRun,
        early: &EarlyReserve,
    ) -> Result<IngestOutcome> {
        self.wait(self.ingest_reserving_async(ev, start, early))
    }

    /// [`Store::ingest_reserving`] for async callers ([`Store::write_async`]).
    pub async fn ingest_reserving_async(
        &self,
        ev: &OrderEvent,
        start: &NextRun,
        early: &EarlyReserve,
    ) -> Result<IngestOutcome> {
        let now = self.now();
        self.write_async(|tx| {
            if let Some(msg) = &ev.source_msg_id {
                let key = format!("msg:{}:{msg}", ev.account);
                let mut seen = tx.seen()?;
                if seen.insert(key.as_str(), now)?.is_some() {
                    return Ok(IngestOutcome {
                        decision: Decision::Duplicate,
                        scheduled: None,
                        repeat_message: true,
                    });
                }
            }
            let existing: Option<OrderRecord> = get_json(&*tx.orders()?, "orders", &ev.order_id)?;
            let before = existing.as_ref().map(Facts::of_order);
            let decision = decide(
                existing.as_ref().map(|o| o.status),
                crate::order::OrderStatus::from_event(ev.status),
            );
            // A repeat that moves nothing and adds no field leaves the record as it was, so a
            // second replay of the same events does not even touch `updated_time`.
            let unchanged = existing.as_ref().map(encode_row);
            let mut order = existing.unwrap_or_else(|| new_order(ev, now));
            fill_missing(&mut order, ev);
            if !matches!(decision, Decision::Transition { .. })
                && unchanged.is_some_and(|before| before == encode_row(&order))
            {
                return Ok(IngestOutcome {
                    decision,
                    scheduled: None,
                    repeat_message: false,
                });
            }
            let mut scheduled = None;
            if let Decision::Transition { from, to, work } = decision {
                order.status = to;
                if to == OrderStatus::PendingShip && order.payment_time.is_none() {
                    order.payment_time = Some(if ev.seen_at > 0 { ev.seen_at } else { now });
                }
                stamp(&mut order, to, now);
                append_log(
                    tx,
                    &ev.order_id,
                    from,
                    to,
                    ActionType::System,
                    &format!("source:{}", ev.source),
                    LogNote::None,
                    now,
                )?;
                scheduled = apply_work(tx, &order, work, start, now)?;
            }
            order.updated_time = now;
            put_order(tx, &order, before.as_ref())?;
            if scheduled.is_some() && !reserve_early(tx, &order, early, now)? {
                scheduled = None;
            }
            Ok(IngestOutcome {
                decision,
                scheduled,
                repeat_message: false,
            })
        })
        .await
    }

    pub fn order(&self, order_id: &str) -> Result<Option<OrderRecord>> {
        self.read(|tx| get_json(&tx.open_table(ORDERS)?, "orders", order_id))
    }

    pub fn list_orders(&self, status: Option<OrderStatus>) -> Result<Vec<OrderRecord>> {
        self.read(|tx| {
            let table = tx.open_table(ORDERS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (_, v) = row?;
                let order: OrderRecord = decode("orders", v.value())?;
                if status.is_none_or(|s| s == order.status) {
                    out.push(order);
                }
            }
            out.sort_by_key(|o| std::cmp::Reverse(o.created_time));
            Ok(out)
        })
    }

    pub fn order_detail(&self, order_id: &str) -> Result<Option<OrderDetail>> {
        self.read(|tx| {
            self.order_detail_in(tx, order_id, |outbox| {
                let mut notifications = Vec::new();
                for row in outbox.iter()? {
                    let n: OutboxRow = decode("outbox", row?.1.value())?;
                    if n.order_id.as_deref() == Some(order_id) {
                        notifications.push(n);
                    }
                }
                Ok(notifications)
            })
        })
    }

    /// One order with its log, ledger and masked keys, read in `tx`; `notifications` picks its
    /// outbox rows (a scan here, known ids for the status page).
    pub(super) fn order_detail_in(
        &self,
        tx: &ReadTransaction,
        order_id: &str,
        notifications: impl FnOnce(&ReadOnlyTable<u64, &'static [u8]>) -> Result<Vec<OutboxRow>>,
    ) -> Result<Option<OrderDetail>> {
        let Some(order) = get_json::<OrderRecord>(&tx.open_table(ORDERS)?, "orders", order_id)?
        else {
            return Ok(None);
        };
        let mut log = Vec::new();
        for row in tx
            .open_table(ORDER_LOG)?
            .range((order_id, 0)..=(order_id, u64::MAX))?
        {
            log.push(decode("order_status_log", row?.1.value())?);
        }
        let ledger: Option<DeliveryRecord> =
            get_json(&tx.open_table(LEDGER)?, "delivery_ledger", order_id)?;
        let cards = match ledger.as_ref().map(|l| &l.holding) {
            Some(Holding::Cards { pool, ids }) => self.cards_masked(tx, pool, ids)?,
            _ => Vec::new(),
        };
        let notifications = notifications(&tx.open_table(OUTBOX)?)?;
        Ok(Some(OrderDetail {
            order,
            log,
            ledger,
            cards,
            notifications,
        }))
    }

    /// The seller shipped a (usually physical) order by hand and tells us the tracking number.
    pub fn ship_manually(
        &self,
        order_id: &str,
        company: &str,
        tracking: &str,
        operator: &str,
    ) -> Result<OrderRecord> {
        let now = self.now();
        self.write(|tx| {
            let mut order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            if order.status != OrderStatus::PendingShip {
                return Err(StoreError::Rejected(format!(
                    "order {order_id} is {} ({}), only 等待卖家发货 orders can be marked shipped",
                    order.status.label(),
                    order.status.as_str()
                )));
            }
            closeout::record_manual_shipment(tx, order_id, now)?;
            let before = Facts::of_order(&order);
            order.status = OrderStatus::Shipped;
            order.ship_time = Some(now);
            order.ship_method = Some(ShipMethod::Manual);
            order.logistics_company = Some(company.to_string()).filter(|s| !s.is_empty());
            order.tracking_number = Some(tracking.to_string()).filter(|s| !s.is_empty());
            order.updated_time = now;
            let remark = format!("{company} {tracking}");
            put_order(tx, &order, Some(&before))?;
            append_log(
                tx,
                order_id,
                Some(OrderStatus::PendingShip),
                OrderStatus::Shipped,
                ActionType::Manual,
                operator,
                LogNote::Remark(remark.trim()),
                now,
            )?;
            super::audit::append(
                tx,
                now,
                operator,
                "orders.ship",
                &format!("{order_id}: {remark}"),
            )?;
            Ok(order)
        })
    }

    /// Forget message ids older than the dedupe window. Order state keeps deduplicating after
    /// that; this only bounds the table.
    pub fn prune_seen(&self, older_than_ms: u64) -> Result<usize> {
        self.write(|tx| {
            let mut seen = tx.seen()?;
            let before = seen.len()?;
            seen.retain(|_, at| at >= older_than_ms)?;
            Ok((before - seen.len()?) as usize)
        })
    }
}

/// The early reservation of a newly planned delivery; false when the stock was short and the
/// order was handed over (its job removed in the same transaction).
fn reserve_early(
    tx: &WriteTx,
    order: &OrderRecord,
    early: &EarlyReserve,
    now: u64,
) -> Result<bool> {
    let Some(r) = early(order) else {
        return Ok(true);
    };
    let outcome = ledger::reserve_in(
        tx,
        &order.order_id,
        &r.request,
        &*r.on_short,
        &*r.low_stock,
        now,
    )?;
    Ok(!matches!(outcome, ReserveOutcome::Short { .. }))
}

fn new_order(ev: &OrderEvent, now: u64) -> OrderRecord {
    OrderRecord {
        order_id: ev.order_id.clone(),
        account: ev.account.clone(),
        chat_id: None,
        buyer_id: None,
        buyer_nick: None,
        item_id: None,
        item_title: None,
        sku: None,
        quantity: ev.quantity.max(1),
        amount: None,
        status: OrderStatus::PendingPayment,
        payment_time: None,
        ship_time: None,
        ship_method: None,
        logistics_company: None,
        tracking_number: None,
        ship_content: None,
        paid_at: None,
        refunded_at: None,
        closed_at: None,
        created_time: now,
        updated_time: now,
    }
}

/// Later events often know more (a nudge carries the cid a card lacked); never overwrite.
fn fill_missing(order: &mut OrderRecord, ev: &OrderEvent) {
    use crate::event::fill_missing as fill;
    fill(&mut order.chat_id, &ev.cid);
    fill(&mut order.buyer_id, &ev.buyer_id);
    fill(&mut order.buyer_nick, &ev.buyer_nick);
    fill(&mut order.item_id, &ev.item_id);
    fill(&mut order.item_title, &ev.item_title);
    fill(&mut order.sku, &ev.sku);
    fill(&mut order.amount, &ev.amount);
    if ev.quantity > 1 && order.quantity == 1 {
        order.quantity = ev.quantity;
    }
}

fn apply_work(
    tx: &WriteTx,
    order: &OrderRecord,
    work: Work,
    start: &NextRun,
    now: u64,
) -> Result<Option<u64>> {
    match work {
        Work::None => Ok(None),
        Work::StartDelivery => {
            if !ledger::plan(tx, order, &start.config_version, now)? {
                return Ok(None);
            }
            jobs::schedule(
                tx,
                &order.order_id,
                start.stage,
                &start.stage_name,
                now,
                &start.config_version,
                now,
            )?;
            Ok(Some(now))
        }
        Work::SettleShipped => {
            closeout::settle_shipped(tx, &order.order_id, order.status, now)?;
            Ok(None)
        }
        Work::StopDelivery { revoke_delivered } => {
            ledger::stop(tx, &order.order_id, revoke_delivered, now)?;
            jobs::cancel_for_order(tx, &order.order_id)?;
            Ok(None)
        }
    }
}

/// Test fixtures shared by the store's tests that follow a delivery request by request.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    /// The first pipeline stage after ingest, as a job starts there.
    pub fn start() -> NextRun {
        NextRun {
            stage: 1,
            stage_name: "classify".into(),
            config_version: "v1".into(),
        }
    }

    /// An early reservation of one card key from `keys`, with no alerts.
    pub fn one_key(_: &OrderRecord) -> Option<Reservation<'static>> {
        Some(Reservation {
            request: ReserveRequest::Cards {
                pool: "keys".into(),
                count: 1,
                reusable: false,
                low_stock_alert: 0,
            },
            on_short: Box::new(|_: &crate::why::Why| Vec::new()),
            low_stock: Box::new(|_: i64| Vec::new()),
        })
    }
}
