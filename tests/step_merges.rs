//! Fewer durable points per order without giving up "committed before the effect" (issue 15):
//! a paid order's keys are held by the ingest transaction itself, so the payment and the
//! reservation are on disk together before any stage runs; the message's echo registration
//! rides on the send claim, the confirm claim on the send result, the job's end (and the
//! `delivered` announcement) on the confirm result. So a zero-delay delivery is 4 write
//! requests (was 7), 2 of them before the message leaves: ingest and the send claim.
//!
//! The counts are taken by a marketplace wrapper at the moment each call reaches it, so undoing
//! any one merge fails a test here.

mod support;

use std::sync::{Arc, Mutex};

use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config;
use xianyu_shopd::event::EventStatus::Paid;
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::marketplace::{
    ConsignOutcome, ConsignRequest, DeliveryMessage, Marketplace, ReadBack, SendOutcome,
};
use xianyu_shopd::store::{
    CardState, DeliveryState, Holding, OwnMessage, PartResult, ReadBackArm, Store, TakeoverRule,
};

use support::{Harness, event};

const CARD_ITEM: &str = "900000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_and_its_keys_are_durable_together_before_any_stage_runs() {
    let h = Harness::default_shop();
    h.import_keys(3);
    let before = h.store.commit_count();
    h.ingest(event("M1", Paid, CARD_ITEM)).await;
    assert_eq!(
        h.store.commit_count() - before,
        1,
        "the ingest and the reservation are one commit"
    );
    let rec = h.store.delivery("M1").unwrap().expect("planned at ingest");
    assert_eq!(rec.state, DeliveryState::Reserved, "{:?}", rec.history);
    let Holding::Cards { pool, ids } = &rec.holding else {
        panic!("keys held: {:?}", rec.holding)
    };
    assert_eq!((pool.as_str(), ids.len()), ("keys", 1));
    assert_eq!(
        h.store.card_counts().unwrap()["keys"].get(CardState::Reserved),
        1
    );
    assert_eq!(h.market.send_calls(), 0, "no stage has run yet");

    // The stages then find the keys held (stock-check writes nothing) and deliver them: the
    // send claim with the message's echo registration, the send result with the confirm
    // claim, the confirm result with the job's end and the notify stage's `delivered` row.
    let (commits, requests) = (h.store.commit_count(), h.store.write_request_count());
    h.dispatch_and_wait().await;
    assert_eq!(h.store.write_request_count() - requests, 3);
    assert_eq!(h.store.commit_count() - commits, 3);
    assert_eq!(h.store.pending_job_count().unwrap(), 0, "the job is over");
    let rec = h.store.delivery("M1").unwrap().unwrap();
    assert_eq!(rec.state, DeliveryState::Delivered);
    let states: Vec<DeliveryState> = rec.history.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            DeliveryState::Planned,
            DeliveryState::Reserved,
            DeliveryState::Sending,
            DeliveryState::Sent,
            DeliveryState::Confirming,
            DeliveryState::Delivered,
        ]
    );
    assert_eq!(h.market.sent().len(), 1);
    assert_eq!(
        h.store.card_counts().unwrap()["keys"].get(CardState::Delivered),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_stock_at_ingest_hands_over_at_once_and_schedules_nothing() {
    let h = Harness::default_shop();
    h.import_keys(1);
    h.ingest(event("A", Paid, CARD_ITEM)).await;
    h.ingest(event("B", Paid, CARD_ITEM)).await;
    let b = h.store.delivery("B").unwrap().unwrap();
    assert_eq!(b.state, DeliveryState::Manual, "{:?}", b.history);
    assert_eq!(b.holding, Holding::Nothing);
    let ship_method = h.store.order("B").unwrap().unwrap().ship_method;
    assert_eq!(
        ship_method,
        Some(xianyu_shopd::store::ShipMethod::Manual),
        "the hand-over marks the order, as the stage did"
    );
    let notes = h.store.notifications(100).unwrap();
    let for_b: Vec<_> = notes
        .iter()
        .filter(|n| n.order_id.as_deref() == Some("B"))
        .map(|n| n.event)
        .collect();
    assert!(
        for_b.contains(&xianyu_shopd::alert::EventKind::OutOfStock)
            && for_b.contains(&xianyu_shopd::alert::EventKind::ManualShip),
        "the seller is told: {for_b:?}"
    );
    assert_eq!(h.store.pending_job_count().unwrap(), 1, "only A has a job");
    h.settle().await;
    assert_eq!(h.market.sent().len(), 1, "A is delivered, B is not");
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
}

/// Thread handoffs (issue 15): a write request awaits its commit on the async worker, and
/// the member that ends a batch leaves its worker only for the commit; the reads around
/// it (the job still scheduled, the order, the keys already held, no read-back pending) run
/// where the stage runs. A lone order commits each write alone: one handoff per write, plus
/// the scheduler's scan of due jobs. Orders that arrive together share commits, and so
/// handoffs: a write that waits by leaving the worker, or a read sent through the blocking
/// pool, fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_leaves_the_async_worker_only_to_commit() {
    let h = Harness::default_shop();
    h.import_keys(40);
    let (handoffs, requests) = (h.store.handoff_count(), h.store.write_request_count());
    h.ingest(event("M1", Paid, CARD_ITEM)).await;
    assert_eq!(h.store.write_request_count() - requests, 1);
    assert_eq!(
        h.store.handoff_count() - handoffs,
        1,
        "the ingest's commit only"
    );

    let (handoffs, requests) = (h.store.handoff_count(), h.store.write_request_count());
    h.dispatch_and_wait().await;
    assert_eq!(h.market.sent().len(), 1);
    let writes = h.store.write_request_count() - requests;
    assert_eq!(writes, 3);
    assert_eq!(
        h.store.handoff_count() - handoffs,
        writes + 1,
        "one per commit and one for the scan of due jobs; no read leaves the worker"
    );

    // A burst: 32 payments at once share commits, and a handoff is a commit.
    let (handoffs, requests, commits) = (
        h.store.handoff_count(),
        h.store.write_request_count(),
        h.store.commit_count(),
    );
    let burst: Vec<_> = (0..32)
        .map(|i| {
            let runner = h.shop.runner.clone();
            tokio::spawn(async move {
                runner
                    .ingest(event(&format!("B{i}"), Paid, CARD_ITEM))
                    .await
            })
        })
        .collect();
    for task in burst {
        task.await.unwrap().unwrap();
    }
    let commits = h.store.commit_count() - commits;
    assert_eq!(h.store.write_request_count() - requests, 32);
    assert_eq!(
        h.store.handoff_count() - handoffs,
        commits,
        "a write that shares a batch hands nothing off"
    );
}

