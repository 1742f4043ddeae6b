//! `xianyu-shopd demo`: the whole daemon on the built-in fake Goofish server, which plays a
//! live shop (`fake::shop_sim`).
//!
//! The demo runs on the seller's own config directory: `pipeline.yaml`, `products.yaml` and
//! `templates/` are read where they are and hot-reloaded as under `run`, so an edit made while
//! the demo runs is live in it within a second. What must differ from the files is laid over
//! `pipeline.yaml` as it is loaded ([`Overlay`]) and never written back: one account `main`
//! logged in to the fake, `marketplace:` pointing at the fake, a free status port if the
//! configured one is taken, notifications to the built-in `log` channel unless
//! `--notify-real`, and the `llm` chat stage pointed at the built-in simulated model
//! (`fake::model`, on loopback, no key), whose answers start with `[模拟模型]` so it is never
//! mistaken for a real model. The demo's store and cookies live in `CONFIG_DIR/state/demo/`,
//! recreated each run.
//!
//! Every product is listed in the fake shop at its `price` (or a typical Xianyu price for its
//! kind), every card pool gets demo keys and is topped up as the buyers take them
//! ([`DemoKeys`]), and counted stock sells out as on the platform. The daemon runs until
//! Ctrl-C, or with `--orders N` until N orders reached a final state; then a summary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_yaml::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::app::Daemon;
use crate::cli::Dirs;
use crate::config::overlay::{Overlay, OverlayAccount, OverlayLlm};
use crate::config::{self, Category, Config, Product, Stock};
use crate::fake::FakeGoofish;
use crate::fake::model::FakeModel;
use crate::fake::shop_sim::{DemoKeys, ShopSim, SimItem};
use crate::order::OrderStatus;
use crate::store::{DeliveryState, Store};

const SELLER: &str = "2200000000001";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The demo's state, under the config directory's `state/` like every secret file.
const STATE_DIR: &str = "state/demo/state";
/// The demo account's cookies, relative to the config directory.
const COOKIES_FILE: &str = "state/demo/state/cookies-main.txt";
/// How long `--orders N` waits for the last orders after the buyers are done. Generous: every
/// delay and retry of the example config fits many times over.
const FINAL_WAIT: Duration = Duration::from_secs(180);

pub struct DemoArgs {
    pub orders: Option<u64>,
    pub rate: f64,
    pub notify_real: bool,
    /// How many times faster than real time the simulated buyers act (`--speed`, for tests:
    /// an hour of the shop's orders in a minute). The daemon keeps real time.
    pub speed: f64,
}

/// Where one demo order ended; `None` from [`final_state`] while it is still moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Delivered,
    Manual,
    Refunded,
    Closed,
    NeedsHuman,
}

pub async fn run(dirs: &Dirs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(anyhow!(
            "--rate must be a positive number of orders per minute"
        ));
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(anyhow!("--speed must be a positive number"));
    }
    let mut demo = Demo::start(&dirs.config_dir, args.notify_real).await?;
    demo.print_intro();
    let shutdown = stop_on_ctrl_c();
    let shop = Arc::new(demo.shop(args.speed));
    let follow = demo.follow_reloads(shop.clone());
    let ids = shop.run(args.rate, args.orders, shutdown.clone()).await;
    follow.abort();
    let finished = match args.orders {
        Some(_) => wait_final(&demo.daemon.store, &ids, FINAL_WAIT, &shutdown).await,
        None => true,
    };
    demo.print_summary(&ids).await;
    demo.stop().await;
    if !finished {
        eprintln!("demo: not every order reached a final state in time");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A running demo: the fakes, the daemon on the seller's files under the demo overlay, and
/// the listings the simulated buyers may order.
struct Demo {
    fake: FakeGoofish,
    model: FakeModel,
    daemon: Daemon,
    keys: Arc<DemoKeys>,
    /// Handed to the simulated shop by [`Demo::shop`].
    items: Vec<SimItem>,
    /// What the fake shop shows of each product, to re-list only what a reload changed.
    listed: BTreeMap<String, Listing>,
    chat: bool,
}

/// What the fake shop shows of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listing {
    title: String,
    price_cents: u64,
    skus: Vec<String>,
}

