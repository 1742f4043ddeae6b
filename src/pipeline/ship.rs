//! ship: deliver automatically, or hand the order to the seller.
//!
//! The ship mode orders two steps, sending the rendered content in chat and confirming the
//! shipment on the platform. Each step is claimed in the ledger before the marketplace is
//! called and recorded after, so a resumed job skips finished steps and a send that was in
//! flight during a crash becomes `needs_human` instead of being repeated. A failure that
//! provably did not reach the buyer is retried with exponential backoff up to `max_retries`,
//! then handed over as `ship_failed`.

use std::time::Duration;

use crate::config::templates::{AccountView, DeliveryView, OrderView, ProductView};
use crate::config::{Category, Config, ShipMode, ShipParams, Stock};
use crate::marketplace::{ConsignOutcome, ConsignRequest, DeliveryMessage, SendOutcome};
use crate::notify::{Alert, EventKind};
use crate::store::{BeginStep, OrderRecord, ShipStep, StepResult, StoreError, mask_secret};

use super::{Outcome, Plan, Resume, StageCtx};

/// Xianyu expects shipment within 48 hours of payment for most items.
const SHIP_DEADLINE: Duration = Duration::from_secs(48 * 3600);

pub(super) async fn run(ctx: &StageCtx<'_>, params: &ShipParams) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(reason) => return Ok(manual(ctx, reason)),
    };
    if !plan.auto {
        return Ok(manual(ctx, why_manual(&plan, params).to_string()));
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
    let on_unknown = ctx.router().drafts(&needs_human_alert(
        ctx.config,
        ctx.order,
        "进程在发送途中停止，无法确定买家是否收到",
    ));
    let (order, cards, attempt) = match ctx.store_op(|s| s.begin_step(&oid, step, &on_unknown))? {
        BeginStep::Go {
            order,
            cards,
            attempt,
        } => (order, cards, attempt),
        BeginStep::AlreadyDone => return Ok(None),
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
        StepResult::Unknown { reason } => ctx
            .router()
            .drafts(&needs_human_alert(ctx.config, &order, reason)),
        _ => Vec::new(),
    };
    ctx.store_op(|s| s.finish_step(&oid, &attempted.result, last, &alerts))?;
    Ok(match attempted.result {
        StepResult::SendAccepted { .. } | StepResult::Confirmed => None,
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
    let alert = Alert::new(EventKind::ShipFailed)
        .order(&ctx.order.order_id)
        .fact("账号", ctx.order.account.clone())
        .fact("商品", plan.product.title.clone())
        .fact("尝试次数", attempt.to_string())
        .fact("失败原因", reason.clone())
        .action(format!("买家未收到任何内容。请检查后执行 `xianyu-shopd orders retry {}` 重新发货，或在闲鱼App中手动处理", ctx.order.order_id));
    Outcome::Manual {
        reason: format!("delivery failed: {reason}"),
        alerts: vec![alert],
    }
}

async fn send(ctx: &StageCtx<'_>, plan: &Plan, order: &OrderRecord, cards: &[String]) -> Attempted {
    let Some(template) = plan.product.template.as_deref() else {
        return not_retryable("商品没有配置发货模板 (template)");
    };
    if matches!(plan.product.stock, Stock::Cards { .. }) && cards.is_empty() {
        // Never send a card product's message without its keys (no stock-check ran, or the
        // SKU has no pool): nothing has left, so this is a safe failure for a human.
        return not_retryable("卡密商品没有预留到卡密，未发送");
    }
    let view = delivery_view(ctx.config, plan, order, cards);
    let text = match ctx.config.templates.render(template, &view) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => return not_retryable("发货模板渲染结果为空"),
        Err(e) => return not_retryable(&format!("发货模板渲染失败: {e}")),
    };
    let msg = DeliveryMessage {
        account: order.account.clone(),
        order_id: order.order_id.clone(),
        cid: order.chat_id.clone(),
        buyer_id: order.buyer_id.clone(),
        item_id: order.item_id.clone(),
        text: text.clone(),
        masked_text: mask_all(&text, cards),
    };
    match ctx.market.send_delivery(&msg).await {
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

fn manual(ctx: &StageCtx<'_>, reason: String) -> Outcome {
    Outcome::Manual {
        alerts: vec![manual_alert(ctx.config, ctx.order, &reason)],
        reason,
    }
}

/// Everything the seller needs to ship an order by hand.
pub(crate) fn manual_alert(config: &Config, order: &OrderRecord, reason: &str) -> Alert {
    let product = order.item_id.as_deref().and_then(|id| config.product(id));
    let company = product
        .and_then(|p| p.logistics_company.clone())
        .or_else(|| config.ship().map(|s| s.logistics_company.clone()))
        .unwrap_or_default();
    order_facts(Alert::new(EventKind::ManualShip), config, order)
        .fact("原因", reason)
        .fact("建议物流", if product.is_some_and(|p| p.category == Category::Physical) { company } else { String::new() })
        .action(format!(
            "请在闲鱼App中尽快发货；实物商品发货后执行 `xianyu-shopd orders ship {} --company 快递公司 --tracking 快递单号` 记录单号",
            order.order_id
        ))
}

fn needs_human_alert(config: &Config, order: &OrderRecord, reason: &str) -> Alert {
    order_facts(Alert::new(EventKind::NeedsHuman), config, order)
        .fact("原因", reason)
        .action(format!(
            "发货内容可能已经送达买家，系统不会自动重发。请在闲鱼聊天中核实：若买家未收到，执行 `xianyu-shopd orders retry {} --force`",
            order.order_id
        ))
}

fn order_facts(alert: Alert, config: &Config, order: &OrderRecord) -> Alert {
    let account = config
        .account(&order.account)
        .map_or(order.account.clone(), |a| format!("{} ({})", a.name, a.id));
    let deadline = order
        .payment_time
        .map(|p| crate::clock::format_beijing(p + SHIP_DEADLINE.as_millis() as u64));
    alert
        .order(&order.order_id)
        .fact("账号", account)
        .fact("商品", order.item_title.clone().unwrap_or_default())
        .fact("商品ID", order.item_id.clone().unwrap_or_default())
        .fact("规格", order.sku.clone().unwrap_or_default())
        .fact("数量", order.quantity.to_string())
        .fact(
            "金额",
            order
                .amount
                .clone()
                .map(|a| format!("¥{a}"))
                .unwrap_or_default(),
        )
        .fact(
            "买家",
            order
                .buyer_nick
                .clone()
                .or(order.buyer_id.clone())
                .unwrap_or_default(),
        )
        .fact(
            "付款时间",
            order
                .payment_time
                .map(crate::clock::format_beijing)
                .unwrap_or_default(),
        )
        .fact("发货截止(参考)", deadline.unwrap_or_default())
}
