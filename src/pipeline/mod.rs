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

mod classify;
mod delay;
mod ingest;
mod notify;
mod ship;
mod stock;

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::Notify;

pub use classify::{Plan, plan_for};

use crate::config::{Config, ConfigHandle, Stage};
use crate::event::OrderEvent;
use crate::marketplace::Marketplace;
use crate::notify::{Alert, Router};
use crate::store::{IngestOutcome, Job, NextRun, OrderRecord, Store, StoreError};

/// What a stage tells the runner.
#[derive(Debug)]
pub enum Outcome {
    Continue,
    /// Nothing more to do for this order (the reason is logged).
    Stop(String),
    /// Run again at `until`: the same stage (a retry) or the next one (after a delay).
    Defer {
        until: u64,
        resume: Resume,
    },
    /// Hand the order to the seller with these alerts.
    Manual {
        reason: String,
        alerts: Vec<Alert>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Same,
    Next,
}

/// How a job run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Completed,
    Deferred { until: u64 },
    Stopped(String),
    Manual(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event for unknown account `{0}` (not in pipeline.yaml accounts)")]
    UnknownAccount(String),
}

/// What every stage gets: the snapshot, the order, the store and the marketplace.
pub struct StageCtx<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub market: &'a dyn Marketplace,
    pub order: &'a OrderRecord,
    pub stage_index: usize,
    rng: &'a Mutex<StdRng>,
}

impl StageCtx<'_> {
    pub fn router(&self) -> Router<'_> {
        Router::new(self.config.notify())
    }

    /// The classification of this order under this snapshot (pure, cheap, recomputed on resume).
    pub fn plan(&self) -> Result<Plan, String> {
        plan_for(self.config, self.order)
    }

    pub fn now(&self) -> u64 {
        self.store.now()
    }

    /// Run a (blocking) store operation without stalling the async runtime's other tasks.
    pub fn store_op<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        crate::store::blocking(|| f(self.store))
    }

    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rng)
    }
}

/// Runs orders through the configured stages.
pub struct Runner {
    store: Store,
    config: ConfigHandle,
    market: Arc<dyn Marketplace>,
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
            wake_scheduler: Arc::new(Notify::new()),
            wake_outbox: Arc::new(Notify::new()),
            rng: Mutex::new(StdRng::from_rng(&mut rand::rng())),
        }
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
        let outcome = ingest::ingest(&self.store, &config, ev).await?;
        if outcome.scheduled.is_some() {
            self.wake_scheduler.notify_one();
        }
        self.wake_outbox.notify_one();
        Ok(outcome)
    }

    /// Run one durable job under the current config snapshot.
    pub async fn run_job(&self, job: Job) -> Result<JobEnd, PipelineError> {
        let config = self.config.load_full();
        let order_id = job.order_id.clone();
        let Some(order) = self.store.call(move |s| s.order(&order_id)).await? else {
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
                order,
                stage_index: index,
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
                        .call(move |s| s.reschedule_job(id, &oid, &next, until))
                        .await?;
                    self.wake_scheduler.notify_one();
                    return Ok(JobEnd::Deferred { until });
                }
                Outcome::Manual { reason, alerts } => {
                    self.hand_to_human(config, &order.order_id, &reason, &alerts)
                        .await?;
                    return Ok(JobEnd::Manual(reason));
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
        let Some(rec) = self.store.call(move |s| s.delivery(&oid)).await? else {
            return Ok(());
        };
        if rec.state.is_settled() || rec.state == crate::store::DeliveryState::FailedSafe {
            return Ok(());
        }
        let alerts = vec![ship::manual_alert(config, order, "流水线没有发货阶段")];
        self.hand_to_human(
            config,
            &order.order_id,
            "pipeline ended without shipping",
            &alerts,
        )
        .await
    }

    async fn hand_to_human(
        &self,
        config: &Config,
        order_id: &str,
        reason: &str,
        alerts: &[Alert],
    ) -> Result<(), PipelineError> {
        let router = Router::new(config.notify());
        let drafts: Vec<_> = alerts.iter().flat_map(|a| router.drafts(a)).collect();
        let (oid, why) = (order_id.to_string(), reason.to_string());
        self.store
            .call(move |s| s.hand_to_human(&oid, &why, &drafts))
            .await?;
        tracing::info!(order_id, reason, "Order handed to the seller.");
        Ok(())
    }

    async fn finish(&self, job_id: u64) -> Result<(), PipelineError> {
        self.store.call(move |s| s.finish_job(job_id)).await?;
        Ok(())
    }
}

async fn run_stage(ctx: &StageCtx<'_>, stage: &Stage) -> Result<Outcome, StoreError> {
    match stage {
        Stage::Ingest(_) => Ok(Outcome::Continue),
        Stage::Classify(_) => Ok(classify::run(ctx)),
        Stage::StockCheck(p) => stock::run(ctx, p).await,
        Stage::Delay(p) => delay::run(ctx, p).await,
        Stage::Ship(p) => ship::run(ctx, p).await,
        Stage::Notify(_) => notify::run(ctx).await,
    }
}

/// Where a job continues: the stage it named, else the next stage in canonical order.
fn resume_index(config: &Config, job: &Job) -> usize {
    const CANON: [&str; 6] = [
        "ingest",
        "classify",
        "stock-check",
        "delay",
        "ship",
        "notify",
    ];
    if let Some(i) = config
        .stages
        .iter()
        .position(|s| s.name() == job.stage_name)
    {
        return i;
    }
    let rank = |n: &str| CANON.iter().position(|c| *c == n).unwrap_or(CANON.len());
    let wanted = rank(&job.stage_name);
    config
        .stages
        .iter()
        .position(|s| rank(s.name()) >= wanted)
        .unwrap_or(config.stages.len())
}

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
