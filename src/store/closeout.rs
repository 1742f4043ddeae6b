//! Closing out deliveries the automatic flow could not finish: an uncertain send (`needs_human`)
//! that the seller, the conversation history or the platform settles; a shipment the seller
//! made by hand; a job that failed or panicked (quarantine).
//!
//! The rule that keeps a key from being sold twice lives here: a key goes back to the pool only
//! when someone states that it did not reach the buyer (`orders resolve --not-received`) or when
//! nothing was ever sent. A possibly-sent key is never released by `orders ship` or by a
//! platform event; it stays with its order (`delivered`, or `revoked` after a refund), so every
//! key always has an owner. Each function is one transaction that checks the ledger state first.

use super::jobs::NextRun;
use super::records::*;
use super::write_tx::WriteTx;
use super::{Result, Store, StoreError, audit, get_json, jobs, ledger, order_rows, stock};
use crate::order::OrderStatus;
use crate::why::Why;

/// The seller-facing reason a quarantined order carries (status page, notification).
pub const INTERNAL_ERROR_REASON: &str = "处理时内部错误";

/// Why an uncertain delivery is now known to have reached the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptEvidence {
    /// The seller checked the conversation (`orders resolve ID --received`).
    Seller { operator: String },
    /// The delivery message was found in the conversation history (the IM read-back):
    /// its message id when known, and a short description (never the message text).
    ConversationHistory {
        message_id: Option<String>,
        detail: String,
    },
    /// The platform reports the order shipped or completed.
    Platform { status: OrderStatus },
}

impl ReceiptEvidence {
    /// The ledger history note; Chinese, because the status page shows it.
    fn note(&self) -> String {
        match self {
            Self::Seller { operator } => format!("卖家确认买家已收到（{operator}）"),
            Self::ConversationHistory { detail, .. } => {
                format!("在聊天记录中找到发货消息（{detail}）")
            }
            Self::Platform { status } => {
                format!("闲鱼显示订单「{}」，视为买家已收到", status.label())
            }
        }
    }

    fn actor(&self) -> &str {
        match self {
            Self::Seller { operator } => operator,
            Self::ConversationHistory { .. } => "im-read-back",
            Self::Platform { .. } => "platform",
        }
    }
}

/// What the seller chose for an uncertain delivery that did not reach the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReceived {
    /// Give the keys back and deliver again from the first stage after ingest.
    Retry,
    /// Give the keys back and leave the order to the seller.
    Manual,
}

/// Where the ship stage resumes after a close-out, and whether its mode still confirms on the
/// platform.
#[derive(Debug, Clone)]
pub struct ShipResume {
    pub at: NextRun,
    pub confirms: bool,
}

impl Store {
    /// **Mark an uncertain delivery as received, with evidence.** The one entry point for
    /// closing a `needs_human` delivery whose content did reach the buyer: the seller's
    /// `orders resolve ID --received`, and the IM read-back when it finds the delivery message
    /// in the conversation ([`ReceiptEvidence::ConversationHistory`]).
    ///
    /// In one transaction: the keys the order holds become `delivered` to it (counted stock is
    /// sold), `sent_at` is set, the evidence is written to the ledger history and the audit log.
    /// If the ship mode still has to confirm the shipment on the platform (`ship` is the ship
    /// stage's resume point and whether its mode confirms) and the order is still 等待卖家发货,
    /// the delivery becomes `sent` and the ship stage runs again, which skips the send and only
    /// confirms; otherwise it is `delivered`. A delivery of several messages whose later ones
    /// were never sent goes back to the ship stage, which sends only those. Refused unless the
    /// delivery is `needs_human`.
    pub fn mark_uncertain_delivery_received(
        &self,
        order_id: &str,
        evidence: &ReceiptEvidence,
        ship: Option<&ShipResume>,
    ) -> Result<DeliveryRecord> {
        let now = self.now();
        self.write(|tx| {
            let (mut rec, status) = uncertain_delivery(tx, order_id)?;
            received_as_audited(tx, &mut rec, (status, evidence), ship, now)?;
            order_rows::update_order(tx, order_id, |o| {
                o.ship_method.get_or_insert(ShipMethod::Auto);
            })?;
            Ok(rec)
        })
    }

