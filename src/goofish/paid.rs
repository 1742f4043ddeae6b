//! How a paid event from any Goofish source (a socket push, a sold-order row) is made ready for
//! ingest: skipped when the store already knows the order as paid, otherwise completed from the
//! order detail. The socket handler (`account`) and reconciliation (`reconcile`) both go
//! through here, so they share one failure policy.

use std::time::Duration;

use super::mtop::{MtopClient, MtopError, OrderDetail};
use crate::event::OrderEvent;
use crate::order::OrderStatus;
use crate::store::{Store, StoreError};

/// Pause before the one retry of an order detail that failed transiently.
const DETAIL_RETRY: Duration = Duration::from_secs(1);

/// Whether the store already knows `order_id` past "waiting for payment": ingesting another
/// paid event for it would change nothing, so no detail needs to be read.
pub async fn is_known_paid(store: &Store, order_id: &str) -> Result<bool, StoreError> {
    let id = order_id.to_string();
    let order = store.call(move |s| s.order(&id)).await?;
    Ok(order.is_some_and(|o| o.status != OrderStatus::PendingPayment))
}

/// Complete the paid event `ev` from the order detail: quantity, SKU, amount, title and buyer,
/// and a later status when the platform says the order is already past "paid" (so a stale
/// paid signal cannot start a delivery). A transient failure is retried once.
///
/// # Failure policy
///
/// Any failure defers the order: the caller ingests nothing and leaves the order to the next
/// reconciliation pass. Quantity and SKU decide what is delivered (how many keys, from which
/// pool), and neither source knows them without the detail: a push carries no quantity and
/// no SKU, a sold-order row no SKU. Ingesting anyway would deliver on a guess, and a key sent
/// for the wrong SKU cannot be taken back. Deferring loses nothing: a paid order stays on the
/// platform's "waiting for shipment" list until it is shipped, and reconciliation reads that
/// list every `reconcile_interval` (sooner after an unfinished pass) and retries it. (The
/// reconciler once ingested a row alone when the detail answered but could not be read; that
/// guess is gone.)
///
/// # Errors
/// The detail's [`MtopError`]; [`MtopError::is_blocking`] ones mean the login needs the seller.
pub async fn complete_paid(mtop: &MtopClient, ev: &mut OrderEvent) -> Result<(), MtopError> {
    let detail = order_detail(mtop, &ev.order_id).await?;
    detail.fill(ev);
    if let Some(later) = detail.later_status() {
        tracing::info!(account = %ev.account, order_id = %ev.order_id, status = later.as_str(), "Paid signal is stale; the order detail says otherwise.");
        ev.status = later;
    }
    Ok(())
}

/// The order detail, with one retry for a transient failure.
async fn order_detail(mtop: &MtopClient, order_id: &str) -> Result<OrderDetail, MtopError> {
    match mtop.order_detail(order_id).await {
        Err(e) if e.is_transient() => {
            tokio::time::sleep(DETAIL_RETRY).await;
            mtop.order_detail(order_id).await
        }
        other => other,
    }
}
