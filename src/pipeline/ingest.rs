//! ingest: de-duplicate the event and apply the order state machine, in one transaction.
//! Only a real transition to "paid" schedules pipeline work (the stage after this one).
//! An event with an empty id or a control character in one is refused here, whatever its
//! source (`OrderEvent::sanitize`).

use crate::config::Config;
use crate::event::{MAX_QUANTITY, OrderEvent};
use crate::store::{IngestOutcome, Store};

use super::{PipelineError, first_run};

pub(super) async fn ingest(
    store: &Store,
    config: &Config,
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
    let outcome = store.call(move |s| s.ingest(&ev, &start)).await?;
    Ok(outcome)
}
