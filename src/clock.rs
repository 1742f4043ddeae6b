//! Wall-clock time, injectable.
//!
//! Durable due times are unix milliseconds (an `Instant` does not survive a restart), and tokio's
//! paused test clock does not move `SystemTime`, so everything that stores or compares wall time
//! asks a `Clock` instead of calling `SystemTime::now()` itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0)
    }
}

/// `d` in whole milliseconds, saturating at `u64::MAX` (an `as u64` cast would wrap a huge
/// duration around to a small one).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `now_ms + d` in unix milliseconds, saturating instead of overflowing.
pub fn after_ms(now_ms: u64, d: std::time::Duration) -> u64 {
    now_ms.saturating_add(millis(d))
}

/// The tokio instant `d` from now; a duration too long to represent waits "for ever" (30
/// years) instead of panicking on overflow.
pub fn instant_after(d: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(30 * 365 * 24 * 3600))
}

/// A clock that only moves when told to; for tests and dry runs.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(AtomicU64::new(start_ms))
    }
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The real wall clock in unix milliseconds, for code that talks to the outside world and must
/// use true time whatever clock the pipeline runs on (request signatures, token expiry, what the
/// status page shows as "last seen").
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// RFC 3339 rendering of a unix-ms timestamp, for logs, CLI output and templates.
pub fn format_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// China Standard Time (UTC+8, no DST) as sellers read it: `2026-11-24 21:09:58`.
pub fn format_beijing(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms + 8 * 3600 * 1000);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}
