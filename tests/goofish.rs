//! The Goofish client end to end: the whole daemon (`app::Daemon`: shop, account supervisors,
//! Goofish marketplace) against the loopback fake (`xianyu_shopd::fake::FakeGoofish`) over
//! real sockets — mtop HTTP and the IM WebSocket. Each test proves one promise with the
//! fake's own record of what the client did: what reached a buyer, how often, and on which
//! conversation; what was confirmed; how many alerts a dead login produced.

mod goofish_env;

use std::time::Duration;

use goofish_env::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::fake::{Fault, SendReply};
use xianyu_shopd::health::{Connection, Login};
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::DeliveryState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_then_paid_card_delivers_once_over_the_socket() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    let record = env.store().order(&order).unwrap().unwrap();
    assert_eq!(
        record.chat_id,
        env.fake.order_cid(&order),
        "the created card names the conversation"
    );
    assert_eq!(record.buyer_id.as_deref(), Some(BUYER));

    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;

    let record = env.store().order(&order).unwrap().unwrap();
    assert_eq!(record.status, OrderStatus::Shipped);
    assert_eq!(
        record.item_title.as_deref(),
        Some("测试激活码"),
        "filled from the order detail"
    );
    assert_eq!(record.amount.as_deref(), Some("9.90"));
    assert!(
        env.sources(&order).contains(&"source:goofish".to_string()),
        "{:?}",
        env.sources(&order)
    );
    let stats = env.fake.stats(SELLER);
    assert_eq!(stats.unacked(), 0, "every push was acknowledged: {stats:?}");
    assert_eq!(
        stats.stray_acks, 0,
        "no push was acknowledged twice: {stats:?}"
    );
    assert!(stats.heartbeats >= 1, "heartbeats are sent: {stats:?}");
    let health = env.daemon.as_ref().unwrap().health.account("main").unwrap();
    assert_eq!(health.connection, Connection::Connected);
    assert_eq!(health.login, Login::Ok);
    assert!(health.last_business_message.is_some() && health.token_refreshed_at.is_some());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_payment_news_delivers_once() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    // Card, nudge, shape D (no order id: triggers reconciliation), shape E, then a re-push.
    env.fake.pay_with_duplicates(&order);
    env.wait_delivered(&order).await;
    env.fake.repeat_last_push(SELLER);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    // Our own message came back as an echo and changed nothing.
    assert_eq!(
        env.fake.sent_messages().len(),
        1,
        "{:?}",
        env.fake.sent_messages()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_triggers_nothing() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    // A buyer-side copy of a paid card, a buyer typing the paid text, typing indicators and
    // the read receipts that come along with them.
    env.fake.push_buyer_copy(SELLER, &order);
    env.fake.push_chat(SELLER, BUYER, "[我已付款，等待你发货]");
    env.fake.push_typing(SELLER, BUYER);
    env.fake.push_chat(SELLER, BUYER, "在吗");
    let acked = env
        .fake
        .wait_until(WAIT, |f| {
            let s = f.stats(SELLER);
            s.pushes_sent >= 5 && s.unacked() == 0
        })
        .await;
    assert!(acked, "{:?}", env.fake.stats(SELLER));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        env.fake.sent_messages().is_empty(),
        "{:?}",
        env.fake.sent_messages()
    );
    assert!(env.fake.consigns().is_empty());
    let record = env.store().order(&order).unwrap().unwrap();
    assert_eq!(record.status, OrderStatus::PendingPayment);
    assert!(env.store().delivery(&order).unwrap().is_none());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_while_the_socket_was_down_is_delivered_by_reconciliation() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    // Paid with no push at all: only the sold-order list knows.
    env.fake.pay_silently(&order);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.fake.sent_messages().is_empty(),
        "nothing happens before a reconnect or poll"
    );
    env.fake.fault(Fault::DropSocket);
    env.wait_connected(SELLER, 2).await;
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    assert!(
        env.sources(&order)
            .contains(&"source:reconcile".to_string()),
        "{:?}",
        env.sources(&order)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_never_seen_on_the_socket_is_delivered_into_a_new_conversation() {
    // Reconciling every second: an order paid while the daemon had no socket and no card
    // at all is found in the sold-order list; the conversation is opened by the client.
    let env = Env::start(&QUICK.replace("reconcile_interval: 60s", "reconcile_interval: 1s")).await;
    env.fake.fault(Fault::Zombie); // pushes are lost from here on
    let order = env.fake.create_order(SELLER, BUYER, ITEM, 1, None);
    env.fake.pay_silently(&order);
    env.fake.clear_faults(); // sends work again (a zombie refuses them)
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    assert!(
        env.sources(&order)
            .contains(&"source:reconcile".to_string())
    );
    let record = env.store().order(&order).unwrap().unwrap();
    assert_eq!(
        record.chat_id, None,
        "the daemon never knew the conversation: it opened it"
    );
    assert_eq!(
        record.buyer_id.as_deref(),
        Some(BUYER),
        "the buyer came from the sold-order list"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_connection_is_replaced_and_the_missed_payment_reconciled() {
    // Silence outlasting `idle_reconnect` replaces even a socket whose heartbeats are answered.
    let timings = QUICK.replace("watchdog: 60s", "watchdog: 1500ms, idle_reconnect: 1500ms");
    let env = Env::start(&timings).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    let regs = env.fake.stats(SELLER).regs;
    env.fake.fault(Fault::Zombie);
    env.fake.pay(&order); // the paid card is lost on the zombie socket
    env.wait_connected(SELLER, regs + 1).await;
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    assert!(
        env.sources(&order)
            .contains(&"source:reconcile".to_string())
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_faults_recover() {
    let env = Env::start(QUICK).await;
    let mut regs = env.fake.stats(SELLER).regs;
    let faults = [
        Fault::DropSocket,
        Fault::CloseSocket,
        Fault::Kickout,
        Fault::SessionRemove,
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        env.fake.fault(fault.clone());
        regs += 1;
        env.wait_connected(SELLER, regs).await;
        // A new buyer per round: one conversation per order.
        let buyer = buyer(i);
        let order = created_order(&env, SELLER, &buyer, ITEM).await;
        env.fake.pay(&order);
        env.assert_delivered_once(&order, SELLER, &buyer).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtop_faults_recover() {
    let env = Env::start(QUICK).await;
    // An expired signing token costs one retry, not a failure. (The pause lets the
    // start-up reconciliation finish, so the paid card's detail call meets the fault.)
    let order = created_order(&env, SELLER, &buyer(0), ITEM).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let detail_calls = env
        .fake
        .stats(SELLER)
        .calls("mtop.idle.web.trade.order.detail");
    env.fake.fault(Fault::TokenExpired);
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, &buyer(0)).await;
    assert_eq!(
        env.fake
            .stats(SELLER)
            .calls("mtop.idle.web.trade.order.detail"),
        detail_calls + 2,
        "one refused call, one retry with the rotated token"
    );

    // A failing gateway: the order detail, the sold-order list and the confirmation are
    // retried.
    let order = created_order(&env, SELLER, &buyer(1), ITEM).await;
    env.fake.fault(Fault::Http5xx { count: 3 });
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, &buyer(1)).await;

    // Slow answers are still answers.
    env.fake.fault(Fault::Slow(Duration::from_millis(300)));
    let order = created_order(&env, SELLER, &buyer(2), ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, &buyer(2)).await;
    env.fake.clear_faults();
    assert_eq!(
        env.alerts(EventKind::LoginExpired) + env.alerts(EventKind::RiskControl),
        0
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_send_is_retried_and_delivered_once() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::RejectSends {
        reason: "CSI_FORBID".into(),
    });
    env.fake.pay(&order);
    let rejected = env
        .fake
        .wait_until(WAIT, |f| {
            f.sent_messages()
                .iter()
                .any(|m| matches!(m.reply, SendReply::Rejected { .. }))
        })
        .await;
    assert!(rejected);
    env.fake.clear_faults();
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_send_answer_is_never_repeated() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::LoseSendResponses { count: 1 });
    // The history cannot be read either, so the read-back cannot settle it (tests/readback.rs
    // covers the read-back itself).
    env.fake.fault(Fault::FailHistory);
    env.fake.pay(&order);
    let ok = wait_for(|| {
        env.alerts(EventKind::NeedsHuman) == 1
            && env
                .store()
                .delivery(&order)
                .unwrap()
                .is_some_and(|d| d.state == DeliveryState::NeedsHuman)
    })
    .await;
    assert!(ok, "{:?}", env.store().delivery(&order).unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = env.fake.sent_messages();
    assert_eq!(
        sent.len(),
        1,
        "the buyer has it once and it is not sent again: {sent:?}"
    );
    assert_eq!(sent[0].reply, SendReply::Withheld);
    assert!(sent[0].delivered);
    assert!(
        env.fake.consigns().is_empty(),
        "an unknown send is not confirmed"
    );
    assert_eq!(env.alerts(EventKind::NeedsHuman), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_login_alerts_once_and_waits_for_fresh_cookies() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::SessionExpired);
    env.fake.pay(&order); // the order detail fails: the login is dead
    assert!(wait_for(|| env.alerts(EventKind::LoginExpired) == 1).await);
    assert_eq!(env.login("main"), Login::Expired);
    // More news while dead: no new alert, no retry storm.
    let second = env.fake.create_order(SELLER, BUYER2, ITEM, 1, None);
    env.fake.pay(&second);
    let calls_then: u32 = env.fake.stats(SELLER).mtop_calls.values().sum();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_now: u32 = env.fake.stats(SELLER).mtop_calls.values().sum();
    assert!(
        calls_now <= calls_then + 1,
        "blocked account stays quiet: {calls_then} → {calls_now}"
    );
    assert_eq!(env.alerts(EventKind::LoginExpired), 1);
    assert!(env.fake.sent_messages().is_empty());

    // The seller pastes fresh cookies; both orders are delivered, once each.
    let fresh = env.fake.renew_session(SELLER);
    write_cookies(env.dir.path(), "main", &fresh);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.assert_delivered_once(&second, SELLER, BUYER2).await;
    assert_eq!(env.alerts(EventKind::LoginExpired), 1);
    assert_eq!(env.login("main"), Login::Ok);
    assert!(
        wait_for(|| env.alerts(EventKind::Recovered) == 1).await,
        "one all-clear"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_control_alerts_once_backs_off_and_resumes_with_fresh_cookies() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::RiskControl);
    env.fake.pay(&order);
    assert!(wait_for(|| env.alerts(EventKind::RiskControl) == 1).await);
    assert!(matches!(
        env.login("main"),
        Login::RiskControl { retry_at: Some(_) }
    ));
    let calls_then: u32 = env.fake.stats(SELLER).mtop_calls.values().sum();
    env.fake.fault(Fault::DropSocket); // a reconnect needs no token call: it is cached
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_now: u32 = env.fake.stats(SELLER).mtop_calls.values().sum();
    assert_eq!(
        calls_now, calls_then,
        "nothing is sent to a risk-controlled gateway"
    );
    assert_eq!(env.alerts(EventKind::RiskControl), 1);

    // The seller solves the slider in a browser and pastes the new cookies.
    env.fake.clear_faults();
    write_cookies(env.dir.path(), "main", &env.fake.renew_session(SELLER));
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    assert_eq!(env.alerts(EventKind::RiskControl), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_independent() {
    let env = Env::start_with(QUICK, &[("main", SELLER), ("alt", SELLER2)]).await;
    let a = created_order(&env, SELLER, BUYER, ITEM).await;
    let b = created_order(&env, SELLER2, BUYER2, ITEM2).await;
    assert_eq!(env.store().order(&a).unwrap().unwrap().account, "main");
    assert_eq!(env.store().order(&b).unwrap().unwrap().account, "alt");
    // The second account's login dies; the first keeps selling.
    env.fake.fault_for(SELLER2, Fault::SessionExpired);
    env.fake.pay(&b);
    env.fake.pay(&a);
    env.assert_delivered_once(&a, SELLER, BUYER).await;
    assert!(wait_for(|| env.alerts(EventKind::LoginExpired) == 1).await);
    assert!(
        env.delivered_to(&env.fake.order_cid(&b).unwrap())
            .is_empty()
    );
    write_cookies(env.dir.path(), "alt", &env.fake.renew_session(SELLER2));
    env.assert_delivered_once(&b, SELLER2, BUYER2).await;
    assert_eq!(env.alerts(EventKind::LoginExpired), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cookie_file_is_picked_up_by_the_config_watcher() {
    // Polling is off (1h): only the config watcher can notice the new file.
    let env = Env::start(&QUICK.replace("cookies_poll: 200ms", "cookies_poll: 1h")).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::SessionExpired);
    env.fake.pay(&order);
    assert!(wait_for(|| env.alerts(EventKind::LoginExpired) == 1).await);
    write_cookies(env.dir.path(), "main", &env.fake.renew_session(SELLER));
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantity_and_sku_come_from_the_order_detail() {
    let env = Env::start(QUICK).await;
    let order = env.fake.create_order(SELLER, BUYER, ITEM3, 2, Some("年卡"));
    env.wait_status(&order, OrderStatus::PendingPayment).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    let record = env.store().order(&order).unwrap().unwrap();
    assert_eq!(record.quantity, 2);
    assert_eq!(record.sku.as_deref(), Some("年卡"));
    assert_eq!(record.amount.as_deref(), Some("30.00"));
    let sent = env.delivered_to(&env.fake.order_cid(&order).unwrap());
    assert_eq!(sent.len(), 1, "{sent:?}");
    let keys = sent[0]
        .text
        .lines()
        .filter(|l| l.starts_with("卡密：KEY-"))
        .count();
    assert_eq!(keys, 2, "one key per unit: {}", sent[0].text);
    assert_eq!(env.accepted_consigns(&order), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_im_token_is_refreshed_by_reconnecting() {
    let env = Env::start(&format!("{QUICK}, token_refresh: 1500ms")).await;
    let token_api = "mtop.taobao.idlemessage.pc.login.token";
    let refreshed = env
        .fake
        .wait_until(WAIT, |f| {
            let s = f.stats(SELLER);
            s.calls(token_api) >= 3 && s.regs >= 3
        })
        .await;
    assert!(refreshed, "{:?}", env.fake.stats(SELLER));
    assert_eq!(env.fake.stats(SELLER).reg_failures, 0);
    // Pushes may fall between two connections here; the reconciliation after each
    // reconnect delivers the order all the same (and a planned reconnect lets a send in
    // flight finish, so it does not end up "unknown").
    let order = env.fake.create_order(SELLER, BUYER, ITEM, 1, None);
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

/// A daemon built with its own health registry shows that registry on its status page (not
/// the process-wide one, which nothing in this test process writes to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_daemons_own_health() {
    let env = Env::start(QUICK).await;
    let daemon = env.daemon.as_ref().unwrap();
    let url = format!("http://{}/api/status", daemon.status_addr);
    let mut connection = serde_json::Value::Null;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let status: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        connection = status["accounts"][0]["connection"].clone();
        if connection == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connection, "connected", "the page shows another registry");
    assert_eq!(
        daemon.health.account("main").map(|a| a.connection),
        Some(Connection::Connected)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_cookies_are_not_a_recovery_until_the_connection_works() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::SessionExpired);
    env.fake.pay(&order);
    assert!(wait_for(|| env.alerts(EventKind::LoginExpired) == 1).await);

    // The seller pastes a cookie with `unb=`, but every connection is refused now.
    let fresh = env.fake.renew_session(SELLER);
    env.fake.shutdown();
    write_cookies(env.dir.path(), "main", &fresh);
    assert!(
        wait_for(|| env.login("main") == Login::Unverified).await,
        "the new cookie is read: {:?}",
        env.login("main")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.alerts(EventKind::Recovered),
        0,
        "no 已恢复 before anything worked"
    );
    assert_eq!(env.login("main"), Login::Unverified);
    env.stop().await;
}

/// An account whose connections keep being refused is counted under 需要关注 once it failed
/// `ATTENTION_FAILED_RECONNECTS` times in a row, and the 异常 page and the account card say why
/// in Chinese with the next step (no OS error text). Clearing on a good connection is
/// `health::tests::a_good_connection_clears_the_failures`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_cannot_reconnect_needs_attention_with_the_reason_in_chinese() {
    let env = Env::start(QUICK).await;
    let daemon = env.daemon.as_ref().unwrap();
    let base = format!("http://{}", daemon.status_addr);
    let status = |base: String| async move {
        reqwest::get(format!("{base}/api/status"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let connected = status(base.clone()).await;
    assert_eq!(connected["problems"]["disconnected"], 0);
    assert_eq!(connected["accounts"][0]["connection_attention"], false);

    // Every connection (IM socket and mtop) is refused from now on.
    env.fake.shutdown();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = serde_json::Value::Null;
    while tokio::time::Instant::now() < deadline {
        last = status(base.clone()).await;
        if last["problems"]["disconnected"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["problems"]["disconnected"], 1, "{last:#}");
    let account = &last["accounts"][0];
    assert!(
        account["failed_reconnects"].as_u64().unwrap()
            >= u64::from(xianyu_shopd::health::ATTENTION_FAILED_RECONNECTS),
        "{account:#}"
    );
    assert_eq!(account["connection_problem"], "连接被拒绝", "{account:#}");
    assert!(
        account["connection_next_step"]
            .as_str()
            .unwrap()
            .contains("检查网络和代理"),
        "{account:#}"
    );
    let problems = fetch_page(&format!("{base}/problems")).await;
    let table = &problems[problems.find("id=\"problem-accounts\"").expect("listed")..];
    assert!(table.contains("主店") || table.contains("main"), "{table}");
    assert!(
        table.contains("连接被拒绝") && table.contains("检查网络和代理"),
        "{table}"
    );
    assert!(
        !table.contains("os error") && !table.contains("Connection refused"),
        "{table}"
    );
    let dashboard = fetch_page(&format!("{base}/")).await;
    assert!(
        dashboard.contains("id=\"disconnected-accounts\">1<"),
        "需要关注 counts it"
    );
    assert!(
        dashboard.contains("连接被拒绝"),
        "the account card says why"
    );
    env.stop().await;
}
