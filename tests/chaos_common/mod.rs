//! What the kill tests share (`tests/chaos.rs`, `tests/burst_kill.rs`): the config of a card
//! shop on the fake Goofish, the real daemon as a child process that can be SIGKILLed, the CLI,
//! polling the store until every order settled, and the fake's record of what reached buyers.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use xianyu_shopd::clock;
use xianyu_shopd::fake::FakeGoofish;
use xianyu_shopd::store::{DeliveryState, Store};

pub fn seller(i: usize) -> String {
    format!("22026409{i:05}")
}

pub fn item(i: usize) -> String {
    format!("9000000{i:05}")
}

/// The config directory: one card product per account, all drawing on one pool, fast timings.
pub fn write_config(dir: &Path, fake: &FakeGoofish, accounts: usize) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let mut pipeline = String::from("accounts:\n");
    let mut products = String::from("pools:\n  keys: {}\nproducts:\n");
    for i in 0..accounts {
        let user = seller(i);
        let cookies = fake.add_seller(&user, &format!("小店{i}"));
        fake.add_item(&user, &item(i), &format!("激活码{i}"), 990, &[]);
        std::fs::write(state.join(format!("cookies-a{i}.txt")), cookies).unwrap();
        pipeline.push_str(&format!(
            "  - id: a{i}\n    cookies_file: state/cookies-a{i}.txt\n"
        ));
        products.push_str(&format!(
            "  - item_id: \"{}\"\n    title: 激活码{i}\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n",
            item(i)
        ));
    }
    pipeline.push_str(&format!(
        "marketplace: {{ mtop_url: \"{}\", ws_url: \"{}\", heartbeat: 300ms, watchdog: 60s, reconcile_interval: 5s, cookies_poll: 1s, send_timeout: 2s, reconnect_max: 1s, risk_backoff: 1h, keepalive: 1h }}\n",
        fake.mtop_base(),
        fake.ws_url()
    ));
    pipeline.push_str("status: { listen: \"127.0.0.1:0\" }\n");
    pipeline.push_str(
        "pipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm, max_retries: 5, retry_delay: 300ms, readback_after: 300ms }\n  - notify: { channels: [log] }\n",
    );
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(dir.join("products.yaml"), products).unwrap();
    std::fs::write(
        dir.join("templates/card.txt.j2"),
        "感谢购买{{ order.item_title }}\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
    )
    .unwrap();
}

pub fn cli(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The daemon as a child process, its output appended to `daemon.log`.
pub struct Daemon {
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    /// Not started yet.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            child: None,
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
            .arg("--config-dir")
            .arg(&self.dir)
            .arg("run")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start xianyu-shopd run");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
            self.note("SIGKILL");
        }
    }

    /// A line in the daemon's log from the test (what it did, when), for a failure's reader.
    pub fn note(&self, what: &str) {
        use std::io::Write;
        if let Ok(mut log) = File::options().append(true).open(self.log()) {
            let _ = writeln!(
                log,
                "=== chaos {} {what}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
            );
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let term = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(term.success());
            let status = child.wait().unwrap();
            assert!(status.success(), "the daemon's clean stop: {status}");
        }
    }

    /// The daemon is still running (it did not exit on its own).
    pub fn assert_alive(&mut self, seed: u64) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "seed {seed}: the daemon exited by itself ({status}):\n{}",
                    tail(&self.log(), 40)
                );
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // Keep the config and state directory (with the daemon's log) for the reader.
            let keep = std::env::temp_dir().join(format!("chaos-{}", std::process::id()));
            if copy_dir(&self.dir, &keep).is_ok() {
                eprintln!(
                    "the daemon's directory and log are kept in {}",
                    keep.display()
                );
            }
        }
    }
}

pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The ship stage's `max_retries` in [`write_config`].
pub const MAX_RETRIES: u32 = 5;

