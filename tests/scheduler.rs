//! The scheduler never works on one order with two jobs at once, and never runs a job from a
//! stale due list (found by `tests/chaos.rs`: after a restart with a backlog, a due list read
//! while an order's job was running was dispatched after that job had already rescheduled
//! itself, so the order ran twice in parallel; one run then failed on the other's result and
//! quarantined a delivered order as "处理时内部错误"), and dropping a stale job keeps the order's
//! real retry (the same race made the status fixture's order F1 end `delivered` on a third send).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::config;
use xianyu_shopd::event::EventStatus::*;
use xianyu_shopd::marketplace::{
    ActionOutcome, AftersalePort, ConsignOutcome, ConsignRequest, DeliveryMessage, ListOutcome,
    Marketplace, SendOutcome,
};
use xianyu_shopd::scheduler::Scheduler;
use xianyu_shopd::store::{DeliveryState, Store};

/// Sends of order `gated` wait for the gate; its first send then fails safely (so its job
/// reschedules itself), later ones are accepted. Every other send is accepted at once. Counts
/// sends per order.
struct GatedMarket {
    gated: String,
    gate: tokio::sync::Semaphore,
    sends: Mutex<HashMap<String, u32>>,
}

#[async_trait::async_trait]
impl Marketplace for GatedMarket {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        let sends = {
            let mut sends = self.sends.lock().unwrap();
            let count = sends.entry(msg.to.order_id.clone()).or_default();
            *count += 1;
            *count
        };
        if msg.to.order_id != self.gated {
            return SendOutcome::Accepted { message_id: None };
        }
        self.gate.acquire().await.unwrap().forget();
        if sends > 1 {
            return SendOutcome::Accepted { message_id: None };
        }
        SendOutcome::NotDelivered {
            reason: "refused".into(),
        }
    }

    async fn confirm_shipment(&self, _req: &ConsignRequest) -> ConsignOutcome {
        ConsignOutcome::Confirmed
    }
}

