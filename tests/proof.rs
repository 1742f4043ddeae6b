//! Proof of delivery (issue 13 item 3) over real sockets: the confirm call's `tradeText`
//! reaches the fake Goofish exactly as rendered, keys masked unless the seller opted in, on
//! the seller-centre consign API, and on the plain one for a seller without 鱼小铺; the order
//! detail page (issue 13 item 7) and `orders show` show the very `tradeText` the fake received,
//! never a key.

mod goofish_env;
#[path = "support/html.rs"]
mod html;

use goofish_env::*;
use html::html_escape;
use xianyu_shopd::fake::{FakeGoofish, Fault};
use xianyu_shopd::store::mask_secret;

const MERCHANT: &str = "mtop.taobao.idle.logistics.merchant.consign.dummy";
const PLAIN: &str = "mtop.taobao.idle.logistic.consign.dummy";

/// The key a delivery message carries (its `卡密：` line).
fn key_in(text: &str) -> String {
    let line = text.lines().find_map(|l| l.strip_prefix("卡密："));
    line.expect("a 卡密 line").to_string()
}

/// The confirm calls the fake received for `order`, in order.
fn consigns_of(env: &Env, order: &str) -> Vec<xianyu_shopd::fake::Consign> {
    let all = env.fake.consigns().into_iter();
    all.filter(|c| c.order_id == order).collect()
}

/// The order detail page: its JSON twin and its HTML.
async fn order_page(env: &Env, order: &str) -> (serde_json::Value, String) {
    let addr = env.daemon.as_ref().unwrap().status_addr;
    let json = fetch_page(&format!("http://{addr}/api/orders/{order}")).await;
    let html = fetch_page(&format!("http://{addr}/orders/{order}")).await;
    (serde_json::from_str(&json).unwrap(), html)
}

/// `orders show ORDER` through the real binary, once the daemon has let go of the store.
async fn orders_show(mut env: Env, order: &str) -> String {
    if let Some(daemon) = env.daemon.take() {
        daemon.stop().await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(env.dir.path())
        .args(["orders", "show", order])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("发货记录"), "a real order: {stdout}");
    stdout
}

