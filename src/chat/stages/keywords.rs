//! keywords: rules with any/all keywords or a regex, per item first, then global.
//!
//! Options per rule: `once` (answer at most once per conversation, remembered in the store
//! and committed with the reply), an empty reply (match and stay silent), several messages per
//! reply. On a buyer's first message about an item with a `greeting`, the greeting goes out
//! before whatever answers — or alone if nothing does; its images go out after the texts,
//! before the answer's own images.

use crate::chat::stage::{Answer, ChatCtx, Step};
use crate::chat::view::ChatView;
use crate::config::chat::{KeywordRule, KeywordsParams, Reply};
use crate::store::{ChatEffect, ChatSkip};

use super::render;

pub fn decide(params: &KeywordsParams, ctx: &ChatCtx<'_>) -> Step {
    let view = ChatView::new(ctx);
    let greeting = greeting(ctx, &view);
    let item_rules = ctx
        .product
        .map(|p| p.replies.as_slice())
        .unwrap_or_default();
    for rule in item_rules.iter().chain(&params.rules) {
        if !applies(rule, ctx) {
            continue;
        }
        let sources = match &rule.reply {
            // An empty reply with images sends the images alone.
            Reply::Swallow if rule.images.is_empty() => return Step::Silent(ChatSkip::Swallowed),
            Reply::Swallow => &[][..],
            Reply::Messages(sources) => sources.as_slice(),
        };
        let mut answer = greeting.clone();
        let mut rendered = true;
        for source in sources {
            match render(ctx, source, &view) {
                Some(m) => answer.messages.extend(m),
                None => rendered = false,
            }
        }
        answer.images.extend(rule.images.iter().cloned());
        if !rendered || answer.is_empty() {
            continue; // a broken rule must not silence the buyer: try the next one
        }
        if rule.once {
            answer.effects.push(ChatEffect::Once {
                key: rule.key.clone(),
            });
        }
        return Step::Answer(answer);
    }
    if greeting.is_empty() {
        Step::Continue
    } else {
        Step::Prefix(greeting)
    }
}

fn applies(rule: &KeywordRule, ctx: &ChatCtx<'_>) -> bool {
    !(rule.once && ctx.snapshot.once.contains(&rule.key))
        && rule.matcher.matches(&ctx.question.text)
}

/// The item's greeting on a buyer's first message (an empty answer otherwise).
fn greeting(ctx: &ChatCtx<'_>, view: &ChatView) -> Answer {
    let greeting = ctx.product.and_then(|p| p.greeting.as_ref());
    let Some(g) = greeting.filter(|_| ctx.question.first_in_conversation) else {
        return Answer::text(Vec::new(), Vec::new());
    };
    let messages = match &g.reply {
        Reply::Messages(sources) => sources
            .iter()
            .filter_map(|s| render(ctx, s, view))
            .flatten()
            .collect(),
        Reply::Swallow => Vec::new(),
    };
    Answer {
        messages,
        effects: Vec::new(),
        images: g.images.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::Fixture;
    use crate::config::chat::{Greeting, Matcher, TextSource};

    fn rule(fx: &mut Fixture, key: &str, m: Matcher, replies: &[&str], once: bool) -> KeywordRule {
        let sources = replies
            .iter()
            .map(|r| fx.texts.add_inline(r).unwrap())
            .collect::<Vec<TextSource>>();
        KeywordRule {
            key: key.into(),
            matcher: m,
            reply: if sources.is_empty() {
                Reply::Swallow
            } else {
                Reply::Messages(sources)
            },
            once,
            images: Vec::new(),
        }
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn item_rules_run_before_global_ones_and_render_templates() {
        let mut fx = Fixture::new("这个多少钱");
        let global = rule(
            &mut fx,
            "g",
            Matcher::Any(words(&["多少钱"])),
            &["全店统一价"],
            false,
        );
        let item = rule(
            &mut fx,
            "i",
            Matcher::Any(words(&["多少钱"])),
            &["{{ item.title }} 只要 {{ item.price }} 元"],
            false,
        );
        fx.product.as_mut().unwrap().replies = vec![item];
        let params = KeywordsParams {
            rules: vec![global],
        };
        assert_eq!(
            decide(&params, &fx.ctx()),
            Step::Answer(Answer::text(
                vec!["Office 2021 激活码 只要 99 元".into()],
                vec![]
            ))
        );
        fx.product.as_mut().unwrap().replies.clear();
        assert!(
            matches!(decide(&params, &fx.ctx()), Step::Answer(a) if a.messages == vec!["全店统一价"])
        );
        fx.ask("你好");
        assert_eq!(decide(&params, &fx.ctx()), Step::Continue);
    }

    #[test]
    fn reply_once_swallow_and_several_messages() {
        let mut fx = Fixture::new("怎么用");
        let once = rule(
            &mut fx,
            "usage",
            Matcher::All(words(&["怎么", "用"])),
            &["第一步", "第二步"],
            true,
        );
        let params = KeywordsParams { rules: vec![once] };
        let Step::Answer(a) = decide(&params, &fx.ctx()) else {
            panic!()
        };
        assert_eq!(a.messages, vec!["第一步", "第二步"]);
        assert_eq!(
            a.effects,
            vec![ChatEffect::Once {
                key: "usage".into()
            }]
        );
        fx.snapshot.once.insert("usage".into());
        assert_eq!(decide(&params, &fx.ctx()), Step::Continue);
        let swallow = rule(
            &mut fx,
            "s",
            Matcher::Regex(regex::Regex::new("^怎么").unwrap()),
            &[],
            false,
        );
        let params = KeywordsParams {
            rules: vec![swallow],
        };
        assert_eq!(
            decide(&params, &fx.ctx()),
            Step::Silent(ChatSkip::Swallowed)
        );
    }

    #[test]
    fn the_greeting_leads_the_first_answer_only() {
        let mut fx = Fixture::new("在吗");
        let hello = fx.texts.add_inline("欢迎光临{{ shop }}～").unwrap();
        fx.product.as_mut().unwrap().greeting = Some(Greeting {
            reply: Reply::Messages(vec![hello]),
            images: Vec::new(),
        });
        let r = rule(
            &mut fx,
            "r",
            Matcher::Any(words(&["在吗"])),
            &["在的"],
            false,
        );
        let params = KeywordsParams { rules: vec![r] };
        fx.question.first_in_conversation = true;
        assert!(
            matches!(decide(&params, &fx.ctx()), Step::Answer(a) if a.messages == vec!["欢迎光临测试小店～", "在的"])
        );
        fx.ask("随便看看");
        assert_eq!(
            decide(&params, &fx.ctx()),
            Step::Prefix(Answer::text(vec!["欢迎光临测试小店～".into()], Vec::new()))
        );
        fx.question.first_in_conversation = false;
        assert_eq!(decide(&params, &fx.ctx()), Step::Continue);
    }
}
