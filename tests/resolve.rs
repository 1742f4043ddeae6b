//! Uncertain deliveries are closed out explicitly and safely (issue 9, D1 and D13): a
//! `needs_human` order keeps its key until the seller says what the buyer received
//! (`orders resolve`), `orders ship` never releases it, a platform shipment closes it, and every
//! key always has an owner.

mod support;

use std::path::Path;
use std::process::Output;

use support::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::event::EventStatus::*;
use xianyu_shopd::marketplace::SendOutcome;
use xianyu_shopd::store::{CardState, DeliveryState, Holding, Store};

fn bin(dir: &Path, args: &[&str]) -> Output {
    shopd(dir).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn held_ids(store: &Store, order: &str) -> Vec<u64> {
    match store.delivery(order).unwrap().unwrap().holding {
        Holding::Cards { ids, .. } => ids,
        other => panic!("{order} holds {other:?}"),
    }
}

fn counts(store: &Store) -> [u64; 4] {
    let c = &store.card_counts().unwrap()["keys"];
    [
        c.get(CardState::Available),
        c.get(CardState::Reserved),
        c.get(CardState::Delivered),
        c.get(CardState::Revoked),
    ]
}

/// A shop with two keys where order A's send had an unknown outcome: A is `needs_human` and
/// holds the first key. Returns the harness (its directory is the config dir for the binary).
async fn uncertain_order_a(keys: usize) -> Harness {
    let h = Harness::default_shop();
    h.import_keys(keys);
    h.market.script_sends([SendOutcome::Unknown {
        reason: "no answer within 20s".into(),
    }]);
    h.ingest(event("A", Paid, CARD_ITEM)).await;
    h.settle().await;
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::NeedsHuman
    );
    h
}

