//! The generic runner and one file per stage kind.
//!
//! An event enters through [`Runner::ingest`], which commits the order transition and, for a
//! newly paid order, a durable job "run this order's pipeline from the stage after ingest".
//! The scheduler hands due jobs to [`Runner::run_job`], which takes **one config snapshot**
//! and runs the configured stages in order until one returns something other than
//! `Continue`. Stages decide; the store does: a stage never opens redb and never talks to the
//! network except through the `Marketplace` in its context.
//!
//! A job scheduled under an older config version runs under the config that is current when
//! it fires (the seller's latest edit wins: turning `auto_ship` off stops a delayed delivery),
//! resuming at the stage with the recorded name; if that stage was removed it resumes at the
//! next stage that exists. Safety never depends on the config: the ledger decides what may be
//! sent.

pub mod alerts;
mod classify;
mod content;
mod delay;
mod images;
mod ingest;
mod notify;
pub mod plan;
mod readback;
mod send;
mod ship;
pub mod stage;
mod stock;
mod supplier;

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::Notify;

pub use plan::{Plan, plan_for};
pub use stage::{Outcome, Resume, StageCtx};

use crate::alert::Alert;
use crate::config::{Config, ConfigHandle, Stage, StageKind};
use crate::event::{EventStatus, OrderEvent};
use crate::marketplace::Marketplace;
use crate::notify::Router;
use crate::store::{
    INTERNAL_ERROR_REASON, IngestOutcome, Job, NextRun, OrderRecord, Store, StoreError, TaskKey,
};
use crate::supplier::CardSupplier;
use crate::supplier::http::HttpSupplier;
use crate::why::Why;

/// How a job run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Completed,
    Deferred { until: u64 },
    Stopped(String),
    Manual(Why),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event for unknown account `{0}` (not in pipeline.yaml accounts)")]
    UnknownAccount(String),
    #[error(
        "order {order_id}: quantity {quantity} is not plausible (at most {max}); event ignored",
        max = crate::event::MAX_QUANTITY
    )]
    AbsurdQuantity { order_id: String, quantity: u32 },
    #[error(transparent)]
    BadEvent(#[from] crate::event::EventError),
}

impl PipelineError {
    /// The event itself was refused (its data, not the shop, is at fault): other events are
    /// unaffected and a source goes on with the next one.
    pub fn is_refused_event(&self) -> bool {
        matches!(
            self,
            Self::UnknownAccount(_) | Self::AbsurdQuantity { .. } | Self::BadEvent(_)
        )
    }
}

impl PipelineError {
    /// The store cannot be written right now (a full disk): the store has said so once; wait.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }
}

/// Runs orders through the configured stages.
pub struct Runner {
    store: Store,
    config: ConfigHandle,
    market: Arc<dyn Marketplace>,
    supplier: Arc<dyn CardSupplier>,
    /// Woken when a job becomes due sooner than the scheduler's current sleep.
    pub wake_scheduler: Arc<Notify>,
    /// Woken when a run wrote outbox rows.
    pub wake_outbox: Arc<Notify>,
    rng: Mutex<StdRng>,
}

impl Runner {
    pub fn new(store: Store, config: ConfigHandle, market: Arc<dyn Marketplace>) -> Self {
        Self {
            store,
            config,
            market,
            supplier: Arc::new(HttpSupplier::new()),
            wake_scheduler: Arc::new(Notify::new()),
            wake_outbox: Arc::new(Notify::new()),
            rng: Mutex::new(StdRng::from_rng(&mut rand::rng())),
        }
    }

    /// Buy supplier cards through `supplier` instead of over HTTP (replay prints instead).
    pub fn with_supplier(self, supplier: Arc<dyn CardSupplier>) -> Self {
        Self { supplier, ..self }
    }

    /// Use a fixed seed for the delay draws (tests).
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Feed one event through ingest (dedupe + state machine), scheduling work it implies.
    pub async fn ingest(&self, ev: OrderEvent) -> Result<IngestOutcome, PipelineError> {
        let config = self.config.load_full();
        let ended = matches!(ev.status, EventStatus::Refunded | EventStatus::Closed)
            .then(|| ev.order_id.clone());
        let completed = (ev.status == EventStatus::Completed)
            .then(|| (ev.account.clone(), ev.order_id.clone()));
        let outcome = ingest::ingest(&self.store, &config, ev).await?;
        if let Some((account, order_id)) = completed {
            self.after_completion(&config, account, order_id).await?;
        }
        if outcome.scheduled.is_some() {
            self.wake_scheduler.notify_one();
        }
        if let Some(order_id) = ended {
            supplier::give_back(&self.store, self.supplier.as_ref(), &config, &order_id).await?;
        }
        self.wake_outbox.notify_one();
        Ok(outcome)
    }

