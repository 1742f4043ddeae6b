//! A store written by an older build opens in this one with everything a seller had: orders,
//! their status logs, the delivery ledger, card keys, notifications and the audit trail.
//!
//! `tests/data/store-schema1.redb` was written by the schema-1 build (JSON records) with the
//! shipped example config: `cards import office-2021 example-cards.txt`, `replay
//! example-events.jsonl`, then `orders ship 3003 --company 顺丰快递 --tracking SF1234567890`.
//! The test works on a copy; the committed file is never opened for writing.

use std::path::Path;

use xianyu_shopd::clock;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::{CardState, DeliveryState, OutboxState, Store};

fn open_copy(dir: &Path) -> Store {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-schema1.redb");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture, state.join("shop.redb")).unwrap();
    Store::open(&state, clock::system()).expect("the schema-1 store opens")
}

#[test]
fn a_schema_1_store_opens_with_every_order_key_and_notification() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path());

    let mut orders: Vec<(String, OrderStatus)> = store
        .list_orders(None)
        .unwrap()
        .into_iter()
        .map(|o| (o.order_id, o.status))
        .collect();
    orders.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        orders,
        vec![
            ("3001".to_string(), OrderStatus::PendingShip),
            ("3002".to_string(), OrderStatus::Shipped),
            ("3003".to_string(), OrderStatus::Shipped),
            ("3004".to_string(), OrderStatus::Closed),
            ("3005".to_string(), OrderStatus::PendingShip),
        ]
    );

    let office = store.order_detail("3002").unwrap().expect("order 3002");
    assert_eq!(office.order.item_id.as_deref(), Some("900052644277"));
    assert_eq!(office.order.amount.as_deref(), Some("19.90"));
    assert_eq!(office.log.len(), 2, "{:?}", office.log);
    assert_eq!(office.log[1].to, OrderStatus::Shipped);
    let ledger = office.ledger.expect("the office key's ledger row");
    assert_eq!(ledger.state, DeliveryState::Delivered);
    assert_eq!(ledger.attempts, 1);
    let steps: Vec<DeliveryState> = ledger.history.iter().map(|e| e.state).collect();
    assert_eq!(
        steps,
        vec![
            DeliveryState::Planned,
            DeliveryState::Reserved,
            DeliveryState::Scheduled,
            DeliveryState::Sending,
            DeliveryState::Sent,
            DeliveryState::Confirming,
            DeliveryState::Delivered,
        ]
    );
    assert_eq!(office.cards.len(), 1);
    assert_eq!(office.cards[0].2, CardState::Delivered);

    let iphone = store.order_detail("3003").unwrap().expect("order 3003");
    let shipped = iphone.ledger.expect("the iPhone's ledger row");
    assert_eq!(shipped.state, DeliveryState::ShippedManually);

    let pools = store.card_counts().unwrap();
    let pool = &pools["office-2021"];
    assert_eq!(
        (
            pool.get(CardState::Available),
            pool.get(CardState::Delivered)
        ),
        (2, 1)
    );

    let sent: Vec<String> = store
        .notifications(100)
        .unwrap()
        .into_iter()
        .filter(|n| n.state == OutboxState::Sent)
        .filter_map(|n| n.order_id)
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.contains(&"3003".to_string()) && sent.contains(&"3005".to_string()));
    assert!(
        store
            .audit_tail(10)
            .unwrap()
            .iter()
            .any(|a| a.detail.contains("SF1234567890")),
        "the manual shipment is in the audit trail"
    );

    // The store is writable after the open: a new key lands in the same pool.
    let report = store
        .import_cards("office-2021", "OFFICE-NEW-KEY-9999\n", false, "test")
        .unwrap();
    assert_eq!(report.added, 1);
    assert_eq!(
        store.card_counts().unwrap()["office-2021"].get(CardState::Available),
        3
    );
}
