//! The send step of the ship stage, and the follow-up message after a delivery.
//!
//! The content ([`super::content`]) is built inside the ledger's claim, so the parts are
//! planned once and a retry sends exactly what was planned. Parts go out in order, each
//! recorded before the next is claimed: one that provably did not arrive makes the step
//! `failed_safe` (the retry starts at that part), one without an answer makes the delivery
//! `needs_human` (or is read back from the conversation when the marketplace can).

use std::sync::Mutex;

use crate::config::ShipParams;
use crate::marketplace::{DeliveryMessage, ImageMessage, SendOutcome};
use crate::store::{
    BeginDelivery, BeginFollowUp, EchoTo, OrderRecord, PartFinish, PartNext, PartResult, SendClaim,
    SendThen, StoreError,
};
use crate::why::{Failure, Why};

use super::alerts;
use super::content::{self, Content, Part};
use super::plan::Plan;
use super::readback;
use super::ship::{StepEnd, after_safe_failure};
use super::stage::{Outcome, Resume, StageCtx};

/// Run the send step. `then` says what follows it: the confirm step (whose claim rides on
/// the send result) or the job's end.
pub(super) async fn step(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    then: SendThen<'_>,
) -> Result<StepEnd, StoreError> {
    let oid = ctx.order.order_id.clone();
    // With a marketplace that reads conversations back, an unknown outcome is checked there
    // first; the seller hears of it only if the read-back cannot settle it.
    let reads_back = ctx.market.reads_back();
    if reads_back {
        if let Some((state, cards)) = ctx.store_op(|s| s.pending_read_back(&oid))? {
            let outcome = readback::run(ctx, plan, params, state, &cards).await?;
            return Ok(StepEnd::End(outcome));
        }
    }
    // Rendered only if the claim finds a send in flight (after a crash), not for every claim.
    let (config, order) = (ctx.config, ctx.order);
    let needs_human = || {
        let label = Why::Interrupted { part: None }.label();
        crate::notify::Router::new(config.notify())
            .drafts(&alerts::needs_human(config, order, &label))
    };
    let on_unknown = (!reads_back).then_some(&needs_human as &(dyn Fn() -> _ + Sync));
    let arm = reads_back.then(|| readback::arming(ctx, params));
    let (begin, built) = claim(ctx, plan, on_unknown, arm.as_ref()).await?;
    let (order, attempt, part) = match begin {
        BeginDelivery::Go {
            order,
            attempt,
            part,
            ..
        } => (order, attempt, part),
        BeginDelivery::AlreadyDone => return Ok(StepEnd::Next(None)),
        BeginDelivery::OutcomeUnknown => return Ok(StepEnd::End(unknown(&oid, arm.as_ref()))),
        BeginDelivery::NotShippable(why) => return Ok(StepEnd::End(Outcome::Stop(why))),
        BeginDelivery::Unbuildable { reason, attempt } => {
            tracing::warn!(order_id = %oid, reason = %reason, "Delivery content cannot be built.");
            let why = Why::Unbuildable;
            let alert = alerts::ship_failed(ctx.order, &plan.product.title, attempt, &why);
            return Ok(StepEnd::End(Outcome::Manual {
                why,
                alerts: vec![alert],
            }));
        }
    };
    let Some(content) = built else {
        return Err(StoreError::Rejected(format!(
            "order {oid}: the delivery content was not built"
        )));
    };
    let sending = Sending {
        content: &content,
        order: *order,
        attempt,
        then,
        reads_back,
    };
    send_parts(ctx, plan, params, sending, part).await
}

/// Claim the send step (and register the first part's echo) in one transaction; the content
/// is built inside it and returned with the answer.
async fn claim(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    on_unknown: Option<&(dyn Fn() -> Vec<crate::store::OutboxDraft> + Sync)>,
    arm: Option<&crate::store::ReadBackArm>,
) -> Result<(BeginDelivery, Option<Content>), StoreError> {
    let oid = ctx.order.order_id.clone();
    let cdn = super::images::cdn_urls(ctx, plan);
    let built: Mutex<Option<Content>> = Mutex::new(None);
    let lock = || built.lock().unwrap_or_else(|p| p.into_inner());
    let mut build = |order: &OrderRecord, cards: &[String]| {
        let c = content::build(ctx.config, plan, order, cards)?;
        let plans = c.plans(&|sha256| cdn.get(sha256).cloned());
        *lock() = Some(c);
        Ok(plans)
    };
    let echo = |i: usize| lock().as_ref().and_then(|c| c.echo(i));
    let with = SendClaim {
        on_unknown,
        echo: Some(&echo),
        read_back: arm,
    };
    let begin = ctx
        .store
        .begin_send_with_async(&oid, &with, &mut build)
        .await?;
    Ok((begin, lock().take()))
}

