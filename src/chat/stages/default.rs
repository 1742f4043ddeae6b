//! default: the fallback reply when nothing else answered, at most once per conversation per
//! `cooldown` (the time is committed with the reply).

use crate::chat::stage::{Answer, ChatCtx, Step};
use crate::chat::view::ChatView;
use crate::config::chat::{DefaultParams, Reply};
use crate::store::{ChatEffect, ChatSkip};

use super::render;

pub fn decide(params: &DefaultParams, ctx: &ChatCtx<'_>) -> Step {
    let last = ctx
        .snapshot
        .conversation
        .as_ref()
        .and_then(|c| c.default_at);
    if last.is_some_and(|at| ctx.now.saturating_sub(at) < crate::clock::millis(params.cooldown)) {
        return Step::Continue;
    }
    let sources = match &params.reply {
        // An empty reply with images sends the images alone.
        Reply::Swallow if params.images.is_empty() => {
            return Step::Silent(ChatSkip::Swallowed);
        }
        Reply::Swallow => &[][..],
        Reply::Messages(s) => s.as_slice(),
    };
    let view = ChatView::new(ctx);
    let messages: Vec<String> = sources
        .iter()
        .filter_map(|s| render(ctx, s, &view))
        .flatten()
        .collect();
    if messages.is_empty() && (params.images.is_empty() || !sources.is_empty()) {
        return Step::Continue;
    }
    Step::Answer(Answer {
        messages,
        effects: vec![ChatEffect::DefaultUsed],
        images: params.images.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::Fixture;
    use std::time::Duration;

    #[test]
    fn answers_once_per_cooldown() {
        let mut fx = Fixture::new("？？");
        let text = fx.texts.add_inline("亲，稍等，马上回复您").unwrap();
        let params = DefaultParams {
            reply: Reply::Messages(vec![text]),
            cooldown: Duration::from_secs(3600),
            images: Vec::new(),
        };
        let Step::Answer(a) = decide(&params, &fx.ctx()) else {
            panic!()
        };
        assert_eq!(a.effects, vec![ChatEffect::DefaultUsed]);
        let now = fx.now;
        fx.conversation().default_at = Some(now - 10_000);
        assert_eq!(decide(&params, &fx.ctx()), Step::Continue);
        fx.conversation().default_at = Some(now - 3_600_000);
        assert!(matches!(decide(&params, &fx.ctx()), Step::Answer(_)));
    }
}
