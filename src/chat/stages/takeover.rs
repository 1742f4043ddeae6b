//! takeover: the seller typing by hand silences the bot in that conversation.
//!
//! The state is kept in the store and changed by [`crate::store::Store::chat_observe_own`]
//! when the account's own message is not an echo of our send; this stage only reads it. The
//! runner re-checks it right before sending, so a seller who starts typing while a reply is
//! being prepared still wins.

use crate::chat::stage::{ChatCtx, Step};
use crate::config::chat::TakeoverParams;
use crate::store::{ChatSkip, Takeover, TakeoverRule};

pub fn decide(ctx: &ChatCtx<'_>) -> Step {
    if silenced(
        ctx.snapshot.conversation.as_ref().map(|c| c.takeover),
        ctx.now,
    ) {
        Step::Silent(ChatSkip::TakenOver)
    } else {
        Step::Continue
    }
}

pub fn silenced(state: Option<Takeover>, now: u64) -> bool {
    state.is_some_and(|t| t.silences(now))
}

/// The rule the store applies to the seller's own messages.
pub fn rule(params: &TakeoverParams) -> TakeoverRule {
    TakeoverRule {
        pause_ms: crate::clock::millis(params.pause),
        toggle: params.toggle.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::Fixture;

    #[test]
    fn a_paused_conversation_gets_no_reply_until_the_pause_ends() {
        let mut fx = Fixture::new("在吗");
        assert_eq!(decide(&fx.ctx()), Step::Continue);
        fx.conversation().takeover = Takeover::PausedUntil { until: fx.now + 1 };
        assert_eq!(decide(&fx.ctx()), Step::Silent(ChatSkip::TakenOver));
        fx.now += 1;
        assert_eq!(decide(&fx.ctx()), Step::Continue);
        fx.conversation().takeover = Takeover::Manual { since: 0 };
        assert_eq!(decide(&fx.ctx()), Step::Silent(ChatSkip::TakenOver));
    }
}
