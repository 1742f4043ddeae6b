//! The read-back of an uncertain send, part of the ship stage: a send whose answer never came
//! (or that was in flight at a crash) is checked against the conversation itself instead of
//! going to the seller at once.
//!
//! The delivery is `needs_human` from the moment the outcome is unknown (so a crash can never
//! turn it into a second send); a read-back is armed and the ship stage's job comes back
//! after `readback_after`. Each run rebuilds the delivery message (same template, same keys)
//! and asks the marketplace to find it among the shop's messages sent since the claim:
//!
//! * **found** → `delivered` automatically, the message id and time recorded as evidence (and
//!   the shipment confirmed next, if the ship mode confirms);
//! * **absent** twice in a row (the conversation was read) → the default leaves the order to
//!   the seller with "会话中未找到发货消息"; a product with `readback: { resend_if_absent: true }`
//!   gives the keys back and delivers again from the start;
//! * **unreadable** (not connected, refused, no answer) → read again, backing off, up to
//!   [`MAX_UNREADABLE`] times, then the seller is told.
//!
//! Only the ship stage calls this; like every stage it touches the network through the
//! [`crate::marketplace::Marketplace`] and redb through the store.

use crate::config::ShipParams;
use crate::store::{
    NotReceived, ReadBackArm, ReadBackResult, ReadBackState, ReceiptEvidence, ShipResume,
    StoreError,
};

use super::alerts;
use super::content;
use super::plan::Plan;
use super::stage::{Outcome, Resume, StageCtx};
use crate::marketplace::ReadBack;

/// Reads that must find the conversation without the message before it counts as absent.
const ABSENT_READS: u32 = 2;
/// Reads that may fail to read the conversation before the seller is told.
pub const MAX_UNREADABLE: u32 = 5;
/// What the seller reads when the conversation does not have the delivery message.
pub const NOT_FOUND: &str = "会话中未找到发货消息（已读取聊天记录，没有这条发货消息）";
/// What the seller reads when the uncertain part is not a text message.
const NOT_TEXT: &str = "结果未知的是一条图片消息，无法从聊天记录核对，请在闲鱼聊天中人工核对";
/// What the seller reads when the conversation could not be read.
const UNREADABLE: &str = "无法读取聊天记录核对发货结果，请在闲鱼聊天中人工核对";

/// Where and when the read-back of a send whose outcome becomes unknown runs: the ship stage
/// again after `readback_after`. The store arms it in the transaction that records the
/// unknown outcome (`needs_human`), so no crash can leave that send without its read-back.
pub(super) fn arming(ctx: &StageCtx<'_>, params: &ShipParams) -> ReadBackArm {
    ReadBackArm {
        resume: super::next_run(ctx.config, ctx.stage_index),
        due_ms: due(ctx, params, 0),
    }
}

/// One read of the conversation for the armed read-back `state`.
pub(super) async fn run(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    state: ReadBackState,
    cards: &[String],
) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let msg = match content::build(ctx.config, plan, ctx.order, cards) {
        Ok(c) => c.message(ctx.order, state.part.unwrap_or(0)),
        // The message cannot be rebuilt (the template changed or broke): a human must look.
        Err(why) => return give_up(ctx, &format!("{UNREADABLE}（{why}）")),
    };
    let Some(msg) = msg else {
        // Only text messages can be recognised in the history.
        return give_up(ctx, NOT_TEXT);
    };
    match ctx.market.read_back(&msg, state.since_ms).await {
        ReadBack::Found {
            message_id,
            sent_at_ms,
        } => found(ctx, plan, message_id, sent_at_ms),
        ReadBack::Absent => {
            let counts = ctx.store_op(|s| s.note_read_back(&oid, ReadBackResult::Absent))?;
            if counts.absent < ABSENT_READS {
                return Ok(defer(ctx, params, 1));
            }
            absent(ctx, plan)
        }
        ReadBack::Unreadable { reason } => {
            tracing::warn!(order_id = %oid, reason = %reason, "Conversation not read back.");
            let counts = ctx.store_op(|s| s.note_read_back(&oid, ReadBackResult::Unreadable))?;
            if counts.unreadable < MAX_UNREADABLE {
                return Ok(defer(ctx, params, counts.unreadable));
            }
            give_up(ctx, UNREADABLE)
        }
    }
}

/// The message is there: close the delivery with the evidence (and confirm next if needed).
fn found(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    message_id: Option<String>,
    sent_at_ms: u64,
) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let detail = match (&message_id, sent_at_ms) {
        (Some(id), t) if t > 0 => format!("消息 {id}，{}", crate::clock::format_beijing(t)),
        (Some(id), _) => format!("消息 {id}"),
        (None, _) => "按发货内容匹配".to_string(),
    };
    let evidence = ReceiptEvidence::ConversationHistory { message_id, detail };
    let ship = ShipResume {
        at: super::run_from(ctx.config, crate::config::StageKind::Ship),
        confirms: plan.mode.confirms(),
    };
    ctx.store_op(|s| s.mark_uncertain_delivery_received(&oid, &evidence, Some(&ship)))?;
    tracing::info!(order_id = %oid, "Delivery message found in the conversation; delivered.");
    Ok(Outcome::Stop(
        "read back: the delivery message is in the conversation".into(),
    ))
}

/// The conversation was read and the message is not in it.
fn absent(ctx: &StageCtx<'_>, plan: &Plan) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    if !plan.product.resend_if_absent {
        return give_up(ctx, NOT_FOUND);
    }
    let from_start = super::first_run(ctx.config);
    ctx.store_op(|s| {
        s.resolve_not_received(&oid, NotReceived::Retry, "im-read-back", &from_start)
    })?;
    tracing::info!(order_id = %oid, "Delivery message not in the conversation; delivering again (resend_if_absent).");
    Ok(Outcome::Stop(
        "read back: not in the conversation; delivering again".into(),
    ))
}

/// Leave the order to the seller with `reason` and the needs_human alert.
fn give_up(ctx: &StageCtx<'_>, reason: &str) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let drafts = ctx
        .router()
        .drafts(&alerts::needs_human(ctx.config, ctx.order, reason));
    ctx.store_op(|s| s.end_read_back(&oid, reason, &drafts))?;
    Ok(Outcome::Stop(format!("read back inconclusive: {reason}")))
}

/// Come back to the ship stage after `readback_after`, doubled `backoff` times.
fn defer(ctx: &StageCtx<'_>, params: &ShipParams, backoff: u32) -> Outcome {
    Outcome::Defer {
        until: due(ctx, params, backoff),
        resume: Resume::Same,
    }
}

/// `readback_after` from now, doubled `backoff` times.
fn due(ctx: &StageCtx<'_>, params: &ShipParams, backoff: u32) -> u64 {
    let wait = params
        .readback_after
        .saturating_mul(1u32 << backoff.min(10));
    ctx.now()
        .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}
