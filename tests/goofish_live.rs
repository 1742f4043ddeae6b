//! The Goofish client judged against how the live service really answers (issue 9, step 7),
//! end to end: the whole daemon against the loopback fake over real sockets. The fake can
//! answer a send without a `code` or not at all, refuse every `/reg`, leave `ackDiff`
//! unanswered, redirect mtop calls to the punish page, rotate cookies, escape tokens and
//! compress answers; each test asserts what a seller or buyer would notice. A send never
//! answered at all is `tests/readback.rs`'s first case (sent once, found in the conversation).

mod goofish_env;

use std::time::Duration;

use goofish_env::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::fake::{Fault, SendReply};
use xianyu_shopd::health::Login;

const TOKEN_API: &str = "mtop.taobao.idlemessage.pc.login.token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_answered_without_a_code_is_delivered_once_and_never_resent() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::AnswerSendsWithoutCode);
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    let sent = env.fake.sent_messages();
    assert_eq!(
        sent.len(),
        1,
        "no retry after an answer without code: {sent:?}"
    );
    assert!(matches!(
        sent[0].reply,
        SendReply::AnsweredWithoutCode { .. }
    ));
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert!(d.message_id.is_some(), "the answer's messageId is kept");
    assert_eq!(env.alerts(EventKind::NeedsHuman), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kickout_keeps_the_token() {
    let env = Env::start(QUICK).await;
    let (regs, tokens) = {
        let s = env.fake.stats(SELLER);
        (s.regs, s.calls(TOKEN_API))
    };
    assert_eq!(
        env.fake.stats(SELLER).reg_failures,
        0,
        "the escaped token registers"
    );
    env.fake.fault(Fault::Kickout);
    env.wait_connected(SELLER, regs + 1).await;
    assert_eq!(
        env.fake.stats(SELLER).calls(TOKEN_API),
        tokens,
        "reconnected with the token it had"
    );
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reg_refused_for_good_fetches_six_tokens_alerts_once_and_pauses() {
    let env = Env::start(QUICK).await;
    env.fake.fault(Fault::RefuseReg);
    env.fake.fault(Fault::Kickout);
    let alerted = wait_for(|| env.alerts(EventKind::RiskControl) == 1).await;
    assert!(alerted, "{:?}", env.fake.stats(SELLER));
    // Every refusal distrusts the token; the cap stops the refetching at six an hour.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = env.fake.stats(SELLER);
    assert_eq!(stats.calls(TOKEN_API), 6, "{stats:?}");
    assert_eq!(env.alerts(EventKind::RiskControl), 1);
    assert_eq!(env.login("main"), Login::Ok, "mtop itself still works");
    // Fresh cookies end the pause at once.
    env.fake.clear_faults();
    let cookies = env.fake.renew_session(SELLER);
    write_cookies(env.dir.path(), "main", &cookies);
    env.wait_connected(SELLER, stats.regs + 1).await;
    assert!(wait_for(|| env.alerts(EventKind::Recovered) == 1).await);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ack_diff_does_not_end_the_session() {
    let env = Env::start(QUICK).await;
    env.fake.fault(Fault::IgnoreAckDiff);
    let regs = env.fake.stats(SELLER).regs;
    env.fake.fault(Fault::Kickout);
    env.wait_connected(SELLER, regs + 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.fake.stats(SELLER).regs, regs + 1, "no reconnect loop");
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shop_is_not_reconnected_but_silence_after_a_token_change_is() {
    let env = Env::start(&QUICK.replace("watchdog: 60s", "watchdog: 700ms")).await;
    // Quiet, heartbeats answered, no token change: the connection stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = env.fake.stats(SELLER);
    assert_eq!(s.regs, 1, "{s:?}");
    assert!(s.heartbeats >= 5, "{s:?}");
    // A refused `/reg` changes the token; the next session must see a push within
    // `watchdog`, or it reconnects once (with the same token) and then stays.
    let tokens = s.calls(TOKEN_API);
    env.fake.fault(Fault::RefuseReg);
    env.fake.fault(Fault::Kickout);
    assert!(
        env.fake
            .wait_until(WAIT, |f| f.stats(SELLER).reg_failures >= 1)
            .await
    );
    env.fake.clear_faults();
    env.wait_connected(SELLER, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = env.fake.stats(SELLER);
    assert_eq!(
        s.regs, 3,
        "one reconnect after the token change, then quiet: {s:?}"
    );
    assert_eq!(
        s.calls(TOKEN_API),
        tokens + u32::from(s.reg_failures),
        "the watchdog's reconnect reused the token: {s:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_is_described_consistently_and_answers_may_be_compressed() {
    let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36";
    let hint = r#""Chromium";v="145", "Not-A.Brand";v="24", "Google Chrome";v="145""#;
    let env = Env::start(&format!("{QUICK}, user_agent: '{ua}', sec_ch_ua: '{hint}'")).await;
    let s = env.fake.stats(SELLER);
    assert!(
        s.reg_ua.starts_with(&format!(
            "{ua} DingTalk(2.1.5) OS(MacOS/10.15.7) Browser(Chrome/145.0.0.0)"
        )),
        "{}",
        s.reg_ua
    );
    let header = |name: &str| s.mtop_headers.get(name).cloned().unwrap_or_default();
    assert_eq!(header("user-agent"), ua);
    assert_eq!(header("sec-ch-ua"), hint);
    assert_eq!(header("sec-ch-ua-platform"), "\"macOS\"");
    assert_eq!(header("sec-ch-ua-mobile"), "?0");
    let encodings = header("accept-encoding");
    assert!(
        encodings.contains("gzip") && encodings.contains("br"),
        "{encodings}"
    );
    assert!(s.compressed_answers > 0, "gzipped mtop answers were read");
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotated_cookie_jar_survives_a_restart() {
    let mut env = Env::start(QUICK).await;
    env.fake.fault(Fault::TokenExpired);
    // A paid order makes the daemon call mtop, which rotates `_m_h5_tk`.
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    let refusals = env.fake.stats(SELLER).token_refusals;
    assert!(refusals >= 1, "the fault made the server rotate the token");
    // The cookie file still holds the old token; the saved jar has the rotated one.
    let regs = env.fake.stats(SELLER).regs;
    env.restart().await;
    env.wait_connected(SELLER, regs + 1).await;
    let order = created_order(&env, SELLER, BUYER2, ITEM).await;
    env.fake.pay(&order);
    env.assert_delivered_once(&order, SELLER, BUYER2).await;
    assert_eq!(
        env.fake.stats(SELLER).token_refusals,
        refusals,
        "no call after the restart went out with the stale token"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_uuids_are_unique_even_in_a_burst() {
    let env = Env::start(QUICK).await;
    let mut orders = Vec::new();
    for i in 0..8 {
        orders.push((created_order(&env, SELLER, &buyer(i), ITEM).await, buyer(i)));
    }
    for (order, _) in &orders {
        env.fake.pay(order);
    }
    for (order, buyer) in &orders {
        env.assert_delivered_once(order, SELLER, buyer).await;
    }
    let sent = env.fake.sent_messages();
    let mut uuids: Vec<_> = sent.iter().map(|m| m.uuid.clone()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), sent.len(), "{sent:?}");
    assert!(
        !sent
            .iter()
            .any(|m| matches!(m.reply, SendReply::Duplicate { .. }))
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_the_punish_page_is_risk_control() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::RedirectToPunish);
    env.fake.pay(&order); // the order detail is redirected to the slider
    assert!(wait_for(|| env.alerts(EventKind::RiskControl) == 1).await);
    assert!(matches!(env.login("main"), Login::RiskControl { .. }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.alerts(EventKind::RiskControl), 1, "one alert, no storm");
    env.stop().await;
}
