//! The typed events every source produces.
//!
//! The Goofish WebSocket, the sold-order poll, a replay file and the demo all reduce what they see
//! to an [`OrderEvent`]; nothing downstream knows where an event came from except for the
//! `source` label kept for the audit log.

use serde::{Deserialize, Serialize};

/// Order status as a marketplace event reports it (the vocabulary of `decode` and replay files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    PendingPayment,
    Paid,
    Shipped,
    Completed,
    Closed,
    Refunding,
    Refunded,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }
}

/// One observation of an order's state, from any source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEvent {
    /// The configured account (`accounts[].id`) that sold the order.
    pub account: String,
    pub order_id: String,
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_nick: Option<String>,
    /// The chat conversation id; delivery content goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default = "one")]
    pub quantity: u32,
    /// Amount paid in yuan, as the platform shows it ("12.50").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// When the source saw the event (unix ms); 0 means "now".
    #[serde(default)]
    pub seen_at: u64,
    /// The source's own message id, when it has one; part of the dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_msg_id: Option<String>,
    #[serde(default = "default_source")]
    pub source: String,
}

/// The largest quantity one order may carry. Xianyu caps a purchase far below this; anything
/// larger is a broken or hostile event and is rejected at ingest (it could otherwise ask the
/// stock check for billions of keys).
pub const MAX_QUANTITY: u32 = 10_000;

fn one() -> u32 {
    1
}

fn default_source() -> String {
    "replay".to_string()
}

impl OrderEvent {
    /// A minimal event; sources fill in what they know.
    pub fn new(account: &str, order_id: &str, status: EventStatus) -> Self {
        Self {
            account: account.to_string(),
            order_id: order_id.to_string(),
            status,
            item_id: None,
            item_title: None,
            buyer_id: None,
            buyer_nick: None,
            cid: None,
            sku: None,
            quantity: 1,
            amount: None,
            seen_at: 0,
            source_msg_id: None,
            source: default_source(),
        }
    }
}
