//! After-sale automations end to end (issue 13 item 5): the daemon against the fake Goofish
//! over real sockets. A buyer is rated and thanked once per order, across a restart and a
//! duplicate "快给ta一个评价吧" card; polishing records "already polished today" as such; a
//! risk-control answer pauses the account's tasks with one alert until fresh cookies.

mod goofish_env;

use std::time::Duration;

use goofish_env::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::fake::Fault;
use xianyu_shopd::metrics;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::{ActionKind, ActionState, ActionTarget, BeginAction, Store};

const OFF_SHELF: &str = "900000000009";
const RATE_TEXT: &str = "谢谢{{ order.buyer_nick }}，交易愉快！";
const THANKS_TEXT: &str = "感谢惠顾，{{ order.item_title }}用得开心～";

/// Add `aftersale:` to the env's pipeline.yaml and the two templates it names.
fn enable_aftersale(env: &Env, section: &str) {
    let dir = env.dir.path();
    std::fs::write(dir.join("templates/rate.txt.j2"), RATE_TEXT).unwrap();
    std::fs::write(dir.join("templates/thanks.txt.j2"), THANKS_TEXT).unwrap();
    let path = dir.join("pipeline.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{yaml}aftersale:\n{section}")).unwrap();
}

/// A window around now (Beijing time) that the daily jobs fall into at once.
fn window_now() -> String {
    let ms = xianyu_shopd::clock::now_ms() + 8 * 3600 * 1000;
    let min = (ms / 60_000 % 1440) as u32;
    let (start, end) = (min.saturating_sub(5), (min + 60).min(1439));
    let f = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    format!("\"{}-{}\"", f(start), f(end))
}

