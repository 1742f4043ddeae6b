//! delay: a human-looking pause before an automatic delivery.
//!
//! Drawn once, uniformly in the product's window (or the stage's `virtual` window), and stored
//! in the ledger as a wall-clock due time; a resumed job gets the stored time back, so a
//! restart neither redraws nor forgets the delay. Manual orders pass straight through.

use std::time::Duration;

use rand::RngExt;

use crate::config::DelayParams;
use crate::store::StoreError;

use super::stage::{Outcome, Resume, StageCtx};

pub(super) async fn run(ctx: &StageCtx<'_>, params: &DelayParams) -> Result<Outcome, StoreError> {
    let Ok(plan) = ctx.plan() else {
        return Ok(Outcome::Continue);
    };
    if !plan.auto {
        return Ok(Outcome::Continue);
    }
    let window = plan.product.delay.unwrap_or(params.virtual_);
    if window.max.is_zero() {
        return Ok(Outcome::Continue); // nothing to draw or remember: spare the commit
    }
    let drawn = ctx.with_rng(|rng| draw(rng, window.min, window.max));
    let now = ctx.now();
    let oid = ctx.order.order_id.clone();
    let due = ctx.store_op(|s| s.schedule_delivery(&oid, crate::clock::after_ms(now, drawn)))?;
    Ok(match due {
        Some(due) if due > now => Outcome::Defer {
            until: due,
            resume: Resume::Next,
        },
        Some(_) => Outcome::Continue,
        None => Outcome::Stop("delivery is no longer waiting to be scheduled".into()),
    })
}

/// Uniform in `min..=max`, to the millisecond. Conversions saturate, so the range is never
/// empty whatever the window (`check` bounds delays to 30 days anyway).
fn draw(rng: &mut impl rand::Rng, min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    let (lo, hi) = (crate::clock::millis(min), crate::clock::millis(max));
    Duration::from_millis(rng.random_range(lo..=hi))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn draws_stay_in_window() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(90));
        let draws: Vec<_> = (0..1000).map(|_| draw(&mut rng, min, max)).collect();
        assert!(draws.iter().all(|d| *d >= min && *d <= max));
        // uniform-ish: both halves of the window are used
        assert!(draws.iter().any(|d| *d < Duration::from_secs(30)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(70)));
        assert_eq!(draw(&mut rng, max, min), max);
    }

    #[test]
    fn windows_beyond_u64_milliseconds_never_panic() {
        // Issue 10 D12: `as u64` wrapped the max of this window below its min, and
        // `random_range` panicked on the empty range (`check` now refuses it as well).
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let min = humantime::parse_duration("584542000y").unwrap();
        let max = humantime::parse_duration("584543000y").unwrap();
        assert!(max.as_millis() > u128::from(u64::MAX));
        let d = draw(&mut rng, min, max);
        assert!(d >= min && d <= Duration::from_millis(u64::MAX), "{d:?}");
    }
}
