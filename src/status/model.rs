//! What each page shows, as plain serializable data.
//!
//! One builder per page; the HTML page renders the value with its template and `/api/…` returns
//! the same value as JSON, so the two can never disagree. Times are unix ms (templates format
//! them as Beijing time); every enum comes with its Chinese `*_label`. Nothing here reads a
//! secret: card keys arrive masked from the store, accounts are shown by id and name only.

use serde::Serialize;

use crate::config::{Category, Config, Product, Stock};
use crate::health::{AccountHealth, Health, Login, LoginEvent, ReloadStatus};
use crate::metrics::Sample;
use crate::order::OrderStatus;
use crate::store::views::{DayCounts, OrderFilter, OrderRow, ShopView};
use crate::store::{
    ActionType, CardState, DeliveryRecord, DeliveryState, OrderDetail, OutboxRow, OutboxState,
    PoolCounts,
};

use super::logs::{LogBuffer, LogLine};

/// Orders per page of the 订单 list.
pub const PAGE_SIZE: usize = 50;
/// Longest list a page shows (problems, manual queue).
pub const LIST_LIMIT: usize = 200;
const DAY_MS: u64 = 24 * 3600 * 1000;
const BEIJING_OFFSET_MS: u64 = 8 * 3600 * 1000;

/// Start of the Beijing calendar day containing `now` (unix ms).
pub fn beijing_day_start(now: u64) -> u64 {
    (now + BEIJING_OFFSET_MS) / DAY_MS * DAY_MS - BEIJING_OFFSET_MS
}

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

pub fn card_label(s: CardState) -> &'static str {
    match s {
        CardState::Available => "可用",
        CardState::Reserved => "已锁定",
        CardState::Delivered => "已发放",
        CardState::Revoked => "已作废",
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

fn action_label(a: ActionType) -> &'static str {
    match a {
        ActionType::Auto => "自动",
        ActionType::Manual => "人工",
        ActionType::System => "系统",
    }
}

fn state_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `12345` fen → `"123.45"`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

// ---------------------------------------------------------------- shared pieces

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
    pub last_error: Option<String>,
    /// A pipeline job (delay or retry) is waiting for this order.
    pub retry_pending: bool,
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
            last_error: o.last_error.clone(),
            retry_pending: o.has_job,
        }
    }
}

