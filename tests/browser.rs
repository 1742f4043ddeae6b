//! A real browser reads the status page: headless Debian Chromium loads the dashboard and an
//! order detail from a running server, and the rendered DOM is checked. The dashboard
//! screenshot is kept as `target/artifacts/dashboard.png` (and the order page beside it).
//! Every page is also opened at a phone's 390 px over the DevTools protocol, measured (no
//! horizontal overflow of the page) and photographed (`target/artifacts/phone-<page>.png`).
//!
//! `.ci/setup-browser.sh` installs Chromium. Without `/usr/bin/chromium` the test is skipped
//! with a loud message on a developer machine, and fails when `CI` is set.

mod skip;
mod status_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use status_common::{assert_no_secrets, key, start};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

fn chromium_or_skip() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    skip::skip_or_fail(
        "tests/browser.rs",
        &format!("{CHROMIUM} is missing; run `sudo .ci/setup-browser.sh`"),
    );
    false
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Load `url` in headless Chromium: the DOM after rendering, and a screenshot at `png`.
fn browse(url: &str, png: &Path) -> String {
    browse_at(url, png, "1280,1400")
}

/// [`browse`] in a window of `size` (`width,height`).
fn browse_at(url: &str, png: &Path, size: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--window-size={size}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_dashboard_and_an_order() {
    if !chromium_or_skip() {
        return;
    }
    let s = start(false).await;
    let base = format!("http://{}", s.addr);
    let dir = artifacts();
    let version = s.harness.shop.config.load().version.clone();

    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let dom = tokio::task::spawn_blocking({
        let (url, shot) = (format!("{base}/"), shot.clone());
        move || browse(&url, &shot)
    })
    .await
    .unwrap();
    for text in [
        "<title>首页 · 闲鱼小店</title>",
        "今日订单",
        "id=\"today-orders\">64<",
        "id=\"waiting-manual\">3<",
        "id=\"auto-rate\">33.3%<",
        "¥3014.00",
        "主店",
        "已连接",
        "触发风控",
        &version,
        "products.yaml:7:5",
    ] {
        assert!(dom.contains(text), "dashboard DOM lacks {text}:\n{dom}");
    }
    assert_no_secrets("dashboard DOM", &dom);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );

    let dom = tokio::task::spawn_blocking({
        let (url, shot) = (format!("{base}/orders/C1"), dir.join("order-C1.png"));
        move || browse(&url, &shot)
    })
    .await
    .unwrap();
    for text in [
        "订单详情",
        "id=\"order-id\">C1<",
        "已发货",
        "状态记录",
        "发货记录",
        "自动发货完成",
        "卡密（已隐藏）",
        "已发放",
    ] {
        assert!(dom.contains(text), "order DOM lacks {text}:\n{dom}");
    }
    assert!(dom.contains("K*************T"), "the key shows masked");
    assert!(!dom.contains(&key(0)));
    assert_no_secrets("order DOM", &dom);
    eprintln!("screenshots in {}", dir.display());
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .unwrap();
}

/// The 统计 page's inline SVG charts render at desktop width and at a phone's 390 px
/// (screenshots `target/artifacts/stats.png` and `stats-390.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_statistics_charts_on_desktop_and_phone() {
    if !chromium_or_skip() {
        return;
    }
    let s = start(false).await;
    let base = format!("http://{}", s.addr);
    let dir = artifacts();
    for (name, size) in [("stats.png", "1280,2200"), ("stats-390.png", "390,2600")] {
        let shot = dir.join(name);
        let _ = std::fs::remove_file(&shot);
        let dom = tokio::task::spawn_blocking({
            let (url, shot, size) = (format!("{base}/stats"), shot.clone(), size.to_string());
            move || browse_at(&url, &shot, &size)
        })
        .await
        .unwrap();
        for text in [
            "<title>统计 · 闲鱼小店</title>",
            "<svg id=\"chart-revenue\"",
            "<svg id=\"chart-rate\"",
            "<svg id=\"chart-latency\"",
            "<rect x=",
            "<polyline points=",
            "商品排行",
            "测试激活码",
        ] {
            assert!(
                dom.contains(text),
                "{name}: the stats DOM lacks {text}:\n{dom}"
            );
        }
        assert_no_secrets("stats DOM", &dom);
        let png = std::fs::read(&shot).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a real screenshot"
        );
    }
    eprintln!("screenshots in {}", dir.display());
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .unwrap();
}

