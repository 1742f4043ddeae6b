//! The whole daemon (`app::Daemon`) against the loopback fake Goofish over real sockets: one
//! config directory, fast timings, card keys in a pool, and helpers that read what happened
//! from the store and from the fake's own record. Shared by the Goofish end-to-end tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::{FakeGoofish, FakeOrderStatus, SentChat};
use xianyu_shopd::health::{Health, Login};
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::{DeliveryState, Store};

pub const SELLER: &str = "2202640918079";
pub const SELLER2: &str = "2202640918080";
pub const BUYER: &str = "3149637063";
pub const BUYER2: &str = "3149637064";
pub const ITEM: &str = "900000000001";
pub const ITEM2: &str = "900000000002";
/// [`SELLER`]'s item with two SKUs; its product re-sends when a read-back proves a send absent.
pub const ITEM3: &str = "900000000003";
pub const WAIT: Duration = Duration::from_secs(15);

/// Fast timings so faults play out in seconds; a quiet socket is not a zombie here unless a
/// test asks for it.
pub const QUICK: &str = "heartbeat: 300ms, watchdog: 60s, reconcile_interval: 60s, cookies_poll: 200ms, send_timeout: 2s, reconnect_max: 1s, risk_backoff: 1h, keepalive: 1h";

pub struct Env {
    pub fake: FakeGoofish,
    pub dir: TempDir,
    pub daemon: Option<Daemon>,
}

impl Env {
    /// One account (`main` = [`SELLER`]) selling [`ITEM`] with card keys.
    pub async fn start(marketplace: &str) -> Self {
        Self::start_with(marketplace, &[("main", SELLER)]).await
    }

    pub async fn start_with(marketplace: &str, accounts: &[(&str, &str)]) -> Self {
        let fake = FakeGoofish::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &fake, marketplace, accounts);
        let text: String = (0..20).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
        let users: Vec<&str> = accounts.iter().map(|(_, user)| *user).collect();
        Self::launch_on(fake, dir, &text, &users).await
    }

    /// The daemon started on the config already written to `dir` for `fake`, with `keys`
    /// (one a line; may be empty) imported into the pool `keys`, once every one of `users`
    /// is connected.
    pub async fn launch_on(fake: FakeGoofish, dir: TempDir, keys: &str, users: &[&str]) -> Self {
        let daemon = launch(dir.path()).await;
        if !keys.is_empty() {
            daemon
                .store
                .import_cards("keys", keys, false, "test")
                .unwrap();
        }
        let env = Self {
            fake,
            dir,
            daemon: Some(daemon),
        };
        for user in users {
            env.wait_connected(user, 1).await;
        }
        env
    }

    /// Stops the daemon and starts a new one on the same config and state (a restart).
    pub async fn restart(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        self.daemon = Some(launch(self.dir.path()).await);
    }

    pub fn store(&self) -> &Store {
        &self.daemon.as_ref().unwrap().store
    }

    pub fn login(&self, account: &str) -> Login {
        let health = &self.daemon.as_ref().unwrap().health;
        health.account(account).map(|a| a.login).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    /// Registered and synced (pushes reach us) at least `regs` times.
    pub async fn wait_connected(&self, user: &str, regs: u32) {
        let ok = self.fake.wait_connected(user, regs, WAIT).await;
        assert!(
            ok,
            "account {user} did not (re)connect: {:?}",
            self.fake.stats(user)
        );
    }

    pub async fn wait_status(&self, order: &str, status: OrderStatus) {
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

    pub async fn wait_delivered(&self, order: &str) {
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
    pub fn delivered_to(&self, cid: &str) -> Vec<SentChat> {
        self.fake
            .sent_messages()
            .into_iter()
            .filter(|m| m.cid == cid && m.delivered)
            .collect()
    }

    pub fn accepted_consigns(&self, order: &str) -> usize {
        self.fake
            .consigns()
            .iter()
            .filter(|c| c.order_id == order && c.accepted)
            .count()
    }

    pub fn alerts(&self, kind: EventKind) -> usize {
        self.store()
            .notifications(1000)
            .unwrap()
            .iter()
            .filter(|n| n.event == kind)
            .count()
    }

    pub fn sources(&self, order: &str) -> Vec<String> {
        self.store()
            .order_detail(order)
            .unwrap()
            .map(|d| d.log.iter().map(|l| l.operator.clone()).collect())
            .unwrap_or_default()
    }

    /// Exactly one delivery of `order`: one chat message to its conversation addressed to
    /// the buyer and the seller, carrying the rendered template and one reserved key; one
    /// accepted confirmation; the ledger says delivered.
    pub async fn assert_delivered_once(&self, order: &str, seller: &str, buyer: &str) {
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

/// Writes a config directory for `accounts` (id, user) of `fake`: the sellers and their items
/// in the fake, cookie files under `state/`, `pipeline.yaml` with `marketplace` timings, card
/// products (ITEM3 opts in to `resend_if_absent`) and the delivery template.
pub fn write_config(dir: &Path, fake: &FakeGoofish, marketplace: &str, accounts: &[(&str, &str)]) {
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
        write_cookies(dir, id, &cookies);
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
        "pipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm, max_retries: 5, retry_delay: 300ms, readback_after: 300ms }\n  - notify: { channels: [log] }\n",
    );
    let products = format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 测试激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n  - item_id: \"{ITEM3}\"\n    title: 视频会员\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n    readback: {{ resend_if_absent: true }}\n  - item_id: \"{ITEM2}\"\n    title: 测试会员\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n"
    );
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("pipeline.yaml"), yaml).unwrap();
    std::fs::write(dir.join("products.yaml"), products).unwrap();
    std::fs::write(
        dir.join("templates/card.txt.j2"),
        "感谢购买{{ order.item_title }}\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
    )
    .unwrap();
}

/// The daemon in this process on the config in `dir`, its state in `dir/state`.
pub async fn launch(dir: &Path) -> Daemon {
    Daemon::start_with(dir, &dir.join("state"), clock::system(), Health::new())
        .await
        .unwrap_or_else(|e| panic!("daemon did not start: {e:#}"))
}

/// The real binary (`xianyu-shopd run`) on the config in `dir`, its output discarded.
pub fn run_binary(dir: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start xianyu-shopd run")
}

/// The body of a GET on the status page.
pub async fn fetch_page(url: &str) -> String {
    let reply = reqwest::get(url).await.unwrap();
    reply.text().await.unwrap()
}

pub fn write_cookies(dir: &Path, account: &str, cookies: &str) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Atomic replace, as an editor or script would.
    let tmp = state.join(format!(".cookies-{account}.tmp"));
    std::fs::write(&tmp, cookies).unwrap();
    std::fs::rename(tmp, state.join(format!("cookies-{account}.txt"))).unwrap();
}

pub async fn wait_for(f: impl Fn() -> bool) -> bool {
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
pub fn buyer(n: usize) -> String {
    format!("31496371{n:02}")
}

/// An order the daemon has seen as created (so the paid card is the only news).
pub async fn created_order(env: &Env, seller: &str, buyer: &str, item: &str) -> String {
    let order = env.fake.create_order(seller, buyer, item, 1, None);
    env.wait_status(&order, OrderStatus::PendingPayment).await;
    order
}
