//! debounce: wait a moment and answer the buyer's quick messages as one question.
//!
//! The stage only asks the runner to hold; the runner drops this run if a newer buyer message
//! arrived in the meantime (the newer run merges every pending message), and checks again
//! after the model answered and after the reply delay, so an answer to an outdated question
//! is dropped rather than sent.

use crate::chat::stage::{ChatCtx, Step};
use crate::config::chat::DebounceParams;

pub fn decide(params: &DebounceParams, ctx: &ChatCtx<'_>) -> Step {
    if params.window.is_zero() {
        return Step::Continue;
    }
    Step::Hold {
        until: crate::clock::after_ms(ctx.now, params.window),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::stages::test_support::Fixture;
    use std::time::Duration;

    #[test]
    fn holds_for_the_window() {
        let fx = Fixture::new("在吗");
        let p = DebounceParams {
            window: Duration::from_secs(2),
        };
        assert_eq!(
            decide(&p, &fx.ctx()),
            Step::Hold {
                until: fx.now + 2000
            }
        );
        let zero = DebounceParams {
            window: Duration::ZERO,
        };
        assert_eq!(decide(&zero, &fx.ctx()), Step::Continue);
    }
}
