//! Wiring: the pieces of a running shop and how they start and stop.
//!
//! [`Shop`] owns the store, the config handle, the runner, the scheduler and the outbox
//! dispatcher; `replay` and `run` both build one. Shutdown is a `CancellationToken`: the
//! scheduler stops taking jobs and waits for running ones, the dispatcher stops after its
//! current attempt. Anything unfinished is still in the store for the next start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigHandle, Stock};
use crate::marketplace::Marketplace;
use crate::notify::dispatcher::Dispatcher;
use crate::pipeline::Runner;
use crate::scheduler::Scheduler;
use crate::store::{DaemonLock, Store, StoreError};

/// How many orders are worked on at once.
pub const CONCURRENCY: usize = 32;

pub struct Shop {
    pub store: Store,
    pub config: ConfigHandle,
    pub runner: Arc<Runner>,
    pub scheduler: Scheduler,
    pub dispatcher: Dispatcher,
}

impl Shop {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        market: Arc<dyn Marketplace>,
    ) -> Result<Self, StoreError> {
        store.sync_stock(&declared_stock(&config))?;
        if let Some(window) = config.stage(|s| match s {
            crate::config::Stage::Ingest(p) => Some(&p.dedupe_window),
            _ => None,
        }) {
            store.prune_seen(store.now().saturating_sub(window.as_millis() as u64))?;
        }
        let handle = config::handle(config);
        let runner = Arc::new(Runner::new(store.clone(), handle.clone(), market));
        Ok(Self::from_runner(runner, handle))
    }

    pub fn from_runner(runner: Arc<Runner>, config: ConfigHandle) -> Self {
        let store = runner.store().clone();
        let scheduler = Scheduler::new(runner.clone(), CONCURRENCY);
        let dispatcher = Dispatcher::new(store.clone(), config.clone(), runner.wake_outbox.clone());
        Self {
            store,
            config,
            runner,
            scheduler,
            dispatcher,
        }
    }

    /// Run the scheduler and the dispatcher until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Shop {
            scheduler,
            dispatcher,
            ..
        } = self;
        tokio::join!(scheduler.run(shutdown.clone()), dispatcher.run(shutdown));
    }
}

/// Quantities declared with `stock: N`, for [`Store::sync_stock`].
pub fn declared_stock(config: &Config) -> BTreeMap<String, u32> {
    config
        .products
        .values()
        .filter_map(|p| match p.stock {
            Stock::Quantity(n) => Some((p.item_id.clone(), n)),
            _ => None,
        })
        .collect()
}

/// `xianyu-shopd run`: the daemon.
pub async fn run_daemon(config_dir: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let _lock = DaemonLock::acquire(state_dir)?;
    let config = config::load(config_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _store = Store::open(state_dir, crate::clock::system()).context("opening the store")?;
    tracing::info!(version = %config.version, accounts = config.accounts.len(), "Config loaded.");
    bail!(
        "the Goofish (Xianyu) connection is not part of this build yet, so `run` has no order source; \
         use `xianyu-shopd replay FILE` to feed orders through the pipeline"
    )
}
