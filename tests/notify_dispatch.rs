//! The outbox dispatcher against the channel fakes: retries after a rate-limit answer, the
//! fallback chain, de-duplication, cool-down and recovery, local rate limits, routing, a crash
//! with 50 notifications pending (secrets in logs: tests/notify_logs.rs).
//!
//! Time is a `ManualClock` on the store (retry and rate-limit times), while request signatures
//! use the real clock, which the fakes check.

#[path = "support/notify_fakes.rs"]
mod notify_fakes;

use std::sync::Arc;
use std::time::Duration;

use notify_fakes::*;
use serde_json::json;
use tokio::sync::Notify;
use xianyu_shopd::alert::{Alert, EventKind};
use xianyu_shopd::config;
use xianyu_shopd::notify::Router;
use xianyu_shopd::notify::dispatcher::Dispatcher;
use xianyu_shopd::store::{OutboxState, Store};

#[tokio::test]
async fn a_rate_limit_answer_is_retried_after_the_wait() {
    let fake = Fake::start(Wecom::new("K")).await;
    let r = rig(
        WECOM,
        "{ channels: [wecom] }",
        &[("wecom-url", &fake.url("/cgi-bin/webhook/send?key=K"))],
    );
    fake.push_script(ok(
        json!({"errcode": 45009, "errmsg": "api freq out of limit"}),
    ));
    r.raise(&manual("A1"));
    let t0 = r.store.now();
    r.drain().await;
    let row = &r.rows()[0];
    assert_eq!(row.state, OutboxState::Pending);
    assert_eq!(row.last_class.as_deref(), Some("retryable"));
    assert!(
        row.next_at >= t0 + 65_000 && row.next_at <= t0 + 71_500,
        "waits 65 s (+≤10 % jitter): {}",
        row.next_at - t0
    );

    r.advance(Duration::from_secs(30));
    r.drain().await;
    assert_eq!(fake.all().len(), 1, "not before the wait");

    r.advance(Duration::from_secs(42));
    r.drain().await;
    assert_eq!(fake.accepted().len(), 1);
    let row = &r.rows()[0];
    assert_eq!((row.state, row.attempts), (OutboxState::Sent, 2));
}

/// The seed's rule: WeCom and SMS both fail → e-mail goes (here a webhook stands in for the
/// mailbox; tests/notify_email.rs runs the same chain into a real SMTP server).
#[tokio::test]
async fn when_every_primary_fails_the_fallback_goes_once() {
    let wecom = Fake::start(Wecom::new("RIGHT")).await;
    let mut quota = Aliyun::new("AK", "SK");
    quota.daily_limit = 0;
    let sms = Fake::start(quota).await;
    let hook = Fake::start(Webhook::new(None)).await;
    let channels = format!(
        "{WECOM}  sms:\n    type: aliyun_sms\n    endpoint: {}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk\n    sign_name: 闲鱼小店\n    template_code: SMS_1\n    phone_numbers: [13800138000]\n  mail:\n    type: webhook\n    url_file: state/hook\n",
        sms.url("")
    );
    let r = rig(
        &channels,
        "{ channels: [wecom, sms], fallback: [mail] }",
        &[
            ("wecom-url", &wecom.url("/cgi-bin/webhook/send?key=WRONG")),
            ("ak", "AK"),
            ("sk", "SK"),
            ("hook", &hook.url("/mail")),
        ],
    );
    r.raise(&manual("F1"));
    r.drain().await;
    let rows = r.rows();
    let by = |ch: &str| rows.iter().find(|x| x.channel == ch).unwrap().clone();
    assert_eq!(
        (by("wecom").state, by("wecom").last_class.as_deref()),
        (OutboxState::Failed, Some("permanent"))
    );
    assert!(by("wecom").last_error.unwrap().contains("93000"));
    assert_eq!(
        (by("sms").state, by("sms").last_class.as_deref()),
        (OutboxState::Failed, Some("quota"))
    );
    assert_eq!(by("mail").state, OutboxState::Sent);
    assert_eq!(
        rows.len(),
        3,
        "one fallback row, not one per failed channel"
    );
    assert_eq!(hook.accepted().len(), 1);
    assert!(
        hook.accepted()[0].json()["message"]
            .as_str()
            .unwrap()
            .contains("F1")
    );
}