impl Demo {
    /// Start the fake Xianyu and model, list every product in the fake shop, start the daemon
    /// on `config_dir` with the demo overlay, fill the card pools, and wait until the daemon
    /// is connected.
    async fn start(config_dir: &Path, notify_real: bool) -> anyhow::Result<Self> {
        let state_dir = fresh_state_dir(config_dir)?;
        let fake = FakeGoofish::start()
            .await
            .context("starting the fake Goofish server")?;
        std::fs::write(
            config_dir.join(COOKIES_FILE),
            fake.add_seller(SELLER, "演示小店"),
        )
        .context("writing the demo account's cookies")?;
        let model = FakeModel::start()
            .await
            .context("starting the simulated model")?;
        let overlay = demo_overlay(config_dir, &fake, &model, notify_real);
        let config = config::load_with(config_dir, &overlay)
            .map_err(|e| anyhow!("the config in {} is invalid:\n{e}", config_dir.display()))?;
        let mut listed = BTreeMap::new();
        let items = list_products(&fake, &config, &mut listed);
        let health = crate::health::global().clone();
        let clock = crate::clock::system();
        let daemon = Daemon::start_overlaid(config_dir, &state_dir, clock, health, overlay).await?;
        let keys = Arc::new(DemoKeys::new(daemon.store.clone()));
        for pool in config.pools.keys() {
            keys.fill(pool)?;
        }
        let demo = Self {
            fake,
            model,
            daemon,
            keys,
            items,
            listed,
            chat: config.chat.is_enabled(),
        };
        if !demo.connected().await {
            demo.stop().await;
            return Err(anyhow!(
                "the daemon did not connect to the fake Goofish server"
            ));
        }
        Ok(demo)
    }

    /// Follow the seller's edits: after every applied reload, list new and changed products
    /// in the fake shop and let the buyers order from the new listings.
    fn follow_reloads(&mut self, shop: Arc<ShopSim>) -> tokio::task::JoinHandle<()> {
        let reloader = self.daemon.reloader.clone();
        let fake = self.fake.clone();
        let mut listed = std::mem::take(&mut self.listed);
        let mut changes = reloader.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                let config = reloader.handle().load_full();
                shop.relist(list_products(&fake, &config, &mut listed));
            }
        })
    }

    async fn connected(&self) -> bool {
        self.fake
            .wait_until(Duration::from_secs(30), |f| {
                let s = f.stats(SELLER);
                s.syncs >= 1 && s.live >= 1
            })
            .await
    }

    /// The simulated shop, buying what was listed at start.
    fn shop(&mut self, speed: f64) -> ShopSim {
        let items = std::mem::take(&mut self.items);
        ShopSim {
            fake: self.fake.clone(),
            seller_id: SELLER.into(),
            items: Mutex::new(items.into_iter().map(Arc::new).collect()),
            store: self.daemon.store.clone(),
            keys: self.keys.clone(),
            speed,
        }
    }

    fn print_intro(&self) {
        let url = format!("http://{}/", self.daemon.status_addr);
        println!(
            "demo: status page {url}  (config: {}; demo state: {})",
            self.daemon.reloader.dir().display(),
            STATE_DIR
        );
        println!(
            "看这里：首页的订单数在增长；「订单」里是每单的发货过程，「待人工发货」是实物单，「日志」/「异常」里是通知。"
        );
        println!(
            "试试热更新：演示运行时直接改你的 products.yaml 或 templates/ 里的模板并保存，一秒左右就在演示里生效（「商品」页、下一次发货）。"
        );
        println!(
            "Look: orders arrive on the home page; 订单 shows each delivery, 待人工发货 the physical orders, 日志/异常 the notifications. Edit your products.yaml or a template while it runs: the demo reloads it. Ctrl-C stops."
        );
        if self.chat {
            println!(
                "买家也会提问：「会话」里是自动回复。AI 回复来自内置的模拟模型（simulated model，{}），不是真实大模型，回复以 [模拟模型] 开头。",
                self.model.base_url()
            );
        }
    }

    async fn print_summary(&self, ids: &[String]) {
        println!("{}", summarize(&self.daemon.store, ids));
        if self.chat {
            let chat = self.daemon.chat.tasks();
            chat.close();
            let _ = tokio::time::timeout(Duration::from_secs(10), chat.wait()).await;
            println!("{}", chat_summary(&self.daemon.store));
        }
        println!("{}", status_api_line(self.daemon.status_addr).await);
    }

    async fn stop(self) {
        self.daemon.stop().await;
        self.fake.shutdown();
    }
}