/// A marketplace that notes how many write requests the store had made when each call
/// reached it.
struct Counting {
    inner: MemoryMarketplace,
    store: Store,
    calls: Mutex<Vec<(&'static str, u64)>>,
}

impl Counting {
    fn note(&self, call: &'static str) {
        let n = self.store.write_request_count();
        self.calls.lock().unwrap().push((call, n));
    }

    fn calls(&self) -> Vec<(&'static str, u64)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Marketplace for Counting {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        self.note("send");
        self.inner.send_delivery(msg).await
    }

    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome {
        self.note("confirm");
        self.inner.confirm_shipment(req).await
    }

    fn reads_back(&self) -> bool {
        self.inner.reads_back()
    }

    async fn read_back(&self, msg: &DeliveryMessage, since_ms: u64) -> ReadBack {
        self.inner.read_back(msg, since_ms).await
    }
}

/// The default shop (zero delay, send_then_confirm, the `delivered` event routed to the log)
/// on a counting marketplace wrapped around `inner`.
fn counting_shop(inner: MemoryMarketplace) -> (tempfile::TempDir, Shop, Arc<Counting>) {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = support::pipeline_yaml(
        "{ min: 0s, max: 0s }",
        "{ mode: send_then_confirm, max_retries: 3, retry_delay: 20ms, readback_after: 1h }",
    )
    .replace(
        "notify: { channels: [log] }",
        "notify: { channels: [log], routes: { delivered: [log] } }",
    );
    support::write_config(
        dir.path(),
        &pipeline,
        &support::products_yaml("send_then_confirm"),
    );
    let config = config::load(dir.path()).unwrap_or_else(|e| panic!("test config:\n{e}"));
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    let keys: String = (0..3).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
    store.import_cards("keys", &keys, false, "test").unwrap();
    let market = Arc::new(Counting {
        inner,
        store: store.clone(),
        calls: Mutex::default(),
    });
    let shop = Shop::new(store, config, market.clone()).unwrap();
    (dir, shop, market)
}

async fn run_due_jobs(shop: &Shop) {
    for job in shop.store.due_jobs(u64::MAX, 10).unwrap() {
        shop.runner.run_job(job).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_durable_points_before_the_message_leaves_and_four_per_order() {
    let (_dir, shop, market) = counting_shop(MemoryMarketplace::new());
    let start = shop.store.write_request_count();
    let commits = shop.store.commit_count();
    shop.runner
        .ingest(event("M1", Paid, support::CARD_ITEM))
        .await
        .unwrap();
    run_due_jobs(&shop).await;
    let calls: Vec<(&str, u64)> = market
        .calls()
        .into_iter()
        .map(|(call, n)| (call, n - start))
        .collect();
    // Ingest, then the send claim (with the echo registration); the send result carries the
    // confirm claim; the confirm result carries the job's end.
    assert_eq!(calls, [("send", 2), ("confirm", 3)]);
    assert_eq!(shop.store.write_request_count() - start, 4);
    assert_eq!(shop.store.commit_count() - commits, 4, "one at a time");
    assert_eq!(shop.store.pending_job_count().unwrap(), 0);

    let d = shop.store.delivery("M1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered, "{:?}", d.history);
    assert_eq!(d.attempts, 1, "the confirm's own first attempt");
    let delivered: Vec<_> = shop
        .store
        .notifications(100)
        .unwrap()
        .into_iter()
        .filter(|n| n.event == xianyu_shopd::alert::EventKind::Delivered)
        .collect();
    assert_eq!(
        delivered.len(),
        1,
        "announced once, with the confirm result"
    );

    // The echo registered with the claim: the message coming back is ours, not the seller
    // typing (which would pause the chat bot).
    let sent = market.inner.sent();
    let rule = TakeoverRule {
        pause_ms: 60_000,
        toggle: "。".into(),
    };
    let echo = shop
        .store
        .chat_observe_own("main", "cid-M1", "echo-1", &sent[0].text, 0, Some(&rule))
        .unwrap();
    assert_eq!(echo, OwnMessage::Echo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_confirm_is_retried_and_its_failure_ends_no_job() {
    let inner = MemoryMarketplace::new();
    inner.script_consigns([ConsignOutcome::Failed {
        reason: "系统繁忙".into(),
        retryable: true,
    }]);
    let (_dir, shop, market) = counting_shop(inner);
    shop.runner
        .ingest(event("M2", Paid, support::CARD_ITEM))
        .await
        .unwrap();
    run_due_jobs(&shop).await;
    let d = shop.store.delivery("M2").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::FailedSafe, "{:?}", d.history);
    assert_eq!(
        shop.store.pending_job_count().unwrap(),
        1,
        "the retry waits"
    );
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    run_due_jobs(&shop).await;
    let d = shop.store.delivery("M2").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered, "{:?}", d.history);
    assert_eq!(market.inner.sent().len(), 1, "the message went once");
    assert_eq!(market.inner.consigned().len(), 1);
    assert_eq!(shop.store.pending_job_count().unwrap(), 0);
}

/// Issue 9 follow-up: the read-back of an unknown send is armed, and its job scheduled, in the
/// very transaction that records the outcome as unknown: nothing is written after it, so no
/// crash can fall between the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_send_is_recorded_with_its_read_back_armed() {
    let inner = MemoryMarketplace::with_conversations();
    inner.script_sends([SendOutcome::Unknown {
        reason: "no answer".into(),
    }]);
    let (_dir, shop, market) = counting_shop(inner);
    shop.runner
        .ingest(event("U1", Paid, support::CARD_ITEM))
        .await
        .unwrap();
    let before_job = shop.store.write_request_count();
    run_due_jobs(&shop).await;
    let at_send = market.calls()[0].1;
    assert_eq!(
        shop.store.write_request_count() - at_send,
        1,
        "only the outcome's own transaction after the send"
    );
    assert_eq!(at_send - before_job, 1, "the claim");
    assert_armed(&shop.store, "U1");
}

/// The same for a send found in flight after a crash: the claim that finds it arms the
/// read-back in its own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_found_in_flight_is_recorded_with_its_read_back_armed() {
    let (_dir, shop, market) = counting_shop(MemoryMarketplace::with_conversations());
    let h = &shop;
    h.runner
        .ingest(event("U2", Paid, support::CARD_ITEM))
        .await
        .unwrap();
    // The process claimed the send and died before the answer.
    claim_one_text_part(&h.store, "U2");
    let before = h.store.write_request_count();
    run_due_jobs(h).await;
    assert!(market.calls().is_empty(), "nothing is sent again");
    assert_eq!(h.store.write_request_count() - before, 1);
    assert_armed(&h.store, "U2");
}

/// What a process does just before it dies mid-send: the claim of one text part.
fn claim_one_text_part(store: &Store, order: &str) {
    let mut build = |_: &xianyu_shopd::store::OrderRecord, _: &[String]| {
        Ok(vec![xianyu_shopd::store::PartPlan {
            kind: xianyu_shopd::store::PartKind::Text,
            summary: String::new(),
            fingerprint: String::new(),
            url: None,
        }])
    };
    store.begin_send(order, &[], &mut build).unwrap();
}

fn assert_armed(store: &Store, order: &str) {
    let d = store.delivery(order).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::NeedsHuman, "{:?}", d.history);
    let armed = d.read_back.as_ref().expect("read-back armed");
    assert_eq!(armed.attempt, d.attempts);
    let jobs = store.due_jobs(u64::MAX, 10).unwrap();
    assert_eq!(jobs.len(), 1, "the read-back's job");
    assert_eq!(jobs[0].stage_name, "ship");
    assert!(
        jobs[0].due_ms >= store.now() + 3_000_000,
        "after readback_after (1h)"
    );
}

/// At the store's API: the unknown outcome and its read-back are one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_arms_the_read_back_with_the_unknown_outcome() {
    let h = Harness::default_shop();
    h.import_keys(1);
    h.ingest(event("U3", Paid, CARD_ITEM)).await;
    claim_one_text_part(&h.store, "U3");
    let config = h.shop.runner.config();
    let arm = ReadBackArm {
        resume: xianyu_shopd::pipeline::run_from(&config, xianyu_shopd::config::StageKind::Ship),
        due_ms: h.store.now() + 3_600_000,
    };
    let finish = xianyu_shopd::store::PartFinish {
        then: xianyu_shopd::store::SendThen::Confirm(&|_, _| None),
        masked: "",
        alerts: &[],
        echo: None,
        read_back: Some(&arm),
    };
    let unknown = PartResult::Unknown {
        reason: "no answer".into(),
    };
    let before = h.store.write_request_count();
    h.store
        .finish_part_with("U3", 0, &unknown, &finish)
        .unwrap();
    assert_eq!(h.store.write_request_count() - before, 1);
    assert_armed(&h.store, "U3");
}
