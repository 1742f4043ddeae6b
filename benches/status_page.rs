//! Status page under load: requests/s and latency percentiles with 100 000 orders in the store.
//!
//! Builds a store of `BENCH_ORDERS` (default 100 000) orders spread over 30 days (90 %
//! completed, 5 % shipped, 2 % handed to the seller, the rest unpaid or closed) and 20 000 card
//! keys, copies it to a real redb file, serves the status page from that file on 127.0.0.1,
//! and drives it from `BENCH_CONNECTIONS` (default 8) keep-alive connections for `BENCH_SECS`
//! (default 8) seconds per route, from tasks in the same process. The last run repeats the
//! dashboard while a writer ingests 50 orders/s, so the cached view keeps going stale.
//!
//! `cargo bench --bench status_page`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xianyu_shopd::clock::{self, ManualClock, SharedClock};
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::store::{NextRun, Store};

mod common;
use common::env_or;
use common::http_load::{StatusServer, block_on, client, file_store, load};

const PIPELINE: &str = "accounts:\n  - id: main\n    name: 主店\n    cookies_env: BENCH_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm }\n  - notify: { channels: [log] }\n";
const PRODUCTS: &str = "pools:\n  keys: {}\nproducts:\n  - item_id: \"900000000001\"\n    title: 基准测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n  - item_id: \"700000000001\"\n    title: 基准测试实物\n    category: physical\n    stock: { quantity: 100000 }\n";
const DAY_MS: u64 = 86_400_000;

fn main() {
    let orders = env_or("BENCH_ORDERS", 100_000) as usize;
    let secs = env_or("BENCH_SECS", 8);
    let conns = env_or("BENCH_CONNECTIONS", 8) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path());

    let started = Instant::now();
    let (store, bytes) = file_store(build_store(orders), dir.path());
    println!(
        "store: {orders} orders + 20000 keys built in {:.1}s; redb file {:.1} MiB",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1048576.0
    );
    print_view_cost(&store);
    block_on(run(store, dir.path(), secs, conns));
}

fn write_config(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), PIPELINE).unwrap();
    std::fs::write(dir.join("products.yaml"), PRODUCTS).unwrap();
    std::fs::write(
        dir.join("templates/card.txt.j2"),
        "{% for k in cards %}{{ k }}{% endfor %}",
    )
    .unwrap();
}

/// Orders one every 26 s over the last 30 days, so the newest ones are "today".
fn build_store(orders: usize) -> Store {
    let now = clock::system().now_ms();
    let step = 30 * DAY_MS / orders.max(1) as u64;
    let clock = Arc::new(ManualClock::new(now - 30 * DAY_MS));
    let shared: SharedClock = clock.clone();
    let store = Store::in_memory(shared).expect("memory store");
    let keys: String = (0..20_000).map(|i| format!("BENCH-KEY-{i:08}\n")).collect();
    store.import_cards("keys", &keys, false, "bench").unwrap();
    let start = NextRun {
        stage: 1,
        stage_name: "classify".into(),
        config_version: "bench".into(),
    };
    for i in 0..orders {
        clock.advance_ms(step);
        let (item, statuses): (&str, &[EventStatus]) = match i % 100 {
            0..90 => ("900000000001", &[EventStatus::Paid, EventStatus::Completed]),
            90..95 => ("900000000001", &[EventStatus::Paid, EventStatus::Shipped]),
            95..97 => ("700000000001", &[EventStatus::Paid]),
            97 => (
                "900000000001",
                &[EventStatus::PendingPayment, EventStatus::Closed],
            ),
            _ => ("700000000001", &[EventStatus::PendingPayment]),
        };
        let id = format!("{}", 3_000_000_000_000u64 + i as u64 * 7919);
        for status in statuses {
            let mut ev = OrderEvent::new("main", &id, *status);
            ev.item_id = Some(item.into());
            ev.item_title = Some("基准测试商品".into());
            ev.buyer_id = Some(format!("buyer-{i}"));
            ev.amount = Some("19.90".into());
            store.ingest(&ev, &start).unwrap();
        }
        if item == "700000000001" && statuses == [EventStatus::Paid] {
            store
                .hand_to_human(&id, &xianyu_shopd::why::Why::Physical, &[])
                .unwrap();
        }
    }
    // The pipeline would have run these jobs; leave the delay queue empty.
    loop {
        let jobs = store.due_jobs(u64::MAX, 1000).unwrap();
        if jobs.is_empty() {
            break;
        }
        for j in jobs {
            store.finish_job(j.id).unwrap();
        }
    }
    store
}

fn print_view_cost(store: &Store) {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let v = store.shop_view().unwrap();
            std::hint::black_box(v.orders.len());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "full view scan (uncached): median {:.1} ms over 5",
        times[2]
    );
}

async fn run(store: Store, dir: &std::path::Path, secs: u64, conns: usize) {
    let server = StatusServer::start(&store, dir).await;
    let addr = server.addr;
    let an_order = store.shop_view().unwrap().orders[1234].order_id.clone();
    let detail = format!("/orders/{an_order}");
    // The first request builds the cached view (the uncached scan above); measure after it.
    let t = Instant::now();
    client(addr, "/".to_string(), Instant::now()).await;
    println!(
        "first request (builds the cached view): {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!("{conns} connections, {secs}s per route; latency is per request, client-side");
    for path in [
        "/",
        "/api/status",
        "/orders",
        "/orders?page=1000",
        "/orders?status=pending_ship",
        detail.as_str(),
        "/manual",
        "/metrics",
    ] {
        load(addr, path, secs, conns).await;
    }
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn(write_orders(store.clone(), writing.clone()));
    print!("while ingesting 50 orders/s: ");
    load(addr, "/", secs, conns).await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    println!("  ({written} orders written during the run)");
    server.stop().await;
}

async fn write_orders(store: Store, writing: Arc<AtomicBool>) -> usize {
    let start = NextRun {
        stage: 1,
        stage_name: "classify".into(),
        config_version: "bench".into(),
    };
    let mut n = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while writing.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut ev = OrderEvent::new("main", &format!("LIVE{n:06}"), EventStatus::Paid);
        ev.item_id = Some("900000000001".into());
        ev.amount = Some("19.90".into());
        let start = start.clone();
        store
            .call(move |s| s.ingest(&ev, &start).map(|_| ()))
            .await
            .unwrap();
        n += 1;
    }
    n
}