#[tokio::test]
async fn no_fallback_while_another_primary_delivered() {
    let wecom = Fake::start(Wecom::new("RIGHT")).await;
    let ok_hook = Fake::start(Webhook::new(None)).await;
    let mail = Fake::start(Webhook::new(None)).await;
    let channels = format!(
        "{WECOM}  other:\n    type: webhook\n    url_file: state/other\n  mail:\n    type: webhook\n    url_file: state/mail\n"
    );
    let r = rig(
        &channels,
        "{ channels: [wecom, other], fallback: [mail] }",
        &[
            ("wecom-url", &wecom.url("/cgi-bin/webhook/send?key=WRONG")),
            ("other", &ok_hook.url("/")),
            ("mail", &mail.url("/")),
        ],
    );
    r.raise(&manual("F2"));
    r.drain().await;
    assert_eq!(ok_hook.accepted().len(), 1);
    assert_eq!(
        mail.all().len(),
        0,
        "the seller already heard through `other`"
    );
    assert_eq!(r.store.notification_counts().unwrap().failed, 1);
}

#[tokio::test]
async fn retries_give_up_and_fall_back() {
    let hook = Fake::start(Webhook::new(None)).await;
    let mail = Fake::start(Webhook::new(None)).await;
    let channels = "  hook:\n    type: webhook\n    url_file: state/hook\n  mail:\n    type: webhook\n    url_file: state/mail\n";
    let r = rig(
        channels,
        "{ channels: [hook], fallback: [mail] }",
        &[("hook", &hook.url("/")), ("mail", &mail.url("/"))],
    );
    for _ in 0..20 {
        hook.push_script(status(503, json!({})));
    }
    r.raise(&manual("R1"));
    for _ in 0..10 {
        r.drain().await;
        r.advance(Duration::from_secs(6 * 60));
    }
    let rows = r.rows();
    assert_eq!(
        rows[0].attempts,
        xianyu_shopd::notify::dispatcher::MAX_ATTEMPTS
    );
    assert_eq!(rows[0].state, OutboxState::Failed);
    assert_eq!(mail.accepted().len(), 1);
}

#[tokio::test]
async fn identical_alerts_are_sent_once_within_the_window() {
    let fake = Fake::start(Wecom::new("K")).await;
    let r = rig(
        WECOM,
        "{ channels: [wecom], dedupe_window: 10m }",
        &[("wecom-url", &fake.url("/cgi-bin/webhook/send?key=K"))],
    );
    let low = Alert::sample(EventKind::LowStock);
    for _ in 0..600 {
        r.raise(&low); // the "600 a night" storm
    }
    r.drain().await;
    assert_eq!(fake.accepted().len(), 1);
    assert_eq!(
        r.rows()[0].repeats,
        599,
        "the repeats are counted on the row that went out"
    );

    r.advance(Duration::from_secs(11 * 60));
    r.raise(&low);
    r.drain().await;
    assert_eq!(
        fake.accepted().len(),
        2,
        "after the window the alert goes again"
    );
    // Per-order alerts differ in content, so they are never merged away.
    r.raise(&manual("D1"));
    r.raise(&manual("D2"));
    r.drain().await;
    assert_eq!(fake.accepted().len(), 4);
}

#[tokio::test]
async fn login_expired_cools_down_for_three_hours_and_recovers_once() {
    let fake = Fake::start(Wecom::new("K")).await;
    let r = rig(
        WECOM,
        "{ channels: [wecom] }",
        &[("wecom-url", &fake.url("/cgi-bin/webhook/send?key=K"))],
    );
    let expired = || Alert::login_expired("main", "主店", "Cookie 已失效");
    for _ in 0..12 {
        r.raise(&expired());
        r.drain().await;
        r.advance(Duration::from_secs(10 * 60)); // every heartbeat for two hours
    }
    assert_eq!(
        fake.accepted().len(),
        1,
        "once per 3 h, not every heartbeat"
    );
    r.advance(Duration::from_secs(61 * 60));
    r.raise(&expired());
    r.drain().await;
    assert_eq!(
        fake.accepted().len(),
        2,
        "still expired after 3 h: reminded again"
    );

    r.raise(&Alert::recovered(EventKind::LoginExpired, "main", "主店"));
    r.raise(&Alert::recovered(EventKind::LoginExpired, "main", "主店"));
    r.drain().await;
    assert_eq!(fake.accepted().len(), 3, "one recovery message");
    let text = fake.accepted()[2].json()["text"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("【已恢复】") && text.contains("登录失效已恢复"),
        "{text}"
    );

    r.raise(&expired());
    r.drain().await;
    assert_eq!(
        fake.accepted().len(),
        4,
        "a new expiry after recovery is heard at once"
    );
    assert!(
        r.store
            .open_problems()
            .unwrap()
            .contains(&"login_expired:main@wecom".to_string())
    );

    // A recovery for a problem nobody heard about sends nothing.
    r.raise(&Alert::recovered(EventKind::RiskControl, "main", "主店"));
    r.drain().await;
    assert_eq!(fake.accepted().len(), 4);
}

