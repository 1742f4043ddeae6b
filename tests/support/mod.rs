//! Shared test scaffolding: a config directory, a store and a shop wired to the in-memory
//! marketplace, the way `replay` wires them.
#![allow(dead_code)]

pub mod html;
pub mod png;
pub mod raw_table;
pub mod tmpfs;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tempfile::TempDir;
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config;
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::store::Store;

pub const CARD_ITEM: &str = "900000000001";
pub const STOCK_ITEM: &str = "900000000002";
pub const PHYSICAL_ITEM: &str = "700000000001";

/// A pipeline.yaml with the given delay window and ship parameters.
pub fn pipeline_yaml(delay: &str, ship: &str) -> String {
    format!(
        "accounts:\n  - id: main\n    cookies_env: TEST_COOKIES\npipeline:\n  - ingest: {{}}\n  - classify: {{}}\n  - stock-check: {{ low_stock_alert: 2 }}\n  - delay: {{ virtual: {delay} }}\n  - ship: {ship}\n  - notify: {{ channels: [log] }}\n"
    )
}

pub fn products_yaml(card_mode: &str) -> String {
    format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{CARD_ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n    ship: {{ mode: {card_mode} }}\n  - item_id: \"{STOCK_ITEM}\"\n    title: 测试网盘链接\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    stock: {{ quantity: 3 }}\n  - item_id: \"{PHYSICAL_ITEM}\"\n    title: 二手手机\n    category: physical\n    stock: {{ quantity: 1 }}\n"
    )
}

pub const TEMPLATE: &str =
    "感谢购买{{ order.item_title }}\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}";

/// The real binary on the config directory `dir`, run from inside it as a seller would.
pub fn shopd(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"));
    cmd.arg("--config-dir").arg(dir).current_dir(dir);
    cmd
}

pub fn write_config(dir: &Path, pipeline: &str, products: &str) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(dir.join("products.yaml"), products).unwrap();
    std::fs::write(dir.join("templates/card.txt.j2"), TEMPLATE).unwrap();
}

pub struct Harness {
    pub dir: TempDir,
    pub store: Store,
    pub market: Arc<MemoryMarketplace>,
    pub shop: Shop,
}

impl Harness {
    pub fn new(pipeline: &str, products: &str) -> Self {
        Self::with_templates(pipeline, products, &[])
    }

    /// Like [`Harness::new`], with more files under `templates/` (name, text).
    pub fn with_templates(pipeline: &str, products: &str, templates: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), pipeline, products);
        for (name, text) in templates {
            std::fs::write(dir.path().join("templates").join(name), text).unwrap();
        }
        let config =
            config::load(dir.path()).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
        let market = Arc::new(MemoryMarketplace::new());
        let shop = Shop::new(store.clone(), config, market.clone()).unwrap();
        Self {
            dir,
            store,
            market,
            shop,
        }
    }

    /// The default shop: no delay, send_then_confirm, fast retries.
    pub fn default_shop() -> Self {
        Self::new(
            &pipeline_yaml(
                "{ min: 0s, max: 0s }",
                "{ mode: send_then_confirm, max_retries: 3, retry_delay: 20ms }",
            ),
            &products_yaml("send_then_confirm"),
        )
    }

    pub fn import_keys(&self, n: usize) {
        let text: String = (0..n).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
        let report = self
            .store
            .import_cards("keys", &text, false, "test")
            .unwrap();
        assert_eq!(report.added, n as u64);
    }

    pub async fn ingest(&self, ev: OrderEvent) {
        self.shop.runner.ingest(ev).await.unwrap();
    }

    /// Start the jobs that are due now and wait until every one of them has run (its stages
    /// done up to a delay, a hand-over or the end). The deadline is generous: a busy CI box can
    /// take seconds where an idle one takes milliseconds.
    pub async fn dispatch_and_wait(&self) {
        self.shop.scheduler.dispatch_due().await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.shop.scheduler.running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "dispatched jobs still running after 60 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub async fn settle(&self) {
        self.shop.scheduler.run_until_idle(None).await.unwrap();
        self.shop.dispatcher.drain_due().await.unwrap();
    }
}

pub fn event(order: &str, status: EventStatus, item: &str) -> OrderEvent {
    let mut ev = OrderEvent::new("main", order, status);
    ev.item_id = Some(item.to_string());
    ev.buyer_id = Some(format!("buyer-{order}"));
    ev.cid = Some(format!("cid-{order}"));
    ev
}
