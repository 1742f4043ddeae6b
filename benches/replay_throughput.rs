//! Replay throughput: 10 000 paid orders with zero delay through the real pipeline and a real
//! redb file, into the in-memory marketplace. Prints orders/s for each of 5 runs, the median,
//! the store's file size after a run, the durable commits per order read from the store's
//! commit counter (`Store::commit_count`), the `fdatasync` calls per order counted at redb's
//! file backend (`Store::fsync_count`), the thread handoffs per order (`Store::handoff_count`:
//! store work sent to tokio's blocking pool or a worker leaving for a blocking wait), and the
//! process's CPU time (user + system, from
//! `getrusage`) per order: on a shared machine wall-clock rates swing with other load, CPU time
//! per order much less, so A/B comparisons read that column first.
//!
//! Then where the bytes of the last run's file go (issue 15 item 2): the file is opened with
//! redb itself and each table's entries, key and value bytes, and pages (leaf and branch,
//! times the page size) are printed per order, beside the whole file's live data, page
//! overhead and free space, and the file size after `xianyu-shopd compact` (the per-order
//! tables repacked, then `Database::compact`).
//!
//! `cargo bench --bench replay_throughput` (release build). `BENCH_ORDERS=N` changes the count,
//! `BENCH_RUNS=N` the number of runs (default 5), `BENCH_WINDOW=N` how many payments arrive
//! together (default 256, ingested concurrently; 1 = one at a time), `BENCH_CONCURRENCY=N` how
//! many orders the scheduler works on at once (default: the daemon's own,
//! `xianyu_shopd::app::CONCURRENCY`; a what-if, since with group commit a batch holds about
//! one write per order in flight).

use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
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
    let mut cpus = Vec::new();
    let mut size = 0;
    let mut last = None;
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5);
    for run in 1..=runs {
        let (rate, bytes, (commits, fsyncs, handoffs), cpu, dir) =
            runtime.block_on(one_run(orders));
        last = Some(dir);
        println!(
            "run {run}: {orders} orders in {:.2}s = {rate:.0} orders/s, store {bytes} bytes ({:.0} B/order), {:.2} commits/order, {:.2} fsyncs/order, {:.2} handoffs/order, {:.0} µs CPU/order",
            orders as f64 / rate,
            bytes as f64 / orders as f64,
            commits as f64 / orders as f64,
            fsyncs as f64 / orders as f64,
            handoffs as f64 / orders as f64,
            cpu as f64 / orders as f64
        );
        rates.push(rate);
        cpus.push(cpu as f64 / orders as f64);
        size = bytes;
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    cpus.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median: {:.0} orders/s, {:.0} µs CPU/order over {runs} runs (scheduler concurrency {}); redb file after {orders} orders: {:.1} MiB",
        rates[runs / 2],
        cpus[runs / 2],
        concurrency().unwrap_or(xianyu_shopd::app::CONCURRENCY),
        size as f64 / 1048576.0
    );
    if let Some(dir) = last {
        let file = dir.path().join("state").join(xianyu_shopd::store::DB_FILE);
        if let Err(e) = print_breakdown(&file, orders as u64) {
            println!("breakdown FAILED: {e}");
        }
    }
}

/// Bytes per order of each table and of the whole file, read with redb from a closed store.
fn print_breakdown(file: &Path, orders: u64) -> Result<(), Box<dyn std::error::Error>> {
    let db = redb::Database::open(file)?;
    let read = db.begin_read()?;
    let write = db.begin_write()?;
    let page = write.stats()?.page_size() as u64;
    let per = |bytes: u64| bytes as f64 / orders as f64;
    let mut rows = Vec::new();
    for handle in read.list_tables()? {
        let name = handle.name().to_owned();
        let table = read.open_untyped_table(handle)?;
        let stats = table.stats()?;
        let pages = stats.leaf_pages() + stats.branch_pages();
        rows.push((name, table.len()?, stats.stored_bytes(), pages * page));
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.3));
    println!(
        "bytes per order after {orders} orders, by table (entries, key+value bytes, pages × {page} B):"
    );
    for (name, entries, stored, paged) in &rows {
        println!(
            "  {name:<24} {entries:>7} entries  {:>7.1} B/order data  {:>7.1} B/order in pages",
            per(*stored),
            per(*paged)
        );
    }
    let total = write.stats()?;
    write.abort()?;
    drop(read);
    let size = std::fs::metadata(file)?.len();
    println!(
        "  whole file: {:.1} B/order ({size} B): data {:.1}, page metadata {:.1}, unused space in pages {:.1}, allocated pages {:.1}",
        per(size),
        per(total.stored_bytes()),
        per(total.metadata_bytes()),
        per(total.fragmented_bytes()),
        per(total.allocated_pages() * page),
    );
    drop(db);
    // What `xianyu-shopd compact` does: repack the per-order tables, then Database::compact.
    let state = file.parent().ok_or("no state directory")?;
    let lock = xianyu_shopd::store::DaemonLock::acquire(state)?;
    xianyu_shopd::store::compact::compact(&lock, state)?;
    let compacted = std::fs::metadata(file)?.len();
    println!(
        "  after `compact` (repacked, then Database::compact): {:.1} B/order ({compacted} B)",
        per(compacted)
    );
    Ok(())
}

/// Payments that arrive together: `BENCH_WINDOW` (default 256; 1 ingests one event at a
/// time).
/// User + system CPU time of the whole process (every thread, the store's too), in µs.
fn process_cpu_micros() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// `BENCH_CONCURRENCY`, when set.
fn concurrency() -> Option<usize> {
    std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
}

fn window() -> usize {
    std::env::var("BENCH_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(256)
}

/// One run: orders/s, the file size, the durable commits and fsyncs during the run, and the
/// directory (kept until it is dropped).
/// One timed run: orders/s, file size, (commits, fsyncs, handoffs) and CPU µs of the timed
/// part.
async fn one_run(orders: usize) -> (f64, u64, (u64, u64, u64), i64, tempfile::TempDir) {
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
    let mut shop = Shop::new(store.clone(), config, market.clone()).unwrap();
    if let Some(n) = concurrency() {
        shop.scheduler = xianyu_shopd::scheduler::Scheduler::new(shop.runner.clone(), n);
    }

    let started = Instant::now();
    let cpu_before = process_cpu_micros();
    let commits_before = store.commit_count();
    let fsyncs_before = store.fsync_count();
    let handoffs_before = store.handoff_count();
    let window = window();
    for first in (0..orders).step_by(window) {
        // One window of payments arrives together (a backlog after a reconnect): each event
        // is ingested by its own task, as concurrent sources would.
        let tasks: Vec<_> = (first..orders.min(first + window))
            .map(|i| {
                let runner = shop.runner.clone();
                let mut ev = OrderEvent::new("main", &format!("B{i:08}"), EventStatus::Paid);
                ev.item_id = Some("900000000001".into());
                ev.cid = Some(format!("cid-{i}"));
                tokio::spawn(async move { runner.ingest(ev).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("ingest task").unwrap();
        }
        shop.scheduler.dispatch_due().await.unwrap();
    }
    shop.scheduler.run_until_idle(None).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_micros() - cpu_before;
    assert_eq!(
        market.sent().len(),
        orders,
        "every order delivered exactly once"
    );
    let size = store.file_size();
    let commits = store.commit_count() - commits_before;
    let fsyncs = store.fsync_count() - fsyncs_before;
    let handoffs = store.handoff_count() - handoffs_before;
    drop(shop);
    drop(store);
    (
        orders as f64 / elapsed,
        size,
        (commits, fsyncs, handoffs),
        cpu,
        dir,
    )
}
