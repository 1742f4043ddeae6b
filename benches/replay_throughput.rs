//! Replay throughput: 10 000 paid orders with zero delay through the real pipeline and a real
//! redb file, into the in-memory marketplace. Prints orders/s for each of 5 runs, the median,
//! and the store's file size after a run.
//!
//! `cargo bench --bench replay_throughput` (release build). `BENCH_ORDERS=N` changes the count.

use std::sync::Arc;
use std::time::Instant;

use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config;
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::store::Store;

const PIPELINE: &str = "accounts:\n  - id: main\n    cookies_env: BENCH_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm }\n  - notify: { channels: [log] }\n";
const PRODUCTS: &str = "pools:\n  keys: {}\nproducts:\n  - item_id: \"900000000001\"\n    title: 基准测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n";

fn main() {
    let orders: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rates = Vec::new();
    let mut size = 0;
    for run in 1..=5 {
        let (rate, bytes) = runtime.block_on(one_run(orders));
        println!(
            "run {run}: {orders} orders in {:.2}s = {rate:.0} orders/s, store {bytes} bytes",
            orders as f64 / rate
        );
        rates.push(rate);
        size = bytes;
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median: {:.0} orders/s over 5 runs; redb file after {orders} orders: {:.1} MiB",
        rates[2],
        size as f64 / 1048576.0
    );
}

async fn one_run(orders: usize) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("pipeline.yaml"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("products.yaml"), PRODUCTS).unwrap();
    std::fs::write(
        dir.path().join("templates/card.txt.j2"),
        "感谢购买\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
    )
    .unwrap();
    let config = config::load(dir.path()).expect("bench config");
    let store = Store::open(&dir.path().join("state"), clock::system()).expect("store");
    let keys: String = (0..orders).map(|i| format!("BENCH-KEY-{i:08}\n")).collect();
    store.import_cards("keys", &keys, false, "bench").unwrap();
    let market = Arc::new(MemoryMarketplace::new());
    let shop = Shop::new(store.clone(), config, market.clone()).unwrap();

    let started = Instant::now();
    for i in 0..orders {
        let mut ev = OrderEvent::new("main", &format!("B{i:08}"), EventStatus::Paid);
        ev.item_id = Some("900000000001".into());
        ev.cid = Some(format!("cid-{i}"));
        shop.runner.ingest(ev).await.unwrap();
        if i % 256 == 255 {
            shop.scheduler.dispatch_due().await.unwrap();
        }
    }
    shop.scheduler.run_until_idle(None).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        market.sent().len(),
        orders,
        "every order delivered exactly once"
    );
    (orders as f64 / elapsed, store.file_size())
}
