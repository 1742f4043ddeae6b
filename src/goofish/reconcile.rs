//! Reconciliation: the sold-order list is the truth, the WebSocket only a hint.
//!
//! Every `reconcile_interval` (jittered ±20 %), and whenever the account supervisor asks
//! (after each reconnect, after fresh cookies, on a paid hint without an order id), the list
//! of orders waiting for shipment is read through mtop. Each one the store does not already
//! know as paid becomes `OrderEvent { status: Paid, source: "reconcile" }`, completed from the
//! order detail by [`complete_paid`] (whose failure policy defers the order to the next pass),
//! and goes through the same `Runner::ingest` as socket events — whose dedupe
//! and state machine make a payment seen twice a no-op. This is what delivers an order paid
//! while the socket was down or silently dead.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::mtop::{MtopClient, MtopError, SoldOrder};
use super::paid::{complete_paid, is_known_paid};
use crate::event::{EventStatus, OrderEvent};
use crate::pipeline::{PipelineError, Runner};

/// The `source` label of events this module produces.
pub const SOURCE: &str = "reconcile";
/// First early retry after a failed or unfinished pass (doubling up to the interval).
const FIRST_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Mtop(#[from] MtopError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Orders the platform lists as waiting for shipment.
    pub pending: usize,
    /// Of those, the ones fed to ingest now.
    pub ingested: usize,
    /// Skipped this pass because their detail could not be read; retried next pass.
    pub deferred: usize,
}

/// The poll of one account.
pub struct Reconciler {
    account: String,
    mtop: Arc<MtopClient>,
    runner: Arc<Runner>,
    interval: Duration,
    trigger: Arc<Notify>,
}

impl Reconciler {
    pub fn new(
        account: &str,
        mtop: Arc<MtopClient>,
        runner: Arc<Runner>,
        interval: Duration,
    ) -> Self {
        Self {
            account: account.to_string(),
            mtop,
            runner,
            interval,
            trigger: Arc::new(Notify::new()),
        }
    }

    /// Notify this to run a pass now (one pending request is remembered).
    pub fn trigger(&self) -> Arc<Notify> {
        self.trigger.clone()
    }

    /// Poll until `shutdown`. A pass that failed transiently (or left orders for later) is
    /// retried sooner than the interval, backing off from two seconds.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut retry: Option<Duration> = None;
        loop {
            let wait = retry.map_or_else(|| jittered(self.interval), |r| r.min(self.interval));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.trigger.notified() => {}
            }
            if !self
                .mtop
                .login_state()
                .usable_at(tokio::time::Instant::now())
            {
                // The login is dead: the supervisor has alerted; polling would only fail.
                // Fresh cookies trigger a pass.
                retry = None;
                continue;
            }
            let unfinished = match self.once().await {
                Ok(r) if r.ingested > 0 || r.deferred > 0 => {
                    tracing::info!(account = %self.account, pending = r.pending, ingested = r.ingested, deferred = r.deferred, "Reconciled the sold-order list.");
                    r.deferred > 0
                }
                Ok(r) => {
                    tracing::debug!(account = %self.account, pending = r.pending, "Sold-order list matches the store.");
                    false
                }
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "Reconciliation failed; will try again.");
                    true
                }
            };
            retry = unfinished.then(|| retry.map_or(FIRST_RETRY, |r| r.saturating_mul(2)));
        }
    }

    /// One pass over the orders waiting for shipment.
    pub async fn once(&self) -> Result<ReconcileReport, ReconcileError> {
        let rows = self.mtop.pending_shipments().await?;
        let mut report = ReconcileReport {
            pending: rows.len(),
            ..ReconcileReport::default()
        };
        for row in &rows {
            let known = is_known_paid(self.runner.store(), &row.order_id)
                .await
                .map_err(PipelineError::from)?;
            if known {
                continue;
            }
            match self.event_for(row).await {
                Ok(ev) => match self.runner.ingest(ev).await {
                    Ok(_) => report.ingested += 1,
                    // One malformed row must not stop the pass for every other order.
                    Err(e) if e.is_refused_event() => {
                        tracing::warn!(account = %self.account, error = %e, "Sold-order row refused.");
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) if e.is_blocking() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(account = %self.account, order_id = %row.order_id, error = %e, "Order detail unavailable; the order waits for the next pass.");
                    report.deferred += 1;
                }
            }
        }
        Ok(report)
    }

    /// The paid event for a listed order, completed by its detail.
    async fn event_for(&self, row: &SoldOrder) -> Result<OrderEvent, MtopError> {
        let mut ev = event_from_row(&self.account, row);
        complete_paid(&self.mtop, &mut ev).await?;
        Ok(ev)
    }
}

/// A listed order as a paid event.
pub fn event_from_row(account: &str, row: &SoldOrder) -> OrderEvent {
    let mut ev = OrderEvent::new(account, &row.order_id, EventStatus::Paid);
    ev.item_id = row.item_id.clone();
    ev.item_title = row.title.clone();
    ev.buyer_id = row.buyer_id.clone();
    ev.buyer_nick = row.buyer_nick.clone();
    ev.amount = row.amount.clone();
    ev.quantity = row.quantity.unwrap_or(1);
    ev.source = SOURCE.to_string();
    ev
}

/// `interval` ± 20 %, so accounts (and restarts) do not poll in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.8..1.2))
}
