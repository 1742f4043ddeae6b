//! The delivery ledger: the single place that decides whether anything may be sent.
//!
//! `planned → reserved → scheduled → sending → sent → confirming → delivered` (in the order the
//! ship mode asks for), or `failed_safe` (provably nothing reached the buyer; may retry) or
//! `needs_human` (outcome unknown; never repeated automatically). Every function here is one
//! transaction that checks the current state before moving it, so a repeated or resumed job
//! cannot send twice.

use serde::de::IgnoredAny;

use super::codec::Head;
use super::records::*;
use super::write_tx::WriteTx;
use super::{
    LEDGER, Result, Store, StoreError, cards, decode, get_json, jobs, order_rows, outbox, stock,
};
use crate::order::OrderStatus;
use crate::why::{Failure, Why};

/// What the stock-check stage asks to hold for an order.
#[derive(Debug, Clone)]
pub enum ReserveRequest {
    Cards {
        pool: String,
        /// `quantity × units`, computed in 64 bits so it cannot wrap; the store never allocates
        /// for more keys than the pool holds.
        count: u64,
        reusable: bool,
        low_stock_alert: u32,
    },
    Stock {
        item_id: String,
        units: u64,
        configured: u32,
        /// None: this listing never raises `low_stock`.
        low_stock_alert: Option<u32>,
    },
    Nothing,
    /// A card product whose SKU maps to no pool; the stage hands the order over instead.
    NoPool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved,
    /// Already reserved by an earlier run of the same job.
    AlreadyReserved,
    /// Not enough stock; the order went to manual in the same transaction.
    Short {
        needed: u64,
        available: u64,
    },
    /// The delivery was cancelled (refund/close) or never planned.
    NotActive(DeliveryState),
}

/// Step of a ship mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipStep {
    Send,
    Confirm,
}

/// May a ship step run now?
#[derive(Debug, Clone)]
pub enum BeginStep {
    /// Go ahead; for `Send`, these are the reserved keys to put in the message.
    Go {
        order: Box<OrderRecord>,
        cards: Vec<String>,
        attempt: u32,
    },
    /// This step is already done (a resumed job).
    AlreadyDone,
    /// A previous send was in flight when the process stopped: the outcome is unknown and the
    /// delivery is now `needs_human` (the alert is already in the outbox).
    OutcomeUnknown,
    /// The order is no longer waiting for shipment (refund, close, shipped by hand).
    NotShippable(String),
}

/// How a step ended, as the ship stage reports it.
#[derive(Debug, Clone)]
pub enum StepResult {
    SendAccepted {
        message_id: Option<String>,
        masked_content: String,
    },
    Confirmed,
    /// Provably not delivered / not confirmed.
    FailedSafe {
        reason: String,
    },
    /// Might have reached the buyer.
    Unknown {
        reason: String,
    },
}

impl Store {
    pub fn delivery(&self, order_id: &str) -> Result<Option<DeliveryRecord>> {
        self.read(|tx| get_json(&tx.open_table(LEDGER)?, "delivery_ledger", order_id))
    }

    /// Where a delivery stands, read without decoding the rest of its row (the stock-check
    /// stage asks this of every order).
    fn delivery_state(&self, order_id: &str) -> Result<Option<DeliveryState>> {
        self.read(|tx| match tx.open_table(LEDGER)?.get(order_id)? {
            Some(v) => {
                let Head(head): Head<StateHead> = decode("delivery_ledger", v.value())?;
                Ok(Some(head.state))
            }
            None => Ok(None),
        })
    }

    /// Hold keys or stock for an order: all units or none. A delivery that is already past
    /// `planned` (reserved in its ingest transaction, or by an earlier run of the job) is
    /// answered from a read, without a commit.
    pub fn reserve(
        &self,
        order_id: &str,
        req: &ReserveRequest,
        on_short: &dyn Fn(&Why) -> Vec<OutboxDraft>,
        low_stock: &dyn Fn(i64) -> Vec<OutboxDraft>,
    ) -> Result<ReserveOutcome> {
        if let Some(state) = self.delivery_state(order_id)? {
            if let Some(answer) = settled_reservation(state) {
                return Ok(answer);
            }
        }
        let now = self.now();
        self.write(|tx| reserve_in(tx, order_id, req, on_short, low_stock, now))
    }

