//! Delivery images (issue 13 item 2) over real sockets against the fake Goofish: every image
//! is uploaded before anything is sent or confirmed, a failed upload sends nothing and leaves
//! the order unconfirmed, a text-and-image delivery is one ledger entry whose retry sends only
//! the part that did not go out, a file is uploaded once across orders and restarts, and the
//! proof form carries the images' CDN URLs.

mod goofish_env;
#[path = "support/png.rs"]
mod png;

use goofish_env::*;
use png::png;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::{FakeGoofish, FakeOrderStatus, Fault, SentChat};
use xianyu_shopd::health::Health;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::{DeliveryState, PartKind, PartState};
use xianyu_shopd::why::Why;

/// ITEM sends its key and then `images/guide.png` (640×480); `delivery` adds keys.
async fn start_env(delivery: &str, fault: Option<Fault>) -> Env {
    let products = format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n    ship: {{ max_retries: 2 }}\n    delivery: {{ images: [images/guide.png]{delivery} }}\n"
    );
    start_products(&products, fault).await
}

/// The daemon on `products`, with `images/guide.png` (640×480) and `images/year.png`
/// (300×300) in the config dir and ten keys in the pool `keys`.
async fn start_products(products: &str, fault: Option<Fault>) -> Env {
    let fake = FakeGoofish::start().await.unwrap();
    if let Some(f) = fault {
        fake.fault_for(SELLER, f);
    }
    let dir = tempfile::tempdir().unwrap();
    let market = format!("{QUICK}, upload_url: \"{}\"", fake.upload_url());
    write_config(dir.path(), &fake, &market, &[("main", SELLER)]);
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("images/guide.png"), png(640, 480)).unwrap();
    std::fs::write(dir.path().join("images/year.png"), png(300, 300)).unwrap();
    std::fs::write(dir.path().join("products.yaml"), products).unwrap();
    let daemon = launch(dir.path()).await;
    let text: String = (0..10).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
    daemon
        .store
        .import_cards("keys", &text, false, "test")
        .unwrap();
    let env = Env {
        fake,
        dir,
        daemon: Some(daemon),
    };
    env.wait_connected(SELLER, 1).await;
    env
}

async fn launch(dir: &std::path::Path) -> Daemon {
    Daemon::start_with(dir, &dir.join("state"), clock::system(), Health::new())
        .await
        .unwrap_or_else(|e| panic!("daemon did not start: {e:#}"))
}

fn is_image(m: &SentChat) -> bool {
    m.content.get("contentType").and_then(|v| v.as_i64()) == Some(2)
}

