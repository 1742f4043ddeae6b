//! 待人工发货 (`/manual`): the orders waiting for the seller, with the time left until the
//! platform's ship deadline.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::store::views::ShopView;

use crate::status::page::{Built, Input, ready};
use crate::status::parts::{LIST_LIMIT, OrderItem};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    ready(manual(input.view, input.config, input.now))
}

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