    /// The buyer confirmed receipt (or rated): the after-sale tasks the config asks for.
    async fn after_completion(
        &self,
        config: &Arc<Config>,
        account: String,
        order_id: String,
    ) -> Result<(), PipelineError> {
        if config.aftersale.rate.is_none() && config.aftersale.thanks.is_none() {
            return Ok(());
        }
        if self.market.aftersale().is_none() {
            // Nothing could rate or thank (a replay writing the real store): schedule nothing,
            // so nothing is recorded as done; `run`'s daily sweep finds the order later.
            tracing::debug!(order_id = %order_id, "No after-sale port; rating and thank-you not scheduled.");
            return Ok(());
        }
        let store = self.store.clone();
        let config = config.clone();
        // The draw happens before the blocking call: the rng must not cross threads held.
        let rng = Mutex::new(StdRng::from_rng(
            &mut *self.rng.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        let scheduled = self
            .store
            .call(move |_| {
                crate::aftersale::on_completed(&store, &config, &account, &order_id, &rng)
            })
            .await?;
        if scheduled {
            self.wake_scheduler.notify_one();
        }
        Ok(())
    }

    /// An after-sale task job under the current config snapshot.
    async fn run_task(&self, job: Job, task: TaskKey) -> Result<JobEnd, PipelineError> {
        let config = self.config.load_full();
        let ctx = crate::aftersale::TaskCtx {
            config: &config,
            store: &self.store,
            market: self.market.as_ref(),
            rng: &self.rng,
        };
        let end = crate::aftersale::run(&ctx, &task).await?;
        self.wake_outbox.notify_one();
        match end {
            crate::aftersale::TaskEnd::Finished => {
                self.finish(job.id).await?;
                Ok(JobEnd::Completed)
            }
            crate::aftersale::TaskEnd::Again(until) => {
                let (id, version) = (job.id, config.version.clone());
                self.store
                    .run_here(move |s| s.reschedule_task(id, &task, until, &version))
                    .await?;
                self.wake_scheduler.notify_one();
                Ok(JobEnd::Deferred { until })
            }
        }
    }

    /// Run one durable job under the current config snapshot.
    pub async fn run_job(&self, job: Job) -> Result<JobEnd, PipelineError> {
        if let Some(task) = job.task.clone() {
            return self.run_task(job, task).await;
        }
        let config = self.config.load_full();
        let order_id = job.order_id.clone();
        let Some(order) = self.store.run_here(move |s| s.order(&order_id)).await? else {
            self.finish(job.id).await?;
            return Ok(JobEnd::Stopped("order not found".into()));
        };
        if job.config_version != config.version {
            tracing::info!(order_id = %job.order_id, scheduled_under = %job.config_version, running_under = %config.version, "Job resumes under a newer config.");
        }
        let start = resume_index(&config, &job);
        let end = self.run_stages(&config, &order, start, &job).await;
        self.wake_outbox.notify_one();
        end
    }

    async fn run_stages(
        &self,
        config: &Config,
        order: &OrderRecord,
        start: usize,
        job: &Job,
    ) -> Result<JobEnd, PipelineError> {
        for index in start..config.stages.len() {
            let ctx = StageCtx {
                config,
                store: &self.store,
                market: self.market.as_ref(),
                supplier: self.supplier.as_ref(),
                order,
                stage_index: index,
                job_id: job.id,
                rng: &self.rng,
            };
            let outcome = run_stage(&ctx, &config.stages[index]).await?;
            match outcome {
                Outcome::Continue => continue,
                Outcome::Stop(reason) => {
                    tracing::info!(order_id = %order.order_id, stage = config.stages[index].name(), reason = %reason, "Order pipeline stopped.");
                    self.finish(job.id).await?;
                    return Ok(JobEnd::Stopped(reason));
                }
                Outcome::Defer { until, resume } => {
                    let at = if resume == Resume::Same {
                        index
                    } else {
                        index + 1
                    };
                    let next = next_run(config, at);
                    let (id, oid) = (job.id, order.order_id.clone());
                    self.store
                        .run_here(move |s| s.reschedule_job(id, &oid, &next, until))
                        .await?;
                    self.wake_scheduler.notify_one();
                    return Ok(JobEnd::Deferred { until });
                }
                Outcome::Manual { why, alerts } => {
                    self.hand_to_human(config, &order.order_id, &why, &alerts)
                        .await?;
                    return Ok(JobEnd::Manual(why));
                }
                Outcome::Finished => return Ok(JobEnd::Completed),
                Outcome::Rescheduled { until } => {
                    self.wake_scheduler.notify_one();
                    return Ok(JobEnd::Deferred { until });
                }
            }
        }
        self.settle_unfinished(config, order).await?;
        self.finish(job.id).await?;
        Ok(JobEnd::Completed)
    }

    /// A pipeline without a ship stage (or one that ended early) must not strand an order.
    async fn settle_unfinished(
        &self,
        config: &Config,
        order: &OrderRecord,
    ) -> Result<(), PipelineError> {
        let oid = order.order_id.clone();
        let Some(rec) = self.store.run_here(move |s| s.delivery(&oid)).await? else {
            return Ok(());
        };
        if rec.state.is_settled() || rec.state == crate::store::DeliveryState::FailedSafe {
            return Ok(());
        }
        let alerts = vec![alerts::manual_ship(config, order, &Why::NoShipStage)];
        self.hand_to_human(config, &order.order_id, &Why::NoShipStage, &alerts)
            .await
    }

    async fn hand_to_human(
        &self,
        config: &Config,
        order_id: &str,
        why: &Why,
        alerts: &[Alert],
    ) -> Result<(), PipelineError> {
        let router = Router::new(config.notify());
        let drafts: Vec<_> = alerts.iter().flat_map(|a| router.drafts(a)).collect();
        let (oid, stored) = (order_id.to_string(), why.clone());
        self.store
            .run_here(move |s| s.hand_to_human(&oid, &stored, &drafts))
            .await?;
        tracing::info!(order_id, reason = ?why, "Order handed to the seller.");
        Ok(())
    }

    /// A job that failed or panicked is never run again in a loop: its order goes to the seller
    /// as `needs_human` (处理时内部错误) with the usual alert, and the job leaves the schedule.
    /// A daily after-sale job instead runs again later in its window.
    pub async fn quarantine(&self, job: &Job) -> Result<(), PipelineError> {
        let config = self.config.load_full();
        // A daily after-sale job is not an order: it comes back on a later run of its window.
        if let Some(task) = job.task.clone() {
            if let Some(at) =
                crate::aftersale::retry_after_failure(&config, &task, self.store.now())
            {
                let (id, version, kind) = (job.id, config.version.clone(), task.kind);
                self.store
                    .run_here(move |s| s.reschedule_task(id, &task, at, &version))
                    .await?;
                tracing::warn!(
                    job_id = job.id,
                    task = kind.as_str(),
                    retry_at = at,
                    "Daily after-sale job failed; it runs again later."
                );
                self.wake_scheduler.notify_one();
                return Ok(());
            }
        }
        let oid = job.order_id.clone();
        let order = self.store.run_here(move |s| s.order(&oid)).await?;
        let drafts = match &order {
            Some(order) => {
                let alert = alerts::needs_human(&config, order, INTERNAL_ERROR_REASON);
                Router::new(config.notify()).drafts(&alert)
            }
            None => Vec::new(),
        };
        let (id, oid) = (job.id, job.order_id.clone());
        self.store
            .run_here(move |s| s.quarantine_job(id, &oid, &drafts))
            .await?;
        self.wake_outbox.notify_one();
        Ok(())
    }

    async fn finish(&self, job_id: u64) -> Result<(), PipelineError> {
        self.store.run_here(move |s| s.finish_job(job_id)).await?;
        Ok(())
    }
}

/// Where each stage kind's code is: one file per kind.
async fn run_stage(ctx: &StageCtx<'_>, stage: &Stage) -> Result<Outcome, StoreError> {
    match stage {
        Stage::Ingest(_) => Ok(Outcome::Continue),
        Stage::Classify(_) => Ok(classify::run(ctx)),
        Stage::StockCheck(_) => stock::run(ctx).await,
        Stage::Delay(p) => delay::run(ctx, p).await,
        Stage::Ship(p) => ship::run(ctx, p).await,
        Stage::Notify(_) => notify::run(ctx).await,
    }
}

/// Where a job continues: the stage it named, else the next stage in canonical order (the
/// seller removed it); a name that is no stage kind (`end`) runs nothing more.
fn resume_index(config: &Config, job: &Job) -> usize {
    if let Some(i) = config
        .stages
        .iter()
        .position(|s| s.name() == job.stage_name)
    {
        return i;
    }
    match StageKind::parse(&job.stage_name) {
        Some(kind) => index_from(config, kind),
        None => config.stages.len(),
    }
}

/// The first configured stage of `kind` or a later kind (`stages.len()` when there is none).
fn index_from(config: &Config, kind: StageKind) -> usize {
    config
        .stages
        .iter()
        .position(|s| s.kind() >= kind)
        .unwrap_or(config.stages.len())
}

/// A job that runs from the stage at `index` (`end` past the last one).
pub fn next_run(config: &Config, index: usize) -> NextRun {
    NextRun {
        stage: index,
        stage_name: config
            .stages
            .get(index)
            .map_or("end", |s| s.name())
            .to_string(),
        config_version: config.version.clone(),
    }
}

/// Where a newly paid order's job starts: the first stage after `ingest`.
pub fn first_run(config: &Config) -> NextRun {
    let index = config
        .stages
        .iter()
        .position(|s| s.kind() != StageKind::Ingest)
        .unwrap_or(config.stages.len());
    next_run(config, index)
}

/// A job that runs from the stage of `kind`, or the next kind the pipeline has.
pub fn run_from(config: &Config, kind: StageKind) -> NextRun {
    next_run(config, index_from(config, kind))
}
