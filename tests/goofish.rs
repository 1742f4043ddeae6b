//! The Goofish client end to end: the whole daemon (`app::Daemon`: shop, account supervisors,
//! Goofish marketplace) against the loopback fake (`xianyu_shopd::fake::FakeGoofish`) over
//! real sockets — mtop HTTP and the IM WebSocket. Each test proves one promise with the
//! fake's own record of what the client did: what reached a buyer, how often, and on which
//! conversation; what was confirmed; how many alerts a dead login produced.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::{FakeGoofish, FakeOrderStatus, Fault, SendReply, SentChat};
use xianyu_shopd::health::{Connection, Health, Login};
use xianyu_shopd::notify::EventKind;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::{DeliveryState, Store};

const SELLER: &str = "2202640918079";
const SELLER2: &str = "2202640918080";
const BUYER: &str = "3149637063";
const BUYER2: &str = "3149637064";
const ITEM: &str = "900000000001";
const ITEM2: &str = "900000000002";
/// [`SELLER`]'s item with two SKUs.
const ITEM3: &str = "900000000003";
const WAIT: Duration = Duration::from_secs(15);

/// Fast timings so faults play out in seconds; a quiet socket is not a zombie here unless a
/// test asks for it.
const QUICK: &str = "heartbeat: 300ms, watchdog: 60s, reconcile_interval: 60s, cookies_poll: 200ms, send_timeout: 2s, reconnect_max: 1s, risk_backoff: 1h, keepalive: 1h";

struct Env {
    fake: FakeGoofish,
    dir: TempDir,
    daemon: Option<Daemon>,
}

impl Env {
    /// One account (`main` = [`SELLER`]) selling [`ITEM`] with card keys.
    async fn start(marketplace: &str) -> Self {
        Self::start_with(marketplace, &[("main", SELLER)]).await
    }

