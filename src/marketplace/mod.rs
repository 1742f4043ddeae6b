//! The marketplace as the ship stage sees it: send a chat message, confirm a shipment.
//!
//! The Goofish client implements this against Xianyu; [`memory::MemoryMarketplace`] implements
//! it in memory for replay, dry runs, tests and benchmarks. Outcomes are three-valued on
//! purpose: a send either provably reached the platform, provably did not, or we cannot know;
//! only the second may be retried automatically.

pub mod memory;

/// One delivery message for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryMessage {
    pub account: String,
    pub order_id: String,
    pub cid: Option<String>,
    pub buyer_id: Option<String>,
    pub item_id: Option<String>,
    pub text: String,
    /// The same text with card keys masked, for anything that logs or prints it.
    pub masked_text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The platform accepted the message.
    Accepted { message_id: Option<String> },
    /// Provably not delivered: refused before or by the platform (not connected, `CSI_FORBID`).
    NotDelivered { reason: String },
    /// The request left but no answer came back; the buyer may have it.
    Unknown { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsignRequest {
    pub account: String,
    pub order_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConsignOutcome {
    Confirmed,
    /// The platform says the order is already shipped: as good as confirmed.
    AlreadyShipped,
    Failed {
        reason: String,
        retryable: bool,
    },
}

#[async_trait::async_trait]
pub trait Marketplace: Send + Sync {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome;
    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome;
}
