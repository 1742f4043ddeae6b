//! Images in chat replies (issue 13 item 2) over real sockets against the fake Goofish: a
//! keyword rule's images go out after its text as image messages, a file is uploaded once
//! across conversations (the cache deliveries use), the image's echo is not taken for the
//! seller typing, and a failed upload sends nothing of the reply and says why, in Chinese, on
//! the 会话 page. An item's greeting takes images the same way.

mod chat_env;
#[path = "support/png.rs"]
mod png;

use chat_env::*;
use png::png;
use xianyu_shopd::fake::{Fault, SentChat};
use xianyu_shopd::store::ReplyState;

/// The test chat section with one more rule: "价格" answers a text and `images/price.png`.
fn chat_with_image(model_url: &str) -> String {
    chat_yaml(model_url).replace(
        "        - any: [广告]\n",
        "        - any: [价格]\n          reply: 亲，价目表发您\n          images: [images/price.png]\n        - any: [广告]\n",
    )
}

async fn start() -> ChatEnv {
    let image = png(320, 200);
    let files: [(&str, &[u8]); 1] = [("images/price.png", &image)];
    ChatEnv::start_with_files(chat_with_image, "{ min: 0s, max: 0s }", &files).await
}

/// Everything the bot sent to `buyer`, in order.
fn sent_to(env: &ChatEnv, buyer: &str) -> Vec<SentChat> {
    let sent = env.fake.sent_messages().into_iter();
    sent.filter(|m| m.receivers.iter().any(|r| r == buyer))
        .collect()
}

fn is_image(m: &SentChat) -> bool {
    m.content.get("contentType").and_then(|v| v.as_i64()) == Some(2)
}

fn image_url(m: &SentChat) -> &str {
    let url = m.content.pointer("/image/pics/0/url");
    url.and_then(|v| v.as_str()).unwrap_or_default()
}