    /// Record the delay stage's draw. Drawn once: a resumed job gets the stored due time back.
    pub fn schedule_delivery(&self, order_id: &str, drawn_due: u64) -> Result<Option<u64>> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = load(tx, order_id)?;
            if !matches!(
                rec.state,
                DeliveryState::Reserved | DeliveryState::Scheduled
            ) {
                return Ok(None);
            }
            let due = *rec.due_ms.get_or_insert(drawn_due);
            if rec.state == DeliveryState::Reserved {
                rec.set_state(DeliveryState::Scheduled, now, Why::Due { at_ms: due });
            }
            save(tx, &rec)?;
            Ok(Some(due))
        })
    }

    /// Claim a ship step. Moving to `sending` is committed before the marketplace is called,
    /// so a crash mid-send is later recognised as an unknown outcome.
    pub fn begin_step(
        &self,
        order_id: &str,
        step: ShipStep,
        on_unknown: &[OutboxDraft],
    ) -> Result<BeginStep> {
        self.claim_step(order_id, step, on_unknown, &mut |_, _| None)
    }

    /// Claim the confirm step like [`Store::begin_step`] and keep, in the same transaction,
    /// the proof of delivery the call will carry: `proof` builds it from the order and its
    /// keys (it may run more than once); the store stamps the attempt and the time.
    pub fn begin_confirm(
        &self,
        order_id: &str,
        on_unknown: &[OutboxDraft],
        proof: &mut dyn FnMut(&OrderRecord, &[String]) -> Option<ConfirmProof>,
    ) -> Result<BeginStep> {
        self.claim_step(order_id, ShipStep::Confirm, on_unknown, proof)
    }

    fn claim_step(
        &self,
        order_id: &str,
        step: ShipStep,
        on_unknown: &[OutboxDraft],
        proof: &mut dyn FnMut(&OrderRecord, &[String]) -> Option<ConfirmProof>,
    ) -> Result<BeginStep> {
        let now = self.now();
        // A write request may run again (group commit); `proof` then builds again.
        let proof = std::cell::RefCell::new(proof);
        self.write(|tx| {
            let mut rec = load(tx, order_id)?;
            let order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            if rec.send_in_flight() {
                rec.last_error = Some("the process stopped while a send was in flight".into());
                hand_over_state(
                    tx,
                    &mut rec,
                    DeliveryState::NeedsHuman,
                    Why::Interrupted { part: None },
                    on_unknown,
                    now,
                )?;
                save(tx, &rec)?;
                return Ok(BeginStep::OutcomeUnknown);
            }
            let done = match step {
                ShipStep::Send => rec.sent_at.is_some(),
                ShipStep::Confirm => rec.confirmed_at.is_some(),
            };
            if done {
                return Ok(BeginStep::AlreadyDone);
            }
            if rec.state.is_settled() {
                return Ok(BeginStep::NotShippable(format!(
                    "delivery is {}",
                    rec.state.as_str()
                )));
            }
            // Our own confirm (confirm_then_send) makes the order 已发货 before the send step.
            let shippable = order.status == OrderStatus::PendingShip
                || (order.status == OrderStatus::Shipped && rec.confirmed_at.is_some());
            if !shippable {
                return Ok(BeginStep::NotShippable(format!(
                    "order is {}",
                    order.status.label()
                )));
            }
            let cards = match (&rec.holding, step) {
                // Both steps get the keys: the confirm may write a proof of delivery.
                (Holding::Cards { pool, ids }, _) => cards::secrets(tx, pool, ids)?,
                (Holding::Nothing | Holding::Stock { .. }, _) => {
                    super::supplier::cards_of(tx, order_id)?
                }
            };
            let next = match step {
                ShipStep::Send => DeliveryState::Sending,
                ShipStep::Confirm => DeliveryState::Confirming,
            };
            rec.attempts += 1;
            let attempt = rec.attempts;
            rec.set_state(next, now, Why::Attempt { n: attempt });
            if step == ShipStep::Confirm {
                if let Some(p) = (proof.borrow_mut())(&order, &cards) {
                    rec.proof = Some(ConfirmProof {
                        attempt,
                        at: now,
                        ..p
                    });
                }
            }
            save(tx, &rec)?;
            Ok(BeginStep::Go {
                order: Box::new(order),
                cards,
                attempt,
            })
        })
    }

    /// Record how a step ended. `last` marks the final step of the ship mode; `done`, the
    /// job's end, rides on a result that makes the delivery `delivered`.
    pub fn finish_step(
        &self,
        order_id: &str,
        result: &StepResult,
        last: bool,
        alerts: &[OutboxDraft],
        done: Option<&jobs::JobDone>,
    ) -> Result<DeliveryState> {
        self.wait(self.finish_step_async(order_id, result, last, alerts, done))
    }

    /// [`Store::finish_step`] for async callers ([`Store::write_async`]).
    pub async fn finish_step_async(
        &self,
        order_id: &str,
        result: &StepResult,
        last: bool,
        alerts: &[OutboxDraft],
        done: Option<&jobs::JobDone>,
    ) -> Result<DeliveryState> {
        let now = self.now();
        self.write_async(|tx| {
            let mut rec = load(tx, order_id)?;
            match result {
                StepResult::SendAccepted {
                    message_id,
                    masked_content,
                } => {
                    let then = if last {
                        super::sending::SendThen::Last(done)
                    } else {
                        super::sending::SendThen::More
                    };
                    super::sending::send_done(tx, &mut rec, masked_content, then, now)?;
                    if rec.message_id.is_none() {
                        rec.message_id.clone_from(message_id);
                    }
                }
                StepResult::Confirmed => {
                    rec.confirmed_at = Some(now);
                    rec.last_error = None;
                    order_rows::set_status(
                        tx,
                        order_id,
                        OrderStatus::Shipped,
                        ActionType::Auto,
                        "ship",
                        Why::Confirmed,
                        now,
                    )?;
                    let state = if last {
                        DeliveryState::Delivered
                    } else {
                        DeliveryState::Confirmed
                    };
                    rec.set_state(state, now, Why::Confirmed);
                    if let (true, Some(done)) = (last, done) {
                        jobs::done(tx, done, now)?;
                    }
                }
                StepResult::FailedSafe { reason } => {
                    rec.last_error = Some(reason.clone());
                    let failure = Failure::classify(reason);
                    let why = Why::AttemptFailed {
                        failure,
                        part: None,
                    };
                    rec.set_state(DeliveryState::FailedSafe, now, why);
                }
                StepResult::Unknown { reason } => {
                    rec.last_error = Some(reason.clone());
                    let why = Why::OutcomeUnknown {
                        failure: Failure::classify(reason),
                        part: None,
                    };
                    hand_over_state(tx, &mut rec, DeliveryState::NeedsHuman, why, &[], now)?;
                }
            }
            save(tx, &rec)?;
            outbox::enqueue(tx, alerts, now)?;
            Ok(rec.state)
        })
        .await
    }

    /// Hand the order to the seller: classification, short stock, disabled shipping, retries
    /// exhausted. Keys stay with the order (nothing was sent), so `orders retry` can resume.
    pub fn hand_to_human(&self, order_id: &str, why: &Why, alerts: &[OutboxDraft]) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = load(tx, order_id)?;
            if rec.state.is_settled() {
                return Ok(false);
            }
            let state = if rec.state == DeliveryState::FailedSafe {
                DeliveryState::FailedSafe
            } else {
                DeliveryState::Manual
            };
            hand_over_state(tx, &mut rec, state, why.clone(), alerts, now)?;
            save(tx, &rec)?;
            Ok(true)
        })
    }

    /// `orders retry`: re-arm a delivery. A `failed_safe` one (or, with `force`, a
    /// `needs_human` one the seller has checked by hand) runs the ship stage again now with the
    /// keys it holds; a `manual` one that never sent anything (out of stock, no rule, SKU without
    /// a pool) gives back what it held and starts again at `from_start`.
    pub fn rearm(
        &self,
        order_id: &str,
        force: bool,
        from_start: &jobs::NextRun,
        ship: &jobs::NextRun,
        operator: &str,
    ) -> Result<DeliveryRecord> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = load(tx, order_id)?;
            let (resume, state) = match rec.state {
                DeliveryState::FailedSafe => (ship, DeliveryState::Scheduled),
                DeliveryState::NeedsHuman if force => (ship, DeliveryState::Scheduled),
                DeliveryState::NeedsHuman => {
                    return Err(StoreError::Rejected(format!(
                        "订单 {order_id} 的发货结果未知（needs_human）：上次发送可能已送达买家。请先在闲鱼聊天中核实，然后用 `orders resolve {order_id} --received` 或 `--not-received --retry|--manual` 收尾；确认没收到且要用同一批卡密重发时才用 `orders retry {order_id} --force` (needs_human: check the chat first)"
                    )));
                }
                DeliveryState::Manual if !rec.anything_sent() && rec.confirmed_at.is_none() => {
                    release(tx, &rec, now)?;
                    rec.holding = Holding::Nothing;
                    rec.due_ms = None;
                    (from_start, DeliveryState::Planned)
                }
                other => {
                    return Err(StoreError::Rejected(format!(
                        "order {order_id} delivery is {}; only failed_safe, manual (nothing sent) or needs_human (with --force) can be retried",
                        other.as_str()
                    )));
                }
            };
            if force {
                // The seller checked: an uncertain part is to be sent again.
                for p in rec.parts.iter_mut().filter(|p| p.state == PartState::Unknown) {
                    p.state = PartState::Pending;
                }
            }
            rec.attempts = 0;
            rec.last_error = None;
            rec.set_state(
                state,
                now,
                Why::Rearmed {
                    operator: operator.to_string(),
                },
            );
            save(tx, &rec)?;
            jobs::schedule(tx, order_id, resume.stage, &resume.stage_name, now, &resume.config_version, now)?;
            super::audit::append(tx, now, operator, "orders.retry", &format!("{order_id} force={force}"))?;
            Ok(rec)
        })
    }
}