    /// `orders resolve ID --not-received --retry|--manual`: the seller checked the conversation
    /// and the buyer did not get the content. The keys go back to the pool (their ids stay in
    /// the ledger history and the audit log); `Retry` plans the delivery again from
    /// `from_start` (a new reservation, delay and send), `Manual` leaves the order to the
    /// seller. An order that is no longer 等待卖家发货 (refunded, closed) can only be given
    /// back: its delivery becomes `cancelled`.
    pub fn resolve_not_received(
        &self,
        order_id: &str,
        choice: NotReceived,
        operator: &str,
        from_start: &NextRun,
    ) -> Result<DeliveryRecord> {
        let now = self.now();
        self.write(|tx| {
            let (mut rec, status) = uncertain_delivery(tx, order_id)?;
            let payable = status == OrderStatus::PendingShip;
            if choice == NotReceived::Retry && !payable {
                return Err(StoreError::Rejected(format!(
                    "订单 {order_id} 现在是「{}」，不能重新发货；用 --not-received --manual 只把卡密退回卡池 (order is {}, cannot deliver again)",
                    status.label(),
                    status.as_str()
                )));
            }
            if rec.parts.iter().any(|p| p.state == PartState::Sent) {
                // Part of the delivery provably arrived: its keys stay with the order, and only
                // the part the seller says is missing is sent again.
                partly_received(tx, &mut rec, choice, payable, operator, from_start, now)?;
                ledger::save(tx, &rec)?;
                audit::append(tx, now, operator, "orders.resolve", &format!("{order_id}: not received ({choice:?}); partial delivery kept"))?;
                return Ok(rec);
            }
            let given_back = give_back(tx, &mut rec, now)?;
            rec.parts.clear();
            rec.attempts = 0;
            rec.last_error = None;
            rec.due_ms = None;
            let note = format!("卖家确认买家未收到（{operator}）；{given_back}");
            match (choice, payable) {
                (NotReceived::Retry, _) => {
                    rec.set_state(DeliveryState::Planned, now, format!("{note}；重新自动发货"));
                    jobs::schedule(
                        tx,
                        order_id,
                        from_start.stage,
                        &from_start.stage_name,
                        now,
                        &from_start.config_version,
                        now,
                    )?;
                }
                (NotReceived::Manual, true) => {
                    rec.note(now, format!("{note}；交给卖家处理"));
                    ledger::hand_over_state(
                        tx,
                        &mut rec,
                        DeliveryState::Manual,
                        Why::SellerTakesOver {
                            operator: operator.to_string(),
                        },
                        &[],
                        now,
                    )?
                }
                (NotReceived::Manual, false) => {
                    jobs::cancel_for_order(tx, order_id)?;
                    rec.set_state(
                        DeliveryState::Cancelled,
                        now,
                        format!("{note}；订单已「{}」", status.label()),
                    );
                }
            }
            ledger::save(tx, &rec)?;
            audit::append(
                tx,
                now,
                operator,
                "orders.resolve",
                &format!("{order_id}: not received ({choice:?}); {given_back}"),
            )?;
            Ok(rec)
        })
    }

    /// A pipeline job failed or panicked: take it out of the schedule so it does not run again
    /// in a loop, and hand its order to the seller as `needs_human` (a send may have started),
    /// with `alerts`. A delivery that is already settled only loses the job. Returns whether
    /// the order was handed over.
    pub fn quarantine_job(
        &self,
        job_id: u64,
        order_id: &str,
        alerts: &[OutboxDraft],
    ) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            jobs::remove(tx, job_id)?;
            jobs::cancel_for_order(tx, order_id)?;
            let Some(mut rec) = ledger::find(tx, order_id)? else {
                return Ok(false);
            };
            // A read-back whose job failed is over: nothing may schedule it again.
            let read_back_ended = rec.read_back.take().is_some();
            if rec.state.is_settled() {
                if read_back_ended {
                    ledger::save(tx, &rec)?;
                }
                return Ok(false);
            }
            rec.last_error = Some(INTERNAL_ERROR_REASON.to_string());
            ledger::hand_over_state(
                tx,
                &mut rec,
                DeliveryState::NeedsHuman,
                Why::InternalError,
                alerts,
                now,
            )?;
            ledger::save(tx, &rec)?;
            Ok(true)
        })
    }
}

/// `orders ship`: the seller shipped by hand. A delivery that is (or may be) in the buyer's
/// hands is refused: an uncertain one must be resolved first, so its keys are never released
/// by a shipment the seller records for other reasons.
pub(super) fn record_manual_shipment(tx: &WriteTx, order_id: &str, now: u64) -> Result<()> {
    let Some(mut rec) = ledger::find(tx, order_id)? else {
        return Ok(());
    };
    match rec.state {
        DeliveryState::Sending | DeliveryState::Delivered => Err(StoreError::Rejected(format!(
            "order {order_id} delivery is {}; it was (or may have been) delivered automatically",
            rec.state.as_str()
        ))),
        DeliveryState::NeedsHuman => Err(StoreError::Rejected(format!(
            "订单 {order_id} 的自动发货结果未知（needs_human），卡密可能已经发给买家，所以 orders ship 不会动它。\n\
             请先在闲鱼聊天中核实，然后：\n  买家已收到：xianyu-shopd orders resolve {order_id} --received\n  \
             买家未收到：xianyu-shopd orders resolve {order_id} --not-received --retry（重新自动发货）或 --manual（你自己处理，之后再 orders ship）"
        ))),
        _ => shipped_without_us(tx, &mut rec, "卖家已手动发货（orders ship）", now),
    }
}

