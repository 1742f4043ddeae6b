//! Message shape, follow-up and blacklist (issue 13 items 4 and 6), through the real pipeline
//! and store with the in-memory marketplace: one message per key or one merged message, a
//! retry that sends only the parts that did not go out, a follow-up sent at most once, and a
//! blacklisted buyer's paid order handed to the seller.

mod status_common;
mod support;

use support::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::event::EventStatus::Paid;
use xianyu_shopd::marketplace::SendOutcome;
use xianyu_shopd::store::{
    BeginDelivery, CardState, DeliveryState, NotReceived, OrderRecord, PartKind, PartNext,
    PartPlan, PartResult, PartState,
};

const ITEM: &str = "900000000010";

fn products(delivery: &str) -> String {
    format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 三件套激活码\n    category: virtual\n    auto_ship: true\n    template: key.txt.j2\n    cards: keys\n    delivery: {delivery}\n"
    )
}

const KEY_TEMPLATE: &str =
    "{% if unit %}第{{ unit }}/{{ units }}个：{% endif %}{% for k in cards %}[{{ k }}]{% endfor %}";
const FOLLOW_UP: &str = "使用说明：打开官网，输入卡密即可（订单 {{ order.order_id }}）";

fn shop(delivery: &str) -> Harness {
    let h = Harness::with_templates(
        &pipeline_yaml(
            "{ min: 0s, max: 0s }",
            "{ mode: send_then_confirm, max_retries: 3, retry_delay: 20ms }",
        ),
        &products(delivery),
        &[("key.txt.j2", KEY_TEMPLATE), ("follow.txt.j2", FOLLOW_UP)],
    );
    h.import_keys(10);
    h
}

fn paid(order: &str, quantity: u32) -> xianyu_shopd::event::OrderEvent {
    let mut ev = event(order, Paid, ITEM);
    ev.quantity = quantity;
    ev
}

