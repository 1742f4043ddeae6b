//! Closing out deliveries the automatic flow could not finish: a job that failed or panicked
//! (quarantine).
//!
//! Each function is one transaction that checks the ledger state before moving it, like the
//! rest of the ledger.

use super::records::*;
use super::{Result, Store, jobs, ledger};

/// The seller-facing reason a quarantined order carries (status page, notification).
pub const INTERNAL_ERROR_REASON: &str = "处理时内部错误";

impl Store {
    /// A pipeline job failed or panicked: take it out of the schedule so it does not run again
    /// in a loop, and hand its order to the seller as `needs_human` (a send may have started),
    /// with `alerts`. A delivery that is already settled only loses the job. Returns whether
    /// the order was handed over.
    pub fn quarantine_job(
        &self,
        job_id: u64,
        order_id: &str,
        alerts: &[OutboxDraft],
    ) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            jobs::remove(tx, job_id)?;
            jobs::cancel_for_order(tx, order_id)?;
            let Some(mut rec) = ledger::find(tx, order_id)? else {
                return Ok(false);
            };
            if rec.state.is_settled() {
                return Ok(false);
            }
            rec.last_error = Some(INTERNAL_ERROR_REASON.to_string());
            ledger::hand_over_state(
                tx,
                &mut rec,
                DeliveryState::NeedsHuman,
                INTERNAL_ERROR_REASON,
                alerts,
                now,
            )?;
            ledger::save(tx, &rec)?;
            Ok(true)
        })
    }
}
