//! notify: the stage that announces a finished automatic delivery (`delivered`), if the seller
//! routed that event. Alerts raised by other stages are routed by the same `notify` settings
//! and committed by those stages' own transactions.

use crate::store::{DeliveryState, StoreError};

use super::alerts;
use super::stage::{Outcome, StageCtx};

pub(super) async fn run(ctx: &StageCtx<'_>) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let delivered = ctx
        .store_op(|s| s.delivery(&oid))?
        .is_some_and(|d| d.state == DeliveryState::Delivered);
    if !delivered {
        return Ok(Outcome::Continue);
    }
    let drafts = ctx.router().drafts(&alerts::delivered(ctx.order));
    if !drafts.is_empty() {
        ctx.store_op(|s| s.enqueue_notifications(&drafts))?;
    }
    Ok(Outcome::Continue)
}
