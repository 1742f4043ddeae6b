//! The send step of the ledger, part by part.
//!
//! A delivery's chat content is one or more parts (one message per key with
//! `delivery.shape: per_key` or the merged message, then one per `delivery.images` entry), planned once on the first
//! attempt and kept on the ledger row with a sent marker each. [`Store::begin_send`] claims the
//! step and the first unsent part in one transaction; [`Store::finish_part`] records a part's
//! outcome and claims the next one in the same transaction, or finishes the step. So a
//! single-message delivery costs the same two commits as before parts existed, a retry sends
//! only the parts that did not go out, and a crash finds at most one part `sending`: that part's
//! outcome is unknown (never repeated), the others are known.
//!
//! The optional follow-up message is claimed the same way ([`Store::begin_follow_up`]) and is
//! sent at most once.

use std::cell::RefCell;

use redb::WriteTransaction;

use super::records::*;
use super::{ORDERS, Result, Store, StoreError, cards, get_json, ledger, order_rows, outbox};
use crate::order::OrderStatus;
use crate::why::{Failure, PartRef, Why};

/// A part the ship stage wants to send, as planned on the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlan {
    pub kind: PartKind,
    /// What the status page may show (keys masked).
    pub summary: String,
    pub fingerprint: String,
    /// An image part's CDN URL (from the upload cache), kept for the status page.
    pub url: Option<String>,
}

/// May the send step run now, and with which part first?
#[derive(Debug, Clone)]
pub enum BeginDelivery {
    /// Go ahead with `part` (already claimed); `cards` are the keys to build the content from.
    Go {
        order: Box<OrderRecord>,
        cards: Vec<String>,
        attempt: u32,
        part: usize,
    },
    /// Every part went out (a resumed job).
    AlreadyDone,
    /// A part was in flight when the process stopped: the delivery is now `needs_human`.
    OutcomeUnknown,
    NotShippable(String),
    /// The content cannot be built; recorded as `failed_safe` with this reason.
    Unbuildable {
        reason: String,
        attempt: u32,
    },
}

/// How sending one part ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartResult {
    Accepted { message_id: Option<String> },
    NotDelivered { reason: String },
    Unknown { reason: String },
}

/// What comes after a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartNext {
    /// This part is claimed; send it.
    Next(usize),
    /// The step ended in this state.
    Done(DeliveryState),
}

/// The follow-up message: may it go out?
#[derive(Debug, Clone)]
pub enum BeginFollowUp {
    Go {
        order: Box<OrderRecord>,
        cards: Vec<String>,
        attempt: u32,
    },
    /// Sent, unknown, or given up: nothing more to do.
    Settled,
    /// It cannot be rendered (recorded; not sent).
    Failed(String),
    /// The delivery is not (yet) delivered.
    NotReady,
}