/// The keys (`KEY-…`) a text carries.
fn keys_in(text: &str) -> Vec<String> {
    text.split('[')
        .skip(1)
        .filter_map(|p| p.split(']').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_sends_one_message_per_key_and_merged_sends_one() {
    let h = shop("{ shape: per_key }");
    h.ingest(paid("P1", 3)).await;
    h.settle().await;
    let sent = h.market.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    for (i, m) in sent.iter().enumerate() {
        assert!(
            m.text.starts_with(&format!("第{}/3个：", i + 1)),
            "{}",
            m.text
        );
        assert_eq!(keys_in(&m.text).len(), 1, "one key per message: {}", m.text);
    }
    let d = h.store.delivery("P1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(d.parts.len(), 3);
    assert!(
        d.parts
            .iter()
            .all(|p| p.state == PartState::Sent && p.kind == PartKind::Text)
    );
    assert!(
        d.parts.iter().all(|p| !p.summary.contains("SECRET")),
        "the ledger keeps masked summaries only: {:?}",
        d.parts
    );
    assert_eq!(
        h.market.consigned().len(),
        1,
        "one confirmation for the order"
    );
    // The order page lists each message with its own marker, keys masked.
    let running = status_common::serve(
        h,
        xianyu_shopd::health::Health::new(),
        xianyu_shopd::status::logs::LogBuffer::new(10),
        "127.0.0.1:0",
    )
    .await;
    let page = running.get("/orders/P1").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"ledger-parts\""), "{}", page.body);
    assert_eq!(
        page.body.matches("已发送").count() >= 3,
        true,
        "{}",
        page.body
    );
    assert!(!page.body.contains("SECRET"), "no key on the page");
    running.stop().await;

    let h = shop("{ shape: merged }");
    h.ingest(paid("M1", 3)).await;
    h.settle().await;
    let sent = h.market.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(keys_in(&sent[0].text).len(), 3, "{}", sent[0].text);
    assert!(
        !sent[0].text.contains('第'),
        "merged: unit is 0: {}",
        sent[0].text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_sends_only_the_messages_that_did_not_go_out() {
    let h = shop("{ shape: per_key }");
    h.market.script_sends([
        SendOutcome::Accepted {
            message_id: Some("first".into()),
        },
        SendOutcome::NotDelivered {
            reason: "rejected (code 200): CSI_FORBID".into(),
        },
    ]);
    h.ingest(paid("R1", 3)).await;
    h.settle().await;
    // First pass: message 1 accepted (scripted), message 2 refused; the retry sends 2 and 3.
    assert_eq!(h.market.send_calls(), 4);
    let resent: Vec<Vec<String>> = h.market.sent().iter().map(|m| keys_in(&m.text)).collect();
    assert_eq!(resent.len(), 2, "{resent:?}");
    let d = h.store.delivery("R1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(d.parts[0].message_id.as_deref(), Some("first"));
    assert_eq!(
        d.parts[1].attempts, 2,
        "message 2 went twice: refused, then accepted"
    );
    assert_eq!(d.parts[0].attempts, 1, "message 1 never again");
    assert!(
        resent
            .iter()
            .flatten()
            .all(|k| !d.parts[0].summary.contains(k.as_str()))
    );
    let all: Vec<String> = resent.into_iter().flatten().collect();
    assert_eq!(all.len(), 2);
    assert_ne!(all[0], all[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_messages_leaves_only_the_one_in_flight_uncertain() {
    let h = Harness::with_templates(
        &pipeline_yaml("{ min: 1h, max: 1h }", "{}"),
        &products("{ shape: per_key }"),
        &[("key.txt.j2", KEY_TEMPLATE)],
    );
    h.import_keys(4);
    h.ingest(paid("C1", 2)).await;
    h.dispatch_and_wait().await;
    // The daemon claimed message 1, had it accepted, claimed message 2 and died.
    let mut build = |_: &OrderRecord, cards: &[String]| -> Result<Vec<PartPlan>, String> {
        Ok(cards
            .iter()
            .map(|_| PartPlan {
                kind: PartKind::Text,
                summary: String::new(),
                fingerprint: String::new(),
                url: None,
            })
            .collect())
    };
    let begin = h.store.begin_send("C1", &[], &mut build).unwrap();
    assert!(
        matches!(begin, BeginDelivery::Go { part: 0, .. }),
        "{begin:?}"
    );
    let accepted = PartResult::Accepted {
        message_id: Some("m1".into()),
    };
    let next = h
        .store
        .finish_part("C1", 0, &accepted, false, "", &[])
        .unwrap();
    assert_eq!(next, PartNext::Next(1));
    let job = h.store.due_jobs(u64::MAX, 10).unwrap().pop().unwrap();
    h.shop.runner.run_job(job).await.unwrap();
    assert_eq!(
        h.market.send_calls(),
        0,
        "nothing is repeated after the crash"
    );
    let d = h.store.delivery("C1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::NeedsHuman);
    assert_eq!(d.parts[0].state, PartState::Sent);
    assert_eq!(d.parts[1].state, PartState::Unknown);
    let counts = h.store.card_counts().unwrap()["keys"].clone();
    assert_eq!(
        counts.get(CardState::Reserved),
        2,
        "both keys stay with the order"
    );

    // The seller checked: message 2 is missing. Only message 2 goes, with the same key.
    let from_start = xianyu_shopd::pipeline::first_run(&h.shop.runner.config());
    let rec = h
        .store
        .resolve_not_received("C1", NotReceived::Retry, "test", &from_start)
        .unwrap();
    assert_eq!(rec.parts[0].state, PartState::Sent);
    h.settle().await;
    let sent = h.market.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].text.starts_with("第2/2个："), "{}", sent[0].text);
    let d = h.store.delivery("C1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered, "{:?}", d.history);
    let counts = h.store.card_counts().unwrap()["keys"].clone();
    assert_eq!(counts.get(CardState::Delivered), 2);
    assert_eq!(counts.get(CardState::Available), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follow_up_goes_once_after_the_delivery() {
    let h = shop("{ shape: merged, follow_up: follow.txt.j2 }");
    h.ingest(paid("F1", 1)).await;
    h.settle().await;
    let sent = h.market.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1].text.starts_with("使用说明"), "{}", sent[1].text);
    assert!(sent[1].text.contains("F1"));
    // The same payment news again, and a re-run of the ship stage: nothing more goes out.
    h.ingest(paid("F1", 1)).await;
    h.settle().await;
    assert_eq!(h.market.sent().len(), 2);
    let d = h.store.delivery("F1").unwrap().unwrap();
    assert_eq!(d.follow_up.as_ref().map(|f| f.state), Some(PartState::Sent));

    // An unknown follow-up outcome is never repeated, and the delivery stays delivered.
    let h = shop("{ follow_up: follow.txt.j2 }");
    h.market.script_sends([
        SendOutcome::Accepted { message_id: None },
        SendOutcome::Unknown {
            reason: "sent, but no answer".into(),
        },
    ]);
    h.ingest(paid("F2", 1)).await;
    h.settle().await;
    assert_eq!(h.market.send_calls(), 2);
    let d = h.store.delivery("F2").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(
        d.follow_up.as_ref().map(|f| f.state),
        Some(PartState::Unknown)
    );
    assert_eq!(
        h.store
            .notifications(100)
            .unwrap()
            .iter()
            .filter(|n| n.event == EventKind::NeedsHuman)
            .count(),
        0,
        "a follow-up is not worth waking the seller for"
    );

    // A refused follow-up is retried.
    let h = shop("{ follow_up: follow.txt.j2 }");
    h.market.script_sends([
        SendOutcome::Accepted { message_id: None },
        SendOutcome::NotDelivered {
            reason: "not connected".into(),
        },
    ]);
    h.ingest(paid("F3", 1)).await;
    h.settle().await;
    assert_eq!(h.market.send_calls(), 3);
    let d = h.store.delivery("F3").unwrap().unwrap();
    assert_eq!(d.follow_up.as_ref().map(|f| f.state), Some(PartState::Sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_buyers_paid_order_goes_to_the_seller() {
    let pipeline = pipeline_yaml("{ min: 0s, max: 0s }", "{}")
        + "blacklist:\n  buyers: [\"2200000000666\", 2200000000777]\n";
    let h = Harness::with_templates(&pipeline, &products("{}"), &[("key.txt.j2", KEY_TEMPLATE)]);
    h.import_keys(2);
    assert!(h.shop.runner.config().is_blacklisted("2200000000777"));
    let mut ev = paid("B1", 1);
    ev.buyer_id = Some("2200000000666".into());
    h.ingest(ev).await;
    h.ingest(paid("B2", 1)).await;
    h.settle().await;
    let d = h.store.delivery("B1").unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Manual);
    let note = d.history.last().unwrap().seller_text();
    assert!(note.contains("黑名单"), "{note}");
    let sent = h.market.sent();
    assert_eq!(sent.len(), 1, "only the other buyer is delivered: {sent:?}");
    assert_eq!(sent[0].to.order_id, "B2");
    let manual = h
        .store
        .notifications(100)
        .unwrap()
        .into_iter()
        .filter(|n| n.event == EventKind::ManualShip && n.order_id.as_deref() == Some("B1"))
        .count();
    assert_eq!(manual, 1, "the seller is told once");
    assert_eq!(
        h.store.card_counts().unwrap()["keys"].get(CardState::Available),
        1,
        "no key was held for the blacklisted order"
    );
}