/// Chromium driven over its DevTools protocol, for what `--dump-dom` cannot do: measuring the
/// page. The status pages' CSP (`default-src 'none'`) blocks any script a test could inject,
/// but `Runtime.evaluate` from the debugger is not subject to the page's CSP.
struct Devtools {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    child: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Devtools {
    /// Headless Chromium with a debugging port, and a connection to its first page.
    async fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args(CHROMIUM_FLAGS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run chromium");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let port = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromium opened no debugging port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let list = format!("http://127.0.0.1:{port}/json/list");
        let page_ws = loop {
            let targets: serde_json::Value = match reqwest::get(&list).await {
                Ok(answer) => answer.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            let page = targets
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string));
            if let Some(url) = page {
                break url;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromium opened no page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = connect_async(page_ws).await.expect("devtools websocket");
        Self {
            ws,
            next_id: 0,
            child,
            _profile: profile,
        }
    }

    /// One DevTools command and its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let frame = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer from chromium"))
                .expect("the devtools connection stays open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let answer: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expression, "returnByValue": true });
        let result = self.call("Runtime.evaluate", params).await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Load `url` in a phone-sized viewport (`width` CSS px, touch, 844 px high) and wait
    /// until it has loaded.
    async fn open_on_phone(&mut self, url: &str, width: u32) {
        let metrics = serde_json::json!({
            "width": width, "height": 844, "deviceScaleFactor": 1, "mobile": true
        });
        self.call("Emulation.setDeviceMetricsOverride", metrics)
            .await;
        self.call("Page.navigate", serde_json::json!({ "url": url }))
            .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let loaded = format!(
            "location.href === {} && document.readyState === 'complete'",
            serde_json::Value::from(url)
        );
        while self.eval(&loaded).await != serde_json::Value::Bool(true) {
            assert!(std::time::Instant::now() < deadline, "{url} did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A screenshot of the whole page (not only the viewport) at `png`.
    async fn screenshot(&mut self, png: &Path) {
        let height = self.eval("document.documentElement.scrollHeight").await;
        let width = self.eval("document.documentElement.clientWidth").await;
        let params = serde_json::json!({
            "format": "png",
            "captureBeyondViewport": true,
            "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 }
        });
        let shot = self.call("Page.captureScreenshot", params).await;
        let data = shot["data"].as_str().expect("screenshot data");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        std::fs::write(png, bytes).unwrap();
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How wide the page is against the phone's viewport, and the widest elements that are not
/// inside a box that scrolls on its own (for the failure message).
const MEASURE_WIDTH: &str = r#"(() => {
  const root = document.documentElement;
  const view = root.clientWidth;
  const scrolls = (e) => { for (let p = e.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; } return false; };
  const wide = [...document.body.querySelectorAll('*')]
    .filter((e) => e.getBoundingClientRect().right > view + 0.5 && !scrolls(e))
    .slice(0, 8)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + e.className : ''} right=${Math.round(e.getBoundingClientRect().right)}`);
  return { scroll_width: root.scrollWidth, view_width: view, wide };
})()"#;

/// Whether the rows of the page's `table.stack` lists are cards: each data cell a block of
/// its own, each row wider than 80 % of the screen.
const ROWS_AS_CARDS: &str = r#"(() => {
  const view = document.documentElement.clientWidth;
  const rows = [...document.querySelectorAll('table.stack tr')].filter((r) => r.querySelector('td'));
  const stacked = rows.every((r) => r.getBoundingClientRect().width > 0.8 * view
    && [...r.querySelectorAll('td')].every((td) => getComputedStyle(td).display !== 'table-cell'));
  return { rows: rows.length, stacked };
})()"#;

/// Issue 16 acceptance: every status page works on a phone (390 CSS px): the long lists
/// (账号, 待人工发货, 订单, 会话, 通知) become one card per row, other tables scroll inside their own box,
/// and nothing makes the page itself wider than the
/// screen (`document.documentElement.scrollWidth <= clientWidth`). Screenshots of each page
/// are kept as `target/artifacts/phone-<page>.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_page_fits_a_390_px_phone() {
    if !chromium_or_skip() {
        return;
    }
    let s = start(false).await;
    let base = format!("http://{}", s.addr);
    let dir = artifacts();
    let mut chrome = Devtools::launch().await;
    let pages = [
        ("dashboard", "/"),
        ("manual", "/manual"),
        ("orders", "/orders"),
        ("order", "/orders/C1"),
        ("products", "/products"),
        ("stats", "/stats"),
        ("chats", "/chats"),
        ("aftersale", "/aftersale"),
        ("problems", "/problems"),
        ("logs", "/logs"),
    ];
    let mut too_wide = Vec::new();
    for (name, path) in pages {
        let url = format!("{base}{path}");
        chrome.open_on_phone(&url, 390).await;
        let title = chrome.eval("document.title").await;
        assert!(
            title.as_str().is_some_and(|t| t.ends_with("闲鱼小店")),
            "{path} rendered a status page: {title}"
        );
        let png = dir.join(format!("phone-{name}.png"));
        let _ = std::fs::remove_file(&png);
        chrome.screenshot(&png).await;
        let bytes = std::fs::read(&png).expect("screenshot written");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "a real screenshot of {path}"
        );
        let m = chrome.eval(MEASURE_WIDTH).await;
        assert_eq!(
            m["view_width"], 390,
            "{path}: the viewport is a phone's: {m}"
        );
        if ["/", "/manual", "/orders"].contains(&path) {
            // The long lists are cards here: every cell on its own line under its column's
            // name, the row as wide as the screen allows.
            let cards = chrome.eval(ROWS_AS_CARDS).await;
            assert_eq!(
                cards["rows"].as_u64().map(|n| n > 0),
                Some(true),
                "{path}: {cards}"
            );
            assert_eq!(cards["stacked"], true, "{path}: {cards}");
        }
        if m["scroll_width"].as_u64() > m["view_width"].as_u64() {
            too_wide.push(format!("{path}: {m}"));
        }
    }
    assert!(
        too_wide.is_empty(),
        "pages wider than a 390 px phone:\n{}",
        too_wide.join("\n")
    );
    eprintln!("phone screenshots in {}", dir.display());
    drop(chrome);
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .unwrap();
}
