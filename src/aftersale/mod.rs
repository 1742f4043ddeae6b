//! After-sale automations (`aftersale:` in pipeline.yaml): rate the buyer once the order is
//! complete, thank them, and polish (擦亮) listings once a day.
//!
//! Every action is a durable task job run by the ordinary scheduler ([`crate::store::TaskKey`]),
//! claimed in the store before the platform is called (`Store::begin_action`, the ledger's
//! claim-before-call), and passes the account's guard first: at most one call per `min_gap`,
//! and none while the account's circuit breaker is open. A risk-control answer opens the
//! breaker (one alert), and it closes by itself once the account's cookies change. Triggers:
//! a completed order ([`on_completed`]) and the daily jobs [`seed`] keeps scheduled.
//!
//! **Architecture invariant:** never calls a channel or opens redb; the platform is reached
//! only through [`crate::marketplace::AftersalePort`] and the chat send of the `Marketplace`.

mod guard;
mod polish;
mod rate;
pub mod schedule;
mod thanks;

use std::sync::Mutex;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::config::Config;
use crate::config::templates::{AccountView, DeliveryView, OrderView, ProductView};
use crate::marketplace::{ActionOutcome, Marketplace};
use crate::store::{ActionKind, ActionResult, OrderRecord, Store, StoreError, TaskKey, TaskKind};

/// A failed call is tried again this much later (while attempts remain).
const RETRY_AFTER_MS: u64 = 30 * 60 * 1000;

/// What a task run needs: one config snapshot, the store, the marketplace.
pub struct TaskCtx<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub market: &'a dyn Marketplace,
    pub rng: &'a Mutex<StdRng>,
}

/// How a task run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// Nothing more to do: the job goes.
    Finished,
    /// Run the same task again at this time.
    Again(u64),
}

impl TaskCtx<'_> {
    fn now(&self) -> u64 {
        self.store.now()
    }

    /// A random number below `max` (0 when `max` is 0).
    fn draw(&self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.random_range(0..max)
    }

    fn jitter(&self) -> u64 {
        self.draw(crate::clock::millis(self.config.aftersale.jitter))
    }

    /// When a paused account's task looks at its cookies again (a store read, no call).
    fn pause_recheck(&self) -> u64 {
        self.now() + crate::clock::millis(self.config.aftersale.min_gap).max(1_000)
    }

    async fn store_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.store.call(f).await
    }
}

/// Run one task job.
pub async fn run(ctx: &TaskCtx<'_>, task: &TaskKey) -> Result<TaskEnd, StoreError> {
    let Some(port) = ctx.market.aftersale() else {
        tracing::warn!(
            task = task.kind.as_str(),
            "This marketplace cannot do after-sale tasks; dropped."
        );
        return Ok(TaskEnd::Finished);
    };
    let per_order = matches!(task.kind, TaskKind::Rate | TaskKind::Thanks);
    if per_order && blacklisted(ctx, &task.subject).await? {
        // The seller wants nothing automatic to reach this buyer: no rating, no message.
        tracing::info!(order_id = %task.subject, task = task.kind.as_str(), "Buyer is blacklisted; after-sale task skipped.");
        return Ok(TaskEnd::Finished);
    }
    match task.kind {
        TaskKind::Rate => rate::rate_order(ctx, port, task).await,
        TaskKind::Sweep => rate::sweep(ctx, port, task).await,
        TaskKind::Thanks => thanks::thank(ctx, task).await,
        TaskKind::Polish => polish::run(ctx, port, task).await,
    }
}

/// When a daily job (the pending-ratings sweep, polishing) whose run failed or panicked runs
/// again: [`RETRY_AFTER_MS`] later, inside its window (today's if that is still open, else
/// the next day's). `None` for a per-order task (its order's rating is caught by the sweep) or
/// one the config no longer asks for. Without this a failed daily job would leave the schedule
/// until the next start or reload re-seeded it.
pub fn retry_after_failure(config: &Config, task: &TaskKey, now: u64) -> Option<u64> {
    let a = &config.aftersale;
    let window = match task.kind {
        TaskKind::Sweep => a.rate.as_ref()?.sweep_window,
        TaskKind::Polish => a.polish.as_ref()?.window,
        TaskKind::Rate | TaskKind::Thanks => return None,
    };
    Some(schedule::next_in_window(
        now.saturating_add(RETRY_AFTER_MS),
        window,
        0,
    ))
}

/// Whether the order's buyer is on `blacklist.buyers`.
async fn blacklisted(ctx: &TaskCtx<'_>, order_id: &str) -> Result<bool, StoreError> {
    let oid = order_id.to_string();
    let order = ctx.store_op(move |s| s.order(&oid)).await?;
    Ok(order
        .and_then(|o| o.buyer_id)
        .is_some_and(|b| ctx.config.is_blacklisted(&b)))
}