impl Store {
    /// Claim the send step: plan the parts on the first attempt (`build` renders them from the
    /// order and its keys, inside this transaction) and claim the first unsent one.
    pub fn begin_send(
        &self,
        order_id: &str,
        on_unknown: &[OutboxDraft],
        build: &mut dyn FnMut(&OrderRecord, &[String]) -> Result<Vec<PartPlan>, String>,
    ) -> Result<BeginDelivery> {
        let now = self.now();
        // A write request may run again (group commit); `build` then renders again.
        let build = RefCell::new(build);
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            let order: OrderRecord = get_json(&tx.open_table(ORDERS)?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            let in_flight = rec.parts.iter().position(|p| p.state == PartState::Sending);
            if rec.send_in_flight() {
                interrupted(tx, &mut rec, in_flight, on_unknown, now)?;
                return Ok(BeginDelivery::OutcomeUnknown);
            }
            if rec.sent_at.is_some() {
                return Ok(BeginDelivery::AlreadyDone);
            }
            if let Some(why) = not_shippable(&rec, &order) {
                return Ok(BeginDelivery::NotShippable(why));
            }
            let keys = keys_of(tx, &rec)?;
            let planned =
                (build.borrow_mut())(&order, &keys).and_then(|plans| adopt(&mut rec, plans));
            rec.attempts += 1;
            let attempt = rec.attempts;
            if let Err(reason) = planned {
                rec.last_error = Some(reason.clone());
                rec.set_state(DeliveryState::FailedSafe, now, Why::Unbuildable);
                ledger::save(tx, &rec)?;
                return Ok(BeginDelivery::Unbuildable { reason, attempt });
            }
            let Some(part) = next_pending(&rec) else {
                // Every part is out (a crash after the last part's own commit cannot happen,
                // but a row is never trusted to be tidy): finish the step now.
                rec.attempts -= 1;
                let masked = order.ship_content.clone().unwrap_or_default();
                send_done(tx, &mut rec, &masked, true, now)?;
                ledger::save(tx, &rec)?;
                return Ok(BeginDelivery::AlreadyDone);
            };
            claim(&mut rec, part, now);
            rec.set_state(DeliveryState::Sending, now, Why::Attempt { n: attempt });
            ledger::save(tx, &rec)?;
            Ok(BeginDelivery::Go {
                order: Box::new(order),
                cards: keys,
                attempt,
                part,
            })
        })
    }

    /// An image upload failed before any part was claimed: nothing left and nothing was
    /// confirmed. It counts as a failed attempt of the send step (the same retry budget), and
    /// the delivery is `failed_safe` until the retry. Returns the attempt number.
    pub fn upload_failed(&self, order_id: &str, image: &str, reason: &str) -> Result<u32> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            rec.attempts += 1;
            rec.last_error = Some(reason.to_string());
            let why = Why::UploadFailed {
                failure: Failure::classify(reason),
                attempts: rec.attempts,
                image: image.to_string(),
            };
            rec.set_state(DeliveryState::FailedSafe, now, why);
            ledger::save(tx, &rec)?;
            Ok(rec.attempts)
        })
    }

    /// Record how part `index` went. Accepted: claim the next unsent part, or, after the last
    /// one, finish the step (`masked` becomes the order's `ship_content`; `last_step` as in
    /// [`Store::finish_step`]). Not delivered: the step is `failed_safe` (a retry sends this
    /// part and the ones after it). Unknown: `needs_human` with `alerts`.
    pub fn finish_part(
        &self,
        order_id: &str,
        index: usize,
        result: &PartResult,
        last_step: bool,
        masked: &str,
        alerts: &[OutboxDraft],
    ) -> Result<PartNext> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            if index >= rec.parts.len() {
                return Err(StoreError::Rejected(format!(
                    "order {order_id} has no part {index}"
                )));
            }
            rec.parts[index].at = now;
            let next = match result {
                PartResult::Accepted { message_id } => {
                    let part = &mut rec.parts[index];
                    part.state = PartState::Sent;
                    part.message_id.clone_from(message_id);
                    part.last_error = None;
                    match next_pending(&rec) {
                        Some(j) => {
                            claim(&mut rec, j, now);
                            PartNext::Next(j)
                        }
                        None => {
                            send_done(tx, &mut rec, masked, last_step, now)?;
                            PartNext::Done(rec.state)
                        }
                    }
                }
                PartResult::NotDelivered { reason } => {
                    let part = &mut rec.parts[index];
                    part.state = PartState::Pending;
                    part.last_error = Some(reason.clone());
                    rec.last_error = Some(reason.clone());
                    let why = Why::AttemptFailed {
                        failure: Failure::classify(reason),
                        part: part_ref(&rec, index),
                    };
                    rec.set_state(DeliveryState::FailedSafe, now, why);
                    PartNext::Done(DeliveryState::FailedSafe)
                }
                PartResult::Unknown { reason } => {
                    let part = &mut rec.parts[index];
                    part.state = PartState::Unknown;
                    part.last_error = Some(reason.clone());
                    rec.last_error = Some(reason.clone());
                    let why = Why::OutcomeUnknown {
                        failure: Failure::classify(reason),
                        part: part_ref(&rec, index),
                    };
                    ledger::hand_over_state(
                        tx,
                        &mut rec,
                        DeliveryState::NeedsHuman,
                        why,
                        &[],
                        now,
                    )?;
                    PartNext::Done(DeliveryState::NeedsHuman)
                }
            };
            ledger::save(tx, &rec)?;
            outbox::enqueue(tx, alerts, now)?;
            Ok(next)
        })
    }

    /// Claim the follow-up message of a delivered order (`build` renders it from the order and
    /// its keys, inside this transaction). A claim found still `sending` (the process stopped
    /// mid-send) becomes `unknown` and is never sent again.
    pub fn begin_follow_up(
        &self,
        order_id: &str,
        build: &mut dyn FnMut(&OrderRecord, &[String]) -> Result<PartPlan, String>,
    ) -> Result<BeginFollowUp> {
        let now = self.now();
        let build = RefCell::new(build);
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            if rec.state != DeliveryState::Delivered {
                return Ok(BeginFollowUp::NotReady);
            }
            match rec.follow_up.as_ref().map(|m| m.state) {
                Some(PartState::Sent | PartState::Unknown) => return Ok(BeginFollowUp::Settled),
                Some(PartState::Sending) => {
                    if let Some(mark) = rec.follow_up.as_mut() {
                        mark.state = PartState::Unknown;
                        mark.at = now;
                    }
                    rec.note(now, Why::FollowUpUnknown { failure: None });
                    ledger::save(tx, &rec)?;
                    return Ok(BeginFollowUp::Settled);
                }
                Some(PartState::Pending) | None => {}
            }
            let order: OrderRecord = get_json(&tx.open_table(ORDERS)?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            let keys = keys_of(tx, &rec)?;
            let plan = match (build.borrow_mut())(&order, &keys) {
                Ok(plan) => plan,
                Err(reason) => {
                    rec.note(now, Why::FollowUpUnbuildable);
                    let mark = rec.follow_up.get_or_insert_with(|| {
                        mark_of(PartPlan {
                            kind: PartKind::Text,
                            summary: String::new(),
                            fingerprint: String::new(),
                            url: None,
                        })
                    });
                    mark.state = PartState::Unknown;
                    mark.last_error = Some(reason.clone());
                    ledger::save(tx, &rec)?;
                    return Ok(BeginFollowUp::Failed(reason));
                }
            };
            let mark = rec.follow_up.get_or_insert_with(|| mark_of(plan.clone()));
            mark.summary = plan.summary;
            mark.fingerprint = plan.fingerprint;
            mark.state = PartState::Sending;
            mark.attempts += 1;
            mark.at = now;
            let attempt = mark.attempts;
            ledger::save(tx, &rec)?;
            Ok(BeginFollowUp::Go {
                order: Box::new(order),
                cards: keys,
                attempt,
            })
        })
    }

    /// Record the follow-up's outcome; `give_up` ends a provably failed one for good. Returns
    /// the attempts made so far.
    pub fn finish_follow_up(
        &self,
        order_id: &str,
        result: &PartResult,
        give_up: bool,
    ) -> Result<u32> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            let Some(mark) = rec.follow_up.as_mut() else {
                return Ok(0);
            };
            mark.at = now;
            let why = match result {
                PartResult::Accepted { message_id } => {
                    mark.state = PartState::Sent;
                    mark.message_id.clone_from(message_id);
                    mark.last_error = None;
                    Why::FollowUpSent
                }
                PartResult::Unknown { reason } => {
                    mark.state = PartState::Unknown;
                    mark.last_error = Some(reason.clone());
                    Why::FollowUpUnknown {
                        failure: Some(Failure::classify(reason)),
                    }
                }
                PartResult::NotDelivered { reason } => {
                    mark.state = if give_up {
                        PartState::Unknown
                    } else {
                        PartState::Pending
                    };
                    mark.last_error = Some(reason.clone());
                    Why::FollowUpFailed {
                        failure: Failure::classify(reason),
                        gave_up: give_up,
                    }
                }
            };
            let attempts = mark.attempts;
            rec.note(now, why);
            ledger::save(tx, &rec)?;
            Ok(attempts)
        })
    }
}

