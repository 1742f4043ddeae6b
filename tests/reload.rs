//! Hot reload: validate-then-swap, restart-only settings, cookie changes per account, the
//! file watcher with atomic-rename saves, and what config a running or delayed order uses.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config::reload::{ReloadOutcome, Reloader};
use xianyu_shopd::config::{self, watch};
use xianyu_shopd::event::EventStatus::Paid;
use xianyu_shopd::marketplace::{
    ConsignOutcome, ConsignRequest, DeliveryMessage, Marketplace, SendOutcome,
};
use xianyu_shopd::store::{DeliveryState, Store};

/// Save like an editor does: write a temp file, rename it over the target.
fn atomic_write(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reloader(h: &Harness) -> Arc<Reloader> {
    Arc::new(Reloader::new(
        h.dir.path().to_path_buf(),
        h.shop.config.clone(),
        clock::system(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_running_config_and_says_where() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let before = h.shop.config.load().version.clone();
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("auto_ship: true", "auto_shipp: true"),
    );
    let ReloadOutcome::Rejected(errors) = r.reload() else {
        panic!("a broken edit must be rejected")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("products.yaml:7:5:") && e.contains("did you mean `auto_ship`")),
        "{errors:?}"
    );
    assert_eq!(
        h.shop.config.load().version,
        before,
        "the last good config keeps running"
    );
    let report = r.report();
    assert!(!report.ok && report.at > 0 && report.version == before);

    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("测试激活码", "测试激活码 v2"),
    );
    assert!(matches!(r.reload(), ReloadOutcome::Applied(_)));
    assert_ne!(h.shop.config.load().version, before);
    assert!(r.report().ok);
    assert!(
        h.shop
            .config
            .load()
            .product(CARD_ITEM)
            .unwrap()
            .title
            .ends_with("v2")
    );
    assert_eq!(r.reload(), ReloadOutcome::Unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_listen_address_requires_a_restart() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let pipeline = std::fs::read_to_string(h.dir.path().join("pipeline.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("pipeline.yaml"),
        &format!("{pipeline}status:\n  listen: 127.0.0.1:9999\n"),
    );
    let ReloadOutcome::Rejected(errors) = r.reload() else {
        panic!("must be refused")
    };
    assert!(errors[0].contains("requires a restart"), "{errors:?}");
    assert_eq!(h.shop.config.load().status.listen.port(), 8080);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_file_change_names_only_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_yaml("{ min: 0s, max: 0s }", "{}").replace(
        "accounts:\n  - id: main\n    cookies_env: TEST_COOKIES\n",
        "accounts:\n  - id: main\n    cookies_file: state/main.cookies\n  - id: second\n    cookies_file: state/second.cookies\n",
    );
    write_config(dir.path(), &pipeline, &products_yaml("send_then_confirm"));
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/main.cookies"), "unb=1; cookie2=a").unwrap();
    std::fs::write(dir.path().join("state/second.cookies"), "unb=2; cookie2=b").unwrap();
    let handle = config::handle(config::load(dir.path()).unwrap());
    let r = Reloader::new(dir.path().to_path_buf(), handle, clock::system());
    let mut changes = r.subscribe();
    atomic_write(
        &dir.path().join("state/second.cookies"),
        "unb=2; cookie2=fresh",
    );
    let ReloadOutcome::Applied(change) = r.reload() else {
        panic!("cookie change must apply")
    };
    assert_eq!(change.accounts_with_new_cookies, vec!["second".to_string()]);
    assert_eq!(changes.try_recv().unwrap(), change);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_applies_an_atomic_rename_save() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch::run(
        r.clone(),
        h.dir.path().to_path_buf(),
        h.dir.path().join("state"),
        shutdown.clone(),
        |_, _| {},
    ));
    tokio::time::sleep(Duration::from_millis(300)).await; // watches installed
    let before = h.shop.config.load().version.clone();
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    // The store writing under state/ must not count as a config change.
    h.store
        .import_cards("keys", "K-1\n", false, "test")
        .unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("测试网盘链接", "测试网盘链接 新版"),
    );
    let started = Instant::now();
    while h.shop.config.load().version == before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the save was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        h.shop
            .config
            .load()
            .product(STOCK_ITEM)
            .unwrap()
            .title
            .ends_with("新版")
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_order_fires_under_the_config_current_when_it_fires() {
    let h = Harness::new(
        &pipeline_yaml("{ min: 1h, max: 1h }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    h.import_keys(1);
    h.ingest(event("V1", Paid, CARD_ITEM)).await;
    h.shop.scheduler.dispatch_due().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = h
        .store
        .due_jobs(u64::MAX, 10)
        .unwrap()
        .pop()
        .expect("waiting in delay");
    let scheduled_under = h.shop.config.load().version.clone();
    assert_eq!(job.config_version, scheduled_under);

    // The seller turns auto-ship off while the order waits.
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replacen("auto_ship: true", "auto_ship: false", 1),
    );
    assert!(matches!(reloader(&h).reload(), ReloadOutcome::Applied(_)));
    h.shop.runner.run_job(job).await.unwrap();
    assert_eq!(
        h.market.send_calls(),
        0,
        "the seller's latest word wins: nothing is sent"
    );
    assert_eq!(
        h.store.delivery("V1").unwrap().unwrap().state,
        DeliveryState::Manual
    );
}

/// A marketplace whose sends wait until the test lets them go.
struct GatedMarket {
    entered: Notify,
    release: Notify,
    consigns: std::sync::Mutex<u32>,
}

#[async_trait::async_trait]
impl Marketplace for GatedMarket {
    async fn send_delivery(&self, _msg: &DeliveryMessage) -> SendOutcome {
        self.entered.notify_one();
        self.release.notified().await;
        SendOutcome::Accepted { message_id: None }
    }
    async fn confirm_shipment(&self, _req: &ConsignRequest) -> ConsignOutcome {
        *self.consigns.lock().unwrap() += 1;
        ConsignOutcome::Confirmed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_order_completes_under_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    store.import_cards("keys", "K-1\n", false, "test").unwrap();
    let market = Arc::new(GatedMarket {
        entered: Notify::new(),
        release: Notify::new(),
        consigns: Default::default(),
    });
    let shop = Shop::new(
        store.clone(),
        config::load(dir.path()).unwrap(),
        market.clone(),
    )
    .unwrap();
    shop.runner
        .ingest(event("I1", Paid, CARD_ITEM))
        .await
        .unwrap();
    let job = store.due_jobs(u64::MAX, 1).unwrap().pop().unwrap();
    let runner = shop.runner.clone();
    let run = tokio::spawn(async move { runner.run_job(job).await });
    market.entered.notified().await;

    // Mid-send, the seller switches the product to send_only.
    let products = std::fs::read_to_string(dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &dir.path().join("products.yaml"),
        &products.replacen("mode: send_then_confirm", "mode: send_only", 1),
    );
    let r = Reloader::new(
        dir.path().to_path_buf(),
        shop.config.clone(),
        clock::system(),
    );
    assert!(matches!(r.reload(), ReloadOutcome::Applied(_)));
    market.release.notify_one();
    run.await.unwrap().unwrap();
    assert_eq!(
        *market.consigns.lock().unwrap(),
        1,
        "the run that started under send_then_confirm still confirms"
    );
    assert_eq!(
        store.delivery("I1").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
}