/// The leading fields of a ledger row up to its state (`codec::Head`).
#[derive(serde::Deserialize)]
#[allow(dead_code)] // the skipped fields hold their place only
struct StateHead {
    #[serde(default)]
    order_id: IgnoredAny,
    #[serde(default)]
    account: IgnoredAny,
    #[serde(with = "super::coded")]
    state: DeliveryState,
}

/// What `reserve` answers without writing for a delivery in `state`; `None` while it is
/// `planned` (the reservation is still to be made).
fn settled_reservation(state: DeliveryState) -> Option<ReserveOutcome> {
    match state {
        DeliveryState::Planned => None,
        DeliveryState::Cancelled | DeliveryState::Manual | DeliveryState::NeedsHuman => {
            Some(ReserveOutcome::NotActive(state))
        }
        _ => Some(ReserveOutcome::AlreadyReserved),
    }
}

/// The reservation in the caller's transaction: the stock-check stage's own request, or a
/// paid order's ingest (`orders.rs`). Short stock hands the order over here.
pub(super) fn reserve_in(
    tx: &WriteTx,
    order_id: &str,
    req: &ReserveRequest,
    on_short: &dyn Fn(&Why) -> Vec<OutboxDraft>,
    low_stock: &dyn Fn(i64) -> Vec<OutboxDraft>,
    now: u64,
) -> Result<ReserveOutcome> {
    let mut rec = load(tx, order_id)?;
    if let Some(answer) = settled_reservation(rec.state) {
        return Ok(answer);
    }
    let taken = match req {
        ReserveRequest::Nothing | ReserveRequest::NoPool => Ok((Holding::Nothing, None)),
        ReserveRequest::Cards {
            pool,
            count,
            reusable,
            low_stock_alert,
        } => cards::take(tx, pool, *count, *reusable, order_id, *low_stock_alert, now)?,
        ReserveRequest::Stock {
            item_id,
            units,
            configured,
            low_stock_alert,
        } => stock::take(
            tx,
            item_id,
            *units,
            *configured,
            order_id,
            *low_stock_alert,
            now,
        )?,
    };
    match taken {
        Ok((holding, crossed_low)) => {
            rec.holding = holding;
            rec.set_state(DeliveryState::Reserved, now, Note::None);
            save(tx, &rec)?;
            if let Some(remaining) = crossed_low {
                outbox::enqueue(tx, &low_stock(remaining), now)?;
            }
            Ok(ReserveOutcome::Reserved)
        }
        Err(available) => {
            let (needed, pool, item_id) = match req {
                ReserveRequest::Cards { count, pool, .. } => (*count, Some(pool.clone()), None),
                ReserveRequest::Stock { units, item_id, .. } => {
                    (*units, None, Some(item_id.clone()))
                }
                ReserveRequest::Nothing | ReserveRequest::NoPool => (0, None, None),
            };
            let why = Why::OutOfStock {
                pool,
                item_id,
                needed,
                available: i64::try_from(available).unwrap_or(i64::MAX),
            };
            let alerts = on_short(&why);
            hand_over(tx, &mut rec, why, &alerts, now)?;
            Ok(ReserveOutcome::Short { needed, available })
        }
    }
}