/// The keys a delivery holds, to build its content from.
pub(super) fn keys_of(tx: &WriteTransaction, rec: &DeliveryRecord) -> Result<Vec<String>> {
    match &rec.holding {
        Holding::Cards { pool, ids } => cards::secrets(tx, pool, ids),
        // A supplier product holds no pool keys: its cards were bought and stored per unit.
        Holding::Nothing | Holding::Stock { .. } => super::supplier::cards_of(tx, &rec.order_id),
    }
}

/// Why the order can no longer be sent to, if it cannot.
pub(super) fn not_shippable(rec: &DeliveryRecord, order: &OrderRecord) -> Option<String> {
    if rec.state.is_settled() {
        return Some(format!("delivery is {}", rec.state.as_str()));
    }
    // Our own confirm (confirm_then_send) makes the order 已发货 before the send step.
    let shippable = order.status == OrderStatus::PendingShip
        || (order.status == OrderStatus::Shipped && rec.confirmed_at.is_some());
    (!shippable).then(|| format!("order is {}", order.status.label()))
}

/// Take the freshly built parts as the plan: the first time, or when nothing can have
/// reached the buyer yet; otherwise the structure must match what was sent before.
fn adopt(rec: &mut DeliveryRecord, plans: Vec<PartPlan>) -> Result<(), String> {
    if plans.is_empty() {
        return Err("发货内容为空".into());
    }
    if rec.parts.is_empty() || !rec.parts.iter().any(|p| p.state.may_have_reached()) {
        rec.parts = plans.into_iter().map(mark_of).collect();
        return Ok(());
    }
    let same_shape = rec.parts.len() == plans.len()
        && rec.parts.iter().zip(&plans).all(|(m, p)| m.kind == p.kind);
    if !same_shape {
        return Err("部分内容已经发出后，商品的发货消息结构被修改（条数或图片变化），无法只补发剩余部分；请在闲鱼聊天中人工补发".into());
    }
    for (mark, plan) in rec.parts.iter_mut().zip(plans) {
        if mark.state == PartState::Pending {
            mark.summary = plan.summary;
            mark.fingerprint = plan.fingerprint;
            mark.url = plan.url;
        }
    }
    Ok(())
}

