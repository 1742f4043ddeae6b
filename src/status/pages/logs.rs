//! 日志 (`/logs`): what happened to orders, accounts and the config, in the seller's words,
//! newest first. Built from the store's records (each recently active order's status log and
//! delivery ledger, the audit log with the seller's commands and every config reload) and the
//! health registry's account events (login, risk control, long disconnections; these start
//! afresh at each start). The raw developer log (warnings and errors) is at `/logs?raw=1`.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::health::{AccountEvent, Health, Login, LoginEvent};
use crate::order::OrderStatus;
use crate::status::logs::{LogBuffer, LogLine};
use crate::status::page::{Built, Input};
use crate::store::timeline::OrderStory;
use crate::store::{ActionType, AuditEntry, DeliveryState, LedgerEvent, StatusLogEntry};
use crate::why::Why;

/// Orders whose story the page tells: the most recently active ones.
pub const STORY_ORDERS: usize = 100;
/// Audit entries read (commands, imports, reloads).
const AUDIT_ENTRIES: usize = 100;
/// Lines the timeline shows.
pub const TIMELINE_LIMIT: usize = 200;

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let raw = input.param("raw").is_some();
        let mut recent: Vec<_> = input.view.orders.iter().collect();
        let active = |o: &&crate::store::views::OrderRow| {
            o.created_time.max(o.payment_time.unwrap_or(0)).max(o.ship_time.unwrap_or(0))
        };
        recent.sort_by_key(|o| std::cmp::Reverse(active(o)));
        let ids: Vec<String> = recent.iter().take(STORY_ORDERS).map(|o| o.order_id.clone()).collect();
        let read = move |s: &crate::store::Store| Ok::<_, crate::store::StoreError>((s.order_stories(&ids)?, s.audit_tail(AUDIT_ENTRIES)?));
        match input.ctx.store.call(read).await {
            Ok((stories, audit)) => Built::Page(Box::new(logs(
                &stories,
                &audit,
                &input.ctx.health,
                input.config,
                &input.ctx.logs,
                raw,
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "Status page cannot read the timeline.");
                Built::Failed
            }
        }
    })
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub at: u64,
    /// `order`, `ok`, `warn`, `bad`, `seller`, `config`, `account`: how the line is styled.
    pub kind: &'static str,
    /// What happened, in Chinese (`收到订单`, `转人工` …).
    pub title: String,
    /// The details: the item and amount, the reason, the next step (commands in backticks).
    pub detail: String,
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogsPage {
    pub events: Vec<TimelineEntry>,
    /// Showing the raw developer log instead (`?raw=1`).
    pub raw: bool,
    pub capacity: usize,
    pub lines: Vec<LogLine>,
}

pub fn logs(
    stories: &[OrderStory],
    audit: &[AuditEntry],
    health: &Health,
    config: &Config,
    buffer: &LogBuffer,
    raw: bool,
) -> LogsPage {
    let mut events: Vec<TimelineEntry> = stories.iter().flat_map(order_events).collect();
    events.extend(audit.iter().filter_map(audit_event));
    events.extend(health.login_events().iter().filter_map(|e| login_event(e, config)));
    events.extend(health.account_events().iter().map(|e| account_event(e, config)));
    events.sort_by(|a, b| b.at.cmp(&a.at));
    events.truncate(TIMELINE_LIMIT);
    LogsPage {
        events,
        raw,
        capacity: buffer.capacity(),
        lines: if raw { buffer.tail() } else { Vec::new() },
    }
}

fn entry(at: u64, kind: &'static str, title: impl Into<String>, detail: impl Into<String>, order: Option<&str>) -> TimelineEntry {
    TimelineEntry {
        at,
        kind,
        title: title.into(),
        detail: detail.into(),
        order_id: order.map(str::to_string),
    }
}

fn order_events(story: &OrderStory) -> Vec<TimelineEntry> {
    let o = &story.order;
    let id = o.order_id.as_str();
    let what = {
        let title = o.item_title.clone().or_else(|| o.item_id.clone()).unwrap_or_default();
        let amount = o.amount.as_deref().map(|a| format!("，¥{a}")).unwrap_or_default();
        format!("{title} × {}{amount}", o.quantity)
    };
    let mut out: Vec<TimelineEntry> = story
        .log
        .iter()
        .map(|e| status_event(e, id, &what))
        .collect();
    if let Some(ledger) = &story.ledger {
        out.extend(ledger.history.iter().filter_map(|h| ledger_event(h, id)));
    }
    out
}

