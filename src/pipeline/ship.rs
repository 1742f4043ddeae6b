//! ship: deliver automatically, or hand the order to the seller.
//!
//! The ship mode orders two steps, sending the rendered content in chat and confirming the
//! shipment on the platform. Each step is claimed in the ledger before the marketplace is
//! called and recorded after, so a resumed job skips finished steps and a send that was in
//! flight during a crash becomes `needs_human` instead of being repeated. A failure that
//! provably did not reach the buyer is retried with exponential backoff up to `max_retries`,
//! then handed over as `ship_failed`.

use crate::config::templates::{AccountView, DeliveryView, OrderView, ProductView};
use crate::config::{Category, Config, ShipParams, Stock};
use crate::marketplace::{ConsignOutcome, ConsignRequest, DeliveryMessage, SendOutcome};
use crate::order::ShipMode;
use crate::store::{BeginStep, OrderRecord, ShipStep, StepResult, StoreError, mask_secret};

use super::alerts;
use super::plan::Plan;
use super::readback;
use super::stage::{Outcome, Resume, StageCtx};

pub(super) async fn run(ctx: &StageCtx<'_>, params: &ShipParams) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(reason) => return Ok(ctx.manual(reason)),
    };
    if !plan.auto {
        return Ok(ctx.manual(why_manual(&plan, params).to_string()));
    }
    let steps = steps(plan.mode);
    for (i, step) in steps.iter().enumerate() {
        if let Some(outcome) = run_step(ctx, &plan, params, *step, i + 1 == steps.len()).await? {
            return Ok(outcome);
        }
    }
    Ok(Outcome::Continue)
}

fn steps(mode: ShipMode) -> &'static [ShipStep] {
    match mode {
        ShipMode::SendThenConfirm => &[ShipStep::Send, ShipStep::Confirm],
        ShipMode::ConfirmThenSend => &[ShipStep::Confirm, ShipStep::Send],
        ShipMode::SendOnly => &[ShipStep::Send],
        ShipMode::ConfirmOnly => &[ShipStep::Confirm],
    }
}

fn why_manual(plan: &Plan, params: &ShipParams) -> &'static str {
    if plan.product.category == Category::Physical {
        "实物商品需人工发货"
    } else if !plan.product.auto_ship {
        "该商品未开启自动发货 (auto_ship: false)"
    } else if !params.enabled {
        "自动发货已关闭 (ship.enabled: false)"
    } else {
        "需人工发货"
    }
}

/// A step's result, plus whether a safe failure is worth retrying.
struct Attempted {
    result: StepResult,
    retryable: bool,
}

/// `None` means "go on with the next step".
async fn run_step(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    step: ShipStep,
    last: bool,
) -> Result<Option<Outcome>, StoreError> {
    let oid = ctx.order.order_id.clone();
    // With a marketplace that reads conversations back, an unknown outcome is checked there
    // first; the seller hears of it only if the read-back cannot settle it.
    let reads_back = step == ShipStep::Send && ctx.market.reads_back();
    if reads_back {
        if let Some((state, cards)) = ctx.store_op(|s| s.pending_read_back(&oid))? {
            return readback::run(ctx, plan, params, state, &cards)
                .await
                .map(Some);
        }
    }
    let on_unknown = if reads_back {
        Vec::new()
    } else {
        ctx.router().drafts(&alerts::needs_human(
            ctx.config,
            ctx.order,
            "进程在发送途中停止，无法确定买家是否收到",
        ))
    };
    let (order, cards, attempt) = match ctx.store_op(|s| s.begin_step(&oid, step, &on_unknown))? {
        BeginStep::Go {
            order,
            cards,
            attempt,
        } => (order, cards, attempt),
        BeginStep::AlreadyDone => return Ok(None),
        BeginStep::OutcomeUnknown if reads_back => return readback::arm(ctx, params).map(Some),
        BeginStep::OutcomeUnknown => {
            return Ok(Some(Outcome::Stop(
                "send outcome unknown; needs_human".into(),
            )));
        }
        BeginStep::NotShippable(why) => return Ok(Some(Outcome::Stop(why))),
    };
    let attempted = match step {
        ShipStep::Send => send(ctx, plan, &order, &cards).await,
        ShipStep::Confirm => confirm(ctx, &order).await,
    };
    let alerts = match &attempted.result {
        StepResult::Unknown { .. } if reads_back => Vec::new(),
        StepResult::Unknown { reason } => ctx
            .router()
            .drafts(&alerts::needs_human(ctx.config, &order, reason)),
        _ => Vec::new(),
    };
    ctx.store_op(|s| s.finish_step(&oid, &attempted.result, last, &alerts))?;
    Ok(match attempted.result {
        StepResult::SendAccepted { .. } | StepResult::Confirmed => None,
        StepResult::Unknown { .. } if reads_back => Some(readback::arm(ctx, params)?),
        StepResult::Unknown { reason } => Some(Outcome::Stop(format!("outcome unknown: {reason}"))),
        StepResult::FailedSafe { reason } => Some(after_safe_failure(
            ctx,
            plan,
            params,
            attempt,
            attempted.retryable,
            reason,
        )),
    })
}