impl GatedMarket {
    fn sends(&self, order: &str) -> u32 {
        self.sends.lock().unwrap().get(order).copied().unwrap_or(0)
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_a_stale_due_list_does_not_run_the_order_again() {
    let dir = tempfile::tempdir().unwrap();
    // A failed send is retried only after an hour: within this test, order A is sent once.
    write_config(
        dir.path(),
        &pipeline_yaml(
            "{ min: 0s, max: 0s }",
            "{ mode: send_then_confirm, max_retries: 3, retry_delay: 1h }",
        ),
        &products_yaml("send_then_confirm"),
    );
    let config = config::load(dir.path()).unwrap();
    const T: u64 = 1_800_000_000_000;
    let clock = Arc::new(ManualClock::new(T));
    let store = Store::open(&dir.path().join("state"), clock.clone()).unwrap();
    store
        .import_cards("keys", "KEY-A\nKEY-Z\n", false, "test")
        .unwrap();
    let market = Arc::new(GatedMarket {
        gated: "A".into(),
        gate: tokio::sync::Semaphore::new(0),
        sends: Mutex::default(),
    });
    let shop = Shop::new(store.clone(), config, market.clone()).unwrap();
    // One permit: the second pass below has to wait for it, holding its due list.
    let scheduler = Arc::new(Scheduler::new(shop.runner.clone(), 1));

    // Order A's job runs and blocks in its send, holding the permit.
    shop.runner
        .ingest(event("A", Paid, CARD_ITEM))
        .await
        .unwrap();
    assert_eq!(scheduler.dispatch_due().await.unwrap(), 1);
    wait_for(|| market.sends("A") == 1).await;

    // Order Z is due earlier than A's job, so the next pass lists it first: [Z, A].
    clock.set_ms(T - 100);
    shop.runner
        .ingest(event("Z", Paid, CARD_ITEM))
        .await
        .unwrap();
    clock.set_ms(T);
    let pass = tokio::spawn({
        let scheduler = scheduler.clone();
        async move { scheduler.dispatch_due().await.unwrap() }
    });
    // The pass holds [Z, A] and waits for the permit with Z (A is skipped while it runs).
    wait_for(|| scheduler.running() == 2).await;

    // A's send fails safely: its job reschedules itself an hour later and ends. The pass goes
    // on with its list: Z runs, and A's old job, gone from the store, must not.
    market.gate.add_permits(10);
    pass.await.unwrap();
    wait_for(|| scheduler.running() == 0).await;
    assert_eq!(
        store.delivery("Z").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        market.sends("A"),
        1,
        "order A was sent again by a stale job, an hour before its retry"
    );
    let a = store.delivery("A").unwrap().unwrap();
    assert_eq!(a.state, DeliveryState::FailedSafe);
    assert_eq!(a.attempts, 1);

    // Dropping the stale job kept the real retry: it waits in the store an hour away and, at
    // that time, runs once and delivers.
    assert_eq!(store.next_job_due().unwrap(), Some(T + 3_600_000));
    assert_eq!(store.pending_job_count().unwrap(), 1);
    clock.set_ms(T + 3_600_000);
    scheduler.run_until_idle(None).await.unwrap();
    assert_eq!(market.sends("A"), 2, "the retry ran once");
    assert_eq!(
        store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(store.pending_job_count().unwrap(), 0);
}

/// Listing on-shelf items panics the first time (a bug, or the store failing under the job),
/// then works. Everything else is the in-memory marketplace.
struct FlakyShelf {
    inner: xianyu_shopd::marketplace::memory::MemoryMarketplace,
    panicked: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Marketplace for FlakyShelf {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        self.inner.send_delivery(msg).await
    }

    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome {
        self.inner.confirm_shipment(req).await
    }

    fn aftersale(&self) -> Option<&dyn AftersalePort> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl AftersalePort for FlakyShelf {
    async fn rate_buyer(&self, account: &str, order_id: &str, text: &str) -> ActionOutcome {
        self.inner.rate_buyer(account, order_id, text).await
    }

    async fn pending_ratings(&self, account: &str) -> ListOutcome {
        self.inner.pending_ratings(account).await
    }

    async fn on_shelf_items(&self, account: &str) -> ListOutcome {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("item list exploded");
        }
        self.inner.on_shelf_items(account).await
    }

    async fn polish(&self, account: &str, item_id: &str) -> ActionOutcome {
        self.inner.polish(account, item_id).await
    }

    fn cookie_epoch(&self, account: &str) -> Option<String> {
        self.inner.cookie_epoch(account)
    }
}

/// A daily after-sale job whose run fails is not lost until the next start: it runs again
/// later in its window (here: the polish of every on-shelf item, 30 minutes later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_job_that_fails_runs_again_later_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_yaml("{ min: 0s, max: 0s }", "{}")
        + "aftersale:\n  polish: { enabled: true, window: \"00:00-23:59\" }\n  jitter: 0s\n  min_gap: 1s\n";
    write_config(dir.path(), &pipeline, &products_yaml("send_then_confirm"));
    let config = config::load(dir.path()).unwrap();
    // 16:00 in Beijing: inside the window, far from midnight.
    const T: u64 = 1_800_000_000_000;
    let clock = Arc::new(ManualClock::new(T));
    let store = Store::open(&dir.path().join("state"), clock.clone()).unwrap();
    let market = Arc::new(FlakyShelf {
        inner: xianyu_shopd::marketplace::memory::MemoryMarketplace::new(),
        panicked: Default::default(),
    });
    market.inner.set_on_shelf(&["900000000001"]);
    let shop = Shop::new(store.clone(), config.clone(), market.clone()).unwrap();
    assert_eq!(
        xianyu_shopd::aftersale::seed(&store, &config, &mut rand::rng()).unwrap(),
        1
    );
    let scheduler = Scheduler::new(shop.runner.clone(), 2);
    assert_eq!(scheduler.dispatch_due().await.unwrap(), 1);
    wait_for(|| scheduler.running() == 0).await;
    assert!(market.inner.polished().is_empty(), "the first run failed");
    assert_eq!(
        store.pending_job_count().unwrap(),
        1,
        "the daily job is still scheduled"
    );
    // Not before its retry time; then it polishes without a restart.
    clock.set_ms(T + 29 * 60 * 1000);
    assert_eq!(scheduler.dispatch_due().await.unwrap(), 0);
    clock.set_ms(T + 31 * 60 * 1000);
    assert_eq!(scheduler.dispatch_due().await.unwrap(), 1);
    wait_for(|| scheduler.running() == 0).await;
    // Listing and polishing are two calls `min_gap` (1 s) apart.
    clock.set_ms(T + 31 * 60 * 1000 + 2_000);
    assert_eq!(scheduler.dispatch_due().await.unwrap(), 1);
    wait_for(|| scheduler.running() == 0).await;
    assert_eq!(market.inner.polished(), vec!["900000000001".to_string()]);
    assert_eq!(store.pending_job_count().unwrap(), 1, "tomorrow's run");
}