/// The buyer confirmed receipt (or rated): schedule the rating and the thank-you the config
/// asks for, each after a random jitter. A repeated trigger (a duplicate "快给ta一个评价吧")
/// finds the job already there, or the action already done when it runs.
pub fn on_completed(
    store: &Store,
    config: &Config,
    account: &str,
    order_id: &str,
    rng: &Mutex<StdRng>,
) -> Result<bool, StoreError> {
    let a = &config.aftersale;
    let jitter = crate::clock::millis(a.jitter);
    let mut scheduled = false;
    for (on, kind) in [
        (a.rate.is_some(), TaskKind::Rate),
        (a.thanks.is_some(), TaskKind::Thanks),
    ] {
        if !on {
            continue;
        }
        let draw = match jitter {
            0 => 0,
            j => rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .random_range(0..j),
        };
        let task = TaskKey {
            kind,
            subject: order_id.to_string(),
            account: account.to_string(),
        };
        scheduled |= store.ensure_task(&task, store.now() + draw, &config.version)?;
    }
    Ok(scheduled)
}

/// Keep the daily jobs (the pending-ratings sweep, polishing) scheduled for every account:
/// run at start and after each reload; an existing job keeps its time.
pub fn seed(store: &Store, config: &Config, rng: &mut impl RngExt) -> Result<usize, StoreError> {
    let a = &config.aftersale;
    let now = store.now();
    let mut created = 0;
    for account in &config.accounts {
        let daily = [
            (a.rate.as_ref().map(|r| r.sweep_window), TaskKind::Sweep),
            (a.polish.as_ref().map(|p| p.window), TaskKind::Polish),
        ];
        for (window, kind) in daily {
            let Some(window) = window else { continue };
            let task = TaskKey {
                kind,
                subject: account.id.clone(),
                account: account.id.clone(),
            };
            let jitter = crate::clock::millis(a.jitter);
            let offset = if jitter == 0 {
                0
            } else {
                rng.random_range(0..jitter)
            };
            let due = schedule::next_in_window(now, window, offset);
            created += usize::from(store.ensure_task(&task, due, &config.version)?);
        }
    }
    Ok(created)
}

/// The platform's answer as the store records it, and its metrics label.
fn settle(outcome: &ActionOutcome) -> (ActionResult, &'static str) {
    match outcome {
        ActionOutcome::Done { code } => (ActionResult::Done { code: code.clone() }, "done"),
        ActionOutcome::AlreadyDone { code } => (
            ActionResult::AlreadyDone { code: code.clone() },
            "already_done",
        ),
        ActionOutcome::Refused { code, reason } => (
            ActionResult::Failed {
                code: Some(code.clone()),
                note: format!("平台拒绝：{reason}"),
                counts: true,
            },
            "failed",
        ),
        ActionOutcome::RiskControl { code } => (
            ActionResult::Failed {
                code: Some(code.clone()),
                note: "平台风控拦截（需要验证），该账号的售后任务已暂停".into(),
                counts: false,
            },
            "risk_control",
        ),
        ActionOutcome::NoLogin { .. } => (
            ActionResult::Failed {
                code: None,
                note: "账号未登录或登录已过期，更新 Cookie 后会继续".into(),
                counts: false,
            },
            "failed",
        ),
        ActionOutcome::NotSent { .. } => (
            ActionResult::Failed {
                code: None,
                note: "请求没有发出（网络或网关错误），稍后重试".into(),
                counts: false,
            },
            "failed",
        ),
        ActionOutcome::Unknown { .. } => (
            ActionResult::Unknown {
                note: "请求已发出但没有收到答复，无法确定是否成功；不会自动重复".into(),
            },
            "unknown",
        ),
    }
}

fn count(kind: ActionKind, outcome: &str) {
    crate::metrics::inc(
        crate::metrics::AFTERSALE_ACTIONS,
        &[("action", kind.as_str()), ("outcome", outcome)],
    );
}

/// What a rating or thank-you template sees: the delivery view without cards.
fn text_view(
    config: &Config,
    account: &str,
    order_id: &str,
    order: Option<&OrderRecord>,
) -> DeliveryView {
    let name = config
        .account(account)
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| account.to_string());
    let get =
        |f: fn(&OrderRecord) -> Option<&String>| order.and_then(f).cloned().unwrap_or_default();
    let item_id = get(|o| o.item_id.as_ref());
    let title = get(|o| o.item_title.as_ref());
    DeliveryView {
        order: OrderView {
            order_id: order_id.to_string(),
            item_id: item_id.clone(),
            item_title: title.clone(),
            buyer_id: get(|o| o.buyer_id.as_ref()),
            buyer_nick: get(|o| o.buyer_nick.as_ref()),
            sku: get(|o| o.sku.as_ref()),
            quantity: order.map_or(1, |o| o.quantity),
            amount: get(|o| o.amount.as_ref()),
            paid_at: order
                .and_then(|o| o.payment_time)
                .map(crate::clock::format_beijing)
                .unwrap_or_default(),
        },
        product: ProductView {
            item_id,
            title,
            category: String::new(),
        },
        cards: Vec::new(),
        unit: 0,
        units: 0,
        account: AccountView {
            id: account.to_string(),
            name,
        },
    }
}

/// The text of a rating or thank-you: the seller's template, else the built-in Chinese one.
fn render_text(
    config: &Config,
    template: Option<&str>,
    default: &str,
    view: &DeliveryView,
) -> Result<String, String> {
    let Some(name) = template else {
        return Ok(default.to_string());
    };
    match config.templates.render(name, view) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(format!("模板 templates/{name} 渲染结果为空")),
        Err(e) => Err(format!("模板 templates/{name} 渲染失败：{e}")),
    }
}
