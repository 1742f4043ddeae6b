//! The status page's chat views over real sockets: 会话 lists recent conversations with the
//! last question, the reply, the answering stage and the takeover state; 异常 lists AI reply
//! problems once each with a count; `/metrics` carries the chat families.

mod status_common;
mod support;

use status_common::{assert_no_secrets, serve, shop};
use xianyu_shopd::health::Health;
use xianyu_shopd::status::logs::LogBuffer;
use xianyu_shopd::store::{
    BeginSend, NewInbound, PlanOutcome, PlannedReply, SendResult, TakeoverRule,
};

fn inbound(cid: &str, id: &str, text: &str, at: u64) -> NewInbound {
    NewInbound {
        account: "main".into(),
        cid: cid.into(),
        message_id: id.into(),
        buyer_id: format!("buyer-{cid}"),
        buyer_nick: Some("小王".into()),
        item_id: Some("900".into()),
        text: text.into(),
        at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_problems_and_metrics_show_the_chat() {
    let harness = shop(false).await;
    let store = harness.store.clone();
    let now = store.now();
    // c1: answered by the model; c2: the seller took over
    store
        .chat_record_inbound(&inbound("c1", "1.PNM", "支持 win11 吗", now - 5000))
        .unwrap();
    let plan = PlannedReply {
        account: "main".into(),
        cid: "c1".into(),
        buyer_id: "buyer-c1".into(),
        inbound: vec!["1.PNM".into()],
        messages: vec!["支持的，亲".into()],
        stage: "llm".into(),
        effects: vec![],
        images: Vec::new(),
    };
    let PlanOutcome::Planned(id) = store.chat_plan_reply(&plan).unwrap() else {
        panic!()
    };
    assert!(matches!(
        store.chat_begin_send(id).unwrap(),
        BeginSend::Go { .. }
    ));
    store
        .chat_finish_send(id, &SendResult::Accepted { message_id: None })
        .unwrap();
    store
        .chat_record_inbound(&inbound("c2", "2.PNM", "在吗", now - 4000))
        .unwrap();
    let rule = TakeoverRule {
        pause_ms: 30 * 60_000,
        toggle: "。".into(),
    };
    store
        .chat_observe_own("main", "c2", "3.PNM", "我来", now - 3000, Some(&rule))
        .unwrap();

    let health = Health::new();
    health.record_chat_problem("main", "模型 20 秒内没有回答", now - 2000);
    health.record_chat_problem("main", "模型 20 秒内没有回答", now - 1000);
    let s = serve(harness, health, LogBuffer::new(10), "127.0.0.1:0").await;

    let api = s.json("/api/chats").await;
    let rows = api["conversations"].as_array().unwrap();
    let c1 = rows.iter().find(|r| r["cid"] == "c1").unwrap();
    assert_eq!(c1["last_question"], "支持 win11 吗");
    assert_eq!(c1["last_reply"], "支持的，亲");
    assert_eq!(c1["outcome_label"], "AI 回复");
    assert_eq!(c1["takeover"], "auto");
    let c2 = rows.iter().find(|r| r["cid"] == "c2").unwrap();
    assert_eq!(c2["takeover"], "paused");
    assert!(
        c2["takeover_label"]
            .as_str()
            .unwrap()
            .starts_with("人工接管中")
    );
    assert_eq!(api["sent"], 1);

    let page = s.get("/chats").await;
    assert_eq!(page.status, 200);
    for text in [
        "会话",
        "支持 win11 吗",
        "支持的，亲",
        "AI 回复",
        "人工接管中",
    ] {
        assert!(page.body.contains(text), "/chats shows {text}");
    }
    assert_no_secrets("/chats", &page.body);

    let problems = s.json("/api/problems").await;
    let chat = problems["chat_problems"].as_array().unwrap();
    assert_eq!(chat.len(), 1, "repeats are one entry");
    assert_eq!(chat[0]["count"], 2);
    assert!(
        s.get("/problems")
            .await
            .body
            .contains("模型 20 秒内没有回答")
    );

    let metrics = s.get("/metrics").await.body;
    for family in [
        "xianyu_shopd_chat_messages_total",
        "xianyu_shopd_chat_replies_total",
        "xianyu_shopd_chat_skipped_total",
        "xianyu_shopd_llm_requests_total",
        "xianyu_shopd_llm_latency_milliseconds_total",
        "xianyu_shopd_chat_guard_rejections_total",
    ] {
        assert!(metrics.contains(&format!("# TYPE {family}")), "{family}");
    }
    s.stop().await;
}
