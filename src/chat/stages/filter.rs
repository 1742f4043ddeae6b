//! filter: which messages never get a reply.
//!
//! Two layers. [`admit`] is not configurable and runs before anything is recorded: only a
//! buyer's typed text can be answered — never the account's own messages or echoes, typing
//! indicators, read receipts or platform notices. The configured stage ([`decide`]) then
//! skips what the seller chose: messages older than `max_age` (the backlog after a
//! reconnect), blacklisted buyers, quiet hours, extra notice texts.

use crate::chat::input::{ChatInput, InputKind, is_system_notice};
use crate::chat::stage::{ChatCtx, Step};
use crate::config::chat::FilterParams;
use crate::store::ChatSkip;

/// Can this push be answered at all?
pub fn admit(input: &ChatInput) -> Result<(), ChatSkip> {
    match input.kind {
        InputKind::Buyer => {}
        InputKind::Own | InputKind::Typing | InputKind::ReadReceipt => {
            return Err(ChatSkip::Filtered);
        }
    }
    if is_system_notice(&input.text, &[]) {
        return Err(ChatSkip::SystemNotice);
    }
    Ok(())
}

pub fn decide(params: &FilterParams, ctx: &ChatCtx<'_>) -> Step {
    let input = ctx.input;
    if is_system_notice(&input.text, &params.ignore_texts) {
        return Step::Silent(ChatSkip::SystemNotice);
    }
    let age = ctx.now.saturating_sub(input.at(ctx.now));
    if u128::from(age) > params.max_age.as_millis() {
        return Step::Silent(ChatSkip::TooOld);
    }
    if params.blacklist.iter().any(|b| *b == input.sender_id) {
        return Step::Silent(ChatSkip::Blacklisted);
    }
    if params
        .quiet_hours
        .is_some_and(|q| q.contains(beijing_minute(ctx.now)))
    {
        return Step::Silent(ChatSkip::QuietHours);
    }
    Step::Continue
}

/// Minute of the day in Beijing time (UTC+8).
pub fn beijing_minute(now_ms: u64) -> u32 {
    ((now_ms / 60_000 + 8 * 60) % (24 * 60)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::{Fixture, input};
    use crate::config::chat::QuietHours;
    use std::time::Duration;

    #[test]
    fn only_buyer_text_is_admitted() {
        let mut i = input("在吗");
        assert_eq!(admit(&i), Ok(()));
        for kind in [InputKind::Own, InputKind::Typing, InputKind::ReadReceipt] {
            i.kind = kind;
            assert_eq!(admit(&i), Err(ChatSkip::Filtered));
        }
        assert_eq!(
            admit(&input("[我已付款，等待你发货]")),
            Err(ChatSkip::SystemNotice)
        );
    }

    #[test]
    fn age_blacklist_and_quiet_hours() {
        let params = FilterParams {
            max_age: Duration::from_secs(300),
            blacklist: vec!["bad".into()],
            quiet_hours: None,
            ignore_texts: vec!["打气".into()],
        };
        let mut fx = Fixture::new("在吗");
        fx.input.sent_at = Some(fx.now - 301_000);
        assert_eq!(decide(&params, &fx.ctx()), Step::Silent(ChatSkip::TooOld));
        fx.input.sent_at = Some(fx.now - 299_000);
        assert_eq!(decide(&params, &fx.ctx()), Step::Continue);
        fx.input.sender_id = "bad".into();
        assert_eq!(
            decide(&params, &fx.ctx()),
            Step::Silent(ChatSkip::Blacklisted)
        );
        fx.input.sender_id = "good".into();
        fx.input.text = "队友喊你来打气".into();
        assert_eq!(
            decide(&params, &fx.ctx()),
            Step::Silent(ChatSkip::SystemNotice)
        );
        fx.input.text = "在吗".into();
        // 1_780_000_000_000 ms = 2026-05-28 20:26:40 UTC = 04:26 Beijing
        let night = FilterParams {
            quiet_hours: Some(QuietHours {
                from_min: 23 * 60,
                to_min: 8 * 60,
            }),
            ..params
        };
        assert_eq!(beijing_minute(fx.now), 4 * 60 + 26);
        assert_eq!(
            decide(&night, &fx.ctx()),
            Step::Silent(ChatSkip::QuietHours)
        );
    }
}
