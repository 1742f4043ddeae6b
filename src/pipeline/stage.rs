//! The stage contract: what a stage gets ([`StageCtx`]) and what it answers ([`Outcome`]).
//!
//! A stage is one file exporting `run(ctx, params) -> Outcome` (or `Result<Outcome,
//! StoreError>` when it commits something). It decides from the snapshot and the order in its
//! context; every effect is a `Store` method run through [`StageCtx::store_op`], and the only
//! network it may reach is the `Marketplace` and the `CardSupplier` in its context.

use std::sync::Mutex;

use rand::rngs::StdRng;

use crate::alert::Alert;
use crate::config::Config;
use crate::marketplace::Marketplace;
use crate::notify::Router;
use crate::store::{OrderRecord, Store};
use crate::supplier::CardSupplier;
use crate::why::Why;

use super::plan::{Plan, plan_for};

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
        why: Why,
        alerts: Vec<Alert>,
    },
    /// The job is over and already gone from the schedule: its end (and the notify stage's
    /// announcement) rode on the stage's last write, so the runner writes nothing more.
    Finished,
    /// The job was already moved to `until` by the stage's last write (a read-back armed with
    /// the unknown outcome); the runner writes nothing more.
    Rescheduled {
        until: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Same,
    Next,
}

/// What every stage gets: the snapshot, the order, the store and the marketplace.
pub struct StageCtx<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub market: &'a dyn Marketplace,
    /// Card suppliers (`products[].supplier`): HTTP in `run`, printing in replay.
    pub supplier: &'a dyn CardSupplier,
    pub order: &'a OrderRecord,
    pub stage_index: usize,
    /// The durable job running this pipeline (its end may ride on a stage's last write).
    pub job_id: u64,
    pub(super) rng: &'a Mutex<StdRng>,
}

impl StageCtx<'_> {
    pub fn router(&self) -> Router<'_> {
        Router::new(self.config.notify())
    }

    /// The classification of this order under this snapshot (pure, cheap, recomputed on resume).
    pub fn plan(&self) -> Result<Plan, Why> {
        plan_for(self.config, self.order)
    }

    pub fn now(&self) -> u64 {
        self.store.now()
    }

    /// Run a store operation here, on the stage's own thread: reads cost no thread handoff,
    /// and a blocking write request leaves the async worker only while it waits for its commit
    /// (`Store::run_here` says why that is safe). The hot writes (send claim, part and step
    /// results) are awaited on `ctx.store` instead (`Store::write_async`).
    pub fn store_op<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(self.store)
    }

    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rng)
    }

    /// Hand this order to the seller with the usual `manual_ship` alert.
    pub fn manual(&self, why: Why) -> Outcome {
        Outcome::Manual {
            alerts: vec![super::alerts::manual_ship(self.config, self.order, &why)],
            why,
        }
    }
}
