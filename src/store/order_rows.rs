//! Order rows and their status log as primitives other store files build on: append a log
//! entry, move an order on our own initiative, patch free-form fields, all in the caller's
//! transaction.
//!
//! A leaf below both `orders.rs` (ingest, manual shipment) and `ledger.rs` (a confirm moves the
//! order to 已发货), so neither of those needs the other's internals.

use redb::ReadableTable;

use super::records::*;
use super::rollup::{put_order, put_order_row};
use super::rollup_facts::Facts;
use super::write_tx::WriteTx;
use super::{Result, decode, encode_row, get_json, next_id};
use crate::order::{Decision, OrderStatus, decide};
use crate::why::Why;

/// What a status-log entry says beyond the move: the seller's own words (courier and tracking
/// number), a typed reason, or nothing.
pub(super) enum LogNote<'a> {
    None,
    Remark(&'a str),
    Why(Why),
}

#[allow(clippy::too_many_arguments)]
pub(super) fn append_log(
    tx: &WriteTx,
    order_id: &str,
    from: Option<OrderStatus>,
    to: OrderStatus,
    action: ActionType,
    operator: &str,
    note: LogNote<'_>,
    now: u64,
) -> Result<()> {
    let seq = next_id(tx, "order_status_log")?;
    let (remark, why) = match note {
        LogNote::None => (String::new(), None),
        LogNote::Remark(r) => (r.to_string(), None),
        LogNote::Why(w) => (String::new(), Some(w)),
    };
    let entry = StatusLogEntry {
        at: now,
        from,
        to,
        action,
        operator: operator.to_string(),
        remark,
        why,
    };
    tx.order_log()?
        .insert((order_id, seq), encode_row(&entry).as_slice())?;
    Ok(())
}

/// Move an order to `to` on our own initiative (our confirm made it 已发货).
pub(super) fn set_status(
    tx: &WriteTx,
    order_id: &str,
    to: OrderStatus,
    action: ActionType,
    operator: &str,
    why: Why,
    now: u64,
) -> Result<()> {
    let Some(mut order) = get_json::<OrderRecord>(&*tx.orders()?, "orders", order_id)? else {
        return Ok(());
    };
    if order.status == to || !matches!(decide(Some(order.status), to), Decision::Transition { .. })
    {
        return Ok(());
    }
    let before = Facts::of_order(&order);
    let from = order.status;
    order.status = to;
    order.updated_time = now;
    stamp(&mut order, to, now);
    if to == OrderStatus::Shipped {
        order.ship_time = Some(now);
        order.ship_method.get_or_insert(ShipMethod::Auto);
    }
    put_order(tx, &order, Some(&before))?;
    append_log(
        tx,
        order_id,
        Some(from),
        to,
        action,
        operator,
        LogNote::Why(why),
        now,
    )
}

/// Update free-form order fields in the caller's transaction; returns the updated order. An
/// update that changes nothing (a hand-over of an order already marked manual) writes nothing.
pub(super) fn update_order(
    tx: &WriteTx,
    order_id: &str,
    f: impl FnOnce(&mut OrderRecord),
) -> Result<Option<OrderRecord>> {
    // Bound first: the table must be given back before `put_order` asks for it.
    let found = match tx.orders()?.get(order_id)? {
        Some(v) => Some((
            decode::<OrderRecord>("orders", v.value())?,
            v.value().to_vec(),
        )),
        None => None,
    };
    let Some((mut order, stored)) = found else {
        return Ok(None);
    };
    let before = Facts::of_order(&order);
    f(&mut order);
    let bytes = encode_row(&order);
    if bytes != stored {
        put_order_row(tx, &order, &bytes, Some(&before))?;
    }
    Ok(Some(order))
}

/// Record the moments the statistics count: first paid (or past paid), refunded, closed.
pub(super) fn stamp(order: &mut OrderRecord, to: OrderStatus, now: u64) {
    use OrderStatus::*;
    if order.paid_at.is_none()
        && matches!(to, PendingShip | Shipped | Completed | Refunding | Refunded)
    {
        order.paid_at = Some(order.payment_time.unwrap_or(now));
    }
    match to {
        Refunded => order.refunded_at = order.refunded_at.or(Some(now)),
        Closed => order.closed_at = order.closed_at.or(Some(now)),
        _ => {}
    }
}
