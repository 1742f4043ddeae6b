//! order-status: "发货了吗 / 什么时候发 / 没收到" answered from the store.
//!
//! The reply template sees the buyer's most relevant order with this account and its
//! progress (scheduled until about when, delivered at, handed to the seller, …) — never the
//! delivered content, so a reply can point at the delivery message but not repeat it.

use crate::chat::stage::{Answer, ChatCtx, Step};
use crate::chat::view::ChatView;
use crate::config::chat::{OrderStatusParams, TextSource};

use super::render;

pub fn decide(params: &OrderStatusParams, ctx: &ChatCtx<'_>) -> Step {
    let text = ctx.question.text.to_lowercase();
    if !params
        .keywords
        .iter()
        .any(|k| text.contains(&k.to_lowercase()))
    {
        return Step::Continue;
    }
    let view = ChatView::new(ctx);
    match render(ctx, &TextSource::File(params.template.clone()), &view) {
        Some(messages) if !messages.is_empty() => Step::Answer(Answer::text(messages, Vec::new())),
        _ => Step::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::orders::{OrderFacts, OrderProgress};
    use crate::chat::stages::test_support::Fixture;
    use crate::config::chat::DEFAULT_ORDER_STATUS_WORDS;
    use crate::order::OrderStatus;

    fn params() -> OrderStatusParams {
        OrderStatusParams {
            keywords: DEFAULT_ORDER_STATUS_WORDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            template: "chat/order_status.txt.j2".into(),
        }
    }

    fn reply(fx: &Fixture) -> String {
        match decide(&params(), &fx.ctx()) {
            Step::Answer(a) => a.messages.join("|"),
            other => panic!("{other:?}"),
        }
    }

    fn order(progress: OrderProgress) -> OrderFacts {
        OrderFacts {
            order_id: "3000".into(),
            item_id: Some("900".into()),
            status: OrderStatus::PendingShip,
            progress,
            paid_at: Some(1),
            updated: 1,
        }
    }

    #[test]
    fn each_progress_gets_its_own_answer() {
        let mut fx = Fixture::new("发货了吗");
        assert!(reply(&fx).contains("没有查到"));
        // 1_780_000_000_000 ms = 2026-05-28 20:26:40 UTC = 05-29 04:26 Beijing
        fx.orders = vec![order(OrderProgress::Scheduled {
            due: Some(1_780_000_000_000),
        })];
        assert!(
            reply(&fx).contains("预计 05-29 04:26 前发出"),
            "{}",
            reply(&fx)
        );
        fx.orders = vec![order(OrderProgress::Delivered {
            at: 1_780_000_000_000,
        })];
        assert!(reply(&fx).contains("05-29 04:26 发给您了"));
        fx.orders = vec![order(OrderProgress::WithSeller)];
        assert!(reply(&fx).contains("卖家本人处理"));
        fx.orders = vec![order(OrderProgress::Unpaid)];
        assert!(reply(&fx).contains("还没有付款"));
        fx.ask("这个怎么用");
        assert_eq!(decide(&params(), &fx.ctx()), Step::Continue);
    }
}
