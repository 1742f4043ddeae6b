//! Statistics under load: the 统计 page and `/api/stats` with a year of rollups for 1 000 000
//! orders, and what the rollups cost per order on the write path.
//!
//! 1. Write cost: `BENCH_WRITE_ORDERS` (default 20 000) orders ingested (paid, then completed)
//!    into an in-memory store, so fsync does not hide the CPU cost; then `stats rebuild` over
//!    the same orders, which is the rollup work alone (read an order and its ledger row, compute
//!    its contributions, write the rows). Bytes: the rollup rows an order touches and their size.
//! 2. Reads: `BENCH_ORDERS` (default 1 000 000) orders over 365 days, 2 accounts and 50 items,
//!    written **through the rollup API directly** (`Store::add_rollup_for_bench`: running a
//!    million orders through the pipeline takes far longer than the figure is worth), copied to
//!    a real redb file and served on 127.0.0.1; `BENCH_CONNECTIONS` (default 8) keep-alive
//!    connections for `BENCH_SECS` (default 8) seconds per route. The store holds no order
//!    rows, which is the point: these routes read rollup rows only.
//!
//! `cargo bench --bench stats`

use std::sync::Arc;
use std::time::Instant;

use xianyu_shopd::clock::{self, ManualClock, SharedClock};
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::store::rollup_facts::{self, LATENCY_BUCKETS};
use xianyu_shopd::store::{Counters, Day, NextRun, Store};

mod common;
use common::env_or;
use common::http_load::{StatusServer, block_on, client, file_store, load};

const PIPELINE: &str = "accounts:\n  - id: main\n    name: 主店\n    cookies_env: BENCH_COOKIES\n  - id: second\n    cookies_env: BENCH_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm }\n  - notify: { channels: [log] }\n";
const ITEMS: usize = 50;

fn main() {
    write_cost(env_or("BENCH_WRITE_ORDERS", 20_000) as usize);
    let orders = env_or("BENCH_ORDERS", 1_000_000);
    let secs = env_or("BENCH_SECS", 8);
    let conns = env_or("BENCH_CONNECTIONS", 8) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path());
    let started = Instant::now();
    let memory = year_of_rollups(orders);
    let rows = memory.rollup_row_count().unwrap();
    let (store, bytes) = file_store(memory, dir.path());
    println!(
        "reads: {orders} orders over 365 days as {rows} rollup rows (2 accounts x {ITEMS} items), built in {:.1}s; redb file {:.1} MiB",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1048576.0
    );
    block_on(serve_and_load(store, dir.path(), secs, conns));
}

fn write_config(dir: &std::path::Path) {
    let mut products = String::from("products:\n");
    for i in 0..ITEMS {
        products.push_str(&format!(
            "  - item_id: \"{}\"\n    title: 基准商品{i}\n    category: physical\n    stock: {{ quantity: 1000 }}\n",
            900_000_000_000u64 + i as u64
        ));
    }
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), PIPELINE).unwrap();
    std::fs::write(dir.join("products.yaml"), products).unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per order: the ingest transactions with their rollup updates, the rollup work alone (a
/// rebuild), and the rollup bytes an order touches.
fn write_cost(orders: usize) {
    let clock = Arc::new(ManualClock::new(clock::system().now_ms() - 40 * 86_400_000));
    let shared: SharedClock = clock.clone();
    let store = Store::in_memory(shared).expect("memory store");
    let start = NextRun {
        stage: 1,
        stage_name: "classify".into(),
        config_version: "bench".into(),
    };
    let step = 40 * 86_400_000 / orders.max(1) as u64;
    let t = Instant::now();
    for i in 0..orders {
        clock.advance_ms(step);
        let id = format!("W{i:08}");
        for status in [EventStatus::Paid, EventStatus::Completed] {
            let mut ev = OrderEvent::new(if i % 2 == 0 { "main" } else { "second" }, &id, status);
            ev.item_id = Some(format!("{}", 900_000_000_000u64 + (i % ITEMS) as u64));
            ev.amount = Some("19.90".into());
            store.ingest(&ev, &start).unwrap();
        }
    }
    let ingest_us = t.elapsed().as_secs_f64() * 1e6 / orders as f64;
    let rebuilds: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            store.rebuild_rollups().unwrap();
            t.elapsed().as_secs_f64() * 1e6 / orders as f64
        })
        .collect();
    let all = store.rollups(Day(19700101), Day(99991231), None).unwrap();
    let row_bytes: usize = all
        .iter()
        .map(|r| 4 + r.account.len() + r.item.len() + r.counters.to_bytes().len())
        .sum();
    println!(
        "write cost ({orders} orders, paid then completed, in-memory store): ingest {ingest_us:.1} us per order (2 transactions, rollups included); rollup work alone (stats rebuild) median {:.1} us per order; an order touches 1-2 rollup rows of {:.0} bytes on average (key + counters; {} rows for {orders} orders)",
        median(rebuilds),
        row_bytes as f64 / all.len().max(1) as f64,
        all.len()
    );
}

/// `orders` orders spread over the last 365 days, 2 accounts and [`ITEMS`] items, with paid,
/// refunds, deliveries and latency buckets in realistic proportions.
fn year_of_rollups(orders: u64) -> Store {
    let store = Store::in_memory(clock::system()).expect("memory store");
    let zone = rollup_facts::zone(rollup_facts::DEFAULT_ZONE).unwrap();
    let today = Day::of(clock::system().now_ms(), &zone);
    let cells = 365 * 2 * ITEMS as u64;
    let per_cell = orders / cells;
    let mut extra = orders % cells;
    let mut batch = Vec::new();
    for d in 0..365 {
        let day = today.add(-d);
        for account in ["main", "second"] {
            for i in 0..ITEMS {
                let created = per_cell as i64 + i64::from(extra > 0);
                extra = extra.saturating_sub(1);
                let paid = created * 9 / 10;
                let auto = paid * 8 / 10;
                let mut hist = [0i64; LATENCY_BUCKETS];
                hist[1] = auto / 2;
                hist[3] = auto - auto / 2;
                let c = Counters {
                    created,
                    paid,
                    paid_fen: paid * 1990,
                    paid_unknown: 0,
                    auto_delivered: auto,
                    handed: paid - auto,
                    refunded: paid / 50,
                    closed: created - paid,
                    returned_fen: paid / 50 * 1990,
                    returned_unknown: 0,
                    latency_count: auto,
                    latency_sum_ms: auto * 40_000,
                    latency_hist: hist,
                };
                let item = format!("{}", 900_000_000_000u64 + i as u64);
                batch.push((day, account.to_string(), item, c));
            }
        }
        if batch.len() >= 10_000 {
            store.add_rollup_for_bench(&batch).unwrap();
            batch.clear();
        }
    }
    store.add_rollup_for_bench(&batch).unwrap();
    store
}

async fn serve_and_load(store: Store, dir: &std::path::Path, secs: u64, conns: usize) {
    let server = StatusServer::start(&store, dir).await;
    let addr = server.addr;
    client(addr, "/stats".to_string(), Instant::now()).await;
    println!("{conns} connections, {secs}s per route; latency is per request, client-side");
    let zone = rollup_facts::zone(rollup_facts::DEFAULT_ZONE).unwrap();
    let today = Day::of(clock::system().now_ms(), &zone);
    let year = format!("/api/stats?from={}&by=day", today.add(-364).label());
    for path in [
        "/stats",
        "/stats?account=main",
        "/api/stats",
        "/api/stats?by=item",
        "/api/stats?by=account",
        year.as_str(),
        "/",
    ] {
        load(addr, path, secs, conns).await;
    }
    server.stop().await;
}
