//! The store side of reading an uncertain send back from the conversation (the pipeline's
//! `readback` drives it): arm a read-back when a delivery becomes `needs_human` because its
//! send's outcome is unknown, count the reads, and give up with a reason for the seller. A
//! read that finds the message closes the delivery through
//! [`Store::mark_uncertain_delivery_received`]; one that proves it absent either leaves the
//! order to the seller or, when the product opts in, re-arms it through
//! [`Store::resolve_not_received`].

use super::jobs::{self, NextRun};
use super::records::*;
use super::write_tx::WriteTx;
use super::{Result, Store, StoreError, ledger, outbox};

/// Where the ship stage's job comes back to read the conversation: armed in the same
/// transaction that records a send's outcome as unknown, so a crash between the two cannot
/// leave an unknown send with no read-back scheduled (issue 9).
#[derive(Debug, Clone)]
pub struct ReadBackArm {
    /// The ship stage, under the config that armed it.
    pub resume: NextRun,
    pub due_ms: u64,
}

/// Arm the read-back of `rec` (just made `needs_human` by an unknown send, its job cancelled)
/// and schedule the job that performs it, in the caller's transaction. The caller saves `rec`.
pub(super) fn arm_in(
    tx: &WriteTx,
    rec: &mut DeliveryRecord,
    arm: &ReadBackArm,
    now: u64,
) -> Result<()> {
    arm_state(rec, now);
    let next = &arm.resume;
    jobs::schedule(
        tx,
        &rec.order_id,
        next.stage,
        &next.stage_name,
        arm.due_ms,
        &next.config_version,
        now,
    )?;
    Ok(())
}

/// The read-back state for the unknown part of `rec`, with the note the seller reads.
fn arm_state(rec: &mut DeliveryRecord, now: u64) {
    let since_ms = rec
        .history
        .iter()
        .rev()
        .find(|e| e.state == DeliveryState::Sending)
        .map_or(now, |e| e.at);
    let part = rec
        .parts
        .iter()
        .position(|p| matches!(p.state, PartState::Unknown | PartState::Sending));
    rec.read_back = Some(ReadBackState {
        attempt: rec.attempts,
        since_ms,
        unreadable: 0,
        absent: 0,
        part,
    });
    rec.note(now, "发送结果未知，正在核对聊天记录");
}

/// What one read found, for the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBackResult {
    Absent,
    Unreadable,
}

impl Store {
    /// Arm the read-back of the send that just made `order_id` `needs_human` (no answer, or
    /// in flight at a crash). Returns false when the delivery is not `needs_human`.
    pub fn arm_read_back(&self, order_id: &str) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            if rec.state != DeliveryState::NeedsHuman {
                return Ok(false);
            }
            arm_state(&mut rec, now);
            ledger::save(tx, &rec)?;
            Ok(true)
        })
    }

    /// The read-back `order_id` waits for, with the keys it holds (to rebuild the message):
    /// only for a `needs_human` delivery armed for its current attempt. Every send step asks,
    /// so the common answer (none) comes from a read, without a commit.
    pub fn pending_read_back(
        &self,
        order_id: &str,
    ) -> Result<Option<(ReadBackState, Vec<String>)>> {
        let armed = self.delivery(order_id)?.is_some_and(|rec| {
            rec.state == DeliveryState::NeedsHuman
                && rec
                    .read_back
                    .as_ref()
                    .is_some_and(|s| s.attempt == rec.attempts)
        });
        if !armed {
            return Ok(None);
        }
        self.write(|tx| {
            let Some(rec) = ledger::find(tx, order_id)? else {
                return Ok(None);
            };
            let Some(state) = rec.read_back.clone() else {
                return Ok(None);
            };
            if rec.state != DeliveryState::NeedsHuman || state.attempt != rec.attempts {
                return Ok(None);
            }
            let keys = super::sending::keys_of(tx, &rec)?;
            Ok(Some((state, keys)))
        })
    }

    /// Count one inconclusive read; returns the counts so far.
    pub fn note_read_back(&self, order_id: &str, result: ReadBackResult) -> Result<ReadBackState> {
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            let state = rec.read_back.as_mut().ok_or_else(|| {
                StoreError::Rejected(format!("order {order_id} has no read-back in progress"))
            })?;
            match result {
                ReadBackResult::Absent => state.absent += 1,
                ReadBackResult::Unreadable => state.unreadable += 1,
            }
            let state = state.clone();
            ledger::save(tx, &rec)?;
            Ok(state)
        })
    }

    /// The read-back ends without settling the delivery: it stays `needs_human`, with `reason`
    /// (Chinese: the status page and the alert show it) and `alerts` for the seller.
    pub fn end_read_back(
        &self,
        order_id: &str,
        reason: &str,
        alerts: &[OutboxDraft],
    ) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            rec.read_back = None;
            rec.last_error = Some(reason.to_string());
            rec.note(now, reason);
            ledger::save(tx, &rec)?;
            outbox::enqueue(tx, alerts, now)
        })
    }
}
