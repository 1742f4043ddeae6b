//! ingest: de-duplicate the event and apply the order state machine, in one transaction.
//! Only a real transition to "paid" schedules pipeline work (the stage after this one), and
//! holds the order's keys or stock in the same transaction when the stock-check stage would do
//! exactly that next (`stock::early`).
//! An event with an empty id or a control character in one is refused here, whatever its
//! source (`OrderEvent::sanitize`).

use std::sync::Arc;

use crate::config::Config;
use crate::event::{MAX_QUANTITY, OrderEvent};
use crate::store::{IngestOutcome, Store};

use super::{PipelineError, first_run};

pub(super) async fn ingest(
    store: &Store,
    config: &Arc<Config>,
    mut ev: OrderEvent,
) -> Result<IngestOutcome, PipelineError> {
    ev.sanitize()?;
    if config.account(&ev.account).is_none() {
        return Err(PipelineError::UnknownAccount(ev.account));
    }
    if ev.quantity > MAX_QUANTITY {
        return Err(PipelineError::AbsurdQuantity {
            order_id: ev.order_id,
            quantity: ev.quantity,
        });
    }
    let start = first_run(config);
    let early = super::stock::early(config);
    let none: &crate::store::EarlyReserve = &|_| None;
    let early = early.as_deref().unwrap_or(none);
    Ok(store.ingest_reserving_async(&ev, &start, early).await?)
}
