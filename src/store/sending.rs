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

use super::jobs::{self, JobDone};
use super::readback::{self, ReadBackArm};
use super::records::*;
use super::write_tx::WriteTx;
use super::{Result, Store, StoreError, cards, chat_send, get_json, ledger, order_rows, outbox};
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
    /// Every part is out and the confirm step is claimed (attempt `attempt`) in the same
    /// transaction: call the platform now.
    Confirming { attempt: u32 },
}

/// What the send step's claim writes in its own transaction besides the claim (issue 15: the
/// fewer durable points before the message leaves, the sooner the buyer has it).
#[derive(Default)]
pub struct SendClaim<'a> {
    /// The `needs_human` alerts for a send found in flight (when no read-back settles it),
    /// built only then: rendering them for every claim cost more than the claim's own work
    /// (issue 15), and a send is found in flight only after a crash.
    pub on_unknown: Option<&'a (dyn Fn() -> Vec<OutboxDraft> + Sync)>,
    /// What part `i`'s chat echo reads (its text; `[图片]` for an image): registered as the
    /// shop's own with the part's claim, so the echo is never taken for the seller typing
    /// (which would pause the chat bot). Sent to the order's conversation.
    pub echo: Option<&'a (dyn Fn(usize) -> Option<String> + Sync)>,
    /// Arm the read-back (and move the job to it) when the claim finds a send in flight.
    pub read_back: Option<&'a ReadBackArm>,
}

/// The conversation a delivery's parts go to and what each part's echo reads (see
/// [`SendClaim::echo`]).
#[derive(Clone, Copy)]
pub struct EchoTo<'a> {
    pub account: &'a str,
    pub cid: &'a str,
    pub text: &'a (dyn Fn(usize) -> Option<String> + Sync),
}

/// Builds the confirm call from the order and its keys inside the transaction that claims
/// it, answering what the ledger keeps of it (as `Store::begin_confirm`'s `proof`).
pub type ConfirmBuild<'a> = &'a (dyn Fn(&OrderRecord, &[String]) -> Option<ConfirmProof> + Sync);

/// What follows a finished send step.
#[derive(Clone, Copy)]
pub enum SendThen<'a> {
    /// The send is the ship mode's last step (`delivered`); the job's end rides on its
    /// result when given.
    Last(Option<&'a JobDone>),
    /// The confirm step follows and its claim (with the proof its call carries, built by
    /// this) rides on the send result.
    Confirm(ConfirmBuild<'a>),
    /// Another step follows (`sent`), claimed by itself.
    More,
}

/// How [`Store::finish_part_with`] records a part's outcome.
pub struct PartFinish<'a> {
    pub then: SendThen<'a>,
    /// The order's `ship_content` once every part is out (keys masked).
    pub masked: &'a str,
    /// Alerts queued with the outcome (an unknown one without read-back).
    pub alerts: &'a [OutboxDraft],
    /// Registers the next part's echo with its claim; forgets this part's if it provably
    /// did not leave.
    pub echo: Option<EchoTo<'a>>,
    /// Arm the read-back in the transaction that records an unknown outcome.
    pub read_back: Option<&'a ReadBackArm>,
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
        build: &mut (dyn FnMut(&OrderRecord, &[String]) -> Result<Vec<PartPlan>, String> + Send),
    ) -> Result<BeginDelivery> {
        let drafts = || on_unknown.to_vec();
        let claim = SendClaim {
            on_unknown: Some(&drafts),
            ..SendClaim::default()
        };
        self.begin_send_with(order_id, &claim, build)
    }

    /// [`Store::begin_send`] with what the claim's transaction carries besides the claim: the
    /// first part's echo registration, and the read-back of a send found in flight.
    pub fn begin_send_with(
        &self,
        order_id: &str,
        with: &SendClaim<'_>,
        build: &mut (dyn FnMut(&OrderRecord, &[String]) -> Result<Vec<PartPlan>, String> + Send),
    ) -> Result<BeginDelivery> {
        self.wait(self.begin_send_with_async(order_id, with, build))
    }

    /// [`Store::begin_send_with`] for async callers ([`Store::write_async`]).
    pub async fn begin_send_with_async(
        &self,
        order_id: &str,
        with: &SendClaim<'_>,
        build: &mut (dyn FnMut(&OrderRecord, &[String]) -> Result<Vec<PartPlan>, String> + Send),
    ) -> Result<BeginDelivery> {
        let now = self.now();
        // A write request may run again (group commit); `build` then renders again. A mutex,
        // not a cell: the request is held across the commit's await, on any worker.
        let build = std::sync::Mutex::new(build);
        self.write_async(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            let order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            let in_flight = rec.parts.iter().position(|p| p.state == PartState::Sending);
            if rec.send_in_flight() {
                interrupted(tx, &mut rec, in_flight, with, now)?;
                return Ok(BeginDelivery::OutcomeUnknown);
            }
            if rec.sent_at.is_some() {
                return Ok(BeginDelivery::AlreadyDone);
            }
            if let Some(why) = not_shippable(&rec, &order) {
                return Ok(BeginDelivery::NotShippable(why));
            }
            let keys = keys_of(tx, &rec)?;
            let planned = (build.lock().unwrap_or_else(|p| p.into_inner()))(&order, &keys)
                .and_then(|plans| adopt(&mut rec, plans));
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
                send_done(tx, &mut rec, &masked, SendThen::Last(None), now)?;
                ledger::save(tx, &rec)?;
                return Ok(BeginDelivery::AlreadyDone);
            };
            claim(&mut rec, part, now);
            if let Some(text) = with.echo.and_then(|echo| echo(part)) {
                let cid = order.chat_id.as_deref().unwrap_or_default();
                chat_send::register(tx, &order.account, cid, &text, now)?;
            }
            rec.set_state(DeliveryState::Sending, now, Why::Attempt { n: attempt });
            ledger::save(tx, &rec)?;
            Ok(BeginDelivery::Go {
                order: Box::new(order),
                cards: keys,
                attempt,
                part,
            })
        })
        .await
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
        let then = if last_step {
            SendThen::Last(None)
        } else {
            SendThen::More
        };
        let finish = PartFinish {
            then,
            masked,
            alerts,
            echo: None,
            read_back: None,
        };
        self.finish_part_with(order_id, index, result, &finish)
    }

    /// [`Store::finish_part`] with what its transaction carries besides the outcome: the next
    /// part's echo registration (or this part's removal when it provably did not leave), the
    /// confirm claim or the job's end after the last part, the read-back of an unknown one.
    pub fn finish_part_with(
        &self,
        order_id: &str,
        index: usize,
        result: &PartResult,
        with: &PartFinish<'_>,
    ) -> Result<PartNext> {
        self.wait(self.finish_part_with_async(order_id, index, result, with))
    }

    /// [`Store::finish_part_with`] for async callers ([`Store::write_async`]).
    pub async fn finish_part_with_async(
        &self,
        order_id: &str,
        index: usize,
        result: &PartResult,
        with: &PartFinish<'_>,
    ) -> Result<PartNext> {
        let now = self.now();
        self.write_async(|tx| {
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
                    accepted(tx, &mut rec, with, now)?
                }
                PartResult::NotDelivered { reason } => {
                    if let Some(echo) = &with.echo {
                        if let Some(text) = (echo.text)(index) {
                            chat_send::unregister(tx, echo.account, echo.cid, &text)?;
                        }
                    }
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
                    if let Some(arm) = with.read_back {
                        readback::arm_in(tx, &mut rec, arm, now)?;
                    }
                    PartNext::Done(DeliveryState::NeedsHuman)
                }
            };
            ledger::save(tx, &rec)?;
            outbox::enqueue(tx, with.alerts, now)?;
            Ok(next)
        })
        .await
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
            let order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
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