/// `CONFIG_DIR/state/demo/state`, empty.
fn fresh_state_dir(config_dir: &Path) -> anyhow::Result<PathBuf> {
    let demo_dir = config_dir.join("state").join("demo");
    if demo_dir.exists() {
        std::fs::remove_dir_all(&demo_dir)
            .with_context(|| format!("removing the old demo in {}", demo_dir.display()))?;
    }
    let state_dir = config_dir.join(STATE_DIR);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    Ok(state_dir)
}

/// Ctrl-C cancels the returned token.
fn stop_on_ctrl_c() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    shutdown
}

/// What the demo lays over the seller's `pipeline.yaml`: the fake's account and endpoints, a
/// status address that is free now, the log channel, the simulated model.
fn demo_overlay(
    config_dir: &Path,
    fake: &FakeGoofish,
    model: &FakeModel,
    notify_real: bool,
) -> Overlay {
    let wanted = configured_listen(config_dir);
    let listen = pick_listen(&wanted);
    if listen.to_string() != wanted {
        println!("demo: {wanted} is taken or invalid; the status page uses {listen}");
    }
    Overlay {
        account: Some(OverlayAccount {
            id: "main".into(),
            name: "演示店".into(),
            cookies_file: COOKIES_FILE.into(),
        }),
        marketplace: Some(vec![
            ("mtop_url".into(), fake.mtop_base()),
            ("ws_url".into(), fake.ws_url()),
            ("upload_url".into(), fake.upload_url()),
        ]),
        status_listen: Some(listen.to_string()),
        notify_channels: (!notify_real).then(|| vec!["log".to_string()]),
        llm: Some(OverlayLlm {
            base_url: model.base_url(),
            model: "simulated-model".into(),
        }),
    }
}

/// `status.listen` as the seller wrote it (the default when absent or unreadable; a broken
/// file is reported by the load that follows).
fn configured_listen(config_dir: &Path) -> String {
    std::fs::read_to_string(config_dir.join(config::PIPELINE_FILE))
        .ok()
        .and_then(|text| serde_yaml::from_str::<Value>(&text).ok())
        .and_then(|v| v.get("status")?.get("listen")?.as_str().map(str::to_string))
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string())
}

/// The configured address if it can be bound now, else a free loopback port.
fn pick_listen(wanted: &str) -> SocketAddr {
    let free = |addr: &str| {
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.local_addr())
            .ok()
    };
    if let Ok(addr) = wanted.parse::<SocketAddr>()
        && addr.port() != 0
        && free(wanted).is_some()
    {
        return addr;
    }
    free("127.0.0.1:0").unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Every product as a listing of the fake shop, at its price, with what it offers; `listed`
/// holds what the fake shows, so only new or changed listings are written to it again.
fn list_products(
    fake: &FakeGoofish,
    config: &Config,
    listed: &mut BTreeMap<String, Listing>,
) -> Vec<SimItem> {
    let mut items: Vec<SimItem> = config
        .products
        .values()
        .map(|p| {
            let skus: Vec<String> = match &p.stock {
                Stock::Cards { by_sku, .. } => by_sku.keys().cloned().collect(),
                _ => Vec::new(),
            };
            let price_cents = p.chat.price.map_or_else(|| typical_price(p), |c| c.0);
            let listing = Listing {
                title: p.title.clone(),
                price_cents,
                skus: skus.clone(),
            };
            if listed.get(&p.item_id) != Some(&listing) {
                let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
                fake.add_item(SELLER, &p.item_id, &p.title, price_cents, &sku_refs);
                fake.set_item_description(&p.item_id, &format!("{}（演示商品）", p.title));
                listed.insert(p.item_id.clone(), listing);
            }
            let offers = match &p.stock {
                Stock::Unlimited => vec![(None, None)],
                Stock::Quantity(n) => vec![(Some(u64::from(*n)), None)],
                Stock::Cards { .. } if !skus.is_empty() => {
                    skus.iter().map(|s| pool_offer(p, Some(s))).collect()
                }
                Stock::Cards { .. } => vec![pool_offer(p, None)],
            };
            SimItem::new(&p.item_id, skus, offers, u64::from(p.units), price_cents)
                .bargaining(p.chat.bargain.is_some())
        })
        .collect();
    items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    items
}

