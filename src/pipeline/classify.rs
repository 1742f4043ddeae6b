//! classify: stop here, with the seller told, when no product rule applies to the order or
//! its buyer is on the seller's blacklist.
//!
//! The rule itself is found by [`super::plan::plan_for`], which every later stage recomputes
//! from its snapshot; this stage only makes an unclassifiable order a hand-over early, with a
//! keyword guess of what kind of item it looks like.

use super::alerts;
use super::plan::guess_category;
use super::stage::{Outcome, StageCtx};

pub(super) fn run(ctx: &StageCtx<'_>) -> Outcome {
    if let Some(why) = super::plan::blacklisted(ctx.config, ctx.order) {
        return ctx.manual(why);
    }
    match ctx.plan() {
        Ok(_) => Outcome::Continue,
        Err(why) => {
            let guess = guess_category(ctx.config, ctx.order.item_title.as_deref().unwrap_or(""));
            Outcome::Manual {
                alerts: vec![alerts::unclassified(ctx.config, ctx.order, &why, guess)],
                why,
            }
        }
    }
}
