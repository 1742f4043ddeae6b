//! 订单 (`/orders?status=&account=&item=&page=`): every order, filtered and paged.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::order::OrderStatus;
use crate::store::views::{OrderFilter, ShopView};

use crate::status::http::encode;
use crate::status::page::{Built, Input, ready};
use crate::status::parts::OrderItem;

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    let get = |k| input.param(k).map(str::to_string);
    let query = OrdersQuery {
        status: get("status"),
        account: get("account"),
        item: get("item"),
        page: input.param("page").and_then(|p| p.parse().ok()).unwrap_or(1),
    };
    ready(orders(input.view, input.config, &query))
}

/// Orders per page.
pub const PAGE_SIZE: usize = 50;

/// The query string, already decoded.
#[derive(Debug, Clone, Default)]
pub struct OrdersQuery {
    pub status: Option<String>,
    pub account: Option<String>,
    pub item: Option<String>,
    pub page: usize,
}

impl OrdersQuery {
    /// Link to page `page` of the list with the same filters.
    fn href(&self, page: usize) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("account", &self.account),
            ("item", &self.item),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        parts.push(format!("page={page}"));
        format!("/orders?{}", parts.join("&"))
    }
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
        prev_href: (page > 1).then(|| q.href(page - 1)),
        next_href: (page < pages).then(|| q.href(page + 1)),
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