pub(super) fn find(tx: &WriteTx, order_id: &str) -> Result<Option<DeliveryRecord>> {
    get_json(&*tx.ledger()?, "delivery_ledger", order_id)
}

pub(super) fn load(tx: &WriteTx, order_id: &str) -> Result<DeliveryRecord> {
    find(tx, order_id)?
        .ok_or_else(|| StoreError::Rejected(format!("order {order_id} has no delivery")))
}

/// Every ledger write: the statistics move with the delivery's outcome in this transaction.
pub(super) fn save(tx: &WriteTx, rec: &DeliveryRecord) -> Result<()> {
    super::rollup::save_ledger(tx, rec)
}

fn hand_over(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    note: Why,
    alerts: &[OutboxDraft],
    now: u64,
) -> Result<()> {
    hand_over_state(tx, rec, DeliveryState::Manual, note, alerts, now)?;
    save(tx, rec)
}

pub(super) fn hand_over_state(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    state: DeliveryState,
    note: impl Into<Note>,
    alerts: &[OutboxDraft],
    now: u64,
) -> Result<()> {
    rec.set_state(state, now, note);
    order_rows::update_order(tx, &rec.order_id, |o| {
        if o.ship_method.is_none() {
            o.ship_method = Some(ShipMethod::Manual);
        }
    })?;
    jobs::cancel_for_order(tx, &rec.order_id)?;
    outbox::enqueue(tx, alerts, now)
}

