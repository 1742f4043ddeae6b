//! The store file gives back the space its records no longer use: `xianyu-shopd compact`
//! (refused while a daemon holds the state directory) and the same work at daemon start when
//! most of the file is unused. Records are never changed by it; the per-order tables are
//! repacked into full pages.

mod support;

use std::path::Path;

use support::raw_table::raw_table;
use xianyu_shopd::clock;
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::store::compact::{self, START_MIN_WASTE};
use xianyu_shopd::store::{CardState, DB_FILE, DaemonLock, NextRun, Store};

/// A store whose file is mostly freed pages: big values written one commit each with small
/// ones kept between them (a busy day of small commits), then the big ones shrunk, so the
/// free space lies between live pages; plus keys and an account value that must survive.
fn wasteful_store(state: &Path) -> u64 {
    let store = Store::open(state, clock::system()).unwrap();
    let keys: String = (0..50).map(|i| format!("COMPACT-KEY-{i:04}\n")).collect();
    store.import_cards("keys", &keys, false, "test").unwrap();
    let big = vec![7u8; 256 << 10];
    let kept = vec![9u8; 16 << 10];
    for i in 0..48 {
        store
            .set_account_value("main", &format!("blob-{i}"), &big)
            .unwrap();
        store
            .set_account_value("main", &format!("kept-{i}"), &kept)
            .unwrap();
    }
    for i in 0..48 {
        store
            .set_account_value("main", &format!("blob-{i}"), b"small")
            .unwrap();
    }
    store.set_account_value("main", "device", b"dev-1").unwrap();
    drop(store);
    std::fs::metadata(state.join(DB_FILE)).unwrap().len()
}

fn assert_records_intact(state: &Path) {
    let store = Store::open(state, clock::system()).unwrap();
    assert_eq!(
        store.account_value("main", "device").unwrap().as_deref(),
        Some(&b"dev-1"[..])
    );
    assert_eq!(
        store.account_value("main", "blob-47").unwrap().as_deref(),
        Some(&b"small"[..])
    );
    assert_eq!(
        store
            .account_value("main", "kept-47")
            .unwrap()
            .map(|v| v.len()),
        Some(16 << 10)
    );
    let pools = store.card_counts().unwrap();
    assert_eq!(pools["keys"].get(CardState::Available), 50);
}

#[test]
fn compact_shrinks_the_file_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let before = wasteful_store(&state);
    assert!(
        before > START_MIN_WASTE,
        "the setup made a big file: {before}"
    );

    let out = support::shopd(dir.path())
        .args(["compact", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("数据库已整理"), "{stdout}");
    let after = std::fs::metadata(state.join(DB_FILE)).unwrap().len();
    assert!(
        after * 4 < before,
        "compact gave back most of the file: {before} -> {after} bytes"
    );
    assert_records_intact(&state);
}

#[test]
fn compact_is_refused_while_a_daemon_holds_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let before = wasteful_store(&state);
    let _daemon = DaemonLock::acquire(&state).unwrap();

    let out = support::shopd(dir.path())
        .args(["compact", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused while the daemon runs");
    assert!(stderr.contains("守护进程正在使用状态目录"), "{stderr}");
    assert_eq!(
        std::fs::metadata(state.join(DB_FILE)).unwrap().len(),
        before,
        "the file was not touched"
    );
}

#[test]
fn a_start_compacts_only_a_file_that_is_mostly_unused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let lock = DaemonLock::acquire(&state).unwrap();
    // A fresh, small store is left alone.
    drop(Store::open(&state, clock::system()).unwrap());
    assert_eq!(compact::compact_if_wasteful(&lock, &state).unwrap(), None);
    drop(lock);

    let before = wasteful_store(&state);
    let lock = DaemonLock::acquire(&state).unwrap();
    let done = compact::compact_if_wasteful(&lock, &state)
        .unwrap()
        .expect("a file that is mostly free pages is compacted");
    // Opening may tidy redb's own bookkeeping first, so "before" is the file as measured then.
    assert!(done.before.free() >= START_MIN_WASTE, "{done:?}");
    assert!(done.after.file * 4 < before, "{done:?}");
    assert!(!done.after.worth_compacting_at_start(), "{done:?}");
    // Nothing left to give back: the next start does nothing.
    assert_eq!(compact::compact_if_wasteful(&lock, &state).unwrap(), None);
    drop(lock);
    assert_records_intact(&state);
}

type Tables = Vec<(&'static str, u64, Vec<(String, Vec<u8>)>)>;

fn order_tables(state: &Path) -> Tables {
    let db = redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .open(state.join(DB_FILE))
        .unwrap();
    let mut out = Vec::new();
    for name in ["orders", "delivery_ledger"] {
        let (pages, rows) = raw_table::<&str>(&db, name);
        out.push((name, pages, rows));
    }
    let (pages, rows) = raw_table::<(&str, u64)>(&db, "order_status_log");
    out.push(("order_status_log", pages, rows));
    out
}

/// Orders that arrive out of key order and grow after they are written (paid after created)
/// leave their tables' pages about half full (redb splits a full page in halves). `compact`
/// copies those tables in key order into fresh ones: every row byte for byte the same, in far
/// fewer pages.
#[test]
fn compact_repacks_the_order_tables_without_changing_a_row() {
    const N: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = Store::open(&state, clock::system()).unwrap();
    let start = NextRun {
        stage: 1,
        stage_name: "classify".into(),
        config_version: "v1".into(),
    };
    // i * 7919 mod N visits every id once, out of order.
    let ids: Vec<String> = (0..N)
        .map(|i| format!("4129{:015}", (i * 7919) % N))
        .collect();
    for status in [EventStatus::PendingPayment, EventStatus::Paid] {
        for id in &ids {
            let mut ev = OrderEvent::new("main", id, status);
            ev.item_id = Some("900052644277".into());
            ev.buyer_nick = Some("小鱼".into());
            store.ingest(&ev, &start).unwrap();
        }
    }
    drop(store);
    let before = order_tables(&state);
    let lock = DaemonLock::acquire(&state).unwrap();
    compact::compact(&lock, &state).unwrap();
    drop(lock);
    let after = order_tables(&state);
    let (mut total_before, mut total_after) = (0, 0);
    for ((name, pages_before, rows_before), (_, pages_after, rows_after)) in
        before.iter().zip(&after)
    {
        assert!(rows_before.len() >= N, "{name}: {} rows", rows_before.len());
        assert!(rows_after == rows_before, "{name}: the rows changed");
        assert!(
            pages_after < pages_before,
            "{name}: {pages_before} leaf pages before, {pages_after} after"
        );
        total_before += pages_before;
        total_after += pages_after;
    }
    assert!(
        total_after * 4 <= total_before * 3,
        "{total_before} leaf pages before, {total_after} after: {before_pages:?} -> {after_pages:?}",
        before_pages = before.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
        after_pages = after.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
    );
    let store = Store::open(&state, clock::system()).unwrap();
    assert_eq!(store.list_orders(None).unwrap().len(), N);
}