fn paid_line(id: &str) -> String {
    format!(
        "{{\"account\":\"main\",\"order_id\":\"{id}\",\"status\":\"paid\",\"item_id\":\"{CARD_ITEM}\",\"cid\":\"c{id}\",\"buyer_id\":\"b{id}\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_ship_never_releases_a_possibly_sent_key() {
    let h = uncertain_order_a(2).await;
    let d = h.dir.path().to_path_buf();
    let a_key = held_ids(&h.store, "A");

    // D1: the seller's natural next step. Before the fix this released A's key to the pool.
    let ship = bin(&d, &["orders", "ship", "A"]);
    assert!(!ship.status.success(), "{}", text(&ship));
    assert!(
        text(&ship).contains("orders resolve A --received"),
        "{}",
        text(&ship)
    );
    assert_eq!(counts(&h.store), [1, 1, 0, 0], "A still holds its key");

    // The next buyer gets the other key, never A's.
    std::fs::write(d.join("b.jsonl"), paid_line("B")).unwrap();
    let replay = bin(&d, &["replay", "b.jsonl"]);
    assert!(replay.status.success(), "{}", text(&replay));
    let b_key = held_ids(&h.store, "B");
    assert_ne!(a_key, b_key);
    assert!(h.store.card_owner_problems().unwrap().is_empty());

    // The seller checked the chat: A's buyer has it. The daemon (here: replay) then confirms.
    let resolve = bin(&d, &["orders", "resolve", "A", "--received"]);
    assert!(resolve.status.success(), "{}", text(&resolve));
    assert!(
        text(&resolve).contains("已记为买家已收到"),
        "{}",
        text(&resolve)
    );
    let rec = h.store.delivery("A").unwrap().unwrap();
    assert_eq!(
        rec.state,
        DeliveryState::Sent,
        "the confirm step is still to do"
    );
    assert_eq!(
        held_ids(&h.store, "A"),
        a_key,
        "the audit trail keeps the key"
    );
    let again = bin(&d, &["replay", "/dev/null"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("confirm order=A"), "{}", text(&again));
    assert!(!text(&again).contains("send    order=A"), "never resent");
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(counts(&h.store), [0, 0, 2, 0], "balanced, nothing reserved");
    assert!(h.store.card_owner_problems().unwrap().is_empty());
    let audit = h.store.audit_tail(10).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "orders.resolve" && e.detail.starts_with("A: received")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_received_with_retry_gives_the_key_back_and_delivers_again() {
    let h = uncertain_order_a(1).await;
    let d = h.dir.path().to_path_buf();
    let key = held_ids(&h.store, "A");

    let choose = bin(&d, &["orders", "resolve", "A", "--not-received"]);
    assert!(!choose.status.success(), "the seller must choose");
    assert!(text(&choose).contains("--retry"), "{}", text(&choose));

    let resolve = bin(&d, &["orders", "resolve", "A", "--not-received", "--retry"]);
    assert!(resolve.status.success(), "{}", text(&resolve));
    let rec = h.store.delivery("A").unwrap().unwrap();
    assert_eq!(rec.state, DeliveryState::Planned);
    assert!(
        rec.history
            .iter()
            .any(|e| e.note.contains(&format!("#{}", key[0]))),
        "the released key id stays in the history: {:?}",
        rec.history
    );
    let replay = bin(&d, &["replay", "/dev/null"]);
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(
        text(&replay).contains("send    order=A"),
        "{}",
        text(&replay)
    );
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(counts(&h.store), [0, 0, 1, 0]);
    assert!(h.store.card_owner_problems().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_received_with_manual_leaves_it_to_the_seller() {
    let h = uncertain_order_a(1).await;
    let d = h.dir.path().to_path_buf();
    let resolve = bin(
        &d,
        &["orders", "resolve", "A", "--not-received", "--manual"],
    );
    assert!(resolve.status.success(), "{}", text(&resolve));
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Manual
    );
    assert_eq!(
        counts(&h.store),
        [1, 0, 0, 0],
        "the key is back in the pool"
    );
    // The seller sent something by hand and records it.
    let ship = bin(&d, &["orders", "ship", "A"]);
    assert!(ship.status.success(), "{}", text(&ship));
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::ShippedManually
    );
    // Resolving twice is refused: nothing is uncertain any more.
    let twice = bin(&d, &["orders", "resolve", "A", "--received"]);
    assert!(!twice.status.success());
    assert!(text(&twice).contains("needs_human"), "{}", text(&twice));
    assert!(h.store.card_owner_problems().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_shipment_closes_an_uncertain_delivery() {
    let h = uncertain_order_a(3).await;
    // D13: before the fix the order moved but the ledger stayed needs_human, the key reserved.
    h.ingest(event("A", Shipped, CARD_ITEM)).await;
    let rec = h.store.delivery("A").unwrap().unwrap();
    assert_eq!(rec.state, DeliveryState::Delivered);
    assert!(rec.history.last().unwrap().note.contains("已发货"));
    assert_eq!(counts(&h.store), [2, 0, 1, 0]);

    // An uncertain send followed by the buyer confirming receipt.
    h.market.script_sends([SendOutcome::Unknown {
        reason: "socket closed".into(),
    }]);
    h.ingest(event("C", Paid, CARD_ITEM)).await;
    h.settle().await;
    assert_eq!(
        h.store.delivery("C").unwrap().unwrap().state,
        DeliveryState::NeedsHuman
    );
    h.ingest(event("C", Completed, CARD_ITEM)).await;
    assert_eq!(
        h.store.delivery("C").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
    assert_eq!(
        counts(&h.store),
        [1, 0, 2, 0],
        "balanced: nothing stays reserved"
    );
    assert!(h.store.card_owner_problems().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_shipment_before_our_send_gives_the_key_back() {
    let h = Harness::new(
        &pipeline_yaml("{ min: 1h, max: 1h }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    h.import_keys(1);
    h.ingest(event("S", Paid, CARD_ITEM)).await;
    h.dispatch_and_wait().await;
    assert_eq!(counts(&h.store), [0, 1, 0, 0]);
    // The seller shipped it in the app while our delay was running.
    h.ingest(event("S", Shipped, CARD_ITEM)).await;
    let rec = h.store.delivery("S").unwrap().unwrap();
    assert_eq!(rec.state, DeliveryState::ShippedManually);
    assert_eq!(
        counts(&h.store),
        [1, 0, 0, 0],
        "nothing was sent: the key goes back"
    );
    assert_eq!(h.store.pending_job_count().unwrap(), 0);
    assert!(h.store.card_owner_problems().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_needs_human_alert_offers_both_commands_and_the_chat() {
    let h = uncertain_order_a(1).await;
    let alert = h
        .store
        .notifications(100)
        .unwrap()
        .into_iter()
        .find(|n| n.event == EventKind::NeedsHuman)
        .expect("needs_human alert");
    for needle in [
        "orders resolve A --received",
        "orders resolve A --not-received --retry",
        "--not-received --manual",
        &format!("https://www.goofish.com/im?itemId={CARD_ITEM}&peerUserId=buyer-A"),
    ] {
        assert!(
            alert.text.contains(needle),
            "{needle} missing:\n{}",
            alert.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_after_an_uncertain_send_keeps_the_key_owned() {
    let h = uncertain_order_a(1).await;
    h.ingest(event("A", Refunded, CARD_ITEM)).await;
    assert_eq!(counts(&h.store), [0, 0, 0, 1], "revoked, still A's");
    assert!(h.store.card_owner_problems().unwrap().is_empty());
    let d = h.dir.path().to_path_buf();
    let retry = bin(&d, &["orders", "resolve", "A", "--not-received", "--retry"]);
    assert!(
        !retry.status.success(),
        "a refunded order is not delivered again"
    );
    let back = bin(
        &d,
        &["orders", "resolve", "A", "--not-received", "--manual"],
    );
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(
        h.store.delivery("A").unwrap().unwrap().state,
        DeliveryState::Cancelled
    );
    assert_eq!(counts(&h.store), [1, 0, 0, 0], "the buyer never had it");
    assert!(h.store.card_owner_problems().unwrap().is_empty());
}