    async fn start_with(marketplace: &str, accounts: &[(&str, &str)]) -> Self {
        let fake = FakeGoofish::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut yaml = String::from("accounts:\n");
        for (i, (id, user)) in accounts.iter().enumerate() {
            let cookies = fake.add_seller(user, &format!("小店{i}"));
            let (item, title) = if *user == SELLER {
                (ITEM, "测试激活码")
            } else {
                (ITEM2, "测试会员")
            };
            fake.add_item(user, item, title, 990, &[]);
            if *user == SELLER {
                fake.add_item(user, ITEM3, "视频会员", 1500, &["月卡", "年卡"]);
            }
            write_cookies(dir.path(), id, &cookies);
            yaml.push_str(&format!(
                "  - id: {id}\n    cookies_file: state/cookies-{id}.txt\n"
            ));
        }
        yaml.push_str(&format!(
            "marketplace: {{ mtop_url: \"{}\", ws_url: \"{}\", {marketplace} }}\n",
            fake.mtop_base(),
            fake.ws_url()
        ));
        // Port 0: every test daemon gets its own status page port.
        yaml.push_str("status: { listen: \"127.0.0.1:0\" }\n");
        yaml.push_str(
            "pipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm, max_retries: 5, retry_delay: 300ms }\n  - notify: { channels: [log] }\n",
        );
        let products = format!(
            "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n  - item_id: \"{ITEM3}\"\n    title: 视频会员\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n  - item_id: \"{ITEM2}\"\n    title: 测试会员\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n"
        );
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("pipeline.yaml"), yaml).unwrap();
        std::fs::write(dir.path().join("products.yaml"), products).unwrap();
        std::fs::write(
            dir.path().join("templates/card.txt.j2"),
            "感谢购买{{ order.item_title }}\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
        )
        .unwrap();
        let daemon = Daemon::start_with(
            dir.path(),
            &dir.path().join("state"),
            clock::system(),
            Health::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("daemon did not start: {e:#}"));
        let text: String = (0..20).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
        daemon
            .store
            .import_cards("keys", &text, false, "test")
            .unwrap();
        let env = Self {
            fake,
            dir,
            daemon: Some(daemon),
        };
        for (_, user) in accounts {
            env.wait_connected(user, 1).await;
        }
        env
    }

    fn store(&self) -> &Store {
        &self.daemon.as_ref().unwrap().store
    }

    fn login(&self, account: &str) -> Login {
        let health = &self.daemon.as_ref().unwrap().health;
        health.account(account).map(|a| a.login).unwrap_or_default()
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    /// Registered and synced (pushes reach us) at least `regs` times.
    async fn wait_connected(&self, user: &str, regs: u32) {
        let ok = self
            .fake
            .wait_until(WAIT, |f| {
                let s = f.stats(user);
                s.regs >= regs && s.syncs >= regs && s.live >= 1
            })
            .await;
        assert!(
            ok,
            "account {user} did not (re)connect: {:?}",
            self.fake.stats(user)
        );
    }

    async fn wait_status(&self, order: &str, status: OrderStatus) {
        let ok = wait_for(|| {
            self.store()
                .order(order)
                .unwrap()
                .is_some_and(|o| o.status == status)
        })
        .await;
        assert!(
            ok,
            "order {order} never reached {status:?}: {:?}",
            self.store().order(order).unwrap()
        );
    }

    async fn wait_delivered(&self, order: &str) {
        let ok = wait_for(|| {
            self.store()
                .delivery(order)
                .unwrap()
                .is_some_and(|d| d.state == DeliveryState::Delivered)
        })
        .await;
        assert!(
            ok,
            "order {order} not delivered: {:?}; sent {:?}",
            self.store().delivery(order).unwrap(),
            self.fake.sent_messages()
        );
    }

    /// Chat messages for `order` (recognised by the key it carries) that reached the buyer.
    fn delivered_to(&self, cid: &str) -> Vec<SentChat> {
        self.fake
            .sent_messages()
            .into_iter()
            .filter(|m| m.cid == cid && m.delivered)
            .collect()
    }

    fn accepted_consigns(&self, order: &str) -> usize {
        self.fake
            .consigns()
            .iter()
            .filter(|c| c.order_id == order && c.accepted)
            .count()
    }

    fn alerts(&self, kind: EventKind) -> usize {
        self.store()
            .notifications(1000)
            .unwrap()
            .iter()
            .filter(|n| n.event == kind)
            .count()
    }

    fn sources(&self, order: &str) -> Vec<String> {
        self.store()
            .order_detail(order)
            .unwrap()
            .map(|d| d.log.iter().map(|l| l.operator.clone()).collect())
            .unwrap_or_default()
    }

    /// Exactly one delivery of `order`: one chat message to its conversation addressed to
    /// the buyer and the seller, carrying the rendered template and one reserved key; one
    /// accepted confirmation; the ledger says delivered.
    async fn assert_delivered_once(&self, order: &str, seller: &str, buyer: &str) {
        self.wait_delivered(order).await;
        // Let anything that would wrongly follow (a second send or confirm) happen.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let cid = self.fake.order_cid(order).unwrap();
        let sent = self.delivered_to(&cid);
        assert_eq!(
            sent.len(),
            1,
            "exactly one message reached the buyer: {sent:?}"
        );
        let msg = &sent[0];
        assert_eq!(msg.account, seller);
        assert_eq!(msg.receivers, vec![buyer.to_string(), seller.to_string()]);
        assert!(msg.text.starts_with("感谢购买"), "{}", msg.text);
        let keys: Vec<_> = msg
            .text
            .lines()
            .filter(|l| l.starts_with("卡密：KEY-"))
            .collect();
        assert_eq!(keys.len(), 1, "one key for one unit: {}", msg.text);
        assert_eq!(
            self.accepted_consigns(order),
            1,
            "{:?}",
            self.fake.consigns()
        );
        assert_eq!(
            self.fake.order_status(order),
            Some(FakeOrderStatus::Shipped)
        );
        let d = self.store().delivery(order).unwrap().unwrap();
        assert_eq!(d.state, DeliveryState::Delivered);
    }
}

fn write_cookies(dir: &Path, account: &str, cookies: &str) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Atomic replace, as an editor or script would.
    let tmp = state.join(format!(".cookies-{account}.tmp"));
    std::fs::write(&tmp, cookies).unwrap();
    std::fs::rename(tmp, state.join(format!("cookies-{account}.txt"))).unwrap();
}

async fn wait_for(f: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A buyer of its own (orders of one buyer share a conversation).
fn buyer(n: usize) -> String {
    format!("31496371{n:02}")
}

/// An order the daemon has seen as created (so the paid card is the only news).
async fn created_order(env: &Env, seller: &str, buyer: &str, item: &str) -> String {
    let order = env.fake.create_order(seller, buyer, item, 1, None);
    env.wait_status(&order, OrderStatus::PendingPayment).await;
    order
}

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
    let env = Env::start(&QUICK.replace("watchdog: 60s", "watchdog: 1500ms")).await;
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
    env.fake.pay(&order);
    let ok = wait_for(|| {
        env.store()
            .delivery(&order)
            .unwrap()
            .is_some_and(|d| d.state == DeliveryState::NeedsHuman)
    })
    .await;
    assert!(ok, "{:?}", env.store().delivery(&order).unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    // A kick-out distrusts the token: the next connection fetches a new one.
    let calls = env.fake.stats(SELLER).calls(token_api);
    env.fake.fault(Fault::Kickout);
    assert!(
        env.fake
            .wait_until(WAIT, |f| f.stats(SELLER).calls(token_api) > calls)
            .await
    );
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
