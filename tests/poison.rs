//! No poison order (issue 9, D2): an absurd quantity or `units` never makes the shop allocate
//! for billions of keys, and a job that fails or panics is quarantined for the seller instead
//! of crash-looping, while every other order is still served.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::app::Shop;
use xianyu_shopd::event::EventStatus::*;
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::marketplace::{
    ConsignOutcome, ConsignRequest, DeliveryMessage, Marketplace, SendOutcome,
};
use xianyu_shopd::pipeline::next_run;
use xianyu_shopd::store::{
    CardState, DeliveryState, INTERNAL_ERROR_REASON, ReserveOutcome, ReserveRequest, Store,
};
use xianyu_shopd::{clock, config};

const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// A marketplace whose send panics for one order: a bug on one order's path.
struct PanicsOn {
    order_id: &'static str,
    inner: MemoryMarketplace,
}

#[async_trait::async_trait]
impl Marketplace for PanicsOn {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        if msg.to.order_id == self.order_id {
            panic!("simulated bug while sending order {}", msg.to.order_id);
        }
        self.inner.send_delivery(msg).await
    }

    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome {
        self.inner.confirm_shipment(req).await
    }
}

fn shop_with(dir: &std::path::Path, market: Arc<dyn Marketplace>) -> Shop {
    write_config(
        dir,
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    let config = config::load(dir).unwrap();
    let store = Store::open(&dir.join("state"), clock::system()).unwrap();
    let keys: String = (0..4).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
    store.import_cards("keys", &keys, false, "test").unwrap();
    Shop::new(store, config, market).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_panics_is_quarantined_and_the_shop_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let market = Arc::new(PanicsOn {
        order_id: "P1",
        inner: MemoryMarketplace::new(),
    });
    let shop = shop_with(dir.path(), market.clone());
    for id in ["P1", "P2"] {
        shop.runner
            .ingest(event(id, Paid, CARD_ITEM))
            .await
            .unwrap();
    }
    tokio::time::timeout(SETTLE_LIMIT, shop.scheduler.run_until_idle(None))
        .await
        .expect("the panicking job must not keep the scheduler busy")
        .unwrap();
    shop.dispatcher.drain_due().await.unwrap();

    let p1 = shop.store.delivery("P1").unwrap().unwrap();
    assert_eq!(p1.state, DeliveryState::NeedsHuman);
    assert_eq!(p1.last_error.as_deref(), Some(INTERNAL_ERROR_REASON));
    assert_eq!(
        shop.store.delivery("P2").unwrap().unwrap().state,
        DeliveryState::Delivered,
        "the other order is still served"
    );
    assert_eq!(market.inner.sent().len(), 1);
    assert_eq!(shop.store.pending_job_count().unwrap(), 0, "nothing loops");
    let alerts = shop.store.notifications(100).unwrap();
    assert!(
        alerts.iter().any(|n| n.event == EventKind::NeedsHuman
            && n.order_id.as_deref() == Some("P1")
            && n.text.contains(INTERNAL_ERROR_REASON)),
        "{alerts:?}"
    );
    // The key P1 held is still P1's: the seller resolves it.
    assert_eq!(
        shop.store.card_counts().unwrap()["keys"].get(CardState::Reserved),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_is_not_retried_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shop_with(dir.path(), Arc::new(MemoryMarketplace::new()));
    // An order that never became payable has no delivery; a job for it fails in stock-check.
    shop.runner
        .ingest(event("E1", PendingPayment, CARD_ITEM))
        .await
        .unwrap();
    let config = shop.runner.config();
    let store = shop.store.clone();
    store
        .reschedule_job(u64::MAX, "E1", &next_run(&config, 2), store.now())
        .unwrap();
    shop.runner
        .ingest(event("E2", Paid, CARD_ITEM))
        .await
        .unwrap();
    tokio::time::timeout(SETTLE_LIMIT, shop.scheduler.run_until_idle(None))
        .await
        .expect("a failing job must leave the schedule")
        .unwrap();
    assert_eq!(shop.store.pending_job_count().unwrap(), 0);
    assert_eq!(
        shop.store.delivery("E2").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
}

#[test]
fn a_reservation_never_allocates_beyond_the_pool() {
    let h = Harness::default_shop();
    h.import_keys(3);
    // The store's plain ingest: the delivery stays `planned`, so the reservation below is its
    // first (the pipeline's ingest would already hold a key for it).
    let start = xianyu_shopd::pipeline::first_run(&h.shop.runner.config());
    h.store
        .ingest(&event("Q1", Paid, CARD_ITEM), &start)
        .unwrap();
    // 4 × 10⁹ keys: before the fix this allocated 32 GB and aborted the process.
    let req = ReserveRequest::Cards {
        pool: "keys".into(),
        count: 4_000_000_000,
        reusable: false,
        low_stock_alert: 0,
    };
    let outcome = h
        .store
        .reserve("Q1", &req, &|_| Vec::new(), &|_| Vec::new())
        .unwrap();
    assert_eq!(
        outcome,
        ReserveOutcome::Short {
            needed: 4_000_000_000,
            available: 3
        }
    );
    assert_eq!(
        h.store.delivery("Q1").unwrap().unwrap().state,
        DeliveryState::Manual,
        "out of stock goes to the seller"
    );
    assert_eq!(h.store.available_cards("keys").unwrap(), 3, "nothing taken");
}

fn bin(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"));
    c.arg("--config-dir").arg(dir).current_dir(dir);
    c
}

#[test]
fn check_refuses_absurd_units() {
    let dir = tempfile::tempdir().unwrap();
    let products = products_yaml("send_then_confirm").replacen(
        "    cards: keys\n",
        "    cards: keys\n    units: 4000000000\n",
        1,
    );
    write_config(
        dir.path(),
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products,
    );
    let out = bin(dir.path()).arg("check").output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("products.yaml:") && text.contains("units") && text.contains("1000"),
        "{text}"
    );
}

#[test]
fn replay_rejects_an_absurd_quantity_and_serves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(
        d,
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    std::fs::write(d.join("keys.txt"), "KEY-A-0001\nKEY-B-0002\n").unwrap();
    assert!(
        bin(d)
            .args(["cards", "import", "keys", "keys.txt"])
            .status()
            .unwrap()
            .success()
    );
    let line = |id: &str, qty: u64| {
        format!(
            "{{\"account\":\"main\",\"order_id\":\"{id}\",\"status\":\"paid\",\"item_id\":\"{CARD_ITEM}\",\"cid\":\"c{id}\",\"buyer_id\":\"b{id}\",\"quantity\":{qty}}}\n"
        )
    };
    let events = line("G1", 1) + &line("BAD", 4_294_967_295) + &line("G2", 1);
    std::fs::write(d.join("events.jsonl"), events).unwrap();
    let out = bin(d).args(["replay", "events.jsonl"]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("line 2") && stderr.contains("BAD") && stderr.contains("4294967295"),
        "{stderr}"
    );
    assert!(stdout.contains("send    order=G1"), "{stdout}");
    assert!(stdout.contains("send    order=G2"), "{stdout}");
}
