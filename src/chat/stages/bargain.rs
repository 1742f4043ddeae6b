//! bargain: the program computes the price, the model only phrases it.
//!
//! On a bargaining message (a keyword, or an amount below the list price) for an item with
//! `bargain: { floor, step, max_rounds }`, [`crate::chat::price::next_offer`] decides this
//! round's price from the rounds stored per (account, item, buyer). With `use_model` and an
//! `llm` stage, the model is asked to phrase exactly that price, and its answer must pass the
//! output guard with a [`PriceGuard`] that allows only the offer and the list price; anything
//! else falls back to the offer template. After `max_rounds` the reply is the fixed final text.

use crate::chat::price::{BargainState, Offer, PriceGuard, buyer_offer, next_offer};
use crate::chat::stage::{Answer, ChatCtx, ModelAsk, Step};
use crate::chat::view::ChatView;
use crate::config::chat::{BargainParams, TextSource};
use crate::money::Cents;
use crate::store::{BargainRow, ChatEffect};

use super::{llm, render};

pub fn decide(params: &BargainParams, ctx: &ChatCtx<'_>) -> Step {
    let (Some(rule), Some(item_id), Some(list)) = (
        ctx.product.and_then(|p| p.bargain),
        ctx.item_id(),
        ctx.item.and_then(|i| i.price),
    ) else {
        return Step::Continue;
    };
    let text = &ctx.question.text;
    let proposal = buyer_offer(text, list);
    if proposal.is_none() && !params.keywords.iter().any(|k| text.contains(k.as_str())) {
        return Step::Continue;
    }
    let state = current(ctx.snapshot.bargain, params, ctx.now);
    let view = ChatView::new(ctx);
    match next_offer(&rule, list, &state, proposal) {
        Offer::Final { offer } => {
            let view = view.with_offer(offer, list, false, state.rounds, rule.max_rounds);
            let source = TextSource::File(params.final_template.clone());
            match render(ctx, &source, &view) {
                Some(messages) if !messages.is_empty() => {
                    Step::Answer(Answer::text(messages, Vec::new()))
                }
                _ => Step::Continue,
            }
        }
        Offer::Counter {
            offer,
            round,
            buyer_accepted,
        } => {
            let view = view.with_offer(offer, list, buyer_accepted, round, rule.max_rounds);
            let effects = vec![ChatEffect::Bargain {
                item_id: item_id.to_string(),
                offer,
                rounds: round,
            }];
            let source = TextSource::File(params.offer_template.clone());
            let Some(messages) = render(ctx, &source, &view).filter(|m| !m.is_empty()) else {
                return Step::Continue;
            };
            let fallback = Answer::text(messages, effects);
            match ctx.model.filter(|_| params.use_model) {
                Some(model) => {
                    let title = ctx.item.map(|i| i.title.as_str()).unwrap_or_default();
                    Step::Ask(Box::new(ModelAsk {
                        messages: llm::prompt(
                            model,
                            ctx,
                            &view,
                            Some("chat/bargain_prompt.txt.j2"),
                        ),
                        price: PriceGuard::for_offer(offer, list, rule.floor, title),
                        effects: fallback.effects.clone(),
                        fallback: Some(fallback),
                    }))
                }
                None => Step::Answer(fallback),
            }
        }
    }
}

/// The stored rounds, or a fresh start after `reset_after` without bargaining.
fn current(row: Option<BargainRow>, params: &BargainParams, now: u64) -> BargainState {
    match row {
        Some(r) if now.saturating_sub(r.updated_at) < crate::clock::millis(params.reset_after) => {
            BargainState {
                rounds: r.rounds,
                last_offer: Some(r.last_offer),
            }
        }
        _ => BargainState::default(),
    }
}

/// The offer a reply committed, for tests and the status page.
pub fn offer_of(effects: &[ChatEffect]) -> Option<Cents> {
    effects.iter().find_map(|e| match e {
        ChatEffect::Bargain { offer, .. } => Some(*offer),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::{Fixture, llm_params};
    use crate::config::chat::{BargainRule, DEFAULT_BARGAIN_WORDS};
    use std::time::Duration;

    pub(crate) fn params(use_model: bool) -> BargainParams {
        BargainParams {
            keywords: DEFAULT_BARGAIN_WORDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            use_model,
            reset_after: Duration::from_secs(24 * 3600),
            offer_template: "chat/bargain_offer.txt.j2".into(),
            final_template: "chat/bargain_final.txt.j2".into(),
        }
    }

    fn fixture(text: &str) -> Fixture {
        let mut fx = Fixture::new(text);
        fx.product.as_mut().unwrap().bargain = Some(BargainRule {
            floor: Cents::from_yuan(80),
            step: Cents::from_yuan(5),
            max_rounds: 2,
        });
        fx
    }

    #[test]
    fn offers_without_a_model_use_the_template() {
        let fx = fixture("能便宜点吗");
        let Step::Answer(a) = decide(&params(false), &fx.ctx()) else {
            panic!()
        };
        assert_eq!(
            a.messages,
            vec!["亲，最低 94 元哦，诚心要的话拍下先别付款，我给您改价～"]
        );
        assert_eq!(offer_of(&a.effects), Some(Cents::from_yuan(94)));
        assert_eq!(
            decide(&params(false), &fixture("怎么激活").ctx()),
            Step::Continue
        );
    }

    #[test]
    fn the_model_phrases_only_the_computed_offer() {
        let mut fx = fixture("96行吗");
        fx.model = Some(llm_params());
        let Step::Ask(ask) = decide(&params(true), &fx.ctx()) else {
            panic!()
        };
        // the buyer's 96 is between this round's 94 and the list price 99: it is the offer
        assert_eq!(offer_of(&ask.effects), Some(Cents::from_yuan(96)));
        assert!(ask.price.check("96元可以").is_ok());
        assert!(ask.price.check("94元可以").is_err());
        let system = &ask.messages[0].content;
        assert!(
            system.contains("唯一允许告诉买家的价格是 96 元"),
            "{system}"
        );
        assert!(ask.fallback.is_some());
    }

    #[test]
    fn rounds_are_limited_and_reset_after_a_quiet_day() {
        let mut fx = fixture("再便宜点");
        fx.snapshot.bargain = Some(BargainRow {
            rounds: 2,
            last_offer: Cents::from_yuan(89),
            updated_at: fx.now - 1000,
        });
        let Step::Answer(a) = decide(&params(false), &fx.ctx()) else {
            panic!()
        };
        assert_eq!(
            a.messages,
            vec!["亲，89 元已经是最低价了，实在不能再少了～"]
        );
        assert!(a.effects.is_empty());
        fx.snapshot.bargain.as_mut().unwrap().updated_at = fx.now - 25 * 3600 * 1000;
        let Step::Answer(a) = decide(&params(false), &fx.ctx()) else {
            panic!()
        };
        assert_eq!(offer_of(&a.effects), Some(Cents::from_yuan(94)));
    }
}
