//! 订单详情 (`/orders/{id}`): one order with its status log, delivery ledger, masked card keys
//! and notifications. The only page that reads the store itself (point lookups).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::why::{Why, shown_error};
use crate::order::OrderStatus;
use crate::store::views::OrderRow;
use crate::store::{
    ActionType, CardState, DeliveryRecord, Holding, OrderDetail, PartKind, PartMark, PartState,
    StatusLogEntry, SupplierUnit,
};

use crate::status::page::{Built, Input};
use crate::status::proof::{LinkView, ProofView};
use crate::status::parts::{NotificationView, OrderItem, delivery_label, state_str};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let id = input.id;
        let ids = input.view.outbox_by_order.get(id).cloned().unwrap_or_default();
        let key = id.to_string();
        let lookup = move |s: &crate::store::Store| {
            let detail = s.order_view(&key, &ids)?;
            let supplier = s.supplier_calls(&key)?;
            let mut aftersale = Vec::new();
            for kind in [crate::store::ActionKind::Rate, crate::store::ActionKind::Thanks] {
                aftersale.extend(s.action(kind, &key)?);
            }
            Ok(detail.map(|d| (d, supplier, aftersale)))
        };
        match input.ctx.store.call(lookup).await {
            Ok(Some((detail, supplier, aftersale))) => {
                let row = input.view.orders.iter().find(|o| o.order_id == id);
                let mut page = order_page(detail, row, input.config);
                page.supplier = supplier.map(|r| r.units.iter().map(supplier_view).collect()).unwrap_or_default();
                page.aftersale = aftersale.iter().map(super::aftersale::ActionRow::new).collect();
                Built::Page(Box::new(page))
            }
            Ok(None) => Built::Missing {
                title: "未找到订单",
                message: format!("没有订单 {id}。"),
                error: format!("no order {id}"),
            },
            Err(e) => {
                tracing::warn!(error = %e, order_id = id, "Status page cannot read an order.");
                Built::Failed
            }
        }
    })
}

fn card_label(s: CardState) -> &'static str {
    match s {
        CardState::Available => "可用",
        CardState::Reserved => "已锁定",
        CardState::Delivered => "已发放",
        CardState::Revoked => "已作废",
    }
}

