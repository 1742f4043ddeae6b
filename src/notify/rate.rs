//! Local per-channel rate limits: a sliding window of send times, so the daemon never earns a
//! vendor's penalty (WeCom and DingTalk allow 20 messages a minute per bot; DingTalk then
//! mutes the bot for 10 minutes). Kept in memory: after a restart the window starts empty,
//! which at worst lets one extra burst through.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const WINDOW_MS: u64 = 60_000;

#[derive(Debug, Default)]
pub struct RateLimits {
    windows: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl RateLimits {
    /// Take a slot on `channel` at `now` if fewer than `per_minute` sends happened in the last
    /// minute; otherwise the time the oldest of them leaves the window.
    pub fn take(&self, channel: &str, per_minute: u32, now: u64) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let sent = windows.entry(channel.to_string()).or_default();
        while sent.front().is_some_and(|t| t + WINDOW_MS <= now) {
            sent.pop_front();
        }
        if sent.len() >= per_minute as usize {
            return Err(sent.front().map_or(now, |t| t + WINDOW_MS));
        }
        sent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_per_minute_then_wait_for_the_oldest() {
        let r = RateLimits::default();
        for i in 0..20 {
            assert!(r.take("wecom", 20, 1_000 + i).is_ok());
        }
        assert_eq!(r.take("wecom", 20, 5_000), Err(61_000));
        assert!(r.take("other", 20, 5_000).is_ok(), "limits are per channel");
        assert!(r.take("wecom", 20, 61_000).is_ok());
    }
}
