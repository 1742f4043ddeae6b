//! Wiring: the pieces of a running shop and how they start and stop.
//!
//! [`Shop`] owns the store, the config handle, the runner, the scheduler and the outbox
//! dispatcher; `replay` and `run` both build one. [`Daemon`] is `run`: the shop with the
//! [`GoofishMarketplace`] routing sends and confirmations to each account's clients, and one
//! account supervisor per configured account feeding orders in. Shutdown is a
//! `CancellationToken` (Ctrl-C / SIGTERM): the scheduler stops taking jobs and waits for
//! running ones, the dispatcher stops after its current attempt, the sockets close. Anything
//! unfinished is still in the store for the next start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::ChatRunner;
use crate::clock::SharedClock;
use crate::config::overlay::Overlay;
use crate::config::reload::{ReloadOutcome, Reloader};
use crate::config::{self, Config, ConfigHandle, Stock};
use crate::goofish::account::AccountClient;
use crate::goofish::market::GoofishMarketplace;
use crate::health::{Health, ReloadStatus};
use crate::marketplace::Marketplace;
use crate::notify::dispatcher::Dispatcher;
use crate::pipeline::Runner;
use crate::scheduler::Scheduler;
use crate::secret::SecretRef;
use crate::store::{DaemonLock, Store, StoreError};
use crate::supplier::CardSupplier;
use crate::supplier::http::HttpSupplier;

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
        Self::with_supplier(store, config, market, Arc::new(HttpSupplier::new()))
    }

    /// Like [`Shop::new`], buying supplier cards through `supplier` (replay: printing).
    pub fn with_supplier(
        store: Store,
        config: Arc<Config>,
        market: Arc<dyn Marketplace>,
        supplier: Arc<dyn CardSupplier>,
    ) -> Result<Self, StoreError> {
        store.sync_stock(&declared_stock(&config))?;
        if config.stage_index(crate::config::StageKind::Ship).is_some() {
            let ship = crate::pipeline::run_from(&config, crate::config::StageKind::Ship);
            let orphans = store.reschedule_orphans(&ship)?;
            if !orphans.is_empty() {
                tracing::warn!(count = orphans.len(), orders = ?orphans, "Deliveries in progress without a job were rescheduled.");
            }
        }
        prune_seen(&store, &config)?;
        let handle = config::handle(config);
        let runner =
            Arc::new(Runner::new(store.clone(), handle.clone(), market).with_supplier(supplier));
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

    /// Run the scheduler, the dispatcher and the daily report until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Shop {
            store,
            config,
            scheduler,
            dispatcher,
            ..
        } = self;
        tokio::join!(
            scheduler.run(shutdown.clone()),
            dispatcher.run(shutdown.clone()),
            crate::stats::report::run(store.clone(), config.clone(), shutdown.clone()),
            prune_seen_hourly(store, config, shutdown),
        );
    }
}

/// Forget source message ids older than `ingest.dedupe_window` (the order state machine keeps
/// deduplicating after that); this bounds the seen-id table, which otherwise grows by a row
/// per pushed message.
fn prune_seen(store: &Store, config: &Config) -> Result<usize, StoreError> {
    let Some(window) = config.stage(|s| match s {
        crate::config::Stage::Ingest(p) => Some(&p.dedupe_window),
        _ => None,
    }) else {
        return Ok(0);
    };
    store.prune_seen(store.now().saturating_sub(crate::clock::millis(*window)))
}

/// [`prune_seen`] once an hour while the daemon runs (it also runs at start).
async fn prune_seen_hourly(store: Store, config: ConfigHandle, shutdown: CancellationToken) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let config = config.load_full();
        match store.call(move |s| prune_seen(s, &config)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(forgotten = n, "Old message ids pruned."),
            Err(e) => {
                tracing::warn!(error = %e, "Pruning old message ids failed; trying again in an hour.")
            }
        }
    }
}

