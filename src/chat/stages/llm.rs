//! llm: answer anything else with the model, from the item's facts and the conversation.
//!
//! The system prompt is a template (`chat/system.txt.j2` by default) over the item's title,
//! price, description and `facts`; the history is the last `history_turns` turns of this
//! conversation from the store (buyer = user; our replies and the seller's own = assistant);
//! the question is the merged pending messages. The answer must pass the output guard with
//! the general [`PriceGuard`]: it may name the list price and amounts the seller wrote, never
//! a discount. Errors and rejections fall through or go silent per `on_error`.

use crate::chat::price::PriceGuard;
use crate::chat::stage::{ChatCtx, ModelAsk, Step};
use crate::chat::view::ChatView;
use crate::config::chat::{LlmParams, TextSource};
use crate::llm::Message;
use crate::store::TurnRole;

use super::render;

pub fn decide(params: &LlmParams, ctx: &ChatCtx<'_>) -> Step {
    if ctx.question.text.trim().is_empty() {
        return Step::Continue;
    }
    let view = ChatView::new(ctx);
    let item = ctx.item;
    let texts: Vec<&str> = [
        item.map(|i| i.title.as_str()),
        item.map(|i| i.description.as_str()),
        ctx.product.map(|p| p.facts.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let floor = ctx.product.and_then(|p| p.bargain).map(|b| b.floor);
    Step::Ask(Box::new(ModelAsk {
        messages: prompt(params, ctx, &view, None),
        price: PriceGuard::general(item.and_then(|i| i.price), floor, &texts),
        fallback: None,
        effects: Vec::new(),
    }))
}

/// System prompt (plus an extra instruction template), history, then the question.
pub fn prompt(
    params: &LlmParams,
    ctx: &ChatCtx<'_>,
    view: &ChatView,
    extra: Option<&str>,
) -> Vec<Message> {
    let view = &ChatView {
        max_chars: params.max_chars,
        ..view.clone()
    };
    let mut system = render(ctx, &TextSource::File(params.system_template.clone()), view)
        .map(|m| m.join("\n"))
        .unwrap_or_default();
    if let Some(name) = extra {
        if let Some(more) = render(ctx, &TextSource::File(name.to_string()), view) {
            system.push_str("\n\n");
            system.push_str(&more.join("\n"));
        }
    }
    let mut messages = vec![Message::system(system)];
    let asked = &ctx.question.message_ids;
    let history: Vec<_> = ctx
        .snapshot
        .history
        .iter()
        .filter(|t| !t.message_id.as_ref().is_some_and(|id| asked.contains(id)))
        .collect();
    let skip = history.len().saturating_sub(params.history_turns);
    for turn in history.into_iter().skip(skip) {
        messages.push(match turn.role {
            TurnRole::Buyer => Message::user(turn.text.clone()),
            TurnRole::Bot | TurnRole::Seller => Message::assistant(turn.text.clone()),
        });
    }
    messages.push(Message::user(ctx.question.text.clone()));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::{Fixture, llm_params};
    use crate::llm::Role;
    use crate::store::Turn;

    fn turn(role: TurnRole, text: &str, id: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
            at: 0,
            message_id: Some(id.into()),
        }
    }

    #[test]
    fn the_prompt_carries_facts_history_and_the_question_once() {
        let mut fx = Fixture::new("支持 Mac 吗");
        fx.snapshot.history = vec![
            turn(TurnRole::Buyer, "在吗", "a"),
            turn(TurnRole::Bot, "在的", "b"),
            turn(TurnRole::Seller, "有什么问题", "c"),
            turn(TurnRole::Buyer, "支持 Mac 吗", "m1.PNM"),
        ];
        let mut params = llm_params();
        params.history_turns = 2;
        let Step::Ask(ask) = decide(&params, &fx.ctx()) else {
            panic!()
        };
        let roles: Vec<Role> = ask.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![Role::System, Role::Assistant, Role::Assistant, Role::User]
        );
        let system = &ask.messages[0].content;
        assert!(
            system.contains("Office 2021 激活码")
                && system.contains("一码一机")
                && system.contains("99 元"),
            "{system}"
        );
        assert!(system.contains("不超过 80 个字"));
        assert_eq!(ask.messages.last().unwrap().content, "支持 Mac 吗");
        // no bargain rule: the list price is the floor
        assert!(ask.price.check("99元").is_ok());
        assert!(ask.price.check("90元").is_err());
        assert!(ask.fallback.is_none());
    }
}
