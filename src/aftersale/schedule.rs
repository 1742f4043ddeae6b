//! When after-sale work runs: daily windows in Beijing time (the seller's clock), spread by a
//! random offset so the calls do not land on the same second every day. Pure.

use crate::config::aftersale::DailyWindow;

const DAY_MS: u64 = 24 * 3600 * 1000;
/// China Standard Time is UTC+8 all year.
const BEIJING_OFFSET_MS: u64 = 8 * 3600 * 1000;

/// The Beijing calendar day of `ms`, `YYYY-MM-DD`.
pub fn beijing_day(ms: u64) -> String {
    crate::clock::format_beijing(ms).chars().take(10).collect()
}

/// Start and end (unix ms) of the window on the Beijing day containing `ms`.
fn window_on_day_of(ms: u64, window: DailyWindow) -> (u64, u64) {
    let local = ms.saturating_add(BEIJING_OFFSET_MS);
    let day_start = local - local % DAY_MS;
    let at = |min: u32| (day_start + u64::from(min) * 60_000).saturating_sub(BEIJING_OFFSET_MS);
    (at(window.start_min), at(window.end_min))
}

/// The next moment inside `window` at or after `now`: today's window if it has not ended,
/// else tomorrow's; `offset` (the random jitter) after its start (or after now), kept
/// inside the window.
pub fn next_in_window(now: u64, window: DailyWindow, offset: u64) -> u64 {
    let (start, end) = window_on_day_of(now, window);
    if now < start {
        start + offset.min(end - start - 1)
    } else if now < end {
        now + offset.min(end - now - 1)
    } else {
        tomorrow_in_window(now, window, offset)
    }
}

/// `offset` after the start of the window of the Beijing day after the one containing `now`.
pub fn tomorrow_in_window(now: u64, window: DailyWindow, offset: u64) -> u64 {
    let (start, end) = window_on_day_of(now.saturating_add(DAY_MS), window);
    start + offset.min(end - start - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01 00:00 Beijing.
    const JAN1: u64 = 1_767_196_800_000;
    const NINE_TO_TEN: DailyWindow = DailyWindow {
        start_min: 9 * 60,
        end_min: 10 * 60,
    };

    #[test]
    fn days_and_windows_are_beijing_time() {
        assert_eq!(beijing_day(JAN1), "2026-01-01");
        assert_eq!(beijing_day(JAN1 - 1), "2025-12-31");
        let nine = JAN1 + 9 * 3600 * 1000;
        assert_eq!(next_in_window(JAN1, NINE_TO_TEN, 0), nine);
        // Inside the window: still today, never before now.
        let half_past = nine + 30 * 60_000;
        assert_eq!(
            next_in_window(half_past, NINE_TO_TEN, 1_000),
            half_past + 1_000
        );
        let due = next_in_window(half_past, NINE_TO_TEN, 12_345_678_900);
        assert!(due >= half_past && due < nine + 3600 * 1000);
        // After the window: tomorrow's.
        let eleven = JAN1 + 11 * 3600 * 1000;
        let due = next_in_window(eleven, NINE_TO_TEN, 0);
        assert_eq!(due, nine + DAY_MS);
        assert_eq!(tomorrow_in_window(nine, NINE_TO_TEN, 0), nine + DAY_MS);
    }
}