fn image_url(m: &SentChat) -> String {
    m.content
        .pointer("/image/pics/0/url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Every message the client sent to the order's conversation (delivered or not).
fn sent_to(env: &Env, order: &str) -> Vec<SentChat> {
    let cid = env.fake.order_cid(order).unwrap();
    env.fake
        .sent_messages()
        .into_iter()
        .filter(|m| m.cid == cid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_sends_nothing_and_leaves_the_order_unconfirmed() {
    let env = start_env("", Some(Fault::FailUploads { count: 100 })).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    // max_retries 2: three uploads, then the order is the seller's.
    let handed = wait_for(|| {
        env.store()
            .delivery(&order)
            .unwrap()
            .is_some_and(|d| matches!(d.why, Some(Why::UploadFailed { attempts: 3, .. })))
    })
    .await;
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert!(handed, "{d:?}");
    assert_eq!(d.state, DeliveryState::FailedSafe, "{d:?}");
    let uploads = env.fake.uploads();
    assert_eq!(uploads.len(), 3, "{uploads:?}");
    assert!(uploads.iter().all(|u| u.url.is_empty()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        sent_to(&env, &order).is_empty(),
        "nothing may reach the chat"
    );
    assert!(
        env.fake.consigns().is_empty(),
        "the order must not be confirmed"
    );
    assert_eq!(env.fake.order_status(&order), Some(FakeOrderStatus::Paid));
    assert!(d.sent_at.is_none() && d.confirmed_at.is_none());
    assert!(
        d.parts.iter().all(|p| p.state == PartState::Pending),
        "{d:?}"
    );
    // The seller reads why in Chinese, with the next step, and got the ship_failed alert.
    let why = d.why.clone().unwrap();
    let label = why.label();
    assert!(
        label.contains("发货图片 `images/guide.png` 上传失败"),
        "{label}"
    );
    assert!(label.contains("订单也没有确认发货"), "{label}");
    assert!(why.next_step(&order).unwrap().contains("orders retry"));
    assert!(env.alerts(EventKind::ShipFailed) >= 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_after_a_refused_image_sends_only_the_image() {
    let env = start_env(
        ", proof_images: true",
        Some(Fault::RejectImages { count: 1 }),
    )
    .await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = sent_to(&env, &order);
    let texts: Vec<_> = sent.iter().filter(|m| !is_image(m)).collect();
    let images: Vec<_> = sent.iter().filter(|m| is_image(m)).collect();
    assert_eq!(texts.len(), 1, "the text went out exactly once: {sent:?}");
    assert!(texts[0].delivered && texts[0].text.contains("卡密：KEY-"));
    assert_eq!(images.len(), 2, "refused once, then sent: {sent:?}");
    assert!(!images[0].delivered && images[1].delivered);
    // Text first, then the image; the image carries the upload's URL and size.
    assert!(sent[0].text.contains("卡密：KEY-"));
    let uploads = env.fake.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(image_url(images[1]), uploads[0].url);
    assert_eq!(
        images[1].content.pointer("/image/pics/0/width").unwrap(),
        640
    );
    assert_eq!(
        images[1].content.pointer("/image/pics/0/height").unwrap(),
        480
    );
    // One ledger entry with both parts, each sent once.
    let d = env.store().delivery(&order).unwrap().unwrap();
    let kinds: Vec<_> = d
        .parts
        .iter()
        .map(|p| (p.kind, p.state, p.attempts))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (PartKind::Text, PartState::Sent, 1),
            (PartKind::Image, PartState::Sent, 2)
        ]
    );
    // Proof of delivery: the image's CDN URL in the 无需寄件 form.
    let consigns = env.fake.consigns();
    assert_eq!(consigns.len(), 1, "{consigns:?}");
    assert!(consigns[0].accepted);
    assert_eq!(consigns[0].pic_list, vec![uploads[0].url.clone()]);
    // The order page shows the form's picList and each image part's CDN URL, as links.
    let addr = env.daemon.as_ref().unwrap().status_addr;
    let json = fetch_page(&format!("http://{addr}/api/orders/{order}")).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ledger = &json["ledger"];
    let pics: Vec<_> = ledger["proof"]["pic_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pics, consigns[0].pic_list, "{json}");
    assert_eq!(ledger["parts"][1]["url"]["url"], uploads[0].url.as_str());
    assert!(
        ledger["parts"][0]["url"].is_null(),
        "a text part has no URL"
    );
    let html = fetch_page(&format!("http://{addr}/orders/{order}")).await;
    let href = format!("href=\"{}\"", uploads[0].url.replace('/', "&#x2f;"));
    assert_eq!(html.matches(&href).count(), 2, "proof and part: {html}");
    assert!(html.contains("凭证图片"), "{html}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_uploaded_once_across_orders_and_a_restart() {
    let mut env = start_env("", None).await;
    let first = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&first);
    env.wait_delivered(&first).await;
    env.restart().await;
    env.wait_connected(SELLER, 2).await;
    let second = created_order(&env, SELLER, BUYER2, ITEM).await;
    env.fake.pay(&second);
    env.wait_delivered(&second).await;
    let uploads = env.fake.uploads();
    assert_eq!(uploads.len(), 1, "uploaded once: {uploads:?}");
    assert_eq!(uploads[0].account, SELLER);
    assert_eq!(uploads[0].file_name, "guide.png");
    assert_eq!(uploads[0].mime, "image/png");
    for order in [&first, &second] {
        let images: Vec<_> = sent_to(&env, order)
            .into_iter()
            .filter(|m| is_image(m) && m.delivered)
            .collect();
        assert_eq!(images.len(), 1, "{order}");
        assert_eq!(image_url(&images[0]), uploads[0].url);
    }
    assert_eq!(env.accepted_consigns(&second), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_never_answers_is_retried_and_sends_nothing_meanwhile() {
    let env = start_env("", Some(Fault::StallUploads)).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    let failed_once = wait_for(|| {
        env.store()
            .delivery(&order)
            .unwrap()
            .is_some_and(|d| matches!(d.why, Some(Why::UploadFailed { .. })))
    })
    .await;
    assert!(failed_once, "{:?}", env.store().delivery(&order).unwrap());
    assert!(sent_to(&env, &order).is_empty());
    assert!(env.fake.consigns().is_empty());
    // The platform answers again: the retry uploads and delivers.
    env.fake.clear_faults();
    env.wait_delivered(&order).await;
    let sent = sent_to(&env, &order);
    assert_eq!(sent.iter().filter(|m| m.delivered).count(), 2, "{sent:?}");
    env.stop().await;
}

/// `delivery.sku_images` (issue 13): an order of a SKU named there gets that SKU's images
/// instead of the product's, other SKUs get the product's; the proof form carries the images
/// the order actually got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_with_its_own_images_sends_those_instead() {
    let products = format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM3}\"\n    title: 视频会员\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n    delivery:\n      images: [images/guide.png]\n      sku_images: {{ 年卡: [images/year.png] }}\n      proof_images: true\n"
    );
    let env = start_products(&products, None).await;
    let year = env.fake.create_order(SELLER, BUYER, ITEM3, 1, Some("年卡"));
    env.wait_status(&year, OrderStatus::PendingPayment).await;
    env.fake.pay(&year);
    env.wait_delivered(&year).await;
    let month = env
        .fake
        .create_order(SELLER, BUYER2, ITEM3, 1, Some("月卡"));
    env.wait_status(&month, OrderStatus::PendingPayment).await;
    env.fake.pay(&month);
    env.wait_delivered(&month).await;
    let uploads = env.fake.uploads();
    let url_of = |name: &str| {
        let u = uploads.iter().find(|u| u.file_name == name);
        u.unwrap_or_else(|| panic!("{name} not uploaded: {uploads:?}"))
            .url
            .clone()
    };
    for (order, file) in [(&year, "year.png"), (&month, "guide.png")] {
        let images: Vec<_> = sent_to(&env, order)
            .into_iter()
            .filter(|m| is_image(m) && m.delivered)
            .collect();
        assert_eq!(images.len(), 1, "{order}: {images:?}");
        assert_eq!(image_url(&images[0]), url_of(file), "{order}");
        let consign = env
            .fake
            .consigns()
            .into_iter()
            .find(|c| &c.order_id == order);
        assert_eq!(consign.unwrap().pic_list, vec![url_of(file)], "{order}");
    }
    assert_eq!(uploads.len(), 2, "each file once: {uploads:?}");
    env.stop().await;
}
