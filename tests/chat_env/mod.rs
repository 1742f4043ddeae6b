//! A shop for chat tests: the whole daemon (`app::Daemon`) against the loopback fake Goofish and
//! the simulated model (`fake::model::FakeModel`), both real servers on loopback.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::FakeGoofish;
use xianyu_shopd::fake::model::FakeModel;
use xianyu_shopd::health::Health;
use xianyu_shopd::store::Store;

pub const SELLER: &str = "2202640918079";
pub const BUYER: &str = "3149637063";
pub const BUYER2: &str = "3149637064";
/// A card-key product with chat facts and bargaining (list 99, floor 80, step 5, 3 rounds).
pub const ITEM: &str = "900000000001";
pub const WAIT: Duration = Duration::from_secs(15);

/// The test's chat section: no reply delay, a short debounce, keyword rules, the model.
pub fn chat_yaml(model_url: &str) -> String {
    format!(
        r#"chat:
  - filter: {{ max_age: 5m }}
  - takeover: {{ pause: 30m, toggle: "。" }}
  - debounce: {{ window: 400ms }}
  - keywords:
      rules:
        - any: [在吗]
          reply: 在的，亲
        - any: [怎么用]
          reply: [第一步：拍下, 第二步：查看聊天]
          once: true
        - any: [广告]
          reply: ""
  - order-status: {{}}
  - bargain: {{ use_model: true }}
  - llm:
      base_url: {model_url}
      model: qwen-plus
      timeout: 1s
      max_chars: 80
  - default:
      reply: 亲，稍等，卖家马上回复您
      cooldown: 0s
  - send:
      delay: {{ min: 0s, max: 0s }}
      per_conversation_per_minute: 100
      per_account_per_minute: 1000
"#
    )
}

pub struct ChatEnv {
    pub fake: FakeGoofish,
    pub model: FakeModel,
    pub dir: TempDir,
    pub daemon: Option<Daemon>,
    pub health: Health,
}

impl ChatEnv {
    pub async fn start() -> Self {
        Self::start_with(|url| chat_yaml(url), "{ min: 0s, max: 0s }").await
    }

    /// `chat` builds the chat section from the model's base URL; `delay` is the card
    /// product's delivery delay window.
    pub async fn start_with(chat: impl Fn(&str) -> String, delay: &str) -> Self {
        Self::start_with_files(chat, delay, &[]).await
    }

    /// As [`Self::start_with`], with `files` (path under the config dir, bytes) written first.
    pub async fn start_with_files(
        chat: impl Fn(&str) -> String,
        delay: &str,
        files: &[(&str, &[u8])],
    ) -> Self {
        Self::start_shop(chat, &format!("    delay: {delay}\n"), files).await
    }

    /// As [`Self::start_with_files`], with `product` (YAML lines indented four spaces, its
    /// `delay:` among them) written into the card product.
    pub async fn start_shop(
        chat: impl Fn(&str) -> String,
        product: &str,
        files: &[(&str, &[u8])],
    ) -> Self {
        let fake = FakeGoofish::start().await.unwrap();
        let model = FakeModel::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cookies = fake.add_seller(SELLER, "测试小店");
        fake.add_item(SELLER, ITEM, "Office 激活码", 9900, &[]);
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/cookies-main.txt"), &cookies).unwrap();
        let pipeline = format!(
            "accounts:\n  - id: main\n    name: 测试小店\n    cookies_file: state/cookies-main.txt\nmarketplace: {{ mtop_url: \"{}\", ws_url: \"{}\", upload_url: \"{}\", heartbeat: 300ms, watchdog: 60s, reconcile_interval: 60s, cookies_poll: 200ms, send_timeout: 2s, reconnect_max: 1s, keepalive: 1h }}\nstatus: {{ listen: \"127.0.0.1:0\" }}\npipeline:\n  - ingest: {{}}\n  - classify: {{}}\n  - stock-check: {{}}\n  - delay: {{ virtual: {{ min: 0s, max: 0s }} }}\n  - ship: {{ mode: send_then_confirm }}\n  - notify: {{ channels: [log] }}\n{}",
            fake.mtop_base(),
            fake.ws_url(),
            fake.upload_url(),
            chat(&model.base_url()),
        );
        let products = format!(
            "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: Office 激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n{product}    price: 99\n    facts: |\n      支持 Windows 10 和 Windows 11\n      一码一机，永久激活\n    bargain: {{ floor: 80, step: 5, max_rounds: 3 }}\n"
        );
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        for (path, bytes) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
        std::fs::write(dir.path().join("products.yaml"), products).unwrap();
        std::fs::write(
            dir.path().join("templates/card.txt.j2"),
            "感谢购买\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
        )
        .unwrap();
        let mut env = Self {
            fake,
            model,
            dir,
            daemon: None,
            health: Health::new(),
        };
        env.boot().await;
        let text: String = (0..20).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
        env.store()
            .import_cards("keys", &text, false, "test")
            .unwrap();
        env
    }

    async fn boot(&mut self) {
        // Counted before the start: the daemon may register before this function looks.
        let regs = self.fake.stats(SELLER).regs + 1;
        let daemon = Daemon::start_with(
            self.dir.path(),
            &self.dir.path().join("state"),
            clock::system(),
            self.health.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("daemon did not start: {e:#}"));
        self.daemon = Some(daemon);
        let ok = self.fake.wait_connected(SELLER, regs, WAIT).await;
        assert!(
            ok,
            "the account did not connect: {:?}",
            self.fake.stats(SELLER)
        );
    }

    pub async fn restart(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        self.boot().await;
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    pub fn store(&self) -> &Store {
        &self.daemon.as_ref().unwrap().store
    }

    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Texts the bot sent in the buyer's conversations (deliveries excluded: they carry 卡密).
    pub fn replies_to(&self, buyer: &str) -> Vec<String> {
        self.fake
            .sent_messages()
            .into_iter()
            .filter(|m| m.receivers.iter().any(|r| r == buyer) && !m.text.contains("卡密："))
            .map(|m| m.text)
            .collect()
    }

    /// Wait until the buyer has at least `n` replies; returns them.
    pub async fn wait_replies(&self, buyer: &str, n: usize) -> Vec<String> {
        let ok = self
            .fake
            .wait_until(WAIT, |_| self.replies_to(buyer).len() >= n)
            .await;
        assert!(
            ok,
            "expected {n} replies to {buyer}, got {:?}",
            self.replies_to(buyer)
        );
        self.replies_to(buyer)
    }

    /// Give the daemon time to (wrongly) answer, then return what the buyer got.
    pub async fn settle(&self, buyer: &str) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.replies_to(buyer)
    }

    /// The buyer orders ITEM and pays; waits until the delivery is recorded as sent.
    pub async fn buy(&self, buyer: &str) -> String {
        let order = self.fake.create_order(SELLER, buyer, ITEM, 1, None);
        self.fake.pay(&order);
        order
    }
}

impl ChatEnv {
    /// Waits until the order's delivery went out; returns when (ms).
    pub async fn wait_delivered(&self, order: &str) -> u64 {
        let sent_at = || {
            self.store()
                .delivery(order)
                .unwrap()
                .and_then(|d| d.sent_at)
        };
        assert!(
            wait_for(|| sent_at().is_some()).await,
            "order {order} was not delivered"
        );
        sent_at().unwrap()
    }
}

pub async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