/// ITEM delivers a key from the pool with `delivery` as given.
async fn start_env(delivery: &str, fault: Option<Fault>) -> Env {
    let fake = FakeGoofish::start().await.unwrap();
    if let Some(f) = fault {
        fake.fault_for(SELLER, f);
    }
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &fake, QUICK, &[("main", SELLER)]);
    let products = format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n    delivery: {delivery}\n"
    );
    std::fs::write(dir.path().join("products.yaml"), products).unwrap();
    std::fs::write(
        dir.path().join("templates/proof.txt.j2"),
        "已发货：{% for k in cards %}{{ k }}{% endfor %}（{{ order.item_title }}）",
    )
    .unwrap();
    let keys = "KEY-0001-SECRET\nKEY-0002-SECRET\n";
    Env::launch_on(fake, dir, keys, &[SELLER]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirm_carries_the_delivered_message_with_its_key_masked() {
    let env = start_env("{ proof: content }", None).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    let cid = env.fake.order_cid(&order).unwrap();
    let sent = env.delivered_to(&cid);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let key = key_in(&sent[0].text);
    let expected = sent[0].text.replace(&key, &mask_secret(&key));
    let consigns = consigns_of(&env, &order);
    assert_eq!(consigns.len(), 1, "{consigns:?}");
    assert!(consigns[0].accepted);
    assert_eq!(consigns[0].api, MERCHANT);
    assert_eq!(
        consigns[0].trade_text, expected,
        "exactly as rendered, masked"
    );
    assert!(!consigns[0].trade_text.contains(&key));
    assert!(consigns[0].pic_list.is_empty());
    // The order page shows what the form received, as recorded when the call was claimed.
    let (json, html) = order_page(&env, &order).await;
    let proof = &json["ledger"]["proof"];
    assert_eq!(
        proof["trade_text"],
        consigns[0].trade_text.as_str(),
        "{json}"
    );
    assert_eq!(proof["plain_cards"], false);
    assert_eq!(proof["attempt"], 1);
    assert_eq!(proof["pic_list"], serde_json::json!([]));
    let shown = format!(
        "<pre id=\"proof-text\">{}</pre>",
        html_escape(&consigns[0].trade_text)
    );
    assert!(html.contains("发货凭证") && html.contains(&shown), "{html}");
    assert!(!html.contains(&key) && !json.to_string().contains(&key));
    // `orders show` prints the same proof, line by line, under the page's words.
    let show = orders_show(env, &order).await;
    assert!(
        show.contains("发货凭证（确认发货时填入“无需寄件”表单的内容，第 1 次确认，"),
        "{show}"
    );
    let text: String = expected.lines().map(|l| format!("    {l}\n")).collect();
    assert!(show.contains(&format!("  凭证文字:\n{text}")), "{show}");
    assert!(
        show.contains(&mask_secret(&key)) && !show.contains(&key),
        "{show}"
    );
    assert!(
        show.contains("  凭证图片: —") && !show.contains("明文"),
        "{show}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_with_keys_in_full_reaches_a_seller_without_seller_centre_on_the_plain_api() {
    let env = start_env(
        "{ proof: summary, proof_template: proof.txt.j2, proof_cards: plain }",
        Some(Fault::NoSellerCentre),
    )
    .await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    let cid = env.fake.order_cid(&order).unwrap();
    let sent = env.delivered_to(&cid);
    let key = key_in(&sent[0].text);
    let consigns = consigns_of(&env, &order);
    assert_eq!(consigns.len(), 2, "{consigns:?}");
    assert_eq!(consigns[0].api, MERCHANT);
    assert!(!consigns[0].accepted);
    assert!(consigns[0].ret.contains("FAIL_BIZ_IDLE_USER_UNAUTHORIZED"));
    assert_eq!(consigns[1].api, PLAIN);
    assert!(consigns[1].accepted);
    assert_eq!(
        consigns[1].trade_text,
        format!("已发货：{key}（测试激活码）")
    );
    // The seller opted into keys in the form; the page still shows the text over masked keys.
    let (json, html) = order_page(&env, &order).await;
    let proof = &json["ledger"]["proof"];
    let masked = format!("已发货：{}（测试激活码）", mask_secret(&key));
    assert_eq!(proof["trade_text"], masked.as_str(), "{json}");
    assert_eq!(proof["plain_cards"], true);
    assert!(html.contains(&html_escape(&masked)) && html.contains("proof-plain"));
    assert!(!html.contains(&key) && !json.to_string().contains(&key));
    let ledger = env.store().delivery(&order).unwrap().unwrap();
    assert!(
        !format!("{ledger:?}").contains(&key),
        "the ledger holds no key"
    );
    let show = orders_show(env, &order).await;
    assert!(show.contains(&format!("    {masked}\n")), "{show}");
    assert!(
        show.contains("  表单中的卡密为明文（proof_cards: plain），此处隐藏显示。"),
        "{show}"
    );
    assert!(!show.contains(&key), "{show}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_proof_the_form_stays_empty_on_the_plain_api() {
    let env = start_env("{ shape: merged }", None).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    let consigns = env.fake.consigns();
    assert_eq!(consigns.len(), 1, "{consigns:?}");
    assert_eq!(consigns[0].api, PLAIN);
    assert_eq!(consigns[0].trade_text, "");
    let (json, html) = order_page(&env, &order).await;
    assert!(json["ledger"]["proof"].is_null(), "{json}");
    assert!(!html.contains("发货凭证"), "{html}");
    let show = orders_show(env, &order).await;
    assert!(
        !show.contains("发货凭证") && !show.contains("凭证"),
        "{show}"
    );
}
