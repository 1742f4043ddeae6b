//! A store written by an older build opens in this one with everything a seller had: orders,
//! their status logs, the delivery ledger, card keys, notifications and the audit trail.
//!
//! `tests/data/store-schema1.redb` was written by the first schema-1 build (JSON records) with
//! the shipped example config: `cards import office-2021 example-cards.txt`, `replay
//! example-events.jsonl`, then `orders ship 3003 --company 顺丰快递 --tracking SF1234567890`.
//! `tests/data/store-schema1-d734f78.redb` was written the same way by the last schema-1 build
//! (commit d734f78: chat, after-sale and statistics tables too), and
//! `tests/data/store-schema2-88f8c04.redb` the same way by the last schema-2 build (commit
//! 88f8c04: MessagePack maps). All open in this build and are migrated to schema 4 (the
//! per-order records as positional MessagePack arrays, `src/store/codec.rs`). The tests work
//! on copies; the committed files are never opened for writing.

#[path = "support/raw_table.rs"]
mod raw_table;

use std::path::Path;

use raw_table::raw_table;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use xianyu_shopd::clock;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::rollup_facts::Day;
use xianyu_shopd::store::{
    CardRow, CardState, DeliveryRecord, DeliveryState, OrderRecord, OutboxState, StatusLogEntry,
    StockLogEntry, Store,
};

fn open_copy(dir: &Path) -> Store {
    open_fixture(dir, "store-schema1.redb")
}

fn open_fixture(dir: &Path, name: &str) -> Store {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture, state.join("shop.redb")).unwrap();
    Store::open(&state, clock::system()).expect("the schema-1 store opens")
}

#[test]
fn a_schema_1_store_opens_with_every_order_key_and_notification() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path());
    the_example_shop_is_all_there(&store);
    drop(store);
    per_order_rows_are_positional(dir.path());
}

#[test]
fn a_store_of_the_last_schema_1_build_migrates_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_fixture(dir.path(), "store-schema1-d734f78.redb");
    let stats_before = store.rollups(Day(0), Day(u32::MAX), None).unwrap();
    assert!(!stats_before.is_empty(), "the fixture has statistics");
    the_example_shop_is_all_there(&store);
    drop(store);
    per_order_rows_are_positional(dir.path());
    // Opened again: already schema 4, nothing to migrate, the statistics as they were.
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    assert_eq!(
        store.rollups(Day(0), Day(u32::MAX), None).unwrap(),
        stats_before
    );
    assert_eq!(store.list_orders(None).unwrap().len(), 5);
}

fn open_raw(file: &Path) -> redb::Database {
    redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .open(file)
        .unwrap()
}

/// After the migration the store is schema 4 and its per-order tables hold positional
/// MessagePack arrays, neither JSON objects nor maps.
fn per_order_rows_are_positional(dir: &Path) {
    let db = open_raw(&dir.join("state/shop.redb"));
    let tx = db.begin_read().unwrap();
    let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let version = tx.open_table(meta).unwrap().get("schema_version").unwrap();
    assert_eq!(version.map(|v| v.value()), Some(4));
    let is_array = |first: u8| first & 0xf0 == 0x90 || first == 0xdc || first == 0xdd;
    for name in ["orders", "delivery_ledger"] {
        let table: TableDefinition<&str, &[u8]> = TableDefinition::new(name);
        let table = tx.open_table(table).unwrap();
        let mut rows = 0;
        for row in table.iter().unwrap() {
            let first = row.unwrap().1.value()[0];
            assert!(is_array(first), "{name}: an array, not JSON or a map");
            rows += 1;
        }
        assert!(rows > 0, "{name} has rows");
    }
    for name in ["order_status_log", "card_keys"] {
        let table: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new(name);
        for row in tx.open_table(table).unwrap().iter().unwrap() {
            let first = row.unwrap().1.value()[0];
            assert!(is_array(first), "{name}: an array, not JSON or a map");
        }
    }
}