impl OrderItem {
    /// An order row with the product title from the config when the event carried none.
    fn titled(o: &OrderRow, config: &Config) -> Self {
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
}

fn account_view(id: &str, name: &str, h: AccountHealth, now: u64) -> AccountView {
    AccountView {
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
fn accounts(config: &Config, health: &Health, now: u64) -> Vec<AccountView> {
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
            last_error: n.last_error.clone(),
            order_id: n.order_id.clone(),
            title: n.title.clone(),
            text: n.text.clone(),
            created_at: n.created_at,
            next_at: n.next_at,
            sent_at: n.sent_at,
        }
    }
}

// ---------------------------------------------------------------- 首页

#[derive(Debug, Clone, Serialize)]
pub struct Today {
    pub day_start: u64,
    pub orders: u64,
    pub paid: u64,
    pub shipped: u64,
    pub waiting_manual: u64,
    pub auto_delivered: u64,
    pub auto_failed: u64,
    /// 0..=1, `null` when no automatic delivery finished today.
    pub auto_success_rate: Option<f64>,
    pub revenue_fen: i64,
    pub revenue: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    pub version: String,
    pub ok: bool,
    /// `null` until the first load is recorded.
    pub at: Option<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigView {
    /// The version running now.
    pub version: String,
    pub last_reload: LastReload,
}

fn config_view(config: &Config, reload: Option<ReloadStatus>) -> ConfigView {
    let last_reload = match reload {
        Some(r) => LastReload {
            version: r.version,
            ok: r.ok,
            // The reloader reports 0 until its first attempt.
            at: (r.at > 0).then_some(r.at),
            errors: r.errors,
        },
        None => LastReload {
            version: config.version.clone(),
            ok: true,
            at: None,
            errors: Vec::new(),
        },
    };
    ConfigView {
        version: config.version.clone(),
        last_reload,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemCounts {
    pub needs_human: usize,
    pub failed_deliveries: usize,
    pub failing_notifications: u64,
    pub login_problems: usize,
    pub low_stock: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub now: u64,
    pub today: Today,
    pub accounts: Vec<AccountView>,
    pub config: ConfigView,
    pub problems: ProblemCounts,
    pub pending_jobs: u64,
    pub total_orders: usize,
}

pub fn dashboard(view: &ShopView, config: &Config, health: &Health, now: u64) -> Dashboard {
    let day_start = beijing_day_start(now);
    let day: DayCounts = view.day(day_start, day_start + DAY_MS);
    let accounts = accounts(config, health, now);
    let problems = ProblemCounts {
        needs_human: view.deliveries_in(DeliveryState::NeedsHuman).len(),
        failed_deliveries: view.deliveries_in(DeliveryState::FailedSafe).len(),
        failing_notifications: view.outbox.failed + view.outbox.retrying,
        login_problems: accounts.iter().filter(|a| a.login_problem).count(),
        low_stock: products(view, config).low_stock,
    };
    Dashboard {
        now,
        today: Today {
            day_start,
            orders: day.orders,
            paid: day.paid,
            shipped: day.shipped,
            waiting_manual: view.manual_queue().len() as u64,
            auto_delivered: day.auto_delivered,
            auto_failed: day.auto_failed,
            auto_success_rate: day.auto_success_rate(),
            revenue_fen: day.revenue_fen,
            revenue: yuan(day.revenue_fen),
        },
        accounts,
        config: config_view(config, health.reload()),
        problems,
        pending_jobs: view.pending_jobs,
        total_orders: view.orders.len(),
    }
}

// ---------------------------------------------------------------- 待人工发货

#[derive(Debug, Clone, Serialize)]
pub struct ManualItem {
    #[serde(flatten)]
    pub order: OrderItem,
    /// Milliseconds left until the ship deadline; negative when overdue.
    pub remaining_ms: Option<i64>,
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManualPage {
    pub now: u64,
    pub total: usize,
    pub orders: Vec<ManualItem>,
}

pub fn manual(view: &ShopView, config: &Config, now: u64) -> ManualPage {
    let queue = view.manual_queue();
    let orders = queue
        .iter()
        .take(LIST_LIMIT)
        .map(|o| {
            let remaining_ms = o.ship_deadline().map(|d| d as i64 - now as i64);
            ManualItem {
                order: OrderItem::titled(o, config),
                remaining_ms,
                overdue: remaining_ms.is_some_and(|r| r < 0),
            }
        })
        .collect();
    ManualPage {
        now,
        total: queue.len(),
        orders,
    }
}

// ---------------------------------------------------------------- 订单

/// Query string of the 订单 list, already decoded.
#[derive(Debug, Clone, Default)]
pub struct OrdersQuery {
    pub status: Option<String>,
    pub account: Option<String>,
    pub item: Option<String>,
    pub page: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrdersPage {
    pub total: usize,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
    pub orders: Vec<OrderItem>,
    pub statuses: Vec<Choice>,
    pub accounts: Vec<Choice>,
    pub items: Vec<Choice>,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    /// An unknown status in the query (shown, and matching nothing).
    pub bad_status: Option<String>,
}

pub fn orders(view: &ShopView, config: &Config, q: &OrdersQuery) -> OrdersPage {
    let status = q.status.as_deref().map(OrderStatus::parse);
    let bad_status = match status {
        Some(None) => q.status.clone(),
        _ => None,
    };
    let filter = OrderFilter {
        status: status.flatten(),
        account: q.account.clone(),
        item: q.item.clone(),
    };
    let page = q.page.max(1);
    let (rows, total) = if bad_status.is_some() {
        (Vec::new(), 0)
    } else {
        view.orders_page(&filter, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    };
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let href = |p: usize| super::http::orders_href(q, p);
    OrdersPage {
        total,
        page,
        pages,
        per_page: PAGE_SIZE,
        orders: rows
            .into_iter()
            .map(|o| OrderItem::titled(o, config))
            .collect(),
        statuses: status_choices(filter.status),
        accounts: config
            .accounts
            .iter()
            .map(|a| choice(&a.id, &format!("{} ({})", a.name, a.id), &q.account))
            .collect(),
        items: item_choices(config, &q.item),
        prev_href: (page > 1).then(|| href(page - 1)),
        next_href: (page < pages).then(|| href(page + 1)),
        bad_status,
    }
}

fn choice(value: &str, label: &str, current: &Option<String>) -> Choice {
    Choice {
        value: value.to_string(),
        label: label.to_string(),
        selected: current.as_deref() == Some(value),
    }
}

fn status_choices(current: Option<OrderStatus>) -> Vec<Choice> {
    OrderStatus::ALL
        .iter()
        .map(|s| Choice {
            value: s.as_str().to_string(),
            label: s.label().to_string(),
            selected: current == Some(*s),
        })
        .collect()
}

fn item_choices(config: &Config, current: &Option<String>) -> Vec<Choice> {
    let mut items: Vec<_> = config.products.values().collect();
    items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    items
        .into_iter()
        .map(|p| choice(&p.item_id, &format!("{} ({})", p.title, p.item_id), current))
        .collect()
}

// ---------------------------------------------------------------- 订单详情

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
        item.last_error.clone_from(&l.last_error);
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
    }
}

fn row_from_record(d: &OrderDetail) -> OrderRow {
    let o = &d.order;
    OrderRow {
        order_id: o.order_id.clone(),
        account: o.account.clone(),
        item_id: o.item_id.clone(),
        item_title: o.item_title.clone(),
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
        due_ms: d.ledger.as_ref().and_then(|l| l.due_ms),
        has_job: false,
    }
}

fn log_row(e: &crate::store::StatusLogEntry) -> LogRow {
    LogRow {
        at: e.at,
        from: e.from.map(OrderStatus::as_str),
        from_label: e.from.map(OrderStatus::label),
        to: e.to.as_str(),
        to_label: e.to.label(),
        action: action_label(e.action),
        operator: e.operator.clone(),
        remark: e.remark.clone(),
    }
}

fn ledger_view(l: &DeliveryRecord) -> LedgerView {
    let holding = match &l.holding {
        crate::store::Holding::Nothing => "无".to_string(),
        crate::store::Holding::Cards { pool, ids } => format!("卡密池 {pool}：{} 个", ids.len()),
        crate::store::Holding::Stock { item_id, units } => format!("库存 {item_id}：{units} 件"),
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
        last_error: l.last_error.clone(),
        config_version: l.config_version.clone(),
        history: l
            .history
            .iter()
            .map(|h| LedgerStep {
                at: h.at,
                state: h.state.as_str(),
                state_label: delivery_label(h.state),
                note: h.note.clone(),
            })
            .collect(),
    }
}

// ---------------------------------------------------------------- 商品

#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub name: String,
    pub available: u64,
    pub reserved: u64,
    pub delivered: u64,
    pub revoked: u64,
    pub reusable: bool,
    pub low_stock_alert: u32,
    pub low: bool,
    /// Declared in the config (a pool only in the store was removed from `products.yaml`).
    pub configured: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantityView {
    pub configured: u32,
    pub committed: u32,
    pub remaining: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductView {
    pub item_id: String,
    pub title: String,
    pub account: Option<String>,
    pub category: &'static str,
    pub category_label: &'static str,
    pub auto_ship: bool,
    pub active: bool,
    /// `cards`, `quantity` or `unlimited`.
    pub stock_kind: &'static str,
    pub pools: Vec<PoolView>,
    pub quantity: Option<QuantityView>,
    pub low_stock_alert: u32,
    pub low: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductsPage {
    pub products: Vec<ProductView>,
    pub pools: Vec<PoolView>,
    pub low_stock: usize,
}

pub fn products(view: &ShopView, config: &Config) -> ProductsPage {
    let mut products: Vec<ProductView> = config
        .products
        .values()
        .map(|p| product_view(view, config, p))
        .collect();
    products.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let mut names: Vec<&String> = config.pools.keys().chain(view.pools.keys()).collect();
    names.sort();
    names.dedup();
    let pools: Vec<PoolView> = names
        .into_iter()
        .map(|n| pool_view(view, config, n, None))
        .collect();
    let low_stock = products.iter().filter(|p| p.low).count();
    ProductsPage {
        products,
        pools,
        low_stock,
    }
}

fn product_view(view: &ShopView, config: &Config, p: &Product) -> ProductView {
    let mut alert = config.low_stock_threshold(Some(p), None);
    let (kind, pools, quantity) = match &p.stock {
        Stock::Cards { pool: main, by_sku } => {
            let mut names: Vec<&String> = main.iter().chain(by_sku.values()).collect();
            names.sort();
            names.dedup();
            let pools: Vec<PoolView> = names
                .into_iter()
                .map(|n| pool_view(view, config, n, Some(p)))
                .collect();
            // The pool's own threshold applies when the product sets none.
            alert = pools.first().map_or(alert, |pv| pv.low_stock_alert);
            ("cards", pools, None)
        }
        Stock::Quantity(n) => {
            let row = view.stock.get(&p.item_id).copied().unwrap_or_default();
            let q = QuantityView {
                configured: *n,
                committed: row.committed,
                remaining: i64::from(*n) - i64::from(row.committed),
            };
            ("quantity", Vec::new(), Some(q))
        }
        Stock::Unlimited => ("unlimited", Vec::new(), None),
    };
    let low = pools.iter().any(|pv| pv.low)
        || quantity
            .as_ref()
            .is_some_and(|q| q.remaining <= i64::from(alert));
    ProductView {
        item_id: p.item_id.clone(),
        title: p.title.clone(),
        account: p.account.clone(),
        category: p.category.as_str(),
        category_label: match p.category {
            Category::Virtual => "虚拟",
            Category::Physical => "实物",
        },
        auto_ship: p.auto_ship,
        active: p.active,
        stock_kind: kind,
        pools,
        quantity,
        low_stock_alert: alert,
        // A product taken off sale is not a restocking task.
        low: low && p.active,
    }
}

/// `product` is the product whose stock this pool is (its threshold comes first), if any.
fn pool_view(view: &ShopView, config: &Config, name: &str, product: Option<&Product>) -> PoolView {
    let counts: PoolCounts = view.pools.get(name).cloned().unwrap_or_default();
    let cfg = config.pools.get(name);
    let alert = config.low_stock_threshold(product, Some(name));
    let reusable = cfg.is_some_and(|c| c.reusable) || counts.reusable > 0;
    let available = counts.get(CardState::Available);
    PoolView {
        name: name.to_string(),
        available,
        reserved: counts.get(CardState::Reserved),
        delivered: counts.get(CardState::Delivered),
        revoked: counts.get(CardState::Revoked),
        reusable,
        low_stock_alert: alert,
        // A reusable key is never used up: low only when there is none at all.
        low: if reusable {
            available == 0
        } else {
            available <= u64::from(alert)
        },
        configured: cfg.is_some(),
    }
}

// ---------------------------------------------------------------- 异常

#[derive(Debug, Clone, Serialize)]
pub struct LoginEventView {
    pub at: u64,
    pub account: String,
    pub login: Login,
    pub login_label: &'static str,
    pub detail: Option<String>,
}

impl From<LoginEvent> for LoginEventView {
    fn from(e: LoginEvent) -> Self {
        Self {
            at: e.at,
            account: e.account,
            login_label: e.login.label(),
            login: e.login,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemsPage {
    pub needs_human: Vec<OrderItem>,
    pub failed_deliveries: Vec<OrderItem>,
    pub failing_notifications: Vec<NotificationView>,
    pub accounts: Vec<AccountView>,
    pub login_events: Vec<LoginEventView>,
}

pub fn problems(view: &ShopView, config: &Config, health: &Health, now: u64) -> ProblemsPage {
    let list = |s: DeliveryState| -> Vec<OrderItem> {
        view.deliveries_in(s)
            .into_iter()
            .take(LIST_LIMIT)
            .map(|o| OrderItem::titled(o, config))
            .collect()
    };
    ProblemsPage {
        needs_human: list(DeliveryState::NeedsHuman),
        failed_deliveries: list(DeliveryState::FailedSafe),
        failing_notifications: view
            .outbox_problems
            .iter()
            .map(NotificationView::from)
            .collect(),
        accounts: accounts(config, health, now)
            .into_iter()
            .filter(|a| a.login_problem)
            .collect(),
        login_events: health
            .login_events()
            .into_iter()
            .filter(|e| e.login.is_problem())
            .map(LoginEventView::from)
            .collect(),
    }
}

// ---------------------------------------------------------------- 日志

#[derive(Debug, Clone, Serialize)]
pub struct LogsPage {
    pub capacity: usize,
    pub lines: Vec<LogLine>,
}

pub fn logs(buffer: &LogBuffer) -> LogsPage {
    LogsPage {
        capacity: buffer.capacity(),
        lines: buffer.tail(),
    }
}

/// Gauges `/metrics` derives from a view: orders, ledger, outbox, pools, counted stock, queue.
pub fn gauges(view: &ShopView) -> Vec<Sample> {
    use crate::metrics as m;
    let mut g = Vec::new();
    for (status, n) in view.count_by_status() {
        g.push(Sample::new(m::ORDERS, &[("status", status)], n as i64));
    }
    for (state, n) in view.count_by_delivery() {
        g.push(Sample::new(
            m::DELIVERY_STATES,
            &[("state", state)],
            n as i64,
        ));
    }
    let o = &view.outbox;
    for (state, n) in [
        ("pending", o.pending),
        ("sent", o.sent),
        ("failed", o.failed),
    ] {
        g.push(Sample::new(m::OUTBOX_ROWS, &[("state", state)], n as i64));
    }
    for (pool, counts) in &view.pools {
        for s in CardState::ALL {
            let labels = [("pool", pool.as_str()), ("state", s.as_str())];
            g.push(Sample::new(m::POOL_STOCK, &labels, counts.get(s) as i64));
        }
    }
    for (item, row) in &view.stock {
        g.push(Sample::new(
            m::ITEM_STOCK,
            &[("item", item)],
            row.remaining(),
        ));
    }
    g.push(Sample::new(
        m::DELAY_QUEUE_DEPTH,
        &[],
        view.pending_jobs as i64,
    ));
    g
}