/// The platform says the order left the seller (已发货 / 交易成功) through ingest, i.e. not by
/// our own confirm. An uncertain send counts as received (its keys become `delivered`), a
/// delivery we sent is complete, and one that sent nothing gives its keys back and is recorded
/// as shipped by the seller. A step in flight settles itself when it finishes.
pub(super) fn settle_shipped(
    tx: &WriteTx,
    order_id: &str,
    status: OrderStatus,
    now: u64,
) -> Result<()> {
    let Some(mut rec) = ledger::find(tx, order_id)? else {
        return Ok(());
    };
    match rec.state {
        DeliveryState::Sending
        | DeliveryState::Confirming
        | DeliveryState::Delivered
        | DeliveryState::ShippedManually
        | DeliveryState::Cancelled => Ok(()),
        DeliveryState::NeedsHuman => {
            let evidence = ReceiptEvidence::Platform { status };
            received_as_audited(tx, &mut rec, (status, &evidence), None, now)
        }
        _ if rec.anything_sent() => {
            if rec.sent_at.is_none() {
                ledger::mark_delivered(tx, &rec, now)?;
                rec.sent_at = Some(now);
            }
            jobs::cancel_for_order(tx, order_id)?;
            rec.set_state(
                DeliveryState::Delivered,
                now,
                format!("闲鱼显示订单「{}」", status.label()),
            );
            ledger::save(tx, &rec)
        }
        _ => {
            let note = format!(
                "闲鱼显示订单「{}」，本系统没有发出内容（卖家在闲鱼上自行处理）",
                status.label()
            );
            shipped_without_us(tx, &mut rec, &note, now)
        }
    }
}

/// The order's delivery, refused unless it is `needs_human`, and the order's status.
fn uncertain_delivery(tx: &WriteTx, order_id: &str) -> Result<(DeliveryRecord, OrderStatus)> {
    let rec = ledger::load(tx, order_id)?;
    require_uncertain(&rec)?;
    Ok((rec, order_status(tx, order_id)?))
}

fn require_uncertain(rec: &DeliveryRecord) -> Result<()> {
    match rec.state {
        DeliveryState::NeedsHuman => Ok(()),
        DeliveryState::Sending => Err(StoreError::Rejected(format!(
            "订单 {} 正在发送，或进程在发送途中停止；守护进程（或下一次 replay）启动后它会变成 needs_human，届时再收尾 (delivery is sending)",
            rec.order_id
        ))),
        other => Err(StoreError::Rejected(format!(
            "订单 {} 的发货记录是 {}，不是「结果未知」(needs_human)，没有需要收尾的不确定发货",
            rec.order_id,
            other.as_str()
        ))),
    }
}

fn order_status(tx: &WriteTx, order_id: &str) -> Result<OrderStatus> {
    let order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
        .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
    Ok(order.status)
}

/// [`received`], written to the audit log with its evidence.
fn received_as_audited(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    (status, evidence): (OrderStatus, &ReceiptEvidence),
    ship: Option<&ShipResume>,
    now: u64,
) -> Result<()> {
    received(tx, rec, status, evidence, ship, now)?;
    let note = format!("{}: received; {}", rec.order_id, evidence.note());
    audit::append(tx, now, evidence.actor(), "orders.resolve", &note)
}

/// The buyer has the content: keys `delivered` (unless a refund already revoked them), stock
/// sold, then `delivered`, or `sent` with the ship stage re-armed to confirm on the platform,
/// or (parts never sent remain) `scheduled` with the ship stage re-armed to send them.
fn received(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    status: OrderStatus,
    evidence: &ReceiptEvidence,
    ship: Option<&ShipResume>,
    now: u64,
) -> Result<()> {
    for p in rec.parts.iter_mut() {
        if matches!(p.state, PartState::Unknown | PartState::Sending) {
            p.state = PartState::Sent;
            p.at = now;
        }
    }
    if let ReceiptEvidence::ConversationHistory {
        message_id: Some(id),
        ..
    } = evidence
    {
        rec.message_id = Some(id.clone());
    }
    rec.last_error = None;
    jobs::cancel_for_order(tx, &rec.order_id)?;
    let unsent = rec
        .parts
        .iter()
        .filter(|p| p.state == PartState::Pending)
        .count();
    let platform = matches!(evidence, ReceiptEvidence::Platform { .. });
    match ship {
        Some(r) if unsent > 0 && !platform && status == OrderStatus::PendingShip => {
            let note = format!("{}；继续发送其余 {unsent} 条消息", evidence.note());
            resume(tx, rec, (DeliveryState::Scheduled, note), r, now)?;
            return ledger::save(tx, rec);
        }
        _ => {}
    }
    if !matches!(status, OrderStatus::Closed | OrderStatus::Refunded) {
        ledger::mark_delivered(tx, rec, now)?;
    }
    rec.sent_at.get_or_insert(now);
    match ship {
        Some(r)
            if r.confirms && status == OrderStatus::PendingShip && rec.confirmed_at.is_none() =>
        {
            let note = format!("{}；接下来在闲鱼上确认发货", evidence.note());
            resume(tx, rec, (DeliveryState::Sent, note), r, now)?;
        }
        _ => rec.set_state(DeliveryState::Delivered, now, evidence.note()),
    }
    ledger::save(tx, rec)
}

