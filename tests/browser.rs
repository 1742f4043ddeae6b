//! A real browser reads the status page: headless Debian Chromium loads the dashboard and an
//! order detail from a running server, and the rendered DOM is checked. The dashboard
//! screenshot is kept as `target/artifacts/dashboard.png` (and the order page beside it).
//!
//! `.ci/setup-browser.sh` installs Chromium. Without `/usr/bin/chromium` the test is skipped
//! with a loud message on a developer machine, and fails when `CI` is set.

mod skip;
mod status_common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use status_common::{assert_no_secrets, key, start};

const CHROMIUM: &str = "/usr/bin/chromium";

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
        .args([
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
        ])
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