pub fn is_settled(d: &xianyu_shopd::store::DeliveryRecord) -> bool {
    match d.state {
        DeliveryState::Delivered => true,
        DeliveryState::NeedsHuman => d.read_back.is_none(),
        // Every attempt provably failed (a zombie socket refused them all): the seller was told.
        DeliveryState::FailedSafe => d.attempts > MAX_RETRIES,
        _ => false,
    }
}

/// Polls the store (read-only, next to the running daemon) until every order is settled.
pub async fn settle(dir: &Path, orders: &[String], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let state = dir.join("state");
    while Instant::now() < deadline {
        let done = match Store::open(&state, clock::system()) {
            Ok(store) => orders
                .iter()
                .all(|o| matches!(store.delivery(o), Ok(Some(d)) if is_settled(&d))),
            Err(_) => false,
        };
        if done {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// What reached buyers, from the fake's own record.
pub struct Record {
    /// Key text → the conversations it reached.
    key_cids: HashMap<String, BTreeSet<String>>,
    /// Conversation → delivered messages carrying a key.
    per_cid: HashMap<String, usize>,
}

impl Record {
    pub fn of(fake: &FakeGoofish) -> Self {
        let mut key_cids: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut per_cid: HashMap<String, usize> = HashMap::new();
        for m in fake.sent_messages().into_iter().filter(|m| m.delivered) {
            let keys: Vec<&str> = m
                .text
                .lines()
                .filter_map(|l| l.strip_prefix("卡密："))
                .collect();
            if keys.is_empty() {
                continue;
            }
            *per_cid.entry(m.cid.clone()).or_default() += 1;
            for k in keys {
                key_cids
                    .entry(k.to_string())
                    .or_default()
                    .insert(m.cid.clone());
            }
        }
        Self { key_cids, per_cid }
    }

    pub fn messages_in(&self, cid: &str) -> usize {
        self.per_cid.get(cid).copied().unwrap_or(0)
    }

    pub fn shared_keys(&self) -> Vec<&String> {
        let mut keys: Vec<_> = self
            .key_cids
            .iter()
            .filter(|(_, c)| c.len() > 1)
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys
    }

    pub fn repeated_conversations(&self) -> Vec<&String> {
        let mut cids: Vec<_> = self
            .per_cid
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(c, _)| c)
            .collect();
        cids.sort();
        cids
    }

    /// Keys that reached two buyers plus extra deliveries in one conversation.
    pub fn duplicates(&self) -> usize {
        self.shared_keys().len()
            + self
                .per_cid
                .values()
                .map(|n| n.saturating_sub(1))
                .sum::<usize>()
    }

    pub fn keys_seen(&self) -> usize {
        self.key_cids.len()
    }

    /// No key reached two buyers and no conversation got two deliveries; `context` names the
    /// run for the failure's reader.
    pub fn assert_no_duplicates(&self, context: &str) {
        assert_eq!(
            self.duplicates(),
            0,
            "{context}keys that reached two buyers {:?}, conversations with two deliveries {:?}",
            self.shared_keys(),
            self.repeated_conversations()
        );
    }
}

#[derive(Debug, Default)]
pub struct Counts {
    pub available: u64,
    pub reserved: u64,
    pub delivered: u64,
    pub revoked: u64,
}

impl Counts {
    /// Every imported key is in exactly one state; `context` names the run for the failure's
    /// reader.
    pub fn assert_balance(&self, imported: u64, context: &str) {
        assert_eq!(
            self.available + self.reserved + self.delivered + self.revoked,
            imported,
            "{context}cards list does not balance: {self:?}"
        );
    }
}

/// The `keys` row of `xianyu-shopd cards list`.
pub fn cards_list(dir: &Path) -> Counts {
    let out = cli(dir, &["cards", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("keys"))
        .unwrap_or_else(|| panic!("no keys row in:\n{text}"));
    let n: Vec<u64> = row
        .split_whitespace()
        .skip(1)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    Counts {
        available: n[0],
        reserved: n[1],
        delivered: n[2],
        revoked: n[3],
    }
}
