//! send: a human-looking pause, then the reply goes out — within rate limits per conversation
//! and per account.
//!
//! The pause is drawn uniformly from `delay` (a zero window sends at once). The limits count
//! replies in the last minute; the counts live in memory ([`SendRates`]) like the notification
//! rate windows, because a restart only makes the bot more careful, never less. The send itself
//! is the runner's: claim in the store, send over the IM socket, record the outcome.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::RngExt;

use crate::config::chat::SendParams;

const MINUTE_MS: u64 = 60_000;

/// What the send stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPlan {
    /// Send after this pause.
    After(Duration),
    /// Over a rate limit: drop the reply.
    RateLimited,
}

/// Replies sent in the last minute, per conversation and per account.
#[derive(Debug, Default)]
pub struct SendRates {
    conversations: HashMap<(String, String), VecDeque<u64>>,
    accounts: HashMap<String, VecDeque<u64>>,
}

impl SendRates {
    /// (this conversation, this account) in the minute before `now`.
    pub fn recent(&mut self, account: &str, cid: &str, now: u64) -> (u32, u32) {
        let conv = self
            .conversations
            .get_mut(&(account.to_string(), cid.to_string()))
            .map_or(0, |q| trim(q, now));
        let acct = self.accounts.get_mut(account).map_or(0, |q| trim(q, now));
        (conv, acct)
    }

    pub fn record(&mut self, account: &str, cid: &str, now: u64) {
        self.conversations
            .entry((account.to_string(), cid.to_string()))
            .or_default()
            .push_back(now);
        self.accounts
            .entry(account.to_string())
            .or_default()
            .push_back(now);
        // Conversations that went quiet are forgotten so the map stays small.
        if self.conversations.len() > 10_000 {
            self.conversations
                .retain(|_, q| q.back().is_some_and(|t| now.saturating_sub(*t) < MINUTE_MS));
        }
    }
}

fn trim(q: &mut VecDeque<u64>, now: u64) -> u32 {
    while q
        .front()
        .is_some_and(|t| now.saturating_sub(*t) >= MINUTE_MS)
    {
        q.pop_front();
    }
    q.len() as u32
}

pub fn plan(params: &SendParams, recent: (u32, u32), rng: &mut impl rand::Rng) -> SendPlan {
    let (conversation, account) = recent;
    if conversation >= params.per_conversation_per_minute
        || account >= params.per_account_per_minute
    {
        return SendPlan::RateLimited;
    }
    let (min, max) = (params.delay.min, params.delay.max);
    if max <= min {
        return SendPlan::After(min);
    }
    SendPlan::After(Duration::from_millis(
        rng.random_range(crate::clock::millis(min)..=crate::clock::millis(max)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Window;
    use rand::SeedableRng;

    #[test]
    fn pauses_stay_in_the_window_and_limits_hold() {
        let params = SendParams {
            delay: Window {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3),
            },
            per_conversation_per_minute: 2,
            per_account_per_minute: 3,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let SendPlan::After(d) = plan(&params, (0, 0), &mut rng) else {
                panic!()
            };
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3));
        }
        let mut rates = SendRates::default();
        rates.record("a", "c1", 1000);
        rates.record("a", "c1", 2000);
        assert_eq!(rates.recent("a", "c1", 3000), (2, 2));
        assert_eq!(
            plan(&params, rates.recent("a", "c1", 3000), &mut rng),
            SendPlan::RateLimited
        );
        rates.record("a", "c2", 3000);
        assert_eq!(
            plan(&params, rates.recent("a", "c3", 3000), &mut rng),
            SendPlan::RateLimited
        );
        // a minute later both windows are empty again
        assert_eq!(rates.recent("a", "c1", 63_001), (0, 0));
        let zero = SendParams {
            delay: Window {
                min: Duration::ZERO,
                max: Duration::ZERO,
            },
            ..params
        };
        assert_eq!(
            plan(&zero, (0, 0), &mut rng),
            SendPlan::After(Duration::ZERO)
        );
    }
}