/// A card listing (or SKU) is unlimited while its pool is topped up; without a pool the daemon
/// could never deliver it, so the shop does not offer it.
fn pool_offer(p: &Product, sku: Option<&str>) -> (Option<u64>, Option<String>) {
    match p.pool_for(sku) {
        Some(pool) => (None, Some(pool.to_string())),
        None => (Some(0), None),
    }
}

/// A product without `price:` is listed at a price typical of Xianyu for its kind, the same
/// one every run (picked by its item id), so the items of a demo do not all cost the same.
fn typical_price(p: &Product) -> u64 {
    const VIRTUAL: [u64; 7] = [680, 990, 1280, 1580, 1990, 2990, 3900];
    const PHYSICAL: [u64; 6] = [3900, 6900, 9900, 15900, 29900, 59900];
    let pick: u64 = p.item_id.bytes().map(u64::from).sum();
    let prices: &[u64] = match p.category {
        Category::Virtual => &VIRTUAL,
        _ => &PHYSICAL,
    };
    prices[(pick % prices.len() as u64) as usize]
}

/// One line about the chat: buyer messages, replies by answering stage.
fn chat_summary(store: &Store) -> String {
    let by_stage = store.chat_replies_by_stage().unwrap_or_default();
    let total: u64 = by_stage.values().sum();
    let parts: Vec<String> = by_stage.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let conversations = store.chat_recent(usize::MAX).map_or(0, |c| c.len());
    format!(
        "demo chat: {conversations} conversations, {total} replies sent ({}); AI replies came from the simulated model",
        parts.join(", ")
    )
}

fn final_state(store: &Store, id: &str) -> Option<Final> {
    let order = store.order(id).ok().flatten()?;
    match order.status {
        OrderStatus::Refunded => return Some(Final::Refunded),
        OrderStatus::Closed => return Some(Final::Closed),
        OrderStatus::Refunding | OrderStatus::PendingPayment => return None,
        _ => {}
    }
    match store.delivery(id).ok().flatten()?.state {
        DeliveryState::Delivered | DeliveryState::ShippedManually => Some(Final::Delivered),
        DeliveryState::Manual => Some(Final::Manual),
        DeliveryState::NeedsHuman => Some(Final::NeedsHuman),
        DeliveryState::Cancelled => Some(Final::Closed),
        _ => None,
    }
}

/// Until every order is final in two polls in a row (a refund may still be on its way).
async fn wait_final(
    store: &Store,
    ids: &[String],
    within: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut last: Option<Vec<Option<Final>>> = None;
    loop {
        let now: Vec<Option<Final>> = ids.iter().map(|id| final_state(store, id)).collect();
        if now.iter().all(Option::is_some) && last.as_ref() == Some(&now) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline || shutdown.is_cancelled() {
            return false;
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn summarize(store: &Store, ids: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in ids {
        let name = match final_state(store, id) {
            Some(Final::Delivered) => "delivered",
            Some(Final::Manual) => "manual",
            Some(Final::Refunded) => "refunded",
            Some(Final::Closed) => "closed",
            Some(Final::NeedsHuman) => "needs_human",
            None => "unfinished",
        };
        *counts.entry(name).or_default() += 1;
    }
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let mut line = format!(
        "demo summary: {} orders: delivered {}, manual {}, refunded {}, closed {}, needs_human {}",
        ids.len(),
        n("delivered"),
        n("manual"),
        n("refunded"),
        n("closed"),
        n("needs_human")
    );
    if n("unfinished") > 0 {
        line.push_str(&format!(", unfinished {}", n("unfinished")));
    }
    line
}

/// What the status page's `/api/status` says, so the summary can be checked against it.
async fn status_api_line(listen: SocketAddr) -> String {
    let url = format!("http://{listen}/api/status");
    let answer = async {
        let json: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, reqwest::Error>(json)
    };
    match answer.await {
        Ok(json) => format!(
            "status api: total_orders {}, needs_human {}",
            json["total_orders"].as_u64().unwrap_or(0),
            json["problems"]["needs_human"].as_u64().unwrap_or(0)
        ),
        Err(e) => format!("status api: unavailable ({e})"),
    }
}