/// The delivery goes on from here: a fresh retry budget, its new state, and its job.
fn resume(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    (state, note): (DeliveryState, String),
    ship: &ShipResume,
    now: u64,
) -> Result<()> {
    rec.attempts = 0;
    rec.set_state(state, now, note);
    schedule(tx, &rec.order_id, &ship.at, now)
}

fn schedule(tx: &WriteTx, order_id: &str, next: &NextRun, now: u64) -> Result<()> {
    jobs::schedule(
        tx,
        order_id,
        next.stage,
        &next.stage_name,
        now,
        &next.config_version,
        now,
    )
    .map(drop)
}

/// `--not-received` for a delivery of several messages some of which provably arrived: the
/// uncertain part counts as not sent, the keys stay with the order; `Retry` sends what is
/// missing, `Manual` leaves it to the seller.
fn partly_received(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    choice: NotReceived,
    payable: bool,
    operator: &str,
    resume: &NextRun,
    now: u64,
) -> Result<()> {
    for p in rec.parts.iter_mut() {
        if matches!(p.state, PartState::Unknown | PartState::Sending) {
            p.state = PartState::Pending;
            p.at = now;
        }
    }
    rec.attempts = 0;
    rec.last_error = None;
    // The delay was for the delivery, which has begun: what is missing goes now.
    rec.due_ms = Some(now);
    let note =
        format!("卖家确认买家未收到其中一部分（{operator}）；已送达的部分不重发，卡密仍归此订单");
    match (choice, payable) {
        (NotReceived::Retry, _) => {
            rec.set_state(
                DeliveryState::Scheduled,
                now,
                format!("{note}；补发未送达的部分"),
            );
            schedule(tx, &rec.order_id, resume, now)
        }
        (NotReceived::Manual, _) => {
            rec.note(now, format!("{note}；交给卖家处理"));
            ledger::hand_over_state(
                tx,
                rec,
                DeliveryState::Manual,
                Why::SellerTakesOver {
                    operator: operator.to_string(),
                },
                &[],
                now,
            )
        }
    }
}

/// The order left without our send: counted stock is sold, keys we never sent go back.
fn shipped_without_us(tx: &WriteTx, rec: &mut DeliveryRecord, note: &str, now: u64) -> Result<()> {
    let mut note = note.to_string();
    match &rec.holding {
        Holding::Stock { item_id, units } => {
            stock::sold(tx, item_id, *units, &rec.order_id, now)?;
        }
        Holding::Cards { .. } if !rec.anything_sent() => {
            note = format!("{note}；{}", give_back(tx, rec, now)?);
        }
        // Part of the content reached the buyer: the keys are theirs.
        Holding::Cards { .. } if rec.sent_at.is_none() => ledger::mark_delivered(tx, rec, now)?,
        _ => {}
    }
    rec.set_state(DeliveryState::ShippedManually, now, note);
    jobs::cancel_for_order(tx, &rec.order_id)?;
    ledger::save(tx, rec)
}

/// Return what the delivery holds to the pool or the stock count and say which, so the ledger
/// history keeps the key ids after `holding` is cleared.
fn give_back(tx: &WriteTx, rec: &mut DeliveryRecord, now: u64) -> Result<String> {
    let what = match &rec.holding {
        Holding::Cards { pool, ids } => {
            let ids: Vec<String> = ids.iter().map(|i| format!("#{i}")).collect();
            format!("卡池 {pool} 的卡密 {} 退回卡池", ids.join("、"))
        }
        Holding::Stock { item_id, units } => format!("商品 {item_id} 的 {units} 件库存退回"),
        Holding::Nothing => "没有占用卡密或库存".to_string(),
    };
    ledger::release(tx, rec, now)?;
    rec.holding = Holding::Nothing;
    Ok(what)
}