/// A send outcome became unknown: with a read-back it was armed (and the job moved to it) in
/// the transaction that recorded it; without one the seller was told there.
fn unknown(oid: &str, arm: Option<&crate::store::ReadBackArm>) -> Outcome {
    match arm {
        Some(arm) => {
            tracing::info!(order_id = %oid, "Send outcome unknown; reading the conversation back.");
            Outcome::Rescheduled { until: arm.due_ms }
        }
        None => Outcome::Stop("send outcome unknown; needs_human".into()),
    }
}

/// A claimed send: what goes out and what follows it.
struct Sending<'a> {
    content: &'a Content,
    order: OrderRecord,
    attempt: u32,
    then: SendThen<'a>,
    reads_back: bool,
}

/// Send `first` and every unsent part after it, each settled in the ledger before the next
/// (the next part's claim and echo registration ride on that same transaction).
async fn send_parts(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    s: Sending<'_>,
    first: usize,
) -> Result<StepEnd, StoreError> {
    let oid = s.order.order_id.clone();
    let masked = s.content.masked();
    let text = |i: usize| s.content.echo(i);
    let echo = EchoTo {
        account: &s.order.account,
        cid: s.order.chat_id.as_deref().unwrap_or_default(),
        text: &text,
    };
    let mut part = first;
    loop {
        let result = send_one(ctx, s.content, &s.order, part).await;
        let alerts = match &result {
            PartResult::Unknown { reason } if !s.reads_back => {
                let why = Why::OutcomeUnknown {
                    failure: Failure::classify(reason),
                    part: None,
                };
                ctx.router()
                    .drafts(&alerts::needs_human(ctx.config, &s.order, &why.label()))
            }
            _ => Vec::new(),
        };
        let arm = (s.reads_back && matches!(result, PartResult::Unknown { .. }))
            .then(|| readback::arming(ctx, params));
        let finish = PartFinish {
            then: s.then,
            masked: &masked,
            alerts: &alerts,
            echo: Some(echo),
            read_back: arm.as_ref(),
        };
        let next = ctx
            .store
            .finish_part_with_async(&oid, part, &result, &finish)
            .await?;
        let done = match next {
            PartNext::Next(j) => {
                part = j;
                continue;
            }
            PartNext::Confirming { attempt } => return Ok(StepEnd::Next(Some(attempt))),
            PartNext::Done(state) => state,
        };
        return Ok(match result {
            PartResult::Accepted { .. } => match s.then {
                SendThen::Last(Some(_)) if done == crate::store::DeliveryState::Delivered => {
                    StepEnd::End(Outcome::Finished)
                }
                _ => StepEnd::Next(None),
            },
            PartResult::Unknown { reason } => StepEnd::End(match arm {
                Some(arm) => unknown(&oid, Some(&arm)),
                None => Outcome::Stop(format!("outcome unknown: {reason}")),
            }),
            PartResult::NotDelivered { reason } => StepEnd::End(after_safe_failure(
                ctx, plan, params, s.attempt, true, reason,
            )),
        });
    }
}

/// Send part `index`. Its echo was registered with its claim; a part that provably did not
/// leave is forgotten again with its outcome.
async fn send_one(
    ctx: &StageCtx<'_>,
    content: &Content,
    order: &OrderRecord,
    index: usize,
) -> PartResult {
    if let Some(msg) = content.message(order, index) {
        return part_result(ctx.market.send_delivery(&msg).await);
    }
    match content.parts.get(index) {
        Some(Part::Image { sha256, path }) => {
            part_result(send_image(ctx, order, sha256, path).await)
        }
        _ => PartResult::NotDelivered {
            reason: format!("第 {} 条消息不存在", index + 1),
        },
    }
}

