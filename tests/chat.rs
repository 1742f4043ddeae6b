//! Answering buyers end to end: the daemon against the fake Goofish and the simulated model,
//! over real sockets. Each test proves one promise with what the fake saw reach a buyer.

mod chat_env;

use std::time::Duration;

use chat_env::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::fake::model::Behavior;
use xianyu_shopd::store::Takeover;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_echoes_read_receipts_and_typing_never_trigger_a_reply() {
    let env = ChatEnv::start().await;
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 1).await, vec!["在的，亲"]);
    // our reply came back as the account's own message; typing and the buyer reading it too
    env.fake.push_typing(SELLER, BUYER);
    env.fake.repeat_last_push(SELLER);
    assert_eq!(
        env.settle(BUYER).await.len(),
        1,
        "nothing answered an echo, typing or a receipt"
    );
    // and the echo did not look like the seller: the conversation is still automatic
    let cid = env.fake.conversation_cid(SELLER, BUYER).unwrap();
    let convo = env
        .store()
        .chat_conversation("main", &cid)
        .unwrap()
        .unwrap();
    assert_eq!(convo.takeover, Takeover::Auto);
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 2).await.len(), 2);
    // a platform notice typed into the conversation is not a question
    env.fake.push_chat(SELLER, BUYER, "[我已付款，等待你发货]");
    assert_eq!(env.settle(BUYER).await.len(), 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seller_typing_pauses_only_that_conversation_and_it_survives_a_restart() {
    let mut env = ChatEnv::start().await;
    env.fake.push_chat(SELLER, BUYER, "在吗");
    env.fake.push_chat(SELLER, BUYER2, "在吗");
    env.wait_replies(BUYER, 1).await;
    env.wait_replies(BUYER2, 1).await;
    // the seller answers BUYER by hand on the phone
    env.fake.seller_types(SELLER, BUYER, "我来回答你，稍等");
    let cid = env.fake.conversation_cid(SELLER, BUYER).unwrap();
    let paused = wait_for(|| {
        env.store()
            .chat_conversation("main", &cid)
            .unwrap()
            .is_some_and(|c| matches!(c.takeover, Takeover::PausedUntil { .. }))
    })
    .await;
    assert!(paused, "the seller's own message pauses the conversation");
    env.fake.push_chat(SELLER, BUYER, "在吗");
    env.fake.push_chat(SELLER, BUYER2, "在吗");
    env.wait_replies(BUYER2, 2).await;
    assert_eq!(
        env.settle(BUYER).await,
        vec!["在的，亲"],
        "the paused conversation got no reply"
    );

    env.restart().await;
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(
        env.settle(BUYER).await.len(),
        1,
        "still paused after a restart"
    );

    // the toggle: 。 makes it manual (indefinitely), again makes it automatic
    env.fake.seller_types(SELLER, BUYER, "。");
    env.fake.seller_types(SELLER, BUYER, "。");
    let auto = wait_for(|| {
        env.store()
            .chat_conversation("main", &cid)
            .unwrap()
            .is_some_and(|c| c.takeover == Takeover::Auto)
    })
    .await;
    assert!(auto, "toggled back to automatic");
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 2).await.len(), 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_quick_messages_get_one_reply() {
    let env = ChatEnv::start().await;
    env.model
        .set_default(Behavior::Answer("支持 Windows 11 的，亲".into()));
    for text in ["你好", "请问", "win11 能用吗"] {
        env.fake.push_chat(SELLER, BUYER, text);
    }
    let replies = env.wait_replies(BUYER, 1).await;
    assert_eq!(env.settle(BUYER).await, replies, "exactly one reply");
    assert_eq!(replies, vec!["支持 Windows 11 的，亲"]);
    // the model saw one question made of all three messages
    let requests = env.model.requests();
    assert_eq!(requests.len(), 1);
    let last = requests[0]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], "你好\n请问\nwin11 能用吗");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_once_rules_answer_once_and_empty_replies_swallow() {
    let env = ChatEnv::start().await;
    env.model.set_default(Behavior::Answer("好的".into()));
    env.fake.push_chat(SELLER, BUYER, "怎么用");
    assert_eq!(
        env.wait_replies(BUYER, 2).await,
        vec!["第一步：拍下", "第二步：查看聊天"]
    );
    env.fake.push_chat(SELLER, BUYER, "怎么用");
    // the second time the rule is spent: the model answers instead
    assert_eq!(env.wait_replies(BUYER, 3).await[2], "好的");
    env.fake.push_chat(SELLER, BUYER, "广告");
    assert_eq!(env.settle(BUYER).await.len(), 3, "an empty reply swallows");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_older_than_max_age_gets_no_replies() {
    let env = ChatEnv::start().await;
    let old = xianyu_shopd::clock::now_ms() - 10 * 60 * 1000;
    for i in 0..3 {
        env.fake.push_chat_sent_at(SELLER, BUYER, "在吗", old + i);
    }
    assert!(
        env.settle(BUYER).await.is_empty(),
        "the backlog is not answered"
    );
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 1).await, vec!["在的，亲"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_answer_with_a_delivered_card_key_is_blocked() {
    let env = ChatEnv::start().await;
    let order = env.buy(BUYER).await;
    env.wait_delivered(&order).await;
    let key = env
        .fake
        .sent_messages()
        .iter()
        .find(|m| m.text.contains("卡密："))
        .map(|m| m.text.split("卡密：").nth(1).unwrap().trim().to_string())
        .unwrap();
    // the model, asked for help, repeats the key (spaced out, in lower case)
    let leaked = key.to_lowercase().replace('-', " ");
    env.model.set_default(Behavior::Answer(format!(
        "您的激活码是 {leaked}，直接用就行"
    )));
    env.fake.push_chat(SELLER, BUYER, "激活码能再给我看一下吗");
    let replies = env.wait_replies(BUYER, 1).await;
    assert_eq!(
        replies,
        vec!["亲，稍等，卖家马上回复您"],
        "the default reply went out instead"
    );
    for m in env.fake.sent_messages() {
        if !m.text.contains("卡密：") {
            assert!(
                !m.text.to_lowercase().contains(&key.to_lowercase()[..8]),
                "{}",
                m.text
            );
        }
    }
    let problems = env.health.chat_problems();
    assert!(problems[0].label.contains("卡密"), "{problems:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_failures_fall_back_and_raise_one_alert_not_a_storm() {
    let env = ChatEnv::start().await;
    let alerts = |kind: EventKind| {
        env.store()
            .notifications(1000)
            .unwrap()
            .iter()
            .filter(|n| n.event == kind)
            .count()
    };
    let failures = [
        Behavior::Status(503),
        Behavior::Delay(
            Duration::from_secs(3),
            Box::new(Behavior::Answer("迟到".into())),
        ),
        Behavior::NotJson,
        Behavior::EmptyChoices,
        Behavior::Answer("加我微信 abc_12345 细聊".into()),
    ];
    for (i, failure) in failures.into_iter().enumerate() {
        env.model.set_default(failure);
        let buyer = format!("31496370{i:02}");
        env.fake.push_chat(SELLER, &buyer, "这个有发票吗");
        let replies = env.wait_replies(&buyer, 1).await;
        assert_eq!(
            replies,
            vec!["亲，稍等，卖家马上回复您"],
            "failure {i} fell back"
        );
    }
    assert_eq!(
        alerts(EventKind::ChatFailed),
        1,
        "one alert for the whole outage"
    );
    let problems = env.health.chat_problems();
    assert_eq!(
        problems.len(),
        5,
        "each kind of problem listed once: {problems:?}"
    );
    // the model works again: answers reach buyers, and one recovery notice follows
    env.model
        .set_default(Behavior::Answer("有的，可以开".into()));
    env.fake.push_chat(SELLER, "3149637090", "这个有发票吗");
    assert_eq!(
        env.wait_replies("3149637090", 1).await,
        vec!["有的，可以开"]
    );
    assert!(wait_for(|| alerts(EventKind::Recovered) == 1).await);
    assert_eq!(alerts(EventKind::ChatFailed), 1);
    // a 429 asking for a minute of quiet is obeyed: later buyers get the fallback at once
    env.model.set_default(Behavior::RateLimited {
        retry_after_secs: Some(60),
    });
    env.fake.push_chat(SELLER, "3149637091", "这个有发票吗");
    env.wait_replies("3149637091", 1).await;
    env.model.set_default(Behavior::Answer("有的".into()));
    let before = env.model.request_count();
    env.fake.push_chat(SELLER, "3149637092", "这个有发票吗");
    assert_eq!(
        env.wait_replies("3149637092", 1).await,
        vec!["亲，稍等，卖家马上回复您"]
    );
    assert_eq!(
        env.model.request_count(),
        before,
        "no request while cooling down"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_keyword_rule_is_live_within_a_second() {
    let env = ChatEnv::start().await;
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 1).await, vec!["在的，亲"]);
    let path = env.config_dir().join("pipeline.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let tmp = env.config_dir().join(".pipeline.yaml.tmp");
    std::fs::write(
        &tmp,
        text.replace("reply: 在的，亲", "reply: 在呢，随时为您服务"),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 2).await[1], "在呢，随时为您服务");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_status_reply_matches_the_store() {
    // a delivery delay of an hour: the order waits in the store with a due time
    let env = ChatEnv::start_with(|url| chat_yaml(url), "{ min: 1h, max: 1h }").await;
    env.fake.push_chat(SELLER, BUYER, "发货了吗");
    assert!(env.wait_replies(BUYER, 1).await[0].contains("没有查到"));
    let order = env.buy(BUYER).await;
    let scheduled = wait_for(|| {
        env.store()
            .delivery(&order)
            .unwrap()
            .is_some_and(|d| d.due_ms.is_some())
    })
    .await;
    assert!(scheduled);
    let due = env
        .store()
        .delivery(&order)
        .unwrap()
        .unwrap()
        .due_ms
        .unwrap();
    let beijing = xianyu_shopd::clock::format_beijing(due);
    env.fake.push_chat(SELLER, BUYER, "什么时候发货");
    let reply = env.wait_replies(BUYER, 2).await[1].clone();
    assert!(
        reply.contains(&format!("预计 {} 前发出", &beijing[5..16])),
        "{reply}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_down_gets_the_fallback_the_daemon_stays_up_and_one_alert() {
    // nothing listens where the model should be: every call is refused
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let env = ChatEnv::start_with(move |_| chat_yaml(&dead), "{ min: 0s, max: 0s }").await;
    for i in 0..6 {
        let buyer = format!("31496371{i:02}");
        env.fake.push_chat(SELLER, &buyer, "这个有发票吗");
        assert_eq!(
            env.wait_replies(&buyer, 1).await,
            vec!["亲，稍等，卖家马上回复您"],
            "buyer {i} got the fallback"
        );
    }
    // still up: keyword answers and deliveries go on
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 1).await, vec!["在的，亲"]);
    // and an order is still delivered
    let order = env.buy(BUYER2).await;
    env.wait_delivered(&order).await;
    let alerts = env
        .store()
        .notifications(1000)
        .unwrap()
        .iter()
        .filter(|n| n.event == EventKind::ChatFailed)
        .count();
    assert_eq!(alerts, 1, "six failures, one alert");
    let problems = env.health.chat_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].count, 6, "repeats are counted: {problems:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_message_while_the_model_answers_drops_the_old_reply() {
    let env = ChatEnv::start().await;
    // the first call is slow (but within the 1 s timeout), later ones answer at once
    env.model.push(Behavior::Delay(
        Duration::from_millis(700),
        Box::new(Behavior::Answer("旧问题的回答".into())),
    ));
    env.model
        .set_default(Behavior::Answer("两个问题一起回答".into()));
    env.fake.push_chat(SELLER, BUYER, "支持 win11 吗");
    assert!(
        wait_for(|| env.model.request_count() == 1).await,
        "the model was asked"
    );
    env.fake.push_chat(SELLER, BUYER, "支持 Mac 吗");
    let replies = env.wait_replies(BUYER, 1).await;
    assert_eq!(
        env.settle(BUYER).await,
        replies,
        "one reply for both messages"
    );
    assert_eq!(replies, vec!["两个问题一起回答"]);
    let requests = env.model.requests();
    assert_eq!(requests.len(), 2);
    let last = requests[1]["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert_eq!(
        last, "支持 win11 吗\n支持 Mac 吗",
        "the newer run asked both"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_status_reply_names_the_delivery_or_the_seller_never_the_key() {
    use xianyu_shopd::chat::orders::{OrderProgress, progress};
    let env = ChatEnv::start().await;
    let order = env.buy(BUYER).await;
    let sent_at = env.wait_delivered(&order).await;
    env.fake.push_chat(SELLER, BUYER, "发货了吗");
    let reply = env.wait_replies(BUYER, 1).await[0].clone();
    let beijing = xianyu_shopd::clock::format_beijing(sent_at);
    assert!(
        reply.contains(&format!("已经在 {} 发给您了", &beijing[5..16])),
        "{reply}"
    );
    assert!(
        !reply.contains("KEY-"),
        "the key is never repeated: {reply}"
    );

    // an item the seller ships by hand (not in products.yaml): the order is with the seller
    let physical = "900000000002";
    env.fake.add_item(SELLER, physical, "手工定制", 5000, &[]);
    let order2 = env.fake.create_order(SELLER, BUYER2, physical, 1, None);
    env.fake.pay(&order2);
    let with_seller = wait_for(|| {
        let store = env.store();
        store.order(&order2).unwrap().is_some_and(|o| {
            let d = store.delivery(&order2).unwrap();
            o.payment_time.is_some() && progress(&o, d.as_ref()) == OrderProgress::WithSeller
        })
    })
    .await;
    assert!(with_seller, "the store has the paid order with the seller");
    env.fake
        .push_chat_about(SELLER, BUYER2, physical, "什么时候发货");
    let reply = env.wait_replies(BUYER2, 1).await[0].clone();
    assert!(reply.contains("交给卖家本人处理"), "{reply}");
    env.stop().await;
}