fn status_event(e: &StatusLogEntry, id: &str, what: &str) -> TimelineEntry {
    let (kind, title, detail) = match (e.to, e.action) {
        (OrderStatus::PendingPayment, _) => ("order", "买家下单（待付款）".to_string(), what.to_string()),
        (OrderStatus::PendingShip, _) => ("order", "收到订单（已付款）".to_string(), what.to_string()),
        (OrderStatus::Shipped, ActionType::Manual) => {
            ("seller", "已人工发货".to_string(), format!("{}：{}", e.operator, e.remark))
        }
        (OrderStatus::Shipped, ActionType::Auto) => {
            ("ok", "已发货（自动在闲鱼确认）".to_string(), String::new())
        }
        (OrderStatus::Shipped, ActionType::System) => {
            ("ok", "闲鱼显示已发货".to_string(), String::new())
        }
        (OrderStatus::Completed, _) => ("ok", "交易成功".to_string(), String::new()),
        (OrderStatus::Refunding, _) => ("warn", "买家申请退款".to_string(), String::new()),
        (OrderStatus::Refunded, _) => ("warn", "退款成功".to_string(), String::new()),
        (OrderStatus::Closed, _) => ("warn", "交易关闭".to_string(), String::new()),
    };
    entry(e.at, kind, title, detail, Some(id))
}

/// The ledger steps a seller cares about: the delivery went out, was handed over (and why),
/// failed and will retry, was cancelled, or was closed out by hand.
fn ledger_event(h: &LedgerEvent, id: &str) -> Option<TimelineEntry> {
    let next = |w: &Why| w.next_step(id).unwrap_or_default();
    Some(match (&h.why, h.state) {
        (Some(Why::Accepted), _) => entry(h.at, "ok", "发货内容已送达买家", "", Some(id)),
        (Some(w @ Why::AttemptFailed { .. }), _) => {
            entry(h.at, "warn", format!("发送失败，将自动重试（{}）", w.label()), "", Some(id))
        }
        (Some(w), DeliveryState::Manual | DeliveryState::NeedsHuman | DeliveryState::FailedSafe)
            if w.is_problem() =>
        {
            entry(h.at, "bad", format!("转人工（{}）", w.label()), next(w), Some(id))
        }
        (Some(w @ (Why::CancelledBeforeDelivery | Why::KeysRevoked)), _) => {
            entry(h.at, "warn", w.label(), "", Some(id))
        }
        (Some(w @ Why::Rearmed { .. }), _) => entry(h.at, "seller", w.label(), "", Some(id)),
        (None, _) if !h.note.is_empty() => {
            let text = h.seller_text();
            if text.is_empty() {
                return None;
            }
            entry(h.at, "seller", text, "", Some(id))
        }
        _ => return None,
    })
}

/// Commands and reloads from the audit log. Per-order commands already show through the
/// order's own records, so only what has no order story is told here.
fn audit_event(a: &AuditEntry) -> Option<TimelineEntry> {
    let (kind, title, detail) = match a.action.as_str() {
        "cards.import" => {
            let pool = a.detail.strip_prefix("pool ").and_then(|d| d.split(':').next()).unwrap_or("");
            ("seller", format!("导入卡密到卡池 {pool}"), format!("操作人 {}", a.actor))
        }
        "config.reload" if a.detail.contains("ok=true") => (
            "config",
            "配置已重新加载，新配置已生效".to_string(),
            version_of(&a.detail),
        ),
        "config.reload" => (
            "bad",
            "配置有误，没有生效（仍在用上一个正确的配置）".to_string(),
            format!("{}；错误见首页“配置”一栏", version_of(&a.detail)),
        ),
        _ => return None,
    };
    Some(entry(a.at, kind, title, detail, None))
}

fn version_of(detail: &str) -> String {
    detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix("version="))
        .map(|v| format!("版本 `{v}`"))
        .unwrap_or_default()
}

fn account_name(config: &Config, id: &str) -> String {
    config.account(id).map_or_else(|| id.to_string(), |a| format!("{}（{}）", a.name, a.id))
}

fn login_event(e: &LoginEvent, config: &Config) -> Option<TimelineEntry> {
    let name = account_name(config, &e.account);
    let (kind, title) = match e.login {
        Login::Ok => ("ok", format!("账号 {name} 登录正常")),
        Login::Expired => ("bad", format!("账号 {name} 登录失效")),
        Login::NoCookies => ("bad", format!("账号 {name} 没有可用的 Cookie")),
        Login::RiskControl { .. } => ("bad", format!("账号 {name} 触发风控")),
        Login::Unverified | Login::Unknown => return None,
    };
    let detail = e.detail.clone().filter(|d| d.chars().any(|c| !c.is_ascii())).unwrap_or_default();
    Some(entry(e.at, kind, title, detail, None))
}

fn account_event(e: &AccountEvent, config: &Config) -> TimelineEntry {
    let name = account_name(config, &e.account);
    match e.failure {
        Some(f) => entry(
            e.at,
            "bad",
            format!("账号 {name} 掉线，一直连不上（{}）", f.label()),
            format!("下一步：{}", f.advice()),
            None,
        ),
        None => entry(e.at, "ok", format!("账号 {name} 已重新连上"), "", None),
    }
}
