//! Building what a chat template sees ([`ChatView`], defined in the config so `check` can
//! render every template with a sample) from a stage context.
//!
//! Never the delivered content: an order view says when something was sent, not what.

use super::orders::{OrderFacts, OrderProgress, most_relevant};
use super::stage::ChatCtx;
pub use crate::config::chat_view::{BuyerView, ChatView, ItemView, OrderView};
use crate::money::Cents;

/// `01-02 15:04`, Beijing time: short enough for a chat reply.
pub fn short_time(ms: u64) -> String {
    let full = crate::clock::format_beijing(ms); // "2026-01-02 15:04:05"
    full.get(5..16).unwrap_or(&full).to_string()
}

impl OrderView {
    pub fn new(o: &OrderFacts) -> Self {
        let (mut due_at, mut delivered_at, mut shipped_at) = (None, None, None);
        match o.progress {
            OrderProgress::Scheduled { due } => due_at = due.map(short_time),
            OrderProgress::Delivered { at } => delivered_at = Some(short_time(at)),
            OrderProgress::Shipped { at } => shipped_at = at.map(short_time),
            _ => {}
        }
        Self {
            id: o.order_id.clone(),
            status: o.status.label().to_string(),
            progress: o.progress.code().to_string(),
            paid_at: o.paid_at.map(short_time),
            due_at,
            delivered_at,
            shipped_at,
        }
    }
}

impl ChatView {
    pub fn new(ctx: &ChatCtx<'_>) -> Self {
        let item = ctx.item;
        let nick = ctx
            .input
            .sender_nick
            .clone()
            .or_else(|| {
                ctx.snapshot
                    .conversation
                    .as_ref()
                    .and_then(|c| c.buyer_nick.clone())
            })
            .unwrap_or_else(|| "亲".into());
        Self {
            shop: ctx.shop.to_string(),
            buyer: BuyerView {
                id: ctx.input.sender_id.clone(),
                nick,
            },
            item: ItemView {
                id: ctx.item_id().unwrap_or_default().to_string(),
                title: item.map(|i| i.title.clone()).unwrap_or_default(),
                price: item.and_then(|i| i.price).map(|p| p.to_string()),
                description: item.map(|i| i.description.clone()).unwrap_or_default(),
            },
            facts: ctx.product.map(|p| p.facts.clone()).unwrap_or_default(),
            order: most_relevant(ctx.orders, ctx.item_id()).map(OrderView::new),
            question: ctx.question.text.clone(),
            max_chars: ctx.model.map_or(200, |m| m.max_chars),
            offer: None,
            list_price: None,
            buyer_accepted: false,
            round: 0,
            max_rounds: 0,
        }
    }

    pub fn with_offer(
        mut self,
        offer: Cents,
        list: Cents,
        buyer_accepted: bool,
        round: u32,
        max_rounds: u32,
    ) -> Self {
        self.offer = Some(offer.to_string());
        self.list_price = Some(list.to_string());
        self.buyer_accepted = buyer_accepted;
        self.round = round;
        self.max_rounds = max_rounds;
        self
    }
}