pub(super) fn mark_delivered(tx: &WriteTx, rec: &DeliveryRecord, now: u64) -> Result<()> {
    match &rec.holding {
        Holding::Cards { pool, ids } => cards::deliver(tx, pool, ids, &rec.order_id, now),
        Holding::Stock { item_id, units } => stock::sold(tx, item_id, *units, &rec.order_id, now),
        Holding::Nothing => Ok(()),
    }
}

/// Create the ledger row for a newly paid order, or re-open a cancelled one (a refund that
/// was withdrawn). False when a delivery already exists.
pub(super) fn plan(tx: &WriteTx, order: &OrderRecord, version: &str, now: u64) -> Result<bool> {
    let existing = find(tx, &order.order_id)?;
    let rec = match existing {
        None => DeliveryRecord::new(&order.order_id, &order.account, version, now),
        Some(mut r) if r.state == DeliveryState::Cancelled && !r.anything_sent() => {
            r.holding = Holding::Nothing;
            r.due_ms = None;
            r.attempts = 0;
            r.parts.clear();
            r.follow_up = None;
            r.config_version = version.to_string();
            r.set_state(DeliveryState::Planned, now, Why::Replanned);
            r
        }
        Some(_) => return Ok(false),
    };
    save(tx, &rec)?;
    Ok(true)
}

/// The order was refunded or closed: release what never reached the buyer; with
/// `revoke_delivered`, mark keys the buyer already has as revoked.
pub(super) fn stop(tx: &WriteTx, order_id: &str, revoke_delivered: bool, now: u64) -> Result<()> {
    let Some(mut rec) = find(tx, order_id)? else {
        return Ok(());
    };
    match rec.state {
        // In flight: the step's own completion sees the new order status.
        DeliveryState::Sending | DeliveryState::Confirming => return Ok(()),
        DeliveryState::Cancelled | DeliveryState::ShippedManually => return Ok(()),
        _ => {}
    }
    let reached_buyer = rec.anything_sent();
    if !reached_buyer {
        release(tx, &rec, now)?;
        rec.holding = Holding::Nothing;
        rec.set_state(DeliveryState::Cancelled, now, Why::CancelledBeforeDelivery);
    } else if revoke_delivered {
        if let Holding::Cards { pool, ids } = &rec.holding {
            cards::revoke(tx, pool, ids, order_id, now)?;
        }
        rec.note(now, Why::KeysRevoked);
    }
    save(tx, &rec)
}

pub(super) fn release(tx: &WriteTx, rec: &DeliveryRecord, now: u64) -> Result<()> {
    match &rec.holding {
        Holding::Cards { pool, ids } => cards::release(tx, pool, ids, &rec.order_id, now),
        Holding::Stock { item_id, units } => {
            stock::release(tx, item_id, *units, &rec.order_id, now)
        }
        Holding::Nothing => Ok(()),
    }
}
