//! Shared by the status page tests: a shop with one order in each interesting state, a status
//! server on 127.0.0.1:0 over it, and a minimal HTTP/1.1 client on a raw socket (so the tests
//! see exactly the bytes a browser would, headers included).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use xianyu_shopd::event::EventStatus;
use xianyu_shopd::health::{Connection, Health, Login, ReloadStatus};
use xianyu_shopd::marketplace::SendOutcome;
use xianyu_shopd::status::logs::{LogBuffer, LogLine};
use xianyu_shopd::status::{self, StatusContext, StatusError};
use xianyu_shopd::store::DeliveryState;

use crate::support::{self, CARD_ITEM, Harness, PHYSICAL_ITEM, STOCK_ITEM};

/// Keys imported into pool `keys`; none of them may ever appear in a response.
pub const KEYS: usize = 5;
pub const TOKEN: &str = "s3cret-status-token-xyz";
/// A webhook URL that refuses connections, so notifications fail and are retried.
pub const HOOK_URL: &str = "http://127.0.0.1:9/hook-secret-path";
pub const RELOAD_ERROR: &str = "products.yaml:7:5: unknown field `titel`, did you mean `title`?";
/// Orders waiting for payment, to make the list page.
pub const UNPAID: usize = 60;

pub fn pipeline(token: bool) -> String {
    let token = if token {
        "  token_file: state/status-token.txt\n"
    } else {
        ""
    };
    format!(
        "accounts:\n  - id: main\n    name: 主店\n    cookies_env: TEST_COOKIES\nstatus:\n  listen: 127.0.0.1:8080\n{token}pipeline:\n  - ingest: {{}}\n  - classify: {{}}\n  - stock-check: {{ low_stock_alert: 2 }}\n  - delay: {{ virtual: {{ min: 0s, max: 0s }} }}\n  - ship: {{ mode: send_then_confirm, max_retries: 1, retry_delay: 10ms }}\n  - notify: {{ channels: [hook] }}\nchannels:\n  hook:\n    type: webhook\n    url_file: state/hook.url\n"
    )
}

pub fn key(i: usize) -> String {
    format!("KEY-{i:04}-SECRET")
}

/// A shop with: C1 delivered automatically, U1 whose send outcome is unknown, F1 whose sends
/// failed until it was handed over, P1 a physical order for the seller, and [`UNPAID`] unpaid.
pub async fn shop(token: bool) -> Harness {
    let h = Harness::new(
        &pipeline(token),
        &support::products_yaml("send_then_confirm"),
    );
    let state = h.dir.path().join("state");
    std::fs::write(state.join("hook.url"), HOOK_URL).unwrap();
    std::fs::write(state.join("status-token.txt"), TOKEN).unwrap();
    h.import_keys(KEYS);

    paid(&h, "C1", CARD_ITEM, "12.50").await;
    h.market.script_sends([SendOutcome::Unknown {
        reason: "timeout after send".into(),
    }]);
    paid(&h, "U1", CARD_ITEM, "1.00").await;
    // max_retries: 1 = two attempts, both provably not delivered.
    h.market
        .script_sends((0..2).map(|_| SendOutcome::NotDelivered {
            reason: "chat closed".into(),
        }));
    paid(&h, "F1", CARD_ITEM, "0.5").await;
    paid(&h, "P1", PHYSICAL_ITEM, "3000").await;
    for i in 0..UNPAID {
        let mut ev = support::event(&format!("W{i:03}"), EventStatus::PendingPayment, STOCK_ITEM);
        ev.amount = Some("9.90".into());
        h.ingest(ev).await;
    }
    h.settle().await;

    let state_of = |id: &str| h.store.delivery(id).unwrap().map(|d| d.state);
    assert_eq!(state_of("C1"), Some(DeliveryState::Delivered));
    assert_eq!(state_of("U1"), Some(DeliveryState::NeedsHuman));
    assert_eq!(state_of("F1"), Some(DeliveryState::FailedSafe));
    assert_eq!(state_of("P1"), Some(DeliveryState::Manual));
    h
}

async fn paid(h: &Harness, id: &str, item: &str, amount: &str) {
    let mut ev = support::event(id, EventStatus::Paid, item);
    ev.amount = Some(amount.into());
    ev.item_title = Some(format!("商品-{id}"));
    h.ingest(ev).await;
    h.settle().await;
}

pub struct Running {
    pub addr: SocketAddr,
    pub harness: Harness,
    pub health: Health,
    pub logs: LogBuffer,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), StatusError>>,
}

impl Running {
    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.addr, "GET", path, headers).await
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}\n{}", r.body))
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

/// The shop plus health facts, a reload failure and two log lines, served on 127.0.0.1:0.
pub async fn start(token: bool) -> Running {
    let harness = shop(token).await;
    let now = harness.store.now();
    let health = Health::new();
    health.set_connection("main", Connection::Connected, now - 600_000);
    health.record_business_message("main", now - 90_000);
    health.record_token_refresh("main", true, now - 3_600_000);
    health.set_login("main", Login::Ok, None, now - 7_200_000);
    health.set_login(
        "main",
        Login::RiskControl {
            retry_at: Some(now + 1_800_000),
        },
        Some("FAIL_SYS_USER_VALIDATE".into()),
        now - 60_000,
    );
    let version = harness.shop.config.load().version.clone();
    health.record_reload(ReloadStatus {
        version,
        ok: false,
        at: now - 5_000,
        errors: vec![RELOAD_ERROR.into()],
        stuck_since: None,
        unapplied: None,
    });
    let logs = LogBuffer::new(50);
    for (i, level) in ["WARN", "ERROR"].into_iter().enumerate() {
        logs.push(LogLine {
            at: now - 1_000 + i as u64,
            level,
            target: "xianyu_shopd::notify".into(),
            message: format!("Notification attempt failed {i}."),
            fields: "channel=hook".into(),
        });
    }
    serve(harness, health, logs, "127.0.0.1:0").await
}

pub async fn serve(harness: Harness, health: Health, logs: LogBuffer, bind: &str) -> Running {
    let listener = TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = StatusContext::new(harness.store.clone(), harness.shop.config.clone())
        .with_health(health.clone())
        .with_logs(logs.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(status::serve(listener, ctx, shutdown.clone()));
    Running {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        harness,
        health,
        logs,
        shutdown,
        task,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), response read to EOF.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("response within 20 s")
        .unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Every HTML page and JSON endpoint that shows shop data.
pub const PAGES: &[&str] = &[
    "/",
    "/manual",
    "/orders",
    "/orders?page=2",
    "/orders/C1",
    "/orders/U1",
    "/products",
    "/problems",
    "/chats",
    "/logs",
    "/stats",
    "/stats?by=item",
    "/api/status",
    "/api/manual",
    "/api/orders",
    "/api/orders/C1",
    "/api/orders/F1",
    "/api/products",
    "/api/problems",
    "/api/chats",
    "/api/logs",
    "/api/stats?by=item",
    "/metrics",
];

/// Nothing secret in a body: no card key, no webhook URL, no status token.
pub fn assert_no_secrets(path: &str, body: &str) {
    for i in 0..KEYS {
        assert!(!body.contains(&key(i)), "{path} shows card key {}", key(i));
        // Not even the middle of a key.
        assert!(
            !body.contains(&format!("{i:04}-SECRET")),
            "{path} shows part of a key"
        );
    }
    assert!(
        !body.contains("hook-secret-path"),
        "{path} shows the webhook URL"
    );
    assert!(!body.contains(TOKEN), "{path} shows the status token");
}
