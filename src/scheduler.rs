//! The durable timer: one task sleeps until the earliest due job and hands due jobs to the
//! runner.
//!
//! Jobs live in the store keyed by `(due_ms, id)`, so a restart loses nothing: past-due jobs
//! are simply the first rows and fire at once, in order. The sleep is capped at one second so
//! a job written by another process (`orders retry`) or a wall-clock jump is noticed promptly.
//! An order is never worked on by two jobs at the same time (`inflight` holds order ids), and a
//! job is read again once it has its permit: the due list may be stale by then (another run of
//! the order finished and rescheduled or removed it), and a stale job must not run. A job
//! interrupted by a crash runs again, and the ledger makes that safe. A job that fails or panics is quarantined: its order
//! goes to the seller (`needs_human`, 处理时内部错误) and the job leaves the schedule, so one
//! poison order never loops and every other order keeps being served.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::Runner;
use crate::store::{Job, StoreError};

const MAX_SLEEP: Duration = Duration::from_secs(1);
const BATCH: usize = 256;

pub struct Scheduler {
    runner: Arc<Runner>,
    /// Orders whose job is running (or waiting for a permit).
    inflight: Arc<Mutex<HashSet<String>>>,
    /// Jobs that failed and could not even be quarantined: skipped until the next start.
    poisoned: Arc<Mutex<HashSet<u64>>>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
}

impl Scheduler {
    /// `concurrency` bounds how many orders are worked on at once.
    pub fn new(runner: Arc<Runner>, concurrency: usize) -> Self {
        Self {
            runner,
            inflight: Arc::default(),
            poisoned: Arc::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            tracker: TaskTracker::new(),
        }
    }

    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            match self.dispatch_due().await {
                // The store said it once; the jobs stay and fire once it is writable again.
                Err(e) if e.is_unavailable() => {}
                Err(e) => tracing::error!(error = %e, "Scheduler could not read due jobs."),
                Ok(_) => {}
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
        match store.run_here(|s| s.next_job_due()).await {
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
            if lock(&self.poisoned).contains(&job.id) || !self.lock().insert(job.order_id.clone()) {
                continue;
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                self.lock().remove(&job.order_id);
                break;
            };
            let (runner, inflight) = (self.runner.clone(), self.inflight.clone());
            let poisoned = self.poisoned.clone();
            self.tracker.spawn(async move {
                let (id, order_id) = (job.id, job.order_id.clone());
                if let Some(job) = still_scheduled(&runner, job).await {
                    if !run_guarded(&runner, job).await {
                        lock(&poisoned).insert(id);
                    }
                }
                lock(&inflight).remove(&order_id);
                drop(permit);
                runner.wake_scheduler.notify_one();
            });
            started += 1;
        }
        Ok(started)
    }

    /// Due time of the earliest job that is not poisoned (those never run again here).
    async fn next_runnable_due(&self) -> Result<Option<u64>, StoreError> {
        let skip = lock(&self.poisoned).clone();
        if skip.is_empty() {
            return self.runner.store().run_here(|s| s.next_job_due()).await;
        }
        let limit = skip.len() + 1;
        let jobs = self
            .runner
            .store()
            .call(move |s| s.due_jobs(u64::MAX, limit))
            .await?;
        Ok(jobs
            .into_iter()
            .find(|j| !skip.contains(&j.id))
            .map(|j| j.due_ms))
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
                let Some(next) = self.next_runnable_due().await? else {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        lock(&self.inflight)
    }
}

fn lock<T>(set: &Mutex<HashSet<T>>) -> std::sync::MutexGuard<'_, HashSet<T>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// The job as the store has it now, or `None` if it is gone: the due list was read before
/// another run of this order finished, rescheduled or removed it (found by the chaos test: a
/// stale job ran the order a second time, in parallel with its rescheduled job).
async fn still_scheduled(runner: &Runner, job: Job) -> Option<Job> {
    let id = job.id;
    match runner.store().run_here(move |s| s.job(id)).await {
        Ok(current) => current,
        // The store cannot be read (a full disk): the job stays and is tried on a later pass.
        Err(e) => {
            if !e.is_unavailable() {
                tracing::warn!(order_id = %job.order_id, job_id = id, error = %e, "Could not re-read a due job; trying again later.");
            }
            None
        }
    }
}

/// Run one job; an error or a panic quarantines its order. False only when even the quarantine
/// could not be written (the job is then skipped until the next start).
async fn run_guarded(runner: &Runner, job: Job) -> bool {
    let failure = match AssertUnwindSafe(runner.run_job(job.clone()))
        .catch_unwind()
        .await
    {
        Ok(Ok(_)) => return true,
        // Not this order's fault: the job stays in the store and runs once it is writable.
        Ok(Err(e)) if e.is_unavailable() => return true,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
    };
    tracing::error!(order_id = %job.order_id, job_id = job.id, error = %failure, "Pipeline job failed; the order is quarantined (needs_human) instead of being retried.");
    match runner.quarantine(&job).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(order_id = %job.order_id, job_id = job.id, error = %e, "Could not quarantine the failed job; it is skipped until the next start.");
            false
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