fn after_safe_failure(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    attempt: u32,
    retryable: bool,
    reason: String,
) -> Outcome {
    let max_retries = plan.product.max_retries.unwrap_or(params.max_retries);
    if retryable && attempt <= max_retries {
        let backoff = params
            .retry_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        tracing::info!(order_id = %ctx.order.order_id, attempt, reason = %reason, "Delivery failed safely; will retry.");
        return Outcome::Defer {
            until: ctx.now() + backoff.as_millis() as u64,
            resume: Resume::Same,
        };
    }
    let alert = alerts::ship_failed(ctx.order, &plan.product.title, attempt, &reason);
    Outcome::Manual {
        reason: format!("delivery failed: {reason}"),
        alerts: vec![alert],
    }
}

/// The delivery message for `order` with its reserved `cards`, or why there is none (a safe
/// failure for a human: nothing can have left). The read-back rebuilds the same message.
pub(super) fn delivery_message(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
) -> Result<DeliveryMessage, String> {
    let Some(template) = plan.product.template.as_deref() else {
        return Err("商品没有配置发货模板 (template)".into());
    };
    if matches!(plan.product.stock, Stock::Cards { .. }) && cards.is_empty() {
        // Never send a card product's message without its keys (no stock-check ran, or the
        // SKU has no pool): nothing has left, so this is a safe failure for a human.
        return Err("卡密商品没有预留到卡密，未发送".into());
    }
    let view = delivery_view(ctx.config, plan, order, cards);
    let text = match ctx.config.templates.render(template, &view) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => return Err("发货模板渲染结果为空".into()),
        Err(e) => return Err(format!("发货模板渲染失败: {e}")),
    };
    Ok(DeliveryMessage {
        account: order.account.clone(),
        order_id: order.order_id.clone(),
        cid: order.chat_id.clone(),
        buyer_id: order.buyer_id.clone(),
        item_id: order.item_id.clone(),
        masked_text: mask_all(&text, cards),
        text,
    })
}

async fn send(ctx: &StageCtx<'_>, plan: &Plan, order: &OrderRecord, cards: &[String]) -> Attempted {
    let msg = match delivery_message(ctx, plan, order, cards) {
        Ok(msg) => msg,
        Err(why) => return not_retryable(&why),
    };
    // Register the text before it leaves, so its echo is never taken for the seller typing
    // (which would pause the chat bot in this conversation).
    let (account, cid) = (msg.account.clone(), msg.cid.clone().unwrap_or_default());
    if let Err(e) = ctx.store_op(|s| s.register_outgoing(&account, &cid, &msg.text)) {
        tracing::warn!(order_id = %msg.order_id, error = %e, "Could not register the delivery message as our own.");
    }
    let outcome = ctx.market.send_delivery(&msg).await;
    if matches!(outcome, SendOutcome::NotDelivered { .. }) {
        let _ = ctx.store_op(|s| s.forget_outgoing(&account, &cid, &msg.text));
    }
    match outcome {
        SendOutcome::Accepted { message_id } => Attempted {
            result: StepResult::SendAccepted {
                message_id,
                masked_content: msg.masked_text.clone(),
            },
            retryable: false,
        },
        SendOutcome::NotDelivered { reason } => Attempted {
            result: StepResult::FailedSafe { reason },
            retryable: true,
        },
        SendOutcome::Unknown { reason } => Attempted {
            result: StepResult::Unknown { reason },
            retryable: false,
        },
    }
}

async fn confirm(ctx: &StageCtx<'_>, order: &OrderRecord) -> Attempted {
    let req = ConsignRequest {
        account: order.account.clone(),
        order_id: order.order_id.clone(),
    };
    match ctx.market.confirm_shipment(&req).await {
        ConsignOutcome::Confirmed | ConsignOutcome::AlreadyShipped => Attempted {
            result: StepResult::Confirmed,
            retryable: false,
        },
        // Confirming is idempotent on the platform, so even an unclear failure is safe to retry.
        ConsignOutcome::Failed { reason, retryable } => Attempted {
            result: StepResult::FailedSafe {
                reason: format!("确认发货失败: {reason}"),
            },
            retryable,
        },
    }
}

fn not_retryable(reason: &str) -> Attempted {
    Attempted {
        result: StepResult::FailedSafe {
            reason: reason.to_string(),
        },
        retryable: false,
    }
}

fn mask_all(text: &str, cards: &[String]) -> String {
    cards.iter().fold(text.to_string(), |t, c| {
        t.replace(c.as_str(), &mask_secret(c))
    })
}

fn delivery_view(
    config: &Config,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
) -> DeliveryView {
    let account = config.account(&order.account);
    DeliveryView {
        order: OrderView {
            order_id: order.order_id.clone(),
            item_id: order.item_id.clone().unwrap_or_default(),
            item_title: order
                .item_title
                .clone()
                .unwrap_or_else(|| plan.product.title.clone()),
            buyer_id: order.buyer_id.clone().unwrap_or_default(),
            buyer_nick: order.buyer_nick.clone().unwrap_or_default(),
            sku: order.sku.clone().unwrap_or_default(),
            quantity: order.quantity,
            amount: order.amount.clone().unwrap_or_default(),
            paid_at: order
                .payment_time
                .map(crate::clock::format_beijing)
                .unwrap_or_default(),
        },
        product: ProductView {
            item_id: plan.product.item_id.clone(),
            title: plan.product.title.clone(),
            category: plan.product.category.as_str().to_string(),
        },
        cards: cards.to_vec(),
        account: AccountView {
            id: order.account.clone(),
            name: account.map(|a| a.name.clone()).unwrap_or_default(),
        },
    }
}