/// Send one image part from its CDN copy. Every image was uploaded before the first part was
/// claimed ([`super::images::upload_all`]); a copy missing now (the cache was wiped) provably
/// did not leave, so the step fails safely and the retry uploads it again.
async fn send_image(
    ctx: &StageCtx<'_>,
    order: &OrderRecord,
    sha256: &str,
    path: &str,
) -> SendOutcome {
    let uploaded = match ctx.store_op(|s| s.uploaded_image(sha256)) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return SendOutcome::NotDelivered {
                reason: format!("图片 {path} 还没有上传"),
            };
        }
        Err(e) => {
            return SendOutcome::NotDelivered {
                reason: format!("图片 {path} 的上传记录读取失败: {e}"),
            };
        }
    };
    let msg = ImageMessage {
        to: content::address(order),
        url: uploaded.url,
        width: uploaded.width,
        height: uploaded.height,
    };
    // Its echo reads `[图片]`, registered with the claim like a text's.
    ctx.market.send_image(&msg).await
}

/// Send the follow-up message. Its text is registered as the shop's own before it leaves, so
/// its echo is never taken for the seller typing (which would pause the chat bot in this
/// conversation); a message that provably did not leave is forgotten again. (The delivery's
/// own parts register theirs with their claims.)
async fn send_registered(ctx: &StageCtx<'_>, msg: &DeliveryMessage) -> SendOutcome {
    let (account, cid) = (
        msg.to.account.clone(),
        msg.to.cid.clone().unwrap_or_default(),
    );
    if let Err(e) = ctx.store_op(|s| s.register_outgoing(&account, &cid, &msg.text)) {
        tracing::warn!(order_id = %msg.to.order_id, error = %e, "Could not register the delivery message as our own.");
    }
    let outcome = ctx.market.send_delivery(msg).await;
    if matches!(outcome, SendOutcome::NotDelivered { .. }) {
        let _ = ctx.store_op(|s| s.forget_outgoing(&account, &cid, &msg.text));
    }
    outcome
}

pub(super) fn part_result(outcome: SendOutcome) -> PartResult {
    match outcome {
        SendOutcome::Accepted { message_id } => PartResult::Accepted { message_id },
        SendOutcome::NotDelivered { reason } => PartResult::NotDelivered { reason },
        SendOutcome::Unknown { reason } => PartResult::Unknown { reason },
    }
}

/// After a successful delivery, the product's follow-up message, at most once: a provable
/// failure is retried like a delivery (`max_retries`, backing off), an unknown outcome is never
/// repeated, and neither changes the delivery itself. `None` means "go on".
pub(super) async fn follow_up(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
) -> Result<Option<Outcome>, StoreError> {
    if plan.product.delivery.follow_up.is_none() {
        return Ok(None);
    }
    let oid = ctx.order.order_id.clone();
    let mut text: Option<(String, String)> = None;
    let mut build = |order: &OrderRecord, cards: &[String]| {
        let rendered = content::follow_up(ctx.config, plan, order, cards)
            .unwrap_or_else(|| Err("商品没有附加消息".into()))?;
        let part = content::follow_up_plan(&rendered.1, &rendered.0);
        text = Some(rendered);
        Ok(part)
    };
    let begin = ctx.store_op(|s| s.begin_follow_up(&oid, &mut build))?;
    let (order, attempt) = match begin {
        BeginFollowUp::Go { order, attempt, .. } => (order, attempt),
        BeginFollowUp::Failed(reason) => {
            tracing::warn!(order_id = %oid, reason = %reason, "Follow-up message not sent.");
            return Ok(None);
        }
        BeginFollowUp::Settled | BeginFollowUp::NotReady => return Ok(None),
    };
    let Some((text, masked)) = text else {
        return Ok(None);
    };
    let msg = content::message(&order, &text, &masked);
    let result = part_result(send_registered(ctx, &msg).await);
    let max_retries = plan.product.max_retries.unwrap_or(params.max_retries);
    let give_up = attempt > max_retries;
    ctx.store_op(|s| s.finish_follow_up(&oid, &result, give_up))?;
    if matches!(result, PartResult::NotDelivered { .. }) && !give_up {
        let backoff = params
            .retry_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        return Ok(Some(Outcome::Defer {
            until: ctx.now() + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            resume: Resume::Same,
        }));
    }
    Ok(None)
}