fn action_label(a: ActionType) -> &'static str {
    match a {
        ActionType::Auto => "自动",
        ActionType::Manual => "人工",
        ActionType::System => "系统",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    pub at: u64,
    pub from: Option<&'static str>,
    pub from_label: Option<&'static str>,
    pub to: &'static str,
    pub to_label: &'static str,
    pub action: &'static str,
    pub operator: String,
    pub remark: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerStep {
    pub at: u64,
    pub state: &'static str,
    pub state_label: &'static str,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerView {
    pub state: &'static str,
    pub state_label: &'static str,
    pub mode: Option<&'static str>,
    pub holding: String,
    pub due_ms: Option<u64>,
    pub attempts: u32,
    pub sent_at: Option<u64>,
    pub confirmed_at: Option<u64>,
    pub last_error: Option<String>,
    pub config_version: String,
    pub history: Vec<LedgerStep>,
    /// The delivery's chat messages, each with its own sent marker.
    pub parts: Vec<PartView>,
    pub follow_up: Option<PartView>,
    /// What the last confirm call put into the 无需寄件 form.
    pub proof: Option<ProofView>,
}

/// One chat message of a delivery as the page shows it (text masked, never a key).
#[derive(Debug, Clone, Serialize)]
pub struct PartView {
    pub index: usize,
    pub kind_label: &'static str,
    pub state: &'static str,
    pub state_label: &'static str,
    pub summary: String,
    pub message_id: Option<String>,
    pub at: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// An image part's CDN URL.
    pub url: Option<LinkView>,
}

fn part_view(index: usize, p: &PartMark) -> PartView {
    PartView {
        index: index + 1,
        kind_label: match p.kind {
            PartKind::Text => "文字",
            PartKind::Image => "图片",
        },
        state: p.state.as_str(),
        state_label: match p.state {
            PartState::Pending => "未发送",
            PartState::Sending => "发送中",
            PartState::Sent => "已发送",
            PartState::Unknown => "结果未知",
        },
        summary: p.summary.clone(),
        message_id: p.message_id.clone(),
        at: p.at,
        attempts: p.attempts,
        last_error: p.last_error.as_deref().map(shown_error),
        url: p.url.as_deref().map(LinkView::new),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CardView {
    pub id: u64,
    /// Always masked (`AB********YZ`).
    pub key_masked: String,
    pub state: &'static str,
    pub state_label: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    #[serde(flatten)]
    pub item: OrderItem,
    pub buyer_id: Option<String>,
    pub buyer_nick: Option<String>,
    pub ship_method: Option<String>,
    pub logistics_company: Option<String>,
    pub tracking_number: Option<String>,
    /// What was sent in chat, keys masked.
    pub ship_content: Option<String>,
    pub updated_time: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderPage {
    pub order: OrderView,
    pub status_log: Vec<LogRow>,
    pub ledger: Option<LedgerView>,
    pub cards: Vec<CardView>,
    pub notifications: Vec<NotificationView>,
    /// Supplier calls (`products[].supplier`), one row per order unit; cards masked.
    pub supplier: Vec<SupplierView>,
    /// The rating and thank-you of this order (`aftersale:`), with the platform's result code.
    pub aftersale: Vec<super::aftersale::ActionRow>,
}

/// One order unit's supplier call as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SupplierView {
    pub unit: u32,
    pub key: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub attempts: u32,
    pub http_status: Option<u16>,
    /// Always masked.
    pub card_masked: Option<String>,
    pub at: u64,
    pub last_error: Option<String>,
}

/// `u` must already be masked ([`crate::store::SupplierUnit::masked`], as the store hands it out).
fn supplier_view(u: &SupplierUnit) -> SupplierView {
    SupplierView {
        unit: u.unit,
        key: u.key.clone(),
        state: u.state.as_str(),
        state_label: u.state.label(),
        attempts: u.attempts,
        http_status: u.http_status,
        card_masked: u.card.clone(),
        at: u.at,
        last_error: u.last_error.as_deref().map(shown_error),
    }
}

/// `row` is the list row (for ledger joins); `detail` the store's point lookups.
pub fn order_page(detail: OrderDetail, row: Option<&OrderRow>, config: &Config) -> OrderPage {
    let o = &detail.order;
    let mut item = match row {
        Some(r) => OrderItem::titled(r, config),
        None => OrderItem::titled(&row_from_record(&detail), config),
    };
    // The point lookup is newer than the cached row.
    item.status = o.status.as_str();
    item.status_label = o.status.label();
    item.ship_time = o.ship_time;
    if let Some(l) = &detail.ledger {
        item.delivery = Some(l.state.as_str());
        item.delivery_label = Some(delivery_label(l.state));
        item.attempts = l.attempts;
        let why = l.why.as_ref().filter(|_| l.state.waits_for_someone());
        item.reason = why.map(Why::label);
        item.next_step = why.and_then(|w| w.next_step(&o.order_id));
    }
    OrderPage {
        order: OrderView {
            item,
            buyer_id: o.buyer_id.clone(),
            buyer_nick: o.buyer_nick.clone(),
            ship_method: o.ship_method.as_ref().map(state_str),
            logistics_company: o.logistics_company.clone(),
            tracking_number: o.tracking_number.clone(),
            ship_content: o.ship_content.clone(),
            updated_time: o.updated_time,
        },
        status_log: detail.log.iter().map(log_row).collect(),
        ledger: detail.ledger.as_ref().map(ledger_view),
        cards: detail
            .cards
            .iter()
            .map(|(id, masked, state)| CardView {
                id: *id,
                key_masked: masked.clone(),
                state: state.as_str(),
                state_label: card_label(*state),
            })
            .collect(),
        notifications: detail
            .notifications
            .iter()
            .map(NotificationView::from)
            .collect(),
        supplier: Vec::new(),
        aftersale: Vec::new(),
    }
}

fn row_from_record(d: &OrderDetail) -> OrderRow {
    let o = &d.order;
    OrderRow {
        order_id: o.order_id.clone(),
        account: o.account.clone(),
        item_id: o.item_id.clone(),
        item_title: o.item_title.clone(),
        buyer_id: o.buyer_id.clone(),
        sku: o.sku.clone(),
        quantity: o.quantity,
        amount: o.amount.clone(),
        status: o.status,
        created_time: o.created_time,
        payment_time: o.payment_time,
        ship_time: o.ship_time,
        ship_method: o.ship_method,
        delivery: d.ledger.as_ref().map(|l| l.state),
        attempts: d.ledger.as_ref().map_or(0, |l| l.attempts),
        last_error: d.ledger.as_ref().and_then(|l| l.last_error.clone()),
        why: d.ledger.as_ref().and_then(|l| l.why.clone()),
        due_ms: d.ledger.as_ref().and_then(|l| l.due_ms),
        has_job: false,
    }
}

fn log_row(e: &StatusLogEntry) -> LogRow {
    LogRow {
        at: e.at,
        from: e.from.map(OrderStatus::as_str),
        from_label: e.from.map(OrderStatus::label),
        to: e.to.as_str(),
        to_label: e.to.label(),
        action: action_label(e.action),
        operator: e.operator.clone(),
        remark: e.why.as_ref().map_or_else(|| e.remark.clone(), Why::label),
    }
}

fn ledger_view(l: &DeliveryRecord) -> LedgerView {
    let holding = match &l.holding {
        Holding::Nothing => "无".to_string(),
        Holding::Cards { pool, ids } => format!("卡密池 {pool}：{} 个", ids.len()),
        Holding::Stock { item_id, units } => format!("库存 {item_id}：{units} 件"),
    };
    LedgerView {
        state: l.state.as_str(),
        state_label: delivery_label(l.state),
        mode: l.mode.map(|m| m.as_str()),
        holding,
        due_ms: l.due_ms,
        attempts: l.attempts,
        sent_at: l.sent_at,
        confirmed_at: l.confirmed_at,
        last_error: l.last_error.as_deref().map(shown_error),
        config_version: l.config_version.clone(),
        history: l
            .history
            .iter()
            .map(|h| LedgerStep {
                at: h.at,
                state: h.state.as_str(),
                state_label: delivery_label(h.state),
                note: h.seller_text(),
            })
            .collect(),
        parts: l
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| part_view(i, p))
            .collect(),
        follow_up: l.follow_up.as_ref().map(|p| part_view(0, p)),
        proof: l.proof.as_ref().map(ProofView::new),
    }
}