/// A part went out: claim the next one (registering its echo), or finish the step with what
/// follows it riding on the same transaction.
fn accepted(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    with: &PartFinish<'_>,
    now: u64,
) -> Result<PartNext> {
    if let Some(j) = next_pending(rec) {
        claim(rec, j, now);
        if let Some(echo) = &with.echo {
            if let Some(text) = (echo.text)(j) {
                chat_send::register(tx, echo.account, echo.cid, &text, now)?;
            }
        }
        return Ok(PartNext::Next(j));
    }
    let claimed = send_done(tx, rec, with.masked, with.then, now)?;
    Ok(match claimed {
        Some(attempt) => PartNext::Confirming { attempt },
        None => PartNext::Done(rec.state),
    })
}

/// The keys a delivery holds, to build its content from.
pub(super) fn keys_of(tx: &WriteTx, rec: &DeliveryRecord) -> Result<Vec<String>> {
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
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    in_flight: Option<usize>,
    with: &SendClaim<'_>,
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
    let alerts = with.on_unknown.map(|build| build()).unwrap_or_default();
    ledger::hand_over_state(tx, rec, DeliveryState::NeedsHuman, why, &alerts, now)?;
    if let Some(arm) = with.read_back {
        readback::arm_in(tx, rec, arm, now)?;
    }
    ledger::save(tx, rec)
}

/// Every part went out: keys delivered, `ship_content` kept (masked), `delivered` (with the
/// job's end when it rides along) or `sent`, and then the confirm step claimed when it
/// follows and the order can still be shipped. Returns the confirm attempt when claimed.
pub(super) fn send_done(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    masked: &str,
    then: SendThen<'_>,
    now: u64,
) -> Result<Option<u32>> {
    rec.sent_at = Some(now);
    rec.message_id = rec.parts.iter().find_map(|p| p.message_id.clone());
    rec.last_error = None;
    ledger::mark_delivered(tx, rec, now)?;
    let content = masked.to_string();
    let order = order_rows::update_order(tx, &rec.order_id, |o| {
        o.ship_content = Some(content);
        o.ship_method.get_or_insert(ShipMethod::Auto);
    })?;
    if let SendThen::Last(done) = then {
        rec.set_state(DeliveryState::Delivered, now, Why::Accepted);
        if let Some(done) = done {
            jobs::done(tx, done, now)?;
        }
        return Ok(None);
    }
    // The confirm step gets its own retry budget: a send that needed retries must not
    // leave the idempotent confirm a single try (found by the chaos test).
    rec.attempts = 0;
    rec.set_state(DeliveryState::Sent, now, Why::Accepted);
    let (SendThen::Confirm(build), Some(order)) = (then, order) else {
        return Ok(None);
    };
    if rec.confirmed_at.is_some() || not_shippable(rec, &order).is_some() {
        return Ok(None);
    }
    rec.attempts = 1;
    rec.set_state(DeliveryState::Confirming, now, Why::Attempt { n: 1 });
    let keys = keys_of(tx, rec)?;
    if let Some(p) = build(&order, &keys) {
        rec.proof = Some(ConfirmProof {
            attempt: 1,
            at: now,
            ..p
        });
    }
    Ok(Some(1))
}
