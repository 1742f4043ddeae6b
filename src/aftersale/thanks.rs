//! The thank-you message: once per order, over the chat connection the deliveries use.
//!
//! Claimed in the store before the send, like every chat send: a send whose answer never came
//! (or a claim found after a crash) is unknown and never sent again.

use super::guard::{self, Admit};
use super::{RETRY_AFTER_MS, TaskCtx, TaskEnd, count, render_text, text_view};
use crate::config::aftersale::DEFAULT_THANKS_TEXT;
use crate::marketplace::{ChatAddress, DeliveryMessage, SendOutcome};
use crate::store::{ActionKind, ActionResult, ActionTarget, BeginAction, StoreError, TaskKey};

const MAX_ATTEMPTS: u32 = 3;

pub async fn thank(ctx: &TaskCtx<'_>, task: &TaskKey) -> Result<TaskEnd, StoreError> {
    let Some(thanks) = ctx.config.aftersale.thanks.clone() else {
        return Ok(TaskEnd::Finished);
    };
    let Some(port) = ctx.market.aftersale() else {
        return Ok(TaskEnd::Finished);
    };
    let (account, order_id) = (task.account.clone(), task.subject.clone());
    let oid = order_id.clone();
    if let Some(rec) = ctx
        .store_op(move |s| s.action(ActionKind::Thanks, &oid))
        .await?
    {
        if rec.state != crate::store::ActionState::Failed {
            // Sent, or unknown: never again. A claim left by a crash becomes unknown below.
            if rec.state != crate::store::ActionState::Calling {
                return Ok(TaskEnd::Finished);
            }
        }
    }
    match guard::admit(ctx, port, &account).await? {
        Admit::Go => {}
        Admit::Wait(at) | Admit::Paused(at) => return Ok(TaskEnd::Again(at)),
    }
    let oid = order_id.clone();
    let order = ctx.store_op(move |s| s.order(&oid)).await?;
    let view = text_view(ctx.config, &account, &order_id, order.as_ref());
    let text = match render_text(
        ctx.config,
        thanks.template.as_deref(),
        DEFAULT_THANKS_TEXT,
        &view,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(order_id = %order_id, error = %e, "Thank-you text could not be rendered; not sent.");
            return Ok(TaskEnd::Finished);
        }
    };
    let target = ActionTarget {
        kind: ActionKind::Thanks,
        subject: order_id.clone(),
        account: account.clone(),
        order_id: Some(order_id.clone()),
        item_id: order.as_ref().and_then(|o| o.item_id.clone()),
    };
    let BeginAction::Go { .. } = ctx
        .store_op(move |s| s.begin_action(&target, MAX_ATTEMPTS))
        .await?
    else {
        return Ok(TaskEnd::Finished);
    };
    let msg = DeliveryMessage {
        to: ChatAddress {
            account: account.clone(),
            order_id: order_id.clone(),
            cid: order.as_ref().and_then(|o| o.chat_id.clone()),
            buyer_id: order.as_ref().and_then(|o| o.buyer_id.clone()),
            item_id: order.as_ref().and_then(|o| o.item_id.clone()),
        },
        masked_text: text.clone(),
        text,
    };
    send(ctx, msg).await
}

/// Register the echo, send, record.
async fn send(ctx: &TaskCtx<'_>, msg: DeliveryMessage) -> Result<TaskEnd, StoreError> {
    // Our own message comes back as an echo: it must not look like the seller typing.
    let echo = (
        msg.to.account.clone(),
        msg.to.cid.clone().unwrap_or_default(),
        msg.text.clone(),
    );
    let (acc, cid, text) = echo.clone();
    ctx.store_op(move |s| s.register_outgoing(&acc, &cid, &text))
        .await?;
    let outcome = ctx.market.send_delivery(&msg).await;
    let chars = msg.text.chars().count();
    let (result, label, end) = match &outcome {
        SendOutcome::Accepted { .. } => (
            ActionResult::Done {
                code: "SENT".into(),
            },
            "done",
            TaskEnd::Finished,
        ),
        SendOutcome::NotDelivered { reason } => {
            let (acc, cid, text) = echo;
            ctx.store_op(move |s| s.forget_outgoing(&acc, &cid, &text))
                .await?;
            (
                ActionResult::Failed {
                    code: None,
                    note: format!("消息没有发出：{}", short(reason)),
                    counts: true,
                },
                "failed",
                TaskEnd::Again(ctx.now() + RETRY_AFTER_MS + ctx.jitter()),
            )
        }
        SendOutcome::Unknown { .. } => (
            ActionResult::Unknown {
                note: "消息已发出但没有收到答复，无法确定买家是否收到；不会重复发送".into(),
            },
            "unknown",
            TaskEnd::Finished,
        ),
    };
    tracing::info!(account = %msg.to.account, order_id = %msg.to.order_id, outcome = label, "Thank-you message sent.");
    let oid = msg.to.order_id.clone();
    ctx.store_op(move |s| s.finish_action(ActionKind::Thanks, &oid, &result, Some(chars)))
        .await?;
    count(ActionKind::Thanks, label);
    Ok(end)
}

/// A developer reason kept short for the seller's note (it never holds a secret).
fn short(reason: &str) -> String {
    reason.chars().take(80).collect()
}
