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
    let due = ctx.store_op(|s| s.schedule_delivery(&oid, now + drawn.as_millis() as u64))?;
    Ok(match due {
        Some(due) if due > now => Outcome::Defer {
            until: due,
            resume: Resume::Next,
        },
        Some(_) => Outcome::Continue,
        None => Outcome::Stop("delivery is no longer waiting to be scheduled".into()),
    })
}

fn draw(rng: &mut impl rand::Rng, min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    Duration::from_millis(rng.random_range(min.as_millis() as u64..=max.as_millis() as u64))
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
}