async fn get(env: &Env, path: &str) -> String {
    let addr = env.daemon.as_ref().unwrap().status_addr;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn thanks_to(env: &Env, buyer: &str) -> usize {
    env.fake
        .sent_messages()
        .iter()
        .filter(|m| {
            m.delivered && m.receivers.iter().any(|r| r == buyer) && m.text.starts_with("感谢惠顾")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_is_rated_and_thanked_once_across_a_restart_and_a_duplicate_card() {
    let mut env = Env::start(QUICK).await;
    enable_aftersale(
        &env,
        "  rate: { enabled: true, template: rate.txt.j2 }\n  thanks: { enabled: true, template: thanks.txt.j2 }\n  jitter: 0s\n  min_gap: 1s\n",
    );
    env.restart().await;
    env.wait_connected(SELLER, 2).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&order);
    env.wait_delivered(&order).await;
    env.fake.complete(&order);
    env.wait_status(&order, OrderStatus::Completed).await;
    let rated = env.fake.wait_until(WAIT, |f| f.ratings().len() == 1).await;
    assert!(rated, "the buyer is rated: {:?}", env.fake.ratings());
    let rating = &env.fake.ratings()[0];
    assert_eq!(rating.order_id, order);
    assert_eq!(rating.rate, 1, "a good rating");
    assert!(
        rating.feedback.starts_with("谢谢") && rating.feedback.ends_with("交易愉快！"),
        "{}",
        rating.feedback
    );
    assert!(
        wait_for(|| thanks_to(&env, BUYER) == 1).await,
        "thanked once"
    );

    // A restart, then the same completed card again (a re-push with a new mid).
    env.restart().await;
    env.wait_connected(SELLER, 3).await;
    env.fake.repeat_last_push(SELLER);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.fake.ratings().len(), 1, "rated once");
    assert_eq!(env.fake.rate_calls(&order), 1, "rate.create called once");
    assert_eq!(thanks_to(&env, BUYER), 1, "thanked once");

    let rec = env
        .store()
        .action(ActionKind::Rate, &order)
        .unwrap()
        .unwrap();
    assert_eq!(rec.state, ActionState::Done);
    assert_eq!(rec.code.as_deref(), Some("SUCCESS::调用成功"));
    let page = get(&env, &format!("/orders/{order}")).await;
    assert!(
        page.contains("已评价") && page.contains("感谢消息"),
        "{page}"
    );
    assert!(
        metrics::get(
            metrics::AFTERSALE_ACTIONS,
            &[("action", "rate"), ("outcome", "done")]
        ) >= 1
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_buyer_is_neither_rated_nor_thanked() {
    let mut env = Env::start(QUICK).await;
    enable_aftersale(
        &env,
        &format!(
            "  rate: {{ enabled: true }}\n  thanks: {{ enabled: true, template: thanks.txt.j2 }}\n  jitter: 0s\n  min_gap: 1s\nblacklist:\n  buyers: [\"{BUYER2}\"]\n"
        ),
    );
    env.restart().await;
    env.wait_connected(SELLER, 2).await;
    let listed = created_order(&env, SELLER, BUYER2, ITEM).await;
    let other = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.pay(&other);
    env.wait_delivered(&other).await;
    // The listed buyer's order completes too (the seller shipped it by hand).
    for order in [&listed, &other] {
        env.fake.complete(order);
        env.wait_status(order, OrderStatus::Completed).await;
    }
    assert!(env.fake.wait_until(WAIT, |f| f.ratings().len() == 1).await);
    assert!(wait_for(|| thanks_to(&env, BUYER) == 1).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.fake.ratings()[0].order_id,
        other,
        "only the other buyer is rated"
    );
    assert_eq!(env.fake.rate_calls(&listed), 0);
    assert_eq!(
        thanks_to(&env, BUYER2),
        0,
        "nothing reaches the blacklisted buyer"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polishing_records_already_polished_as_such_not_as_a_fresh_success() {
    let mut env = Env::start(QUICK).await;
    // ITEM and ITEM3 are SELLER's; a third one is taken off the shelf.
    env.fake.add_item(SELLER, OFF_SHELF, "已下架商品", 500, &[]);
    env.fake.polish_in_app(ITEM3);
    env.fake.take_off_shelf(OFF_SHELF);
    enable_aftersale(
        &env,
        &format!(
            "  polish: {{ enabled: true, window: {} }}\n  jitter: 0s\n  min_gap: 1s\n",
            window_now()
        ),
    );
    env.restart().await;
    let done = env.fake.wait_until(WAIT, |f| f.polishes().len() == 2).await;
    assert!(done, "{:?}", env.fake.polishes());
    let polishes = env.fake.polishes();
    let ret = |item: &str| {
        polishes
            .iter()
            .find(|p| p.item_id == item)
            .map(|p| p.ret.clone())
    };
    assert_eq!(ret(ITEM).as_deref(), Some("SUCCESS::调用成功"));
    assert!(
        ret(ITEM3)
            .unwrap()
            .starts_with("FAIL_BIZ_IDLEITEM_POLISH_AGAIN")
    );
    assert_eq!(ret(OFF_SHELF), None, "an off-shelf item is not polished");

    let day = xianyu_shopd::aftersale::schedule::beijing_day(xianyu_shopd::clock::now_ms());
    let state = |item: &str| {
        env.store()
            .action(ActionKind::Polish, &format!("{item}@{day}"))
            .unwrap()
            .map(|r| (r.state, r.code))
    };
    assert!(wait_for(|| state(ITEM3).is_some_and(|s| s.0 == ActionState::AlreadyDone)).await);
    let (s2, code2) = state(ITEM3).unwrap();
    assert_eq!(
        s2,
        ActionState::AlreadyDone,
        "already polished is not a fresh success"
    );
    assert!(
        code2.unwrap().starts_with("FAIL_BIZ_IDLEITEM_POLISH_AGAIN"),
        "the raw code is kept"
    );
    assert_eq!(state(ITEM).unwrap().0, ActionState::Done);

    // A restart the same day polishes nothing again.
    env.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.fake.polishes().len(), 2, "{:?}", env.fake.polishes());
    let page = get(&env, "/aftersale").await;
    assert!(
        page.contains("今天已擦亮过（平台返回，不算本次成功）"),
        "{page}"
    );
    assert!(page.contains("擦亮成功"), "{page}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_control_pauses_the_account_with_one_alert_until_fresh_cookies() {
    let env = Env::start(QUICK).await;
    env.fake.fault(Fault::RiskControl);
    // Hot reload: the daily polish job is scheduled by the reload and runs at once.
    enable_aftersale(
        &env,
        &format!(
            "  polish: {{ enabled: true, window: {}, items: [\"{ITEM}\", \"{ITEM3}\"] }}\n  jitter: 0s\n  min_gap: 1s\n",
            window_now()
        ),
    );
    let tripped = wait_for(|| {
        env.store()
            .aftersale_guard("main")
            .unwrap()
            .tripped
            .is_some()
    })
    .await;
    assert!(tripped, "the breaker opens on risk control");
    let calls = env.fake.stats(SELLER).calls("mtop.taobao.idle.item.polish");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.fake.stats(SELLER).calls("mtop.taobao.idle.item.polish"),
        calls,
        "no more polish calls while paused"
    );
    let alerts = || {
        env.store()
            .notifications(1000)
            .unwrap()
            .iter()
            .filter(|n| n.event == EventKind::RiskControl && n.text.contains("售后任务"))
            .count()
    };
    assert_eq!(alerts(), 1, "one alert");

    // Fresh cookies: the tasks resume and polish both items.
    env.fake.clear_faults();
    let cookies = env.fake.renew_session(SELLER);
    write_cookies(env.dir.path(), "main", &cookies);
    let resumed = env
        .fake
        .wait_until(WAIT, |f| {
            f.polishes()
                .iter()
                .filter(|p| p.ret.starts_with("SUCCESS"))
                .count()
                == 2
        })
        .await;
    assert!(resumed, "{:?}", env.fake.polishes());
    assert!(
        env.store()
            .aftersale_guard("main")
            .unwrap()
            .tripped
            .is_none()
    );
    assert_eq!(alerts(), 1, "still one alert");
    env.stop().await;
}

/// Claim before call: a claim found again (the process stopped mid-call) is an unknown
/// outcome, never a second call; a read-back that finds the order still pending lets it go.
#[test]
fn a_rating_claimed_before_a_crash_is_not_repeated_blindly() {
    let store = Store::in_memory(std::sync::Arc::new(ManualClock::new(1_000))).unwrap();
    let target = ActionTarget {
        kind: ActionKind::Rate,
        subject: "3000000000000000001".into(),
        account: "main".into(),
        order_id: Some("3000000000000000001".into()),
        item_id: None,
    };
    assert_eq!(
        store.begin_action(&target, 3).unwrap(),
        BeginAction::Go { attempt: 1 }
    );
    // The process stops here; on the next run the claim is found.
    let again = store.begin_action(&target, 3).unwrap();
    assert!(
        matches!(again, BeginAction::Unknown(ref r) if r.state == ActionState::Unknown),
        "{again:?}"
    );
    assert!(matches!(
        store.begin_action(&target, 3).unwrap(),
        BeginAction::Unknown(_)
    ));
    // The pending-ratings list still shows the order: provably not rated.
    store
        .settle_unknown_action(ActionKind::Rate, &target.subject, false)
        .unwrap();
    assert_eq!(
        store.begin_action(&target, 3).unwrap(),
        BeginAction::Go { attempt: 2 }
    );
}

/// A config dir (the shipped example, after-sale on) with one completed order to replay; the
/// output of `replay events.jsonl` with `extra` arguments.
fn replay_completed_order(d: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pipeline = std::fs::read_to_string(root.join("pipeline.yaml")).unwrap();
    std::fs::write(
        d.join("pipeline.yaml"),
        format!("{pipeline}\naftersale:\n  rate: {{ enabled: true }}\n  thanks: {{ enabled: true }}\n  polish: {{ enabled: true, window: \"09:00-10:00\", items: [\"900052644388\"] }}\n"),
    )
    .unwrap();
    std::fs::copy(root.join("products.yaml"), d.join("products.yaml")).unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(root.join("templates"))
        .arg(d)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        d.join("events.jsonl"),
        "{\"account\":\"main\",\"order_id\":\"3001\",\"status\":\"completed\",\"item_id\":\"900052644388\",\"buyer_id\":\"2201\",\"buyer_nick\":\"小林\",\"cid\":\"60001\"}\n",
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(d)
        .args(["replay", "events.jsonl"])
        .args(extra)
        .current_dir(d)
        .output()
        .unwrap()
}

/// `replay` without `--dry-run` writes the real store, so it must not record a rating (or a
/// thank-you) that never reached Xianyu: `run` would then never rate that buyer.
#[test]
fn replay_that_writes_the_store_records_no_rating_it_never_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = replay_completed_order(d, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("rate    order=3001"), "{stdout}");
    assert!(!stdout.contains("感谢"), "{stdout}");
    assert!(
        stdout.contains("replay without --dry-run neither rates nor thanks"),
        "{stdout}"
    );
    let store = Store::open(&d.join("state"), xianyu_shopd::clock::system()).unwrap();
    assert!(store.action(ActionKind::Rate, "3001").unwrap().is_none());
    assert!(store.action(ActionKind::Thanks, "3001").unwrap().is_none());
    assert_eq!(
        store.pending_job_count().unwrap(),
        0,
        "nothing left to run either"
    );
}

/// `replay --dry-run` (the real binary) prints what each after-sale task would do: the rating
/// and thank-you of a completed order, and the daily polish plan.
#[test]
fn replay_dry_run_prints_what_each_task_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = replay_completed_order(d, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rate    order=3001 account=main text=\"不错的买家，交易愉快！\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("send    order=3001") && stdout.contains("感谢"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "aftersale polish: would polish items 900052644388 of main once a day at 09:00-10:00"
        ),
        "{stdout}"
    );
    assert!(
        !d.join("state/shop.redb").exists(),
        "a dry run writes nothing"
    );
}
