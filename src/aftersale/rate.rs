//! Rating the buyer: one order per task (after completion, or found by the daily sweep over
//! the pending-ratings list), and the sweep itself.

use super::guard::{self, Admit};
use super::{RETRY_AFTER_MS, TaskCtx, TaskEnd, count, render_text, settle, text_view};
use crate::config::aftersale::DEFAULT_RATE_TEXT;
use crate::marketplace::{ActionOutcome, AftersalePort, ListOutcome};
use crate::store::ActionResult;
use crate::store::{
    ActionKind, ActionState, ActionTarget, BeginAction, StoreError, TaskKey, TaskKind,
};

/// A rating that failed this often is left to the seller.
const MAX_ATTEMPTS: u32 = 3;

/// Rate the buyer of `task.subject` (an order id), at most once. A rating whose outcome is
/// unknown is first read back from the pending-ratings list: still pending means it was not
/// rated (and it is rated now), gone means it was.
pub async fn rate_order(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    task: &TaskKey,
) -> Result<TaskEnd, StoreError> {
    if ctx.config.aftersale.rate.is_none() {
        return Ok(TaskEnd::Finished);
    }
    let account = task.account.clone();
    let oid = task.subject.clone();
    let state = ctx
        .store_op(move |s| s.action(ActionKind::Rate, &oid))
        .await?
        .map(|r| r.state);
    match state {
        Some(ActionState::Done | ActionState::AlreadyDone) => return Ok(TaskEnd::Finished),
        _ => {}
    }
    let mut state = state;
    if state == Some(ActionState::Calling) {
        // The process stopped mid-call: this claim turns it unknown; it is read back below.
        claim(ctx, task).await?;
        state = Some(ActionState::Unknown);
    }
    match guard::admit(ctx, port, &account).await? {
        Admit::Go => {}
        Admit::Wait(at) | Admit::Paused(at) => return Ok(TaskEnd::Again(at)),
    }
    if state == Some(ActionState::Unknown) {
        match read_back(ctx, port, task).await? {
            Some(false) => {} // provably not rated: rate it now (the guard slot is taken)
            Some(true) => return Ok(TaskEnd::Finished),
            None => return Ok(TaskEnd::Finished), // the daily sweep reads it back later
        }
    }
    call(ctx, port, task).await
}

/// Claim the rating (`calling`); `Some(attempt)` when the call may go.
async fn claim(ctx: &TaskCtx<'_>, task: &TaskKey) -> Result<Option<u32>, StoreError> {
    let oid = task.subject.clone();
    let order = ctx.store_op(move |s| s.order(&oid)).await?;
    let target = ActionTarget {
        kind: ActionKind::Rate,
        subject: task.subject.clone(),
        account: task.account.clone(),
        order_id: Some(task.subject.clone()),
        item_id: order.and_then(|o| o.item_id),
    };
    Ok(
        match ctx
            .store_op(move |s| s.begin_action(&target, MAX_ATTEMPTS))
            .await?
        {
            BeginAction::Go { attempt } => Some(attempt),
            _ => None,
        },
    )
}

/// Claim, render, call, record.
async fn call(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    task: &TaskKey,
) -> Result<TaskEnd, StoreError> {
    let (account, order_id) = (task.account.clone(), task.subject.clone());
    let oid = order_id.clone();
    let order = ctx.store_op(move |s| s.order(&oid)).await?;
    let view = text_view(ctx.config, &account, &order_id, order.as_ref());
    let template = ctx
        .config
        .aftersale
        .rate
        .as_ref()
        .and_then(|r| r.template.clone());
    let rendered = render_text(ctx.config, template.as_deref(), DEFAULT_RATE_TEXT, &view);
    let Some(attempt) = claim(ctx, task).await? else {
        return Ok(TaskEnd::Finished);
    };
    let (outcome, text_chars) = match rendered {
        Ok(text) => (
            port.rate_buyer(&account, &order_id, &text).await,
            text.chars().count(),
        ),
        Err(note) => {
            let result = ActionResult::Failed {
                code: None,
                note,
                counts: true,
            };
            ctx.store_op(move |s| s.finish_action(ActionKind::Rate, &order_id, &result, None))
                .await?;
            count(ActionKind::Rate, "failed");
            return Ok(TaskEnd::Finished);
        }
    };
    tracing::info!(account = %account, order_id = %order_id, attempt, outcome = ?outcome, "Buyer rated.");
    let (result, label) = settle(&outcome);
    ctx.store_op(move |s| s.finish_action(ActionKind::Rate, &order_id, &result, Some(text_chars)))
        .await?;
    count(ActionKind::Rate, label);
    Ok(match outcome {
        ActionOutcome::RiskControl { code } => {
            guard::trip(ctx, port, &account, &code).await?;
            TaskEnd::Again(ctx.pause_recheck())
        }
        ActionOutcome::Unknown { .. } => TaskEnd::Again(ctx.now() + RETRY_AFTER_MS),
        ActionOutcome::Refused { .. }
        | ActionOutcome::NoLogin { .. }
        | ActionOutcome::NotSent { .. } => {
            TaskEnd::Again(ctx.now() + RETRY_AFTER_MS + ctx.jitter())
        }
        ActionOutcome::Done { .. } | ActionOutcome::AlreadyDone { .. } => TaskEnd::Finished,
    })
}

