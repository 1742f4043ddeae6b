//! `xianyu-shopd demo`: the whole daemon on the built-in fake Goofish server, which plays a
//! live shop (`fake::shop_sim`).
//!
//! The seller's `pipeline.yaml`, `products.yaml` and `templates/` are copied into
//! `CONFIG_DIR/state/demo/` (recreated each run) with only what must change rewritten: one
//! account `main` logged in to the fake, `marketplace:` pointing at the fake, a free status
//! port if the configured one is taken and, unless `--notify-real`, notifications to the
//! built-in `log` channel. Every declared card pool gets demo keys. Then the real daemon runs
//! (real pipeline, real store in `state/demo/state`, real status page) until Ctrl-C, or with
//! `--orders N` until N orders reached a final state; it then prints a one-line summary.
//!
//! The simulated buyers also ask questions; if the config has a `chat:` section its `llm` stage
//! is pointed at the built-in simulated model (`fake::model`, on loopback, no key), whose
//! answers start with `[模拟模型]` — it is never mistaken for a real model.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_yaml::Value;
use tokio_util::sync::CancellationToken;

use crate::app::Daemon;
use crate::cli::Dirs;
use crate::config::Stock;
use crate::fake::FakeGoofish;
use crate::fake::model::FakeModel;
use crate::fake::shop_sim::{ShopSim, SimItem};
use crate::order::OrderStatus;
use crate::store::{DeliveryState, Store};