/// Every row of a per-order table, decoded (maps before the migration, arrays after).
fn records<K, T>(db: &redb::Database, name: &str) -> Vec<(String, T)>
where
    K: redb::Key + 'static,
    for<'a> K::SelfType<'a>: std::fmt::Debug,
    T: serde::de::DeserializeOwned,
{
    let def: TableDefinition<K, &[u8]> = TableDefinition::new(name);
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(def).unwrap();
    let rows: Vec<(String, T)> = table
        .iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            let record = rmp_serde::from_slice(v.value())
                .unwrap_or_else(|e| panic!("{name} {:?}: {e}", k.value()));
            (format!("{:?}", k.value()), record)
        })
        .collect();
    rows
}

/// Everything the migration must keep: every per-order record (decoded) and the statistics
/// rows (byte for byte).
#[derive(Debug, PartialEq)]
struct Snapshot {
    orders: Vec<(String, OrderRecord)>,
    ledger: Vec<(String, DeliveryRecord)>,
    log: Vec<(String, StatusLogEntry)>,
    cards: Vec<(String, CardRow)>,
    stock_log: Vec<(String, StockLogEntry)>,
    rollup: Vec<(String, Vec<u8>)>,
    totals: Vec<(String, Vec<u8>)>,
}

fn snapshot(file: &Path) -> Snapshot {
    let db = open_raw(file);
    Snapshot {
        orders: records::<&str, _>(&db, "orders"),
        ledger: records::<&str, _>(&db, "delivery_ledger"),
        log: records::<(&str, u64), _>(&db, "order_status_log"),
        cards: records::<(&str, u64), _>(&db, "card_keys"),
        stock_log: records::<u64, _>(&db, "stock_log"),
        // Statistics rows: their encoding the migration must not touch, so compared raw.
        rollup: raw_table::<(u32, &str, &str)>(&db, "stats_rollup").1,
        totals: raw_table::<(u32, &str)>(&db, "stats_rollup_totals").1,
    }
}

#[test]
fn a_store_of_the_last_schema_2_build_migrates_with_every_record_unchanged() {
    migrates_with_every_record_unchanged("store-schema2-88f8c04.redb", 2);
}

/// `tests/data/store-schema3-c3ba8a2.redb`: written the same way by the only schema-3 build
/// (the change that landed as c3ba8a2, built before its rebase onto main: positional arrays,
/// enum variants by name).
#[test]
fn a_store_of_the_schema_3_build_migrates_with_every_record_unchanged() {
    migrates_with_every_record_unchanged("store-schema3-c3ba8a2.redb", 3);
}

/// The fixture `name` (schema `version`) opens, its per-order tables become schema-4 arrays,
/// and every record reads the same as before, the statistics rows byte for byte.
fn migrates_with_every_record_unchanged(name: &str, version: u64) {
    let dir = tempfile::tempdir().unwrap();
    // redb may write to a file it opens: the checks read a copy, never the fixture.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let copy = dir.path().join("before.redb");
    std::fs::copy(&fixture, &copy).unwrap();
    {
        let db = open_raw(&copy);
        let tx = db.begin_read().unwrap();
        let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
        let found = tx.open_table(meta).unwrap().get("schema_version").unwrap();
        assert_eq!(found.map(|v| v.value()), Some(version), "{name}");
    }
    let before = snapshot(&copy);
    assert_eq!(before.orders.len(), 5);
    assert!(!before.ledger.is_empty() && !before.log.is_empty() && !before.cards.is_empty());
    assert!(
        !before.rollup.is_empty() && !before.totals.is_empty(),
        "the fixture has statistics"
    );
    let store = open_fixture(dir.path(), name);
    drop(store);
    per_order_rows_are_positional(dir.path());
    let file = dir.path().join("state/shop.redb");
    assert!(
        snapshot(&file) == before,
        "{name}: the migration changed a record"
    );
    // Opened again: already schema 4, nothing to migrate; everything a seller had is there
    // (this last check also writes: it imports a key).
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    the_example_shop_is_all_there(&store);
}

fn the_example_shop_is_all_there(store: &Store) {
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
