//! What a chat reply template sees: the buyer, the item, the buyer's order with this seller
//! (if any), the question, and for bargaining the offer. Built by `chat::view` from a stage
//! context; [`ChatView::sample`] is what `check` renders every chat template with, so a
//! template that names an unknown variable is a config error, not a failed reply.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    pub shop: String,
    pub buyer: BuyerView,
    pub item: ItemView,
    /// The product's `facts:` (empty if none).
    pub facts: String,
    pub order: Option<OrderView>,
    pub question: String,
    /// Longest reply the `llm` stage lets through, for the system prompt.
    pub max_chars: usize,
    /// Bargaining: this round's price, the list price, whether it is the buyer's own offer.
    pub offer: Option<String>,
    pub list_price: Option<String>,
    pub buyer_accepted: bool,
    pub round: u32,
    pub max_rounds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuyerView {
    pub id: String,
    pub nick: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub id: String,
    pub title: String,
    pub price: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub id: String,
    /// The platform's label (`等待卖家发货`, …).
    pub status: String,
    /// `unpaid`, `scheduled`, `delivering`, `delivered`, `with_seller`, `shipped`,
    /// `completed`, `refunding`, `closed`.
    pub progress: String,
    pub paid_at: Option<String>,
    /// About when a scheduled delivery goes out (Beijing time).
    pub due_at: Option<String>,
    pub delivered_at: Option<String>,
    pub shipped_at: Option<String>,
}

impl ChatView {
    /// Representative data, with an order and an offer, for load-time rendering.
    pub fn sample() -> Self {
        Self {
            shop: "示例小店".into(),
            buyer: BuyerView {
                id: "2200000000001".into(),
                nick: "买家昵称".into(),
            },
            item: ItemView {
                id: "900000000001".into(),
                title: "示例商品".into(),
                price: Some("99".into()),
                description: "商品描述".into(),
            },
            facts: "支持 Win10/Win11".into(),
            order: Some(OrderView {
                id: "3000000000000000001".into(),
                status: "等待卖家发货".into(),
                progress: "scheduled".into(),
                paid_at: Some("01-01 08:00".into()),
                due_at: Some("01-01 08:05".into()),
                delivered_at: None,
                shipped_at: None,
            }),
            question: "在吗".into(),
            max_chars: 120,
            offer: Some("89".into()),
            list_price: Some("99".into()),
            buyer_accepted: false,
            round: 1,
            max_rounds: 3,
        }
    }

    /// The same with no order (a buyer who has not bought anything yet).
    pub fn sample_without_order() -> Self {
        Self {
            order: None,
            ..Self::sample()
        }
    }
}
