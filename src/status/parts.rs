//! Pieces several pages show: an order in a list, an account's connection and login, a
//! notification, and the Chinese labels of store states.
//!
//! Times are unix ms (templates format them as Beijing time); every enum comes with its
//! Chinese `*_label`. Nothing here reads a secret: accounts are shown by id and name only.

use serde::Serialize;

use crate::config::Config;
use crate::health::{AccountHealth, Health, Login};
use crate::store::views::OrderRow;
use crate::store::{DeliveryState, OutboxRow, OutboxState};
use crate::why::Why;

/// Longest list a page shows (problems, manual queue).
pub const LIST_LIMIT: usize = 200;

pub fn delivery_label(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Planned => "已登记",
        DeliveryState::Reserved => "已锁定库存",
        DeliveryState::Scheduled => "等待发送",
        DeliveryState::Sending => "发送中",
        DeliveryState::Sent => "已发送",
        DeliveryState::Confirming => "确认发货中",
        DeliveryState::Confirmed => "已确认发货",
        DeliveryState::Delivered => "自动发货完成",
        DeliveryState::FailedSafe => "发送失败（未送达）",
        DeliveryState::NeedsHuman => "结果未知，需人工核实",
        DeliveryState::Manual => "转人工处理",
        DeliveryState::ShippedManually => "已人工发货",
        DeliveryState::Cancelled => "已取消",
    }
}

fn outbox_label(s: OutboxState, attempts: u32) -> &'static str {
    match s {
        OutboxState::Pending if attempts > 0 => "重试中",
        OutboxState::Pending => "待发送",
        OutboxState::Sent => "已发送",
        OutboxState::Failed => "发送失败",
    }
}

/// A unit enum's serde name (`"needs_human"`).
pub fn state_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One order in a list.
#[derive(Debug, Clone, Serialize)]
pub struct OrderItem {
    pub order_id: String,
    pub account: String,
    pub item_id: Option<String>,
    pub item_title: Option<String>,
    pub sku: Option<String>,
    pub quantity: u32,
    pub amount: Option<String>,
    pub status: &'static str,
    pub status_label: &'static str,
    pub delivery: Option<&'static str>,
    pub delivery_label: Option<&'static str>,
    pub created_time: u64,
    pub payment_time: Option<u64>,
    pub ship_time: Option<u64>,
    pub ship_deadline: Option<u64>,
    pub attempts: u32,
    /// Why the delivery waits for the seller or a retry, in Chinese (`crate::why`).
    pub reason: Option<String>,
    /// What the seller should do next, commands in backticks (the `steps` filter).
    pub next_step: Option<String>,
    /// A pipeline job (delay or retry) is waiting for this order.
    pub retry_pending: bool,
    /// The buyer conversation, where the seller checks an uncertain delivery.
    pub chat_link: String,
}

impl From<&OrderRow> for OrderItem {
    fn from(o: &OrderRow) -> Self {
        Self {
            order_id: o.order_id.clone(),
            account: o.account.clone(),
            item_id: o.item_id.clone(),
            item_title: o.item_title.clone(),
            sku: o.sku.clone(),
            quantity: o.quantity,
            amount: o.amount.clone(),
            status: o.status.as_str(),
            status_label: o.status.label(),
            delivery: o.delivery.map(DeliveryState::as_str),
            delivery_label: o.delivery.map(delivery_label),
            created_time: o.created_time,
            payment_time: o.payment_time,
            ship_time: o.ship_time,
            ship_deadline: o.ship_deadline(),
            attempts: o.attempts,
            reason: o
                .why
                .as_ref()
                .filter(|_| o.delivery.is_some_and(DeliveryState::waits_for_someone))
                .map(Why::label),
            next_step: o
                .why
                .as_ref()
                .filter(|_| o.delivery.is_some_and(DeliveryState::waits_for_someone))
                .and_then(|w| w.next_step(&o.order_id)),
            retry_pending: o.has_job,
            chat_link: crate::order::chat_link(o.item_id.as_deref(), o.buyer_id.as_deref()),
        }
    }
}

impl OrderItem {
    /// An order row with the product title from the config when the event carried none.
    pub fn titled(o: &OrderRow, config: &Config) -> Self {
        let mut item = Self::from(o);
        if item.item_title.is_none() {
            item.item_title = o
                .item_id
                .as_deref()
                .and_then(|id| config.product(id))
                .map(|p| p.title.clone());
        }
        item
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub connection: String,
    pub connection_label: &'static str,
    pub connection_since: Option<u64>,
    pub last_business_message: Option<u64>,
    pub token_refreshed_at: Option<u64>,
    pub token_age_ms: Option<u64>,
    pub login: Login,
    pub login_label: &'static str,
    pub login_problem: bool,
    pub detail: Option<String>,
    pub reconnects: u64,
    /// Connection attempts that failed since the last good connection.
    pub failed_reconnects: u32,
    /// Why the connection is down, in Chinese (while it is not connected).
    pub connection_problem: Option<&'static str>,
    /// What to do about it.
    pub connection_next_step: Option<&'static str>,
    /// Down with failures piling up (`AccountHealth::needs_attention`): counted under 需要关注.
    pub connection_attention: bool,
}

fn account_view(id: &str, name: &str, h: AccountHealth, now: u64) -> AccountView {
    let down = h
        .last_failure
        .filter(|_| h.connection != crate::health::Connection::Connected);
    AccountView {
        failed_reconnects: h.failed_reconnects,
        connection_problem: down.map(|f| f.label()),
        connection_next_step: down.map(|f| f.advice()),
        connection_attention: h.needs_attention(now),
        id: id.to_string(),
        name: name.to_string(),
        connection: state_str(&h.connection),
        connection_label: h.connection.label(),
        connection_since: h.connection_since,
        last_business_message: h.last_business_message,
        token_refreshed_at: h.token_refreshed_at,
        token_age_ms: h.token_refreshed_at.map(|t| now.saturating_sub(t)),
        login_label: h.login.label(),
        login_problem: h.login.is_problem(),
        login: h.login,
        detail: h.detail,
        reconnects: h.reconnects,
    }
}

/// Configured accounts first (in config order), then any the health registry knows besides.
pub fn accounts(config: &Config, health: &Health, now: u64) -> Vec<AccountView> {
    let mut known = health.accounts();
    let mut out: Vec<AccountView> = config
        .accounts
        .iter()
        .map(|a| {
            let h = known.remove(&a.id).unwrap_or_default();
            account_view(&a.id, &a.name, h, now)
        })
        .collect();
    out.extend(
        known
            .into_iter()
            .map(|(id, h)| account_view(&id, &id, h, now)),
    );
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub id: u64,
    pub event: String,
    pub event_title: &'static str,
    pub channel: String,
    pub state: String,
    pub state_label: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub order_id: Option<String>,
    pub title: String,
    pub text: String,
    pub created_at: u64,
    pub next_at: u64,
    pub sent_at: Option<u64>,
}

impl From<&OutboxRow> for NotificationView {
    fn from(n: &OutboxRow) -> Self {
        Self {
            id: n.id,
            event: n.event.as_str().to_string(),
            event_title: n.event.title(),
            channel: n.channel.clone(),
            state: state_str(&n.state),
            state_label: outbox_label(n.state, n.attempts),
            attempts: n.attempts,
            last_error: n.last_error.as_deref().map(crate::why::shown_error),
            order_id: n.order_id.clone(),
            title: n.title.clone(),
            text: n.text.clone(),
            created_at: n.created_at,
            next_at: n.next_at,
            sent_at: n.sent_at,
        }
    }
}