async fn wait_sent(env: &ChatEnv, buyer: &str, n: usize) -> Vec<SentChat> {
    let ok = env
        .fake
        .wait_until(WAIT, |_| sent_to(env, buyer).len() >= n)
        .await;
    assert!(ok, "expected {n} messages: {:?}", sent_to(env, buyer));
    sent_to(env, buyer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_reply_sends_its_text_then_its_image_uploaded_once_for_two_conversations() {
    let env = start().await;
    env.fake.push_chat(SELLER, BUYER, "价格多少");
    let first = wait_sent(&env, BUYER, 2).await;
    env.fake.push_chat(SELLER, BUYER2, "有价格表吗");
    let second = wait_sent(&env, BUYER2, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let uploads = env.fake.uploads();
    assert_eq!(uploads.len(), 1, "uploaded once: {uploads:?}");
    assert_eq!(uploads[0].file_name, "price.png");
    assert_eq!(uploads[0].mime, "image/png");
    for sent in [first, second] {
        assert_eq!(sent.len(), 2, "text and image, once each: {sent:?}");
        assert!(sent.iter().all(|m| m.delivered), "{sent:?}");
        assert_eq!(sent[0].text, "亲，价目表发您");
        assert!(
            !is_image(&sent[0]) && is_image(&sent[1]),
            "text first: {sent:?}"
        );
        assert_eq!(image_url(&sent[1]), uploads[0].url);
        let pic = sent[1].content.pointer("/image/pics/0").unwrap();
        assert_eq!(
            (pic["width"].as_u64(), pic["height"].as_u64()),
            (Some(320), Some(200))
        );
    }
    // Both replies are recorded as sent, two parts each; the image's echo did not pause the
    // conversation as if the seller had typed.
    for buyer in [BUYER, BUYER2] {
        let sent = sent_to(&env, buyer);
        let convo = env
            .store()
            .chat_conversation("main", &sent[0].cid)
            .unwrap()
            .unwrap();
        assert_eq!(convo.last_outcome.as_deref(), Some("keywords"), "{convo:?}");
        assert!(!convo.takeover.silences(env.store().now()), "{convo:?}");
    }
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(
        env.wait_replies(BUYER, 3).await[2],
        "在的，亲",
        "still answering"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_sends_nothing_of_the_reply_and_the_chats_page_says_why() {
    let env = start().await;
    env.fake.fault_for(SELLER, Fault::FailUploads { count: 1 });
    env.fake.push_chat(SELLER, BUYER, "价格多少");
    let failed = env.fake.wait_until(WAIT, |f| !f.uploads().is_empty()).await;
    assert!(failed, "the upload was attempted");
    let addr = env.daemon.as_ref().unwrap().status_addr;
    let noted = wait_for(|| {
        let cid = env.store().chat_recent(10).unwrap();
        cid.iter().any(|c| c.last_note.is_some())
    })
    .await;
    assert!(noted, "{:?}", env.store().chat_recent(10).unwrap());
    assert!(
        sent_to(&env, BUYER).is_empty(),
        "nothing of the reply went out: {:?}",
        sent_to(&env, BUYER)
    );
    let json = reqwest::get(format!("http://{addr}/api/chats"))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json.text().await.unwrap()).unwrap();
    let row = &json["conversations"][0];
    assert_eq!(row["outcome_label"], "关键词回复 · 未送达", "{json}");
    let note = row["note"].as_str().unwrap();
    assert!(note.contains("图片 images/price.png 上传失败"), "{note}");
    assert!(note.contains("这条回复没有发出"), "{note}");
    let html = reqwest::get(format!("http://{addr}/chats")).await.unwrap();
    let html = html.text().await.unwrap();
    assert!(html.contains("上传失败"), "{html}");
    // The reply is closed as not delivered; the next question gets text and image.
    let convo = &env.store().chat_recent(10).unwrap()[0];
    assert_eq!(
        convo.last_outcome.as_deref(),
        Some("keywords:not_delivered")
    );
    let replies = env.store().chat_reply_counts().unwrap();
    assert_eq!(
        replies.get(ReplyState::NotDelivered.as_str()),
        Some(&1),
        "{replies:?}"
    );
    env.fake.push_chat(SELLER, BUYER, "价格呢");
    let sent = wait_sent(&env, BUYER, 2).await;
    assert!(!is_image(&sent[0]) && is_image(&sent[1]), "{sent:?}");
    assert_eq!(env.fake.uploads().len(), 2, "{:?}", env.fake.uploads());
    env.stop().await;
}

/// The card product greets a buyer's first message with a text and `images/hello.png`.
async fn start_greeting() -> ChatEnv {
    let image = png(200, 120);
    let files: [(&str, &[u8]); 1] = [("images/hello.png", &image)];
    let product = "    delay: { min: 0s, max: 0s }\n    greeting: { reply: 欢迎光临测试小店, images: [images/hello.png] }\n";
    ChatEnv::start_shop(|url| chat_yaml(url), product, &files).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greeting_sends_its_text_then_its_image_on_a_first_message_only() {
    let env = start_greeting().await;
    for buyer in [BUYER, BUYER2] {
        env.fake.push_chat_about(SELLER, buyer, ITEM, "在吗");
        wait_sent(&env, buyer, 3).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let uploads = env.fake.uploads();
    assert_eq!(uploads.len(), 1, "uploaded once: {uploads:?}");
    assert_eq!(uploads[0].file_name, "hello.png");
    for buyer in [BUYER, BUYER2] {
        let sent = sent_to(&env, buyer);
        assert_eq!(
            sent.len(),
            3,
            "greeting, answer, image, once each: {sent:?}"
        );
        assert!(sent.iter().all(|m| m.delivered), "{sent:?}");
        let texts: Vec<&str> = sent[..2].iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["欢迎光临测试小店", "在的，亲"], "{sent:?}");
        assert!(
            !is_image(&sent[1]) && is_image(&sent[2]),
            "texts first: {sent:?}"
        );
        assert_eq!(image_url(&sent[2]), uploads[0].url);
    }
    // The image's echo did not pause the conversation; the next question gets no greeting.
    env.fake.push_chat(SELLER, BUYER, "在吗");
    let sent = wait_sent(&env, BUYER, 4).await;
    assert_eq!(sent[3].text, "在的，亲", "{sent:?}");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(sent_to(&env, BUYER).len(), 4, "{:?}", sent_to(&env, BUYER));
    assert_eq!(env.fake.uploads().len(), 1);
    env.stop().await;
}
