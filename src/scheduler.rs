//! The durable timer: one task sleeps until the earliest due job and hands due jobs to the
//! runner.
//!
//! Jobs live in the store keyed by `(due_ms, id)`, so a restart loses nothing: past-due jobs
//! are simply the first rows and fire at once, in order. The sleep is capped at one second so
//! a job written by another process (`orders retry`) or a wall-clock jump is noticed promptly.
//! A job is never run twice at the same time (`inflight`); a job interrupted by a crash runs
//! again, and the ledger makes that safe.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::Runner;
use crate::store::StoreError;

const MAX_SLEEP: Duration = Duration::from_secs(1);
const BATCH: usize = 256;

pub struct Scheduler {
    runner: Arc<Runner>,
    inflight: Arc<Mutex<HashSet<u64>>>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
}

impl Scheduler {
    /// `concurrency` bounds how many orders are worked on at once.
    pub fn new(runner: Arc<Runner>, concurrency: usize) -> Self {
        Self {
            runner,
            inflight: Arc::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            tracker: TaskTracker::new(),
        }
    }

    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.dispatch_due().await {
                tracing::error!(error = %e, "Scheduler could not read due jobs.");
            }
            let sleep = self.sleep_for().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.runner.wake_scheduler.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn sleep_for(&self) -> Duration {
        let store = self.runner.store();
        let now = store.now();
        match store.call(|s| s.next_job_due()).await {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now)).min(MAX_SLEEP),
            _ => MAX_SLEEP,
        }
    }

    /// Start every due job that is not already running; returns how many were started.
    pub async fn dispatch_due(&self) -> Result<usize, StoreError> {
        let now = self.runner.store().now();
        let due = self
            .runner
            .store()
            .call(move |s| s.due_jobs(now, BATCH))
            .await?;
        let mut started = 0;
        for job in due {
            if !self.lock().insert(job.id) {
                continue;
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let (runner, inflight) = (self.runner.clone(), self.inflight.clone());
            self.tracker.spawn(async move {
                let id = job.id;
                let order_id = job.order_id.clone();
                if let Err(e) = runner.run_job(job).await {
                    tracing::error!(order_id = %order_id, error = %e, "Pipeline job failed; it will run again.");
                }
                inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                drop(permit);
                runner.wake_scheduler.notify_one();
            });
            started += 1;
        }
        Ok(started)
    }

    /// Jobs currently running.
    pub fn running(&self) -> usize {
        self.lock().len()
    }

    /// Run until nothing is due and nothing is running. With `advance`, also jump the store's
    /// clock to the next pending job instead of waiting for it (dry runs on a manual clock).
    pub async fn run_until_idle(&self, advance: Option<&dyn Fn(u64)>) -> Result<(), StoreError> {
        loop {
            let started = self.dispatch_due().await?;
            if started == 0 && self.running() == 0 {
                let Some(next) = self.runner.store().call(|s| s.next_job_due()).await? else {
                    return Ok(());
                };
                match advance {
                    Some(jump) => jump(next),
                    None => {
                        let wait = next.saturating_sub(self.runner.store().now());
                        tokio::time::sleep(Duration::from_millis(wait).min(MAX_SLEEP)).await;
                    }
                }
                continue;
            }
            tokio::select! {
                _ = self.runner.wake_scheduler.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }
}