/// A store file that is mostly space no record uses (after a flash sale) is compacted before
/// anything opens it (`store/compact.rs`); a failure only means starting without that.
fn compact_at_start(lock: &DaemonLock, state_dir: &Path) {
    match crate::store::compact::compact_if_wasteful(lock, state_dir) {
        Ok(Some(done)) => tracing::info!(
            before_bytes = done.before.file,
            after_bytes = done.after.file,
            "The store file was mostly unused space; compacted it before starting."
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Compacting the store at start failed; starting without.")
        }
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

/// A running daemon: the shop, the config watcher and one Goofish supervisor per account,
/// until [`Daemon::stop`].
///
/// `run` builds one from the config directory and waits for Ctrl-C / SIGTERM; tests build one
/// in-process against the loopback fake (`marketplace:` pointing at it).
pub struct Daemon {
    pub store: Store,
    pub runner: Arc<Runner>,
    pub market: Arc<GoofishMarketplace>,
    /// The chat pipeline (answers buyers when `chat:` is configured).
    pub chat: ChatRunner,
    /// Connection and login state per account, for the status page.
    pub health: Health,
    /// Where the status page listens (the configured address, with the port `:0` was given).
    pub status_addr: SocketAddr,
    pub reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    _lock: DaemonLock,
}

impl Daemon {
    /// Lock the state directory, load the config, open the store and start everything,
    /// reporting to the process-wide [`crate::health::global`] registry.
    pub async fn start(
        config_dir: &Path,
        state_dir: &Path,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        Self::start_with(
            config_dir,
            state_dir,
            clock,
            crate::health::global().clone(),
        )
        .await
    }

    /// [`Daemon::start`] reporting to a registry of the caller's (tests).
    pub async fn start_with(
        config_dir: &Path,
        state_dir: &Path,
        clock: SharedClock,
        health: Health,
    ) -> anyhow::Result<Self> {
        Self::start_overlaid(config_dir, state_dir, clock, health, Overlay::default()).await
    }

    /// [`Daemon::start_with`] with `overlay` laid over `pipeline.yaml` on the first load and
    /// every reload (`demo`: the seller's files, the fake's account and endpoints).
    pub async fn start_overlaid(
        config_dir: &Path,
        state_dir: &Path,
        clock: SharedClock,
        health: Health,
        overlay: Overlay,
    ) -> anyhow::Result<Self> {
        let lock = DaemonLock::acquire(state_dir)?;
        compact_at_start(&lock, state_dir);
        let config = config::load_with(config_dir, &overlay).map_err(|e| {
            anyhow::anyhow!("the config in {} is invalid:\n{e}", config_dir.display())
        })?;
        require_cookie_variables(&config)?;
        let store = Store::open(state_dir, clock.clone()).context("opening the store")?;
        let (clients, market) = account_clients(&config, &store, &health)?;
        tracing::info!(version = %config.version, accounts = clients.len(), "Config loaded.");
        health.set_reload(ReloadStatus::started(config.version.clone(), store.now()));
        // Bind before anything starts, so a taken port fails the start instead of a task.
        let status_listener = tokio::net::TcpListener::bind(config.status.listen)
            .await
            .with_context(|| format!("binding the status page on {}", config.status.listen))?;
        let shop = Shop::new(store.clone(), config, market.clone())?;
        seed_aftersale(&store, &shop.config.load());
        let runner = shop.runner.clone();
        let reloader = Arc::new(
            Reloader::new(config_dir.to_path_buf(), shop.config.clone(), clock)
                .with_overlay(overlay),
        );
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(watch_config(
            reloader.clone(),
            store.clone(),
            health.clone(),
            // Cookie files are `state/...` relative to the config dir, whatever --state-dir says.
            (config_dir.to_path_buf(), config_dir.join("state")),
            shutdown.clone(),
        ));
        // The page shows this daemon's registry, the one its account clients report to.
        let status = crate::status::StatusContext::new(store.clone(), shop.config.clone())
            .with_health(health.clone());
        let status_addr = spawn_status(&tasks, status_listener, status, shutdown.clone())?;
        let watch = Arc::new(crate::chat::watch::HealthWatch {
            health: health.clone(),
            store: store.clone(),
            config: shop.config.clone(),
            wake_outbox: runner.wake_outbox.clone(),
        });
        let chat = ChatRunner::new(
            store.clone(),
            shop.config.clone(),
            market.clone(),
            Some(watch),
        );
        // Before the sockets deliver anything new: close what a crash left, answer what waited.
        chat.recover().await;
        tasks.spawn(shop.run(shutdown.clone()));
        for client in clients {
            let reloads = Some(reloader.subscribe());
            let chat = Some(chat.clone());
            tasks.spawn(client.supervise(runner.clone(), chat, reloads, shutdown.clone()));
        }
        tasks.close();
        Ok(Self {
            store,
            runner,
            market,
            chat,
            health,
            status_addr,
            reloader,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    /// Stop taking work, let running steps finish (bounded), release the state directory.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.chat.tasks().close();
        let all = async {
            self.tasks.wait().await;
            self.chat.tasks().wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "Shutdown grace period over; unfinished work resumes on the next start.");
        }
    }
}

impl Drop for Daemon {
    /// A daemon dropped without [`Daemon::stop`] (a failing test) still stops its tasks.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One client per configured account, and the marketplace that routes each order's sends and
/// confirmations to the client of the account that sold it.
fn account_clients(
    config: &Config,
    store: &Store,
    health: &Health,
) -> anyhow::Result<(Vec<AccountClient>, Arc<GoofishMarketplace>)> {
    let http = mtop_http_client()?;
    let clients: Vec<AccountClient> = config
        .accounts
        .iter()
        .map(|a| {
            AccountClient::new(
                a,
                &config.marketplace,
                store.clone(),
                http.clone(),
                health.clone(),
            )
        })
        .collect();
    let mut market = GoofishMarketplace::new();
    for c in &clients {
        market.add(c.id(), c.link());
    }
    Ok((clients, Arc::new(market)))
}

/// Checks the status token for the bound address (a bad one fails the start) and serves the
/// page on `tasks` until shutdown. Returns the address it listens on.
fn spawn_status(
    tasks: &TaskTracker,
    listener: tokio::net::TcpListener,
    status: crate::status::StatusContext,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    crate::status::resolve_token(&status, addr).context("the status page cannot start")?;
    tasks.spawn(async move {
        if let Err(e) = crate::status::serve(listener, status, shutdown).await {
            tracing::error!(error = %e, "The status page stopped.");
        }
    });
    Ok(addr)
}

/// Hot reload: re-validate on file changes and SIGHUP; after a swap, declared stock follows
/// the new `products.yaml` and accounts whose cookies changed re-read them (they subscribe
/// to the reloader). Settings the running clients were built with (`accounts`,
/// `marketplace:`) take effect at the next start.
async fn watch_config(
    reloader: Arc<Reloader>,
    store: Store,
    health: Health,
    (config_dir, state_dir): (std::path::PathBuf, std::path::PathBuf),
    shutdown: CancellationToken,
) {
    // After an attempt (on the reload thread) and when only the report changed (stuck, files
    // not applied; on the watcher).
    let on_reload = move |reloader: &Reloader, outcome: Option<&ReloadOutcome>| {
        if matches!(outcome, Some(ReloadOutcome::Applied(_))) {
            if let Err(e) = store.sync_stock(&declared_stock(&reloader.handle().load())) {
                tracing::error!(error = %e, "Declared stock could not follow the reloaded config.");
            }
            seed_aftersale(&store, &reloader.handle().load());
        }
        if outcome.is_some() {
            // The 日志 page tells reloads from the audit log, which survives a restart.
            let r = reloader.report();
            let detail = format!(
                "version={} ok={} errors={}",
                r.version,
                r.ok,
                r.errors.len()
            );
            if let Err(e) = store.audit("system", "config.reload", &detail) {
                tracing::warn!(error = %e, "The reload could not be written to the audit log.");
            }
        }
        match outcome {
            Some(_) => health.record_reload(reloader.report()),
            None => health.set_reload(reloader.report()),
        }
    };
    crate::config::watch::run(reloader, config_dir, state_dir, shutdown, on_reload).await;
}

/// Keep the daily after-sale jobs (sweep, polish) scheduled under this config. Only `run`
/// does this: a replay has no days to wait for.
fn seed_aftersale(store: &Store, config: &Config) {
    match crate::aftersale::seed(store, config, &mut rand::rng()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "Daily after-sale jobs scheduled."),
        Err(e) => tracing::error!(error = %e, "Daily after-sale jobs could not be scheduled."),
    }
}

/// A `cookies_env` variable that is not set now can never appear in this process (the
/// environment of a running process does not change), so that account could never work:
/// refuse to start. A missing `cookies_file` is fine — the seller may create it later.
fn require_cookie_variables(config: &Config) -> anyhow::Result<()> {
    for account in &config.accounts {
        let SecretRef::Env(name) = &account.cookies else {
            continue;
        };
        if std::env::var(name).is_ok_and(|v| !v.trim().is_empty()) {
            continue;
        }
        anyhow::bail!(
            "account `{}`: environment variable {name} (cookies_env) is not set; export the browser's Cookie header in it, or use `cookies_file: state/cookies-{}.txt`, which is re-read while the daemon runs",
            account.id,
            account.id
        );
    }
    Ok(())
}

/// How long a graceful shutdown waits for running work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// One HTTP client for every account's mtop calls. Timeouts keep a stuck call from holding a
/// pipeline step forever; redirects are not followed (an mtop answer is never a redirect,
/// and a redirect would carry the cookies elsewhere).
fn mtop_http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(25))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// `xianyu-shopd run`: the daemon, until Ctrl-C or SIGTERM.
pub async fn run_daemon(config_dir: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let daemon = Daemon::start(config_dir, state_dir, crate::clock::system()).await?;
    tracing::info!("Daemon running; Ctrl-C or SIGTERM stops it.");
    wait_for_stop_signal().await;
    tracing::info!("Stopping.");
    daemon.stop().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops the daemon.")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
