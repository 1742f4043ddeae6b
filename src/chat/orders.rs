//! "发货了吗": what the store knows about a buyer's order, in the words a buyer understands.
//!
//! [`progress`] reduces an order and its delivery-ledger row to an [`OrderProgress`]
//! (scheduled until about when, delivered at, handed to the seller, …). It never carries the
//! delivered content: the order-status reply can say *that* something was sent, not *what*.

use serde::Serialize;

use crate::order::OrderStatus;
use crate::store::{DeliveryRecord, DeliveryState, OrderRecord};

/// Where an order stands, as the order-status reply tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "progress", rename_all = "snake_case")]
pub enum OrderProgress {
    Unpaid,
    /// Paid; the automatic delivery is due at `due` (if the delay stage drew one).
    Scheduled {
        due: Option<u64>,
    },
    /// Paid; the delivery is being sent right now or is being retried.
    Delivering,
    /// The delivery message went out at `at`.
    Delivered {
        at: u64,
    },
    /// Handed to the seller (physical item, short stock, an uncertain send).
    WithSeller,
    /// Shipped by the seller or confirmed on the platform.
    Shipped {
        at: Option<u64>,
    },
    Completed,
    Refunding,
    Closed,
}

impl OrderProgress {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Scheduled { .. } => "scheduled",
            Self::Delivering => "delivering",
            Self::Delivered { .. } => "delivered",
            Self::WithSeller => "with_seller",
            Self::Shipped { .. } => "shipped",
            Self::Completed => "completed",
            Self::Refunding => "refunding",
            Self::Closed => "closed",
        }
    }
}

/// One order of this buyer with this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts {
    pub order_id: String,
    pub item_id: Option<String>,
    pub status: OrderStatus,
    pub progress: OrderProgress,
    pub paid_at: Option<u64>,
    pub updated: u64,
}

impl OrderFacts {
    pub fn new(order: &OrderRecord, delivery: Option<&DeliveryRecord>) -> Self {
        Self {
            order_id: order.order_id.clone(),
            item_id: order.item_id.clone(),
            status: order.status,
            progress: progress(order, delivery),
            paid_at: order.payment_time,
            updated: order.updated_time,
        }
    }
}

/// The order's progress from its status and its delivery (if the pipeline planned one).
pub fn progress(order: &OrderRecord, delivery: Option<&DeliveryRecord>) -> OrderProgress {
    match order.status {
        OrderStatus::PendingPayment => return OrderProgress::Unpaid,
        OrderStatus::Completed => return OrderProgress::Completed,
        OrderStatus::Refunding => return OrderProgress::Refunding,
        OrderStatus::Closed | OrderStatus::Refunded => return OrderProgress::Closed,
        OrderStatus::PendingShip | OrderStatus::Shipped => {}
    }
    let Some(d) = delivery else {
        return match order.status {
            OrderStatus::Shipped => OrderProgress::Shipped {
                at: order.ship_time,
            },
            _ => OrderProgress::WithSeller,
        };
    };
    if let Some(at) = d.sent_at {
        return OrderProgress::Delivered { at };
    }
    match d.state {
        DeliveryState::Planned | DeliveryState::Reserved | DeliveryState::Scheduled => {
            OrderProgress::Scheduled { due: d.due_ms }
        }
        DeliveryState::Sending
        | DeliveryState::Sent
        | DeliveryState::Confirming
        | DeliveryState::Confirmed
        | DeliveryState::FailedSafe => OrderProgress::Delivering,
        DeliveryState::Delivered | DeliveryState::ShippedManually => OrderProgress::Shipped {
            at: order.ship_time.or(d.confirmed_at),
        },
        DeliveryState::NeedsHuman | DeliveryState::Manual => OrderProgress::WithSeller,
        DeliveryState::Cancelled => OrderProgress::Closed,
    }
}

/// The order a question is most likely about: one for the conversation's item if there is
/// one, preferring open orders, newest first.
pub fn most_relevant<'a>(
    orders: &'a [OrderFacts],
    item_id: Option<&str>,
) -> Option<&'a OrderFacts> {
    let rank = |o: &OrderFacts| {
        let same_item = item_id.is_some() && o.item_id.as_deref() == item_id;
        let open = !matches!(o.progress, OrderProgress::Closed | OrderProgress::Completed);
        (same_item, open, o.paid_at.is_some(), o.updated)
    };
    orders.iter().max_by_key(|o| rank(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus) -> OrderRecord {
        OrderRecord {
            order_id: "1".into(),
            account: "main".into(),
            chat_id: None,
            buyer_id: Some("b".into()),
            buyer_nick: None,
            item_id: Some("i".into()),
            item_title: None,
            sku: None,
            quantity: 1,
            amount: None,
            status,
            payment_time: Some(5),
            ship_time: None,
            ship_method: None,
            logistics_company: None,
            tracking_number: None,
            ship_content: Some("KEY-SECRET".into()),
            paid_at: None,
            refunded_at: None,
            closed_at: None,
            created_time: 1,
            updated_time: 2,
        }
    }

    fn delivery(state: DeliveryState) -> DeliveryRecord {
        let mut d = DeliveryRecord::new("1", "main", "v", 0);
        d.state = state;
        d
    }

    #[test]
    fn progress_follows_the_ledger() {
        let paid = order(OrderStatus::PendingShip);
        let mut d = delivery(DeliveryState::Scheduled);
        d.due_ms = Some(99);
        assert_eq!(
            progress(&paid, Some(&d)),
            OrderProgress::Scheduled { due: Some(99) }
        );
        d.state = DeliveryState::Sending;
        assert_eq!(progress(&paid, Some(&d)), OrderProgress::Delivering);
        d.sent_at = Some(123);
        d.state = DeliveryState::Delivered;
        assert_eq!(
            progress(&paid, Some(&d)),
            OrderProgress::Delivered { at: 123 }
        );
        assert_eq!(
            progress(&paid, Some(&delivery(DeliveryState::Manual))),
            OrderProgress::WithSeller
        );
        assert_eq!(
            progress(&paid, Some(&delivery(DeliveryState::NeedsHuman))),
            OrderProgress::WithSeller
        );
        assert_eq!(
            progress(&order(OrderStatus::PendingPayment), None),
            OrderProgress::Unpaid
        );
        assert_eq!(
            progress(&order(OrderStatus::Refunded), Some(&d)),
            OrderProgress::Closed
        );
    }

    #[test]
    fn the_open_order_for_this_item_is_most_relevant() {
        let mk = |id: &str, item: &str, progress, updated| OrderFacts {
            order_id: id.into(),
            item_id: Some(item.into()),
            status: OrderStatus::PendingShip,
            progress,
            paid_at: Some(1),
            updated,
        };
        let orders = vec![
            mk("old", "x", OrderProgress::Completed, 50),
            mk("other", "y", OrderProgress::Delivering, 90),
            mk("this", "x", OrderProgress::Scheduled { due: None }, 10),
        ];
        assert_eq!(most_relevant(&orders, Some("x")).unwrap().order_id, "this");
        assert_eq!(most_relevant(&orders, None).unwrap().order_id, "other");
        assert!(most_relevant(&[], Some("x")).is_none());
    }
}