fn mark_of(plan: PartPlan) -> PartMark {
    PartMark {
        kind: plan.kind,
        state: PartState::Pending,
        summary: plan.summary,
        fingerprint: plan.fingerprint,
        message_id: None,
        at: 0,
        attempts: 0,
        last_error: None,
        url: plan.url,
    }
}

fn next_pending(rec: &DeliveryRecord) -> Option<usize> {
    rec.parts.iter().position(|p| p.state == PartState::Pending)
}

fn claim(rec: &mut DeliveryRecord, index: usize, now: u64) {
    if let Some(p) = rec.parts.get_mut(index) {
        p.state = PartState::Sending;
        p.attempts += 1;
        p.at = now;
    }
}

/// Which part of a delivery of several a note is about; `None` for a single message.
fn part_ref(rec: &DeliveryRecord, index: usize) -> Option<PartRef> {
    (rec.parts.len() > 1).then(|| PartRef {
        index: index + 1,
        of: rec.parts.len(),
        image: rec.parts[index].kind == PartKind::Image,
    })
}

/// The process stopped while the send step was in flight: the part that was (or, in rows
/// from before parts, the whole message) is unknown, and the delivery goes to the seller.
fn interrupted(
    tx: &WriteTransaction,
    rec: &mut DeliveryRecord,
    in_flight: Option<usize>,
    on_unknown: &[OutboxDraft],
    now: u64,
) -> Result<()> {
    if let Some(i) = in_flight {
        rec.parts[i].state = PartState::Unknown;
        rec.parts[i].at = now;
    }
    let reason = "the process stopped while a send was in flight";
    rec.last_error = Some(reason.into());
    let why = Why::Interrupted {
        part: in_flight.and_then(|i| part_ref(rec, i)),
    };
    ledger::hand_over_state(tx, rec, DeliveryState::NeedsHuman, why, on_unknown, now)?;
    ledger::save(tx, rec)
}

/// Every part went out: keys delivered, `ship_content` kept (masked), `sent` or `delivered`.
pub(super) fn send_done(
    tx: &WriteTransaction,
    rec: &mut DeliveryRecord,
    masked: &str,
    last_step: bool,
    now: u64,
) -> Result<()> {
    rec.sent_at = Some(now);
    rec.message_id = rec.parts.iter().find_map(|p| p.message_id.clone());
    rec.last_error = None;
    ledger::mark_delivered(tx, rec, now)?;
    let content = masked.to_string();
    order_rows::update_order(tx, &rec.order_id, |o| {
        o.ship_content = Some(content);
        o.ship_method.get_or_insert(ShipMethod::Auto);
    })?;
    let state = if last_step {
        DeliveryState::Delivered
    } else {
        // The confirm step gets its own retry budget: a send that needed retries must not
        // leave the idempotent confirm a single try (found by the chaos test).
        rec.attempts = 0;
        DeliveryState::Sent
    };
    rec.set_state(state, now, Why::Accepted);
    Ok(())
}
