//! Supplier cards (issue 13 item 1) end to end over real sockets: the daemon against the
//! loopback fake Goofish and a loopback fake supplier (`fake::supplier`). A supplier that
//! takes the request and never answers is not asked again and the order goes to the seller;
//! a refused connection is retried and the card fetched once; a kill -9 of the real binary
//! between the fetch and the send reuses the stored card.

mod goofish_env;

use std::path::Path;
use std::time::Duration;

use goofish_env::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::clock;
use xianyu_shopd::fake::supplier::{FakeSupplier, SupplierMode};
use xianyu_shopd::fake::{FakeGoofish, Fault};
use xianyu_shopd::store::{CallState, DeliveryState, ReturnState, Store};

/// ITEM's product buys its card from the supplier whose URL is in `state/supplier-url.txt`.
fn write_supplier_config(dir: &Path, fake: &FakeGoofish, url: &str, timeout: &str) {
    write_config(dir, fake, QUICK, &[("main", SELLER)]);
    let products = format!(
        "products:\n  - item_id: \"{ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    supplier:\n      url_file: state/supplier-url.txt\n      headers: {{ X-Shop: test }}\n      body: {{ order: \"{{{{ order_id }}}}\", piece: \"{{{{ unit }}}}\" }}\n      response: data.card\n      timeout: {timeout}\n      retries: 5\n      return:\n        url_file: state/supplier-return-url.txt\n        body: {{ card: \"{{{{ card }}}}\", ref: \"{{{{ idempotency_key }}}}\" }}\n"
    );
    std::fs::write(dir.join("products.yaml"), products).unwrap();
    std::fs::write(dir.join("state/supplier-url.txt"), url).unwrap();
    let return_url = url.replace("/buy", "/return");
    std::fs::write(dir.join("state/supplier-return-url.txt"), return_url).unwrap();
}

async fn start_env(url: &str, timeout: &str) -> Env {
    let fake = FakeGoofish::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_supplier_config(dir.path(), &fake, url, timeout);
    Env::launch_on(fake, dir, "", &[SELLER]).await
}

