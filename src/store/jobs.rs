//! Durable pipeline jobs: "run order X's pipeline from stage S at time T".
//!
//! Keyed by `(due_ms, id)` so the earliest job is `first()` and ties keep FIFO order. Each order
//! has at most one job (`order_jobs`), so two runs of the same order never race. A job is
//! deleted only by the transaction that finishes or replaces it, so a crash re-runs it.

use redb::ReadableTable;

use super::records::{DeliveryRecord, DeliveryState, Job, OutboxDraft};
use super::write_tx::WriteTx;
use super::{JOBS, JOBS_DUE, Result, Store, decode, encode, next_id, outbox};

/// Where an order's pipeline continues.
#[derive(Debug, Clone)]
pub struct NextRun {
    pub stage: usize,
    pub stage_name: String,
    pub config_version: String,
}

/// The end of an order's job when it rides on the transaction of the ship stage's last step
/// (issue 15): the job leaves the schedule and the `delivered` announcement the notify stage
/// would queue is queued, with the result that makes the delivery `delivered`. A crash after
/// that commit leaves nothing to redo; one before it re-runs a job whose steps all answer
/// "already done".
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job_id: u64,
    pub announce: Vec<OutboxDraft>,
}

/// End the job in the caller's transaction (see [`JobDone`]).
pub(super) fn done(tx: &WriteTx, done: &JobDone, now: u64) -> Result<()> {
    remove(tx, done.job_id)?;
    outbox::enqueue(tx, &done.announce, now)
}

/// Schedule (or move) the order's job. Returns the job id. The order's index row is written
/// first and hands back the job it replaces, which then goes (one visit to `order_jobs`).
pub(super) fn schedule(
    tx: &WriteTx,
    order_id: &str,
    stage: usize,
    stage_name: &str,
    due_ms: u64,
    config_version: &str,
    now: u64,
) -> Result<u64> {
    let id = next_id(tx, "job")?;
    let replaced = tx.order_jobs()?.insert(order_id, id)?.map(|v| v.value());
    if let Some(old) = replaced {
        // The index already names the new job, so `remove` leaves it be.
        remove(tx, old)?;
    }
    let job = Job {
        id,
        order_id: order_id.to_string(),
        stage,
        stage_name: stage_name.to_string(),
        due_ms,
        config_version: config_version.to_string(),
        created_at: now,
        task: None,
    };
    tx.jobs()?.insert(id, encode(&job).as_slice())?;
    tx.jobs_due()?.insert((due_ms, id), ())?;
    Ok(id)
}

/// Remove the order's pending job, if any.
pub(super) fn cancel_for_order(tx: &WriteTx, order_id: &str) -> Result<()> {
    let Some(id) = tx.order_jobs()?.remove(order_id)?.map(|v| v.value()) else {
        return Ok(());
    };
    remove(tx, id)
}

pub(super) fn remove(tx: &WriteTx, id: u64) -> Result<()> {
    let job: Option<Job> = match tx.jobs()?.remove(id)? {
        Some(v) => Some(decode("jobs", v.value())?),
        None => None,
    };
    if let Some(job) = job {
        tx.jobs_due()?.remove((job.due_ms, id))?;
        let mut by_order = tx.order_jobs()?;
        let current = by_order.get(job.order_id.as_str())?.map(|v| v.value());
        if current == Some(id) {
            by_order.remove(job.order_id.as_str())?;
        }
    }
    Ok(())
}

impl Store {
    /// Jobs due at `now`, earliest first.
    pub fn due_jobs(&self, now: u64, limit: usize) -> Result<Vec<Job>> {
        self.read(|tx| {
            let due = tx.open_table(JOBS_DUE)?;
            let jobs = tx.open_table(JOBS)?;
            let mut out = Vec::new();
            for row in due.range((0, 0)..=(now, u64::MAX))?.take(limit) {
                let (_, id) = row?.0.value();
                if let Some(v) = jobs.get(id)? {
                    out.push(decode("jobs", v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Due time of the earliest job.
    pub fn next_job_due(&self) -> Result<Option<u64>> {
        self.read(|tx| Ok(tx.open_table(JOBS_DUE)?.first()?.map(|(k, _)| k.value().0)))
    }

    pub fn job(&self, id: u64) -> Result<Option<Job>> {
        self.read(|tx| match tx.open_table(JOBS)?.get(id)? {
            Some(v) => decode("jobs", v.value()).map(Some),
            None => Ok(None),
        })
    }

    /// The job ran to an end (stop, manual, or the last stage).
    pub fn finish_job(&self, id: u64) -> Result<()> {
        self.write(|tx| remove(tx, id))
    }

    /// Replace job `id` by a run of the same order at another stage/time.
    pub fn reschedule_job(
        &self,
        id: u64,
        order_id: &str,
        next: &NextRun,
        due_ms: u64,
    ) -> Result<u64> {
        let now = self.now();
        self.write(|tx| {
            remove(tx, id)?;
            schedule(
                tx,
                order_id,
                next.stage,
                &next.stage_name,
                due_ms,
                &next.config_version,
                now,
            )
        })
    }

    /// Give a job back to every delivery that is in the middle of the ship stage (a send or a
    /// confirm claimed or done, or an armed read-back) but has none, so it runs at `ship` now;
    /// returns those orders. Run at start. A delivery in that state always has a job, but
    /// before the fix found by the chaos test (issue 9) a kill could leave an armed read-back
    /// without one, and such an order waits forever without its seller being told; stores
    /// written then may still hold some. The ship stage is safe to run again: every step is
    /// claimed in the ledger first.
    pub fn reschedule_orphans(&self, ship: &NextRun) -> Result<Vec<String>> {
        let now = self.now();
        self.write(|tx| {
            let mut orphans = Vec::new();
            {
                let ledger = tx.ledger()?;
                let by_order = tx.order_jobs()?;
                for row in ledger.iter()? {
                    let (key, value) = row?;
                    let rec: DeliveryRecord = decode("delivery_ledger", value.value())?;
                    let in_ship = match rec.state {
                        DeliveryState::Sending
                        | DeliveryState::Sent
                        | DeliveryState::Confirming
                        | DeliveryState::Confirmed => true,
                        DeliveryState::NeedsHuman => rec.read_back.is_some(),
                        _ => false,
                    };
                    if in_ship && by_order.get(key.value())?.is_none() {
                        orphans.push(rec.order_id);
                    }
                }
            }
            for order_id in &orphans {
                schedule(
                    tx,
                    order_id,
                    ship.stage,
                    &ship.stage_name,
                    now,
                    &ship.config_version,
                    now,
                )?;
            }
            Ok(orphans)
        })
    }

    pub fn pending_job_count(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        self.read(|tx| Ok(tx.open_table(JOBS)?.len()?))
    }
}