/// Settle an unknown rating from the pending-ratings list: `Some(rated)`, or `None` when
/// the list could not be read (risk control trips the breaker).
async fn read_back(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    task: &TaskKey,
) -> Result<Option<bool>, StoreError> {
    let pending = match port.pending_ratings(&task.account).await {
        ListOutcome::Listed(orders) => orders,
        ListOutcome::RiskControl { code } => {
            guard::trip(ctx, port, &task.account, &code).await?;
            return Ok(None);
        }
        ListOutcome::Failed { .. } => return Ok(None),
    };
    let rated = !pending.contains(&task.subject);
    let oid = task.subject.clone();
    ctx.store_op(move |s| s.settle_unknown_action(ActionKind::Rate, &oid, rated))
        .await?;
    tracing::info!(account = %task.account, order_id = %task.subject, rated, "Unknown rating read back from the pending-ratings list.");
    Ok(Some(rated))
}

/// The daily sweep over one account's pending-ratings list: settles ratings whose outcome was
/// unknown (an order no longer pending was rated; one still pending was not) and schedules a
/// rating for every pending order not rated yet. Then tomorrow's sweep.
pub async fn sweep(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    task: &TaskKey,
) -> Result<TaskEnd, StoreError> {
    let Some(rate) = ctx.config.aftersale.rate.clone() else {
        return Ok(TaskEnd::Finished);
    };
    let account = task.account.clone();
    match guard::admit(ctx, port, &account).await? {
        Admit::Go => {}
        Admit::Wait(at) | Admit::Paused(at) => return Ok(TaskEnd::Again(at)),
    }
    let pending = match port.pending_ratings(&account).await {
        ListOutcome::Listed(orders) => orders,
        ListOutcome::RiskControl { code } => {
            guard::trip(ctx, port, &account, &code).await?;
            return Ok(TaskEnd::Again(ctx.pause_recheck()));
        }
        ListOutcome::Failed { reason } => {
            tracing::warn!(account = %account, reason = %reason, "Pending-ratings list unavailable; the sweep tries again later.");
            return Ok(TaskEnd::Again(ctx.now() + RETRY_AFTER_MS + ctx.jitter()));
        }
    };
    settle_unknowns(ctx, &account, &pending).await?;
    let mut scheduled = 0;
    for order_id in &pending {
        let oid = order_id.clone();
        let state = ctx
            .store_op(move |s| s.action(ActionKind::Rate, &oid))
            .await?
            .map(|r| r.state);
        if matches!(
            state,
            Some(ActionState::Unknown | ActionState::Done | ActionState::AlreadyDone)
        ) {
            continue;
        }
        let rate_task = TaskKey {
            kind: TaskKind::Rate,
            subject: order_id.clone(),
            account: account.clone(),
        };
        let due = ctx.now() + ctx.jitter();
        let version = ctx.config.version.clone();
        if ctx
            .store_op(move |s| s.ensure_task(&rate_task, due, &version))
            .await?
        {
            scheduled += 1;
        }
    }
    tracing::info!(account = %account, pending = pending.len(), scheduled, "Pending-ratings sweep done.");
    let next = super::schedule::tomorrow_in_window(ctx.now(), rate.sweep_window, ctx.jitter());
    Ok(TaskEnd::Again(next))
}

/// Read-back for ratings whose outcome is unknown: the list is the truth.
async fn settle_unknowns(
    ctx: &TaskCtx<'_>,
    account: &str,
    pending: &[String],
) -> Result<(), StoreError> {
    let unknown: Vec<String> = ctx
        .store_op(|s| s.recent_actions(usize::MAX))
        .await?
        .into_iter()
        .filter(|r| {
            r.kind == ActionKind::Rate && r.account == account && r.state == ActionState::Unknown
        })
        .map(|r| r.subject)
        .collect();
    for order_id in unknown {
        let done = !pending.contains(&order_id);
        let settled = ctx
            .store_op(move |s| s.settle_unknown_action(ActionKind::Rate, &order_id, done))
            .await?;
        if let Some(rec) = settled {
            tracing::info!(account, order_id = %rec.subject, rated = done, "Unknown rating settled from the pending-ratings list.");
        }
    }
    Ok(())
}
