//! Polishing (擦亮): once a day, in the seller's window, each listed item (or every on-shelf
//! item) once. The raw result code is kept: "already polished today" is recorded as such.

use super::guard::{self, Admit};
use super::schedule::{beijing_day, tomorrow_in_window};
use super::{TaskCtx, TaskEnd, count, settle};
use crate::marketplace::{ActionOutcome, AftersalePort, ListOutcome};
use crate::store::{ActionKind, ActionTarget, BeginAction, PolishPlan, StoreError, TaskKey};

/// A failed polish is tried again within the day at most this often.
const MAX_ATTEMPTS: u32 = 2;

pub async fn run(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    task: &TaskKey,
) -> Result<TaskEnd, StoreError> {
    let Some(polish) = ctx.config.aftersale.polish.clone() else {
        return Ok(TaskEnd::Finished);
    };
    let account = task.account.clone();
    let today = beijing_day(ctx.now());
    let plan = match plan(ctx, port, &account, &polish.items, &today).await? {
        Ok(plan) => plan,
        Err(again) => return Ok(TaskEnd::Again(again)),
    };
    for item in &plan.items {
        let subject = format!("{item}@{today}");
        let target = ActionTarget {
            kind: ActionKind::Polish,
            subject: subject.clone(),
            account: account.clone(),
            order_id: None,
            item_id: Some(item.clone()),
        };
        let sub = subject.clone();
        if let Some(rec) = ctx
            .store_op(move |s| s.action(ActionKind::Polish, &sub))
            .await?
        {
            let retry =
                rec.state == crate::store::ActionState::Failed && rec.attempts < MAX_ATTEMPTS;
            if !retry && rec.state != crate::store::ActionState::Calling {
                continue;
            }
        }
        match guard::admit(ctx, port, &account).await? {
            Admit::Go => {}
            Admit::Wait(at) | Admit::Paused(at) => return Ok(TaskEnd::Again(at)),
        }
        let BeginAction::Go { .. } = ctx
            .store_op(move |s| s.begin_action(&target, MAX_ATTEMPTS))
            .await?
        else {
            continue;
        };
        let outcome = port.polish(&account, item).await;
        tracing::info!(account = %account, item_id = %item, outcome = ?outcome, "Item polished.");
        let (result, label) = settle(&outcome);
        ctx.store_op(move |s| s.finish_action(ActionKind::Polish, &subject, &result, None))
            .await?;
        count(ActionKind::Polish, label);
        if let ActionOutcome::RiskControl { code } = outcome {
            guard::trip(ctx, port, &account, &code).await?;
            return Ok(TaskEnd::Again(ctx.pause_recheck()));
        }
    }
    Ok(TaskEnd::Again(tomorrow_in_window(
        ctx.now(),
        polish.window,
        ctx.jitter(),
    )))
}

/// Today's items: the configured list, or the on-shelf items listed once per day (the list
/// is kept, so a restart mid-run does not list again). `Err(at)`: not listed yet, try at.
async fn plan(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    account: &str,
    configured: &[String],
    today: &str,
) -> Result<Result<PolishPlan, u64>, StoreError> {
    let acc = account.to_string();
    if let Some(plan) = ctx.store_op(move |s| s.polish_plan(&acc)).await? {
        if plan.day == today {
            return Ok(Ok(plan));
        }
    }
    let items = if configured.is_empty() {
        match guard::admit(ctx, port, account).await? {
            Admit::Go => {}
            Admit::Wait(at) | Admit::Paused(at) => return Ok(Err(at)),
        }
        match port.on_shelf_items(account).await {
            ListOutcome::Listed(items) => items,
            ListOutcome::RiskControl { code } => {
                guard::trip(ctx, port, account, &code).await?;
                return Ok(Err(ctx.pause_recheck()));
            }
            ListOutcome::Failed { reason } => {
                tracing::warn!(account, reason = %reason, "On-shelf item list unavailable; polishing tries again later.");
                return Ok(Err(ctx.now() + super::RETRY_AFTER_MS));
            }
        }
    } else {
        configured.to_vec()
    };
    let plan = PolishPlan {
        day: today.to_string(),
        items,
    };
    let (acc, p) = (account.to_string(), plan.clone());
    ctx.store_op(move |s| s.set_polish_plan(&acc, &p)).await?;
    Ok(Ok(plan))
}
