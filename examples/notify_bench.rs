//! Notification measurements (prints figures; asserts nothing about time):
//!
//! 1. Throughput: notifications/s through the outbox dispatcher into a local fake webhook
//!    (Standard Webhooks signed, no local rate limit), on a real redb file and in memory.
//! 2. Latency: from a paid physical-goods order entering the real pipeline (→ manual_ship) to
//!    the WeCom fake receiving the message, with the scheduler and dispatcher running as in
//!    the daemon. 20 orders: WeCom's local limit is 20 a minute.
//!
//! `cargo run --release --example notify_bench`. `BENCH_NOTIFICATIONS=N` changes the count.

#[path = "../tests/support/notify_fakes.rs"]
mod notify_fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use notify_fakes::*;
use tokio::sync::Notify;
use xianyu_shopd::alert::{Alert, EventKind};
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config;
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::notify::Router;
use xianyu_shopd::notify::dispatcher::Dispatcher;
use xianyu_shopd::store::Store;

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::var("BENCH_NOTIFICATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for run in 1..=3 {
            let file = throughput(n, true).await;
            let mem = throughput(n, false).await;
            println!("throughput run {run}: {n} notifications: redb file {file:.0}/s, in-memory store {mem:.0}/s");
        }
        latency().await;
    });
}

async fn throughput(n: usize, on_disk: bool) -> f64 {
    let key = b"bench-signing-key-0123456789abcd".to_vec();
    let whsec = format!("whsec_{}", xianyu_shopd::channels::sign::base64(&key));
    let hook = Fake::start(Webhook::new(Some(key))).await;
    let (dir, cfg) = config_dir(
        "  hook:\n    type: webhook\n    url_file: state/hook\n    secret_file: state/whsec\n",
        "{ channels: [hook] }",
        &[("hook", &hook.url("/hook")), ("whsec", &whsec)],
    );
    let store = if on_disk {
        Store::open(&dir.path().join("state"), clock::system()).unwrap()
    } else {
        Store::in_memory(clock::system()).unwrap()
    };
    let router = Router::new(cfg.notify());
    let drafts: Vec<_> = (0..n)
        .flat_map(|i| {
            let mut a = Alert::sample(EventKind::ManualShip);
            a.order_id = Some(format!("B{i}"));
            a.facts[0].1 = format!("B{i}");
            router.drafts(&a)
        })
        .collect();
    store.enqueue_notifications(&drafts).unwrap();
    let dispatcher = Dispatcher::new(store.clone(), config::handle(cfg), Arc::new(Notify::new()));
    let t = Instant::now();
    dispatcher.drain_due().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hook.accepted().len(), n, "every notification accepted");
    n as f64 / secs
}

const PHYSICAL: &str = "700000000001";

async fn latency() {
    let wecom = Fake::start(Wecom::new("BENCHKEY")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/wecom"),
        wecom.url("/cgi-bin/webhook/send?key=BENCHKEY"),
    )
    .unwrap();
    let pipeline = "accounts:\n  - id: main\n    name: 主店\n    cookies_env: BENCH_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - ship: {}\n  - notify: { channels: [wecom] }\nchannels:\n  wecom:\n    type: wecom\n    url_file: state/wecom\n";
    let products = format!(
        "products:\n  - item_id: \"{PHYSICAL}\"\n    title: 二手手机\n    category: physical\n"
    );
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(dir.path().join("products.yaml"), products).unwrap();
    let cfg = config::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    let shop = Shop::new(store, cfg, Arc::new(MemoryMarketplace::new())).unwrap();
    let runner = shop.runner.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(shop.run(shutdown.clone()));

    let mut samples = Vec::new();
    for i in 0..20 {
        let mut ev = OrderEvent::new("main", &format!("LAT{i}"), EventStatus::Paid);
        ev.item_id = Some(PHYSICAL.to_string());
        ev.item_title = Some("二手手机".into());
        ev.buyer_nick = Some("买家".into());
        let t = Instant::now();
        runner.ingest(ev).await.unwrap();
        while wecom.all().len() <= i {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "WeCom never received order {i}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(t.elapsed());
    }
    shutdown.cancel();
    let _ = running.await;
    let body = wecom.accepted()[0].json();
    assert!(body["text"]["content"].as_str().unwrap().contains("LAT0"));
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "manual_ship event → WeCom fake received: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (20 orders)",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 95 / 100]),
        ms(*samples.last().unwrap())
    );
}