const SELLER: &str = "2200000000001";
const KEYS_PER_POOL: usize = 50;
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub struct DemoArgs {
    pub orders: Option<u64>,
    pub rate: f64,
    pub notify_real: bool,
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
    let demo_dir = dirs.config_dir.join("state").join("demo");
    if demo_dir.exists() {
        std::fs::remove_dir_all(&demo_dir)
            .with_context(|| format!("removing the old demo in {}", demo_dir.display()))?;
    }
    let state_dir = demo_dir.join("state");
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;

    let fake = FakeGoofish::start()
        .await
        .context("starting the fake Goofish server")?;
    let cookies = fake.add_seller(SELLER, "演示小店");
    std::fs::write(state_dir.join("cookies-main.txt"), cookies)?;
    let model = FakeModel::start()
        .await
        .context("starting the simulated model")?;
    let listen = write_demo_config(&dirs.config_dir, &demo_dir, &fake, &model, args.notify_real)?;

    let config = super::load_config(&Dirs {
        config_dir: demo_dir.clone(),
        state_dir: Some(state_dir.clone()),
        init: true,
    })?;
    let mut items = Vec::new();
    for p in config.products.values() {
        let skus: Vec<String> = match &p.stock {
            Stock::Cards { by_sku, .. } => by_sku.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
        let price_cents = p.chat.price.map_or(990, |c| c.0);
        fake.add_item(SELLER, &p.item_id, &p.title, price_cents, &sku_refs);
        fake.set_item_description(&p.item_id, &format!("{}（演示商品）", p.title));
        let pool_units = |pool: Option<&String>| pool.map(|_| KEYS_PER_POOL as u64);
        let stock = match &p.stock {
            Stock::Unlimited => vec![None],
            Stock::Quantity(n) => vec![Some(u64::from(*n))],
            Stock::Cards { by_sku, .. } if !skus.is_empty() => {
                skus.iter().map(|s| pool_units(by_sku.get(s))).collect()
            }
            Stock::Cards { pool, .. } => vec![pool_units(pool.as_ref()).or(Some(0))],
        };
        items.push(SimItem {
            item_id: p.item_id.clone(),
            stock: std::sync::Mutex::new(stock),
            skus,
            price_cents,
            bargains: p.chat.bargain.is_some(),
        });
    }
    items.sort_by(|a, b| a.item_id.cmp(&b.item_id));

    let daemon = Daemon::start(&demo_dir, &state_dir, crate::clock::system()).await?;
    for pool in config.pools.keys() {
        let tag = pool.to_uppercase();
        let keys: String = (1..=KEYS_PER_POOL)
            .map(|n| format!("DEMO-{tag}-{n}\n"))
            .collect();
        daemon.store.import_cards(pool, &keys, false, "demo")?;
    }
    let connected = fake
        .wait_until(Duration::from_secs(30), |f| {
            let s = f.stats(SELLER);
            s.syncs >= 1 && s.live >= 1
        })
        .await;
    if !connected {
        daemon.stop().await;
        return Err(anyhow!(
            "the daemon did not connect to the fake Goofish server"
        ));
    }

    let url = format!("http://{listen}/");
    println!(
        "demo: status page {url}  (demo files: {})",
        demo_dir.display()
    );
    println!(
        "看这里：首页的订单数在增长；「订单」里是每单的发货过程，「待人工发货」是实物单，「日志」/「异常」里是通知。"
    );
    println!(
        "Look: orders arrive on the home page; 订单 shows each delivery, 待人工发货 the physical orders, 日志/异常 the notifications. Ctrl-C stops."
    );
    if config.chat.is_enabled() {
        println!(
            "买家也会提问：「会话」里是自动回复。AI 回复来自内置的模拟模型（simulated model，{}），不是真实大模型，回复以 [模拟模型] 开头。",
            model.base_url()
        );
    }

    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let sim = ShopSim {
        fake: fake.clone(),
        seller_id: SELLER.into(),
        items,
        store: daemon.store.clone(),
    };
    let ids = sim.run(args.rate, args.orders, shutdown.clone()).await;

    let mut ok = true;
    if args.orders.is_some() {
        // Generous: every delay and retry of the example config fits many times over.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        ok = wait_final(&daemon.store, &ids, deadline, &shutdown).await;
    }
    let summary = summarize(&daemon.store, &ids);
    println!("{summary}");
    if config.chat.is_enabled() {
        daemon.chat.tasks().close();
        let _ = tokio::time::timeout(Duration::from_secs(10), daemon.chat.tasks().wait()).await;
        println!("{}", chat_summary(&daemon.store));
    }
    println!("{}", status_api_line(listen).await);
    daemon.stop().await;
    fake.shutdown();
    if !ok {
        eprintln!("demo: not every order reached a final state in time");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the demo's `pipeline.yaml`, `products.yaml` and `templates/`; returns the status
/// page's address.
fn write_demo_config(
    from: &Path,
    to: &Path,
    fake: &FakeGoofish,
    model: &FakeModel,
    notify_real: bool,
) -> anyhow::Result<SocketAddr> {
    let read = |name: &str| -> anyhow::Result<String> {
        let path = from.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let mut pipeline: Value =
        serde_yaml::from_str(&read("pipeline.yaml")?).context("pipeline.yaml is not valid YAML")?;
    let map = pipeline
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("pipeline.yaml is not a mapping"))?;

    let account: Value =
        serde_yaml::from_str("{ id: main, name: 演示店, cookies_file: state/cookies-main.txt }")?;
    map.insert("accounts".into(), Value::Sequence(vec![account]));
    let mut market = serde_yaml::Mapping::new();
    market.insert("mtop_url".into(), fake.mtop_base().into());
    market.insert("ws_url".into(), fake.ws_url().into());
    market.insert("upload_url".into(), fake.upload_url().into());
    map.insert("marketplace".into(), Value::Mapping(market));

    let status = map
        .entry("status".into())
        .or_insert_with(|| Value::Mapping(Default::default()));
    if !status.is_mapping() {
        *status = Value::Mapping(Default::default());
    }
    let wanted = status
        .get("listen")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_LISTEN)
        .to_string();
    let listen = pick_listen(&wanted);
    if let Some(s) = status.as_mapping_mut() {
        s.insert("listen".into(), listen.to_string().into());
    }
    if listen.to_string() != wanted {
        println!("demo: {wanted} is taken or invalid; the status page uses {listen}");
    }

    if !notify_real {
        let stages = map.get_mut("pipeline").and_then(Value::as_sequence_mut);
        for stage in stages.into_iter().flatten() {
            if let Some(notify) = stage.get_mut("notify").and_then(Value::as_mapping_mut) {
                notify.insert("channels".into(), Value::Sequence(vec!["log".into()]));
                notify.insert("fallback".into(), Value::Sequence(vec![]));
            }
        }
    }
    point_chat_at_simulated_model(map, model);
    std::fs::write(to.join("pipeline.yaml"), serde_yaml::to_string(&pipeline)?)?;
    std::fs::write(to.join("products.yaml"), read("products.yaml")?)?;
    copy_dir(&from.join("templates"), &to.join("templates"))?;
    Ok(listen)
}

/// The `llm` stage, if any, talks to the simulated model: no key, its URL, its name.
fn point_chat_at_simulated_model(map: &mut serde_yaml::Mapping, model: &FakeModel) {
    let stages = map.get_mut("chat").and_then(Value::as_sequence_mut);
    for stage in stages.into_iter().flatten() {
        if let Some(llm) = stage.get_mut("llm").and_then(Value::as_mapping_mut) {
            llm.insert("base_url".into(), model.base_url().into());
            llm.insert("model".into(), "simulated-model".into());
            llm.remove("api_key_env");
            llm.remove("api_key_file");
        }
    }
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

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
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
    deadline: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> bool {
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