fn delivery_state(store: &Store, order: &str) -> Option<DeliveryState> {
    store.delivery(order).unwrap().map(|d| d.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_that_never_answers_is_not_asked_again_and_the_seller_checks() {
    let supplier = FakeSupplier::start(SupplierMode::Hang).await.unwrap();
    let env = start_env(&supplier.buy_url(), "1s").await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    let handed =
        wait_for(|| delivery_state(env.store(), &order) == Some(DeliveryState::NeedsHuman)).await;
    assert!(handed, "{:?}", env.store().delivery(&order).unwrap());
    // Longer than every retry delay: nothing asks the supplier again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(supplier.hits_on("/buy").len(), 1, "asked exactly once");
    assert_eq!(supplier.sold().len(), 1, "one card sold, never two");
    assert!(
        env.fake.sent_messages().is_empty(),
        "nothing sent to the buyer"
    );
    assert!(env.fake.consigns().is_empty(), "not confirmed");
    assert_eq!(env.alerts(EventKind::NeedsHuman), 1);
    let calls = env.store().supplier_calls(&order).unwrap().unwrap();
    assert_eq!(calls.units.len(), 1);
    assert_eq!(calls.units[0].state, CallState::Uncertain);
    let reason = calls.units[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.contains("没有答复") && reason.contains("核对"),
        "{reason}"
    );
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert!(
        d.history
            .iter()
            .any(|e| e.seller_text().contains("供应商结果不确定")),
        "{:?}",
        d.history
    );
    supplier.shutdown();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_and_the_card_fetched_once() {
    let addr = FakeSupplier::reserve().unwrap();
    let env = start_env(&format!("http://{addr}/buy"), "5s").await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    // The first call meets a refused connection: nothing bought, retried later.
    let refused = wait_for(|| {
        env.store()
            .supplier_calls(&order)
            .unwrap()
            .is_some_and(|c| c.units[0].attempts >= 1 && c.units[0].state == CallState::Pending)
    })
    .await;
    assert!(refused, "{:?}", env.store().supplier_calls(&order).unwrap());
    let supplier = FakeSupplier::start_on(addr, SupplierMode::Sell)
        .await
        .unwrap();
    env.wait_delivered(&order).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let hits = supplier.hits_on("/buy");
    assert_eq!(hits.len(), 1, "fetched once: {hits:?}");
    let key = format!("{order}-1");
    assert_eq!(hits[0].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(hits[0].body["idempotency_key"], key.as_str());
    assert_eq!(hits[0].body["order"], order.as_str());
    assert_eq!(hits[0].body["piece"], "1");
    let cid = env.fake.order_cid(&order).unwrap();
    let sent = env.delivered_to(&cid);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].text.contains(&format!("卡密：CARD-{key}")),
        "{}",
        sent[0].text
    );
    assert_eq!(env.accepted_consigns(&order), 1);
    let calls = env.store().supplier_calls(&order).unwrap().unwrap();
    assert_eq!(calls.units[0].state, CallState::Fetched);
    assert!(calls.units[0].attempts >= 2);
    let shown = calls.units[0].card.clone().unwrap();
    assert!(!shown.contains(&key), "masked outside the message: {shown}");
    let content = env
        .store()
        .order(&order)
        .unwrap()
        .unwrap()
        .ship_content
        .unwrap();
    assert!(!content.contains(&format!("CARD-{key}")), "{content}");
    // The order page shows the supplier-call record, the card masked.
    let addr = env.daemon.as_ref().unwrap().status_addr;
    let page = fetch_page(&format!("http://{addr}/orders/{order}")).await;
    assert!(
        page.contains("供货商请求") && page.contains("已取得"),
        "{page}"
    );
    assert!(page.contains(&shown) && page.contains(&key), "{page}");
    assert!(
        !page.contains(&format!("CARD-{key}")),
        "the card leaked: {page}"
    );
    supplier.shutdown();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_card_is_given_back_once_when_the_order_is_refunded_before_it_was_sent() {
    let supplier = FakeSupplier::start(SupplierMode::Sell).await.unwrap();
    let env = start_env(&supplier.buy_url(), "5s").await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    // The platform refuses every send: the card is bought and stored, nothing reaches the buyer.
    env.fake.fault(Fault::RejectSends {
        reason: "CSI_FORBID".into(),
    });
    env.fake.pay(&order);
    assert!(
        env.fake
            .wait_until(WAIT, |f| !f.sent_messages().is_empty())
            .await
    );
    env.fake.refund(&order);
    env.fake.refund_complete(&order);
    let returned = wait_for(|| supplier.hits_on("/return").len() == 1).await;
    assert!(returned, "{:?}", supplier.hits());
    let key = format!("{order}-1");
    let hit = &supplier.hits_on("/return")[0];
    assert_eq!(hit.body["card"], format!("CARD-{key}").as_str());
    assert_eq!(hit.idempotency_key.as_deref(), Some(key.as_str()));
    let done = wait_for(|| {
        env.store()
            .supplier_calls(&order)
            .unwrap()
            .is_some_and(|c| c.units[0].returned == Some(ReturnState::Returned))
    })
    .await;
    assert!(done, "{:?}", env.store().supplier_calls(&order).unwrap());
    assert_eq!(
        delivery_state(env.store(), &order),
        Some(DeliveryState::Cancelled)
    );
    // A repeated refund message does not return it again.
    env.fake.repeat_last_push(SELLER);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(supplier.hits_on("/return").len(), 1);
    assert_eq!(supplier.hits_on("/buy").len(), 1);
    supplier.shutdown();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_fetch_and_send_the_stored_card_is_sent_and_never_bought_again() {
    let fake = FakeGoofish::start().await.unwrap();
    let supplier = FakeSupplier::start(SupplierMode::Sell).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_supplier_config(dir.path(), &fake, &supplier.buy_url(), "5s");
    // The retry after the refused send is 4 s away: the kill lands while nothing is in flight.
    let pipeline = std::fs::read_to_string(dir.path().join("pipeline.yaml")).unwrap();
    let pipeline = pipeline.replace("retry_delay: 300ms", "retry_delay: 4s");
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    let state = dir.path().join("state");
    let open = || Store::open(&state, clock::system()).unwrap();

    let mut child = run_binary(dir.path());
    assert!(
        fake.wait_until(WAIT, |f| f.stats(SELLER).live >= 1
            && f.stats(SELLER).syncs >= 1)
            .await
    );
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    // Every send is refused by the platform: the card is fetched and stored, the message
    // provably does not leave, and the process dies while the retry waits.
    fake.fault(Fault::RejectSends {
        reason: "CSI_FORBID".into(),
    });
    fake.pay(&order);
    assert!(
        fake.wait_until(WAIT, |f| !f.sent_messages().is_empty())
            .await,
        "a send was tried"
    );
    // Kill only once the refusal is recorded (failed_safe, retry pending): a kill while the
    // send is in flight would rightly make the outcome unknown instead.
    let settled = wait_for(|| {
        Store::open(&state, clock::system())
            .ok()
            .and_then(|s| s.delivery(&order).ok().flatten())
            .is_some_and(|d| d.state == DeliveryState::FailedSafe)
    })
    .await;
    assert!(settled, "{:?}", open().delivery(&order).unwrap());
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(supplier.hits_on("/buy").len(), 1);
    let calls = open().supplier_calls(&order).unwrap().unwrap();
    assert_eq!(
        calls.units[0].state,
        CallState::Fetched,
        "stored before the send"
    );
    assert!(fake.sent_messages().iter().all(|m| !m.delivered));
    fake.clear_faults();

    let mut child = run_binary(dir.path());
    let delivered = fake
        .wait_until(2 * WAIT, |f| f.sent_messages().iter().any(|m| m.delivered))
        .await;
    assert!(
        delivered,
        "{:?}\n{:?}",
        fake.sent_messages(),
        open().delivery(&order).unwrap()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let key = format!("{order}-1");
    assert_eq!(supplier.hits_on("/buy").len(), 1, "never bought again");
    let reached: Vec<_> = fake
        .sent_messages()
        .into_iter()
        .filter(|m| m.delivered)
        .collect();
    assert_eq!(reached.len(), 1, "{reached:?}");
    assert!(
        reached[0].text.contains(&format!("卡密：CARD-{key}")),
        "{}",
        reached[0].text
    );
    supplier.shutdown();
}

/// The chat guard's list of keys that reached a buyer includes supplier cards, so a model
/// reply can never repeat one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_supplier_card_is_among_the_keys_the_chat_guard_blocks() {
    let supplier = FakeSupplier::start(SupplierMode::Sell).await.unwrap();
    let products = format!(
        "products:\n  - item_id: \"{ITEM}\"\n    title: 点卡\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    supplier:\n      url_file: state/supplier-url.txt\n      response: data.card\n"
    );
    let pipeline = "accounts:\n  - id: main\n    cookies_env: TEST_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: {}\n  - notify: { channels: [log] }\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(dir.path().join("products.yaml"), products).unwrap();
    std::fs::write(
        dir.path().join("templates/card.txt.j2"),
        "{% for k in cards %}卡密：{{ k }}{% endfor %}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("state/supplier-url.txt"),
        supplier.buy_url(),
    )
    .unwrap();
    let config = xianyu_shopd::config::load(dir.path()).unwrap();
    let store = Store::in_memory(clock::system()).unwrap();
    let market = std::sync::Arc::new(xianyu_shopd::marketplace::memory::MemoryMarketplace::new());
    let shop = xianyu_shopd::app::Shop::new(store.clone(), config, market.clone()).unwrap();
    let mut ev =
        xianyu_shopd::event::OrderEvent::new("main", "S1", xianyu_shopd::event::EventStatus::Paid);
    ev.item_id = Some(ITEM.into());
    ev.buyer_id = Some(BUYER.into());
    ev.cid = Some("c1".into());
    shop.runner.ingest(ev).await.unwrap();
    shop.scheduler.run_until_idle(None).await.unwrap();
    assert_eq!(delivery_state(&store, "S1"), Some(DeliveryState::Delivered));
    let orders = store.chat_buyer_orders("main", BUYER).unwrap();
    let keys = store.chat_delivered_keys(&orders).unwrap();
    assert_eq!(keys, vec!["CARD-S1-1".to_string()]);
    assert!(market.sent()[0].text.contains("CARD-S1-1"));
    supplier.shutdown();
}
