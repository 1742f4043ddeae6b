//! How often the IM token may be fetched. The token API is the known risk-control hot spot
//! (reference §8.1: sliders after repeated token calls; zn caches tokens for 20 h, shaxiu waits
//! between retries "to avoid triggering risk control"). A persistent failure (a `/reg` that
//! keeps refusing, a token answer that cannot be read) would otherwise refetch after every
//! reconnect backoff, 35–70 times an hour. At most [`FETCHES_PER_HOUR`] calls go out in any
//! hour; the one after that pauses fetching for [`PAUSE`], and the account supervisor tells
//! the seller once. Fresh cookies end a pause at once.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Token calls allowed in any sliding hour (a healthy account makes one a day).
pub const FETCHES_PER_HOUR: usize = 6;
/// How long fetching stops once the cap is reached.
pub const PAUSE: Duration = Duration::from_secs(3 * 3600);
const WINDOW: Duration = Duration::from_secs(3600);

/// The calls of the last hour and a pause, if one is on.
#[derive(Debug, Default)]
pub(super) struct TokenBudget {
    calls: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl TokenBudget {
    /// Take one call at `now`, or say until when fetching is paused. The refusal that starts a
    /// pause is the one that reaches the cap.
    pub(super) fn take(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
            self.calls.clear();
        }
        while self
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.calls.pop_front();
        }
        if self.calls.len() >= FETCHES_PER_HOUR {
            let until = now + PAUSE;
            self.paused_until = Some(until);
            return Err(until);
        }
        self.calls.push_back(now);
        Ok(())
    }

    /// The seller acted (fresh cookies): start over.
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_an_hour_then_a_pause_of_hours() {
        let start = Instant::now();
        let mut b = TokenBudget::default();
        for i in 0..FETCHES_PER_HOUR as u64 {
            assert!(b.take(start + Duration::from_secs(i * 90)).is_ok());
        }
        let seventh = start + Duration::from_secs(600);
        assert_eq!(b.take(seventh), Err(seventh + PAUSE));
        // Still paused an hour later, although the window has moved on.
        let later = start + Duration::from_secs(2 * 3600);
        assert_eq!(b.take(later), Err(seventh + PAUSE));
        // After the pause, a new hour's worth.
        assert!(b.take(seventh + PAUSE).is_ok());
        b.reset();
        assert!(b.take(seventh + PAUSE).is_ok());
    }

    #[test]
    fn the_window_slides() {
        let start = Instant::now();
        let mut b = TokenBudget::default();
        for _ in 0..FETCHES_PER_HOUR {
            assert!(b.take(start).is_ok());
        }
        assert!(
            b.take(start + WINDOW).is_ok(),
            "an hour later the old calls count no more"
        );
    }
}