#[tokio::test]
async fn local_rate_limit_keeps_wecom_under_twenty_a_minute() {
    let clock = Arc::new(xianyu_shopd::clock::ManualClock::new(now_ms()));
    let fake = Fake::start(Wecom::with_clock("K", clock.clone())).await;
    let r = rig_at(
        clock,
        WECOM,
        "{ channels: [wecom] }",
        &[("wecom-url", &fake.url("/cgi-bin/webhook/send?key=K"))],
    );
    for i in 0..25 {
        r.raise(&manual(&format!("L{i}")));
    }
    r.drain().await;
    assert_eq!(
        fake.all().len(),
        20,
        "the 21st is held back locally, never sent into a 45009"
    );
    let pending: Vec<_> = r
        .rows()
        .into_iter()
        .filter(|x| x.state == OutboxState::Pending)
        .collect();
    assert_eq!(pending.len(), 5);
    assert!(
        pending.iter().all(|x| x.attempts == 0),
        "postponing is not an attempt"
    );
    r.advance(Duration::from_secs(60));
    r.drain().await;
    assert_eq!(fake.accepted().len(), 25);
    assert!(fake.all().iter().all(|q| q.json().is_object()));
}

#[tokio::test]
async fn events_are_routed_per_event() {
    let wecom = Fake::start(Wecom::new("K")).await;
    let hook = Fake::start(Webhook::new(None)).await;
    let channels = format!("{WECOM}  ops:\n    type: webhook\n    url_file: state/ops\n");
    let r = rig(
        &channels,
        "{ channels: [wecom], routes: { low_stock: [ops], delivered: [ops] } }",
        &[
            ("wecom-url", &wecom.url("/cgi-bin/webhook/send?key=K")),
            ("ops", &hook.url("/")),
        ],
    );
    r.raise(&manual("P1"));
    r.raise(&Alert::sample(EventKind::LowStock));
    r.raise(&Alert::sample(EventKind::Delivered));
    r.drain().await;
    assert_eq!(wecom.accepted().len(), 1);
    let events: Vec<_> = hook
        .accepted()
        .iter()
        .map(|q| q.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["low_stock", "delivered"]);
    let counts = r.store.notification_counts().unwrap();
    assert_eq!((counts.sent, counts.pending, counts.failed), (3, 0, 0));
}

/// Kill the dispatcher while 50 notifications are pending, restart on the same store: every
/// one is delivered, each once (the one in flight at the kill may reach the receiver twice,
/// with the same `webhook-id`, which a Standard Webhooks receiver drops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pending_survive_a_kill_and_are_sent_once() {
    let hook = Fake::start(Webhook::new(None)).await;
    hook.set_delay(Duration::from_millis(15));
    let (dir, cfg) = config_dir(
        "  hook:\n    type: webhook\n    url_file: state/hook\n",
        "{ channels: [hook] }",
        &[("hook", &hook.url("/"))],
    );
    let state = dir.path().join("state");
    {
        let store = Store::open(&state, xianyu_shopd::clock::system()).unwrap();
        let router = Router::new(cfg.notify());
        for i in 0..50 {
            store
                .enqueue_notifications(&router.drafts(&manual(&format!("K{i}"))))
                .unwrap();
        }
        let dispatcher = Dispatcher::new(
            store.clone(),
            config::handle(cfg.clone()),
            Arc::new(Notify::new()),
        );
        let task = tokio::spawn(dispatcher.run(tokio_util::sync::CancellationToken::new()));
        while hook.all().len() < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort(); // no graceful shutdown
        let _ = task.await;
        let counts = store.notification_counts().unwrap();
        assert!(counts.pending >= 25, "killed mid-way: {counts:?}");
    }
    // A blocking store call of the killed task may still hold the file for a moment.
    let store = loop {
        match Store::open(&state, xianyu_shopd::clock::system()) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        config::handle(cfg.clone()),
        Arc::new(Notify::new()),
    );
    dispatcher.drain_due().await.unwrap();
    let counts = store.notification_counts().unwrap();
    assert_eq!((counts.sent, counts.pending, counts.failed), (50, 0, 0));
    let ids: std::collections::HashSet<String> = hook
        .accepted()
        .iter()
        .map(|q| q.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50, "every notification arrived");
    assert!(
        hook.accepted().len() <= 51,
        "at most the in-flight one twice: {}",
        hook.accepted().len()
    );
    drop(dir);
}
