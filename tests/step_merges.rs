//! Fewer durable points per order without giving up "committed before the effect" (issue 15):
//! a paid order's keys are held by the ingest transaction itself, so the payment and the
//! reservation are on disk together before any stage runs, and the whole zero-delay delivery
//! takes 7 commits instead of 8.

mod support;

use xianyu_shopd::event::EventStatus::Paid;
use xianyu_shopd::store::{CardState, DeliveryState, Holding};

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

    // The stages then find the keys held (stock-check writes nothing) and deliver them:
    // send claim, the message's echo registration, send result, confirm claim, confirm
    // result, job removal, and the notify stage's `delivered` row when the seller routes it.
    let before = h.store.commit_count();
    h.dispatch_and_wait().await;
    let announced = h
        .store
        .notifications(100)
        .unwrap()
        .iter()
        .any(|n| n.event == xianyu_shopd::alert::EventKind::Delivered);
    assert_eq!(h.store.commit_count() - before, 6 + u64::from(announced));
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
