//! The status page over real sockets: every page and endpoint, what each shows, and that no
//! key or secret leaves. The shop behind it is built by the real pipeline (see status_common).

mod status_common;
mod support;

use serde_json::Value;
use status_common::{PAGES, RELOAD_ERROR, UNPAID, assert_no_secrets, key, start};
use support::{CARD_ITEM, PHYSICAL_ITEM, STOCK_ITEM};
use xianyu_shopd::metrics;

const PAID: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_in_chinese_and_hides_every_secret() {
    let s = start(false).await;
    for path in PAGES {
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_no_secrets(path, &r.body);
        let ct = r.header("content-type").unwrap();
        if path.starts_with("/api/") {
            assert!(ct.starts_with("application/json"), "{path}: {ct}");
            serde_json::from_str::<Value>(&r.body).unwrap();
        } else if *path != "/metrics" {
            assert!(ct.starts_with("text/html"), "{path}: {ct}");
            assert!(r.body.contains("<html lang=\"zh-CN\">"), "{path}");
            assert!(
                r.body.contains("http-equiv=\"refresh\""),
                "{path} refreshes itself"
            );
            assert!(!r.body.contains("<script"), "{path} needs no JavaScript");
            for nav in ["首页", "待人工发货", "订单", "商品", "异常", "日志"] {
                assert!(r.body.contains(nav), "{path} nav {nav}");
            }
        }
    }
    let health = s.get("/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_counts_today_accounts_and_the_last_reload() {
    let s = start(false).await;
    let d = s.json("/api/status").await;
    let t = &d["today"];
    assert_eq!(t["orders"], PAID + UNPAID as u64);
    assert_eq!(t["paid"], PAID);
    assert_eq!(t["shipped"], 1, "C1 was confirmed");
    assert_eq!(
        t["waiting_manual"], 3,
        "P1 manual, U1 unknown, F1 retries exhausted"
    );
    assert_eq!(
        (t["auto_delivered"].as_u64(), t["auto_failed"].as_u64()),
        (Some(1), Some(2))
    );
    assert!((t["auto_success_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(t["revenue_fen"], 1250 + 100 + 50 + 300_000);
    assert_eq!(t["revenue"], "3014.00");

    let version = s.harness.shop.config.load().version.clone();
    assert_eq!(d["config"]["version"], version.as_str());
    let r = &d["config"]["last_reload"];
    assert_eq!(r["ok"], false);
    assert!(r["at"].as_u64().is_some());
    assert_eq!(r["errors"][0], RELOAD_ERROR);

    let a = &d["accounts"][0];
    assert_eq!(
        (a["id"].as_str(), a["name"].as_str()),
        (Some("main"), Some("主店"))
    );
    assert_eq!(a["connection"], "connected");
    assert_eq!(a["login"]["state"], "risk_control");
    assert_eq!(a["token_age_ms"].as_u64().map(|ms| ms / 60_000), Some(60));
    assert!(a["last_business_message"].as_u64().is_some());
    assert_eq!(d["problems"]["needs_human"], 1);
    assert_eq!(d["problems"]["failed_deliveries"], 1);
    assert_eq!(d["problems"]["login_problems"], 1);

    let html = s.get("/").await.body;
    for text in [
        "今日订单",
        "待人工发货",
        "自动发货成功率",
        "33.3%",
        "¥3014.00",
        "主店",
        "已连接",
        "触发风控",
        "FAIL_SYS_USER_VALIDATE",
        "1 小时 0 分",
        &version,
        "失败，仍在使用上一个有效配置",
    ] {
        assert!(html.contains(text), "dashboard lacks {text}");
    }
    assert!(
        html.contains("products.yaml:7:5: unknown field `titel`"),
        "reload error on the page"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_queue_is_oldest_first_with_a_48_hour_deadline() {
    let s = start(false).await;
    let m = s.json("/api/manual").await;
    let ids: Vec<&str> = m["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["U1", "F1", "P1"], "in payment order");
    for o in m["orders"].as_array().unwrap() {
        let paid = o["payment_time"].as_u64().unwrap();
        assert_eq!(o["ship_deadline"].as_u64(), Some(paid + 48 * 3600 * 1000));
        assert_eq!(o["overdue"], false);
        assert!(o["remaining_ms"].as_i64().unwrap() > 47 * 3600 * 1000);
    }
    let html = s.get("/manual").await.body;
    assert!(html.contains("发货期限") && html.contains("1 天 23 小时"));
    // Each order says why it waits and what to do, not a generic "转人工处理".
    for (why, next) in [
        ("实物商品，需要你亲自发货", "orders ship P1 --company"),
        (
            "自动发货 2 次都失败，买家没有收到",
            "xianyu-shopd orders retry F1",
        ),
        ("发货结果未知", "orders resolve U1 --received"),
    ] {
        assert!(html.contains(why), "{why}: {html}");
        assert!(html.contains(next), "{next}: {html}");
    }
    assert!(!html.contains("timeout after send") && !html.contains("chat closed"));
    let (u, p) = (html.find(">U1<").unwrap(), html.find(">P1<").unwrap());
    assert!(u < p, "oldest first on the page too");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_filter_by_status_account_and_item_with_paging() {
    let s = start(false).await;
    let total = PAID as usize + UNPAID;
    let all = s.json("/api/orders").await;
    assert_eq!(all["total"], total);
    assert_eq!(
        (all["page"].as_u64(), all["pages"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(all["orders"].as_array().unwrap().len(), 50);
    assert_eq!(all["next_href"], "/orders?page=2");

    let p2 = s.json("/api/orders?page=2").await;
    assert_eq!(p2["orders"].as_array().unwrap().len(), total - 50);
    assert_eq!(p2["prev_href"], "/orders?page=1");
    assert!(p2["next_href"].is_null());

    let count = |v: &Value| v["total"].as_u64().unwrap();
    assert_eq!(
        count(&s.json("/api/orders?status=pending_ship").await),
        PAID - 1
    );
    assert_eq!(
        count(
            &s.json("/api/orders?status=%E5%B7%B2%E5%8F%91%E8%B4%A7")
                .await
        ),
        1,
        "Chinese label 已发货"
    );
    assert_eq!(
        count(&s.json("/api/orders?account=main").await),
        total as u64
    );
    assert_eq!(count(&s.json("/api/orders?account=other").await), 0);
    assert_eq!(
        count(&s.json(&format!("/api/orders?item={CARD_ITEM}")).await),
        3
    );
    assert_eq!(
        count(
            &s.json(&format!(
                "/api/orders?item={PHYSICAL_ITEM}&status=pending_ship"
            ))
            .await
        ),
        1
    );
    let bad = s.json("/api/orders?status=nonsense").await;
    assert_eq!(
        (count(&bad), bad["bad_status"].as_str()),
        (0, Some("nonsense"))
    );

    let html = s
        .get(&format!("/orders?item={STOCK_ITEM}&page=2"))
        .await
        .body;
    assert!(
        html.contains("上一页") && html.contains("第 2 / 2 页"),
        "{html}"
    );
    // minijinja escapes `/` and `&` in attribute values; a browser reads them back as is.
    assert!(
        html.contains(&format!("&#x2f;orders?item={STOCK_ITEM}&amp;page=1")),
        "paging keeps the filter"
    );
    assert!(html.contains("<option value=\"pending_ship\">等待卖家发货</option>"));
    assert!(html.contains(&format!("<option value=\"{STOCK_ITEM}\" selected>")));
    // Newest first: the last unpaid order opens the first page.
    let first = &all["orders"][0]["order_id"];
    assert_eq!(first, &format!("W{:03}", UNPAID - 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_detail_shows_log_ledger_masked_keys_and_notifications() {
    let s = start(false).await;
    let c1 = s.json("/api/orders/C1").await;
    assert_eq!(c1["order"]["status"], "shipped");
    assert_eq!(c1["order"]["delivery"], "delivered");
    let log: Vec<&str> = c1["status_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(log, ["pending_ship", "shipped"]);
    let history = c1["ledger"]["history"].as_array().unwrap();
    assert!(history.len() >= 4, "planned → … → delivered: {history:?}");
    assert_eq!(history.last().unwrap()["state"], "delivered");
    let card = &c1["cards"][0];
    assert_eq!(card["state"], "delivered");
    let masked = card["key_masked"].as_str().unwrap();
    assert!(masked.starts_with('K') && masked.contains("***") && masked != key(0));
    assert!(
        c1["order"]["ship_content"]
            .as_str()
            .unwrap()
            .contains(masked)
    );

    let u1 = s.json("/api/orders/U1").await;
    assert_eq!(u1["order"]["delivery"], "needs_human");
    let n = &u1["notifications"][0];
    assert_eq!(
        (n["event"].as_str(), n["channel"].as_str()),
        (Some("needs_human"), Some("hook"))
    );
    assert!(n["attempts"].as_u64().unwrap() >= 1);
    assert!(n["last_error"].as_str().is_some());

    let html = s.get("/orders/C1").await.body;
    for text in [
        "订单 <span id=\"order-id\">C1</span>",
        "状态记录",
        "发货记录",
        "等待卖家发货 → 已发货",
        "自动发货完成",
        masked,
        "已发放",
    ] {
        assert!(html.contains(text), "detail lacks {text}");
    }
    let html = s.get("/orders/U1").await.body;
    assert!(html.contains("【发货结果未知，请人工核实】") && html.contains("hook"));

    let missing = s.get("/api/orders/NOPE").await;
    assert_eq!(missing.status, 404);
    assert_eq!(s.get("/orders/NOPE").await.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_show_stock_pools_and_low_stock() {
    let s = start(false).await;
    let p = s.json("/api/products").await;
    let product = |id: &str| {
        p["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["item_id"] == id)
            .unwrap()
            .clone()
    };
    let card = product(CARD_ITEM);
    assert_eq!(card["stock_kind"], "cards");
    let pool = &card["pools"][0];
    // 5 keys: C1 delivered one, U1 and F1 hold one each (nothing was provably sent back).
    assert_eq!(pool["name"], "keys");
    assert_eq!(pool["available"], 2);
    assert_eq!(pool["delivered"], 1);
    assert_eq!(pool["reserved"], 2);
    assert_eq!(
        (pool["low_stock_alert"].as_u64(), pool["low"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(card["low"], true);
    let phys = product(PHYSICAL_ITEM);
    assert_eq!(phys["quantity"]["remaining"], 0);
    assert_eq!(phys["low"], true);
    let stock = product(STOCK_ITEM);
    assert_eq!(
        (
            stock["quantity"]["remaining"].as_i64(),
            stock["low"].as_bool()
        ),
        (Some(3), Some(false))
    );
    assert_eq!(p["low_stock"], 2);

    let html = s.get("/products").await.body;
    assert!(html.contains("库存不足") && html.contains("卡密池") && html.contains("测试激活码"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_list_needs_human_failures_notifications_and_risk() {
    let s = start(false).await;
    let p = s.json("/api/problems").await;
    assert_eq!(p["needs_human"][0]["order_id"], "U1");
    assert_eq!(p["failed_deliveries"][0]["order_id"], "F1");
    assert_eq!(p["failed_deliveries"][0]["retry_pending"], false);
    let notes = p["failing_notifications"].as_array().unwrap();
    assert!(
        notes.len() >= 3,
        "manual_ship, needs_human, ship_failed all failed to send: {notes:?}"
    );
    assert!(
        notes
            .iter()
            .all(|n| n["channel"] == "hook" && n["last_error"].is_string())
    );
    assert_eq!(p["accounts"][0]["login"]["state"], "risk_control");
    assert_eq!(p["login_events"][0]["login_label"], "触发风控");

    let html = s.get("/problems").await.body;
    for text in [
        "发货结果未知，需人工核实",
        "发送失败的自动发货",
        "重试中",
        "触发风控",
        "FAIL_SYS_USER_VALIDATE",
        ">U1<",
        ">F1<",
        // The uncertain delivery offers its conversation and both ways to close it out.
        "goofish.com&#x2f;im?itemId=900000000001&amp;peerUserId=buyer-U1",
        "orders resolve U1 --received",
        "orders resolve U1 --not-received --retry",
    ] {
        assert!(html.contains(text), "problems lack {text}");
    }
    let order = s.get("/orders/U1").await.body;
    assert!(order.contains("orders resolve U1 --received"), "{order}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tell_what_happened_in_chinese_and_keep_the_raw_log_behind_a_link() {
    let s = start(false).await;
    let now = s.harness.store.now();
    s.harness
        .store
        .audit("system", "config.reload", "version=abc123 ok=true errors=0")
        .unwrap();
    for _ in 0..xianyu_shopd::health::ATTENTION_FAILED_RECONNECTS {
        s.health
            .record_connection_failure("main", xianyu_shopd::why::Failure::Refused, now);
    }
    let l = s.json("/api/logs").await;
    let events = l["events"].as_array().unwrap();
    let ats: Vec<u64> = events.iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(
        ats.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {ats:?}"
    );
    let has = |order: Option<&str>, title: &str| {
        events.iter().any(|e| {
            e["title"].as_str().unwrap().contains(title) && order.is_none_or(|o| e["order_id"] == o)
        })
    };
    for (order, title) in [
        (Some("C1"), "收到订单（已付款）"),
        (Some("C1"), "发货内容已送达买家"),
        (Some("C1"), "已发货（自动在闲鱼确认）"),
        (Some("P1"), "转人工（实物商品，需要你亲自发货）"),
        (Some("F1"), "转人工（自动发货 2 次都失败"),
        (Some("U1"), "转人工（发货结果未知"),
        (Some("W000"), "买家下单（待付款）"),
        (None, "配置已重新加载，新配置已生效"),
        (None, "账号 主店（main） 掉线，一直连不上（连接被拒绝）"),
    ] {
        assert!(has(order, title), "{order:?} {title}: {events:#?}");
    }
    assert_eq!(
        l["lines"].as_array().map(Vec::len),
        Some(0),
        "raw log only on request"
    );
    let html = s.get("/logs").await.body;
    assert!(
        html.contains("href=\"/logs?raw=1\"") && html.contains("收到订单"),
        "{html}"
    );
    assert!(
        !html.contains("Notification attempt failed"),
        "no developer log on the timeline"
    );

    let raw = s.json("/api/logs?raw=1").await;
    assert_eq!(raw["capacity"], 50);
    assert_eq!(raw["lines"][0]["level"], "ERROR");
    assert_eq!(raw["lines"][1]["message"], "Notification attempt failed 0.");
    let html = s.get("/logs?raw=1").await.body;
    assert!(html.contains("Notification attempt failed 1.") && html.contains("channel=hook"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_export_every_family_in_prometheus_text() {
    let s = start(false).await;
    metrics::inc(metrics::EVENTS_RECEIVED, &[("kind", "order")]);
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.body;
    for name in [
        "xianyu_shopd_events_received_total",
        "xianyu_shopd_deliveries_total",
        "xianyu_shopd_delay_queue_depth",
        "xianyu_shopd_pool_stock",
        "xianyu_shopd_item_stock_remaining",
        "xianyu_shopd_reconnects_total",
        "xianyu_shopd_token_refreshes_total",
        "xianyu_shopd_reloads_total",
        "xianyu_shopd_notifications_total",
        "xianyu_shopd_orders",
        "xianyu_shopd_delivery_ledger_rows",
        "xianyu_shopd_outbox_rows",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "missing family {name}"
        );
    }
    for sample in [
        "xianyu_shopd_pool_stock{pool=\"keys\",state=\"available\"} 2",
        "xianyu_shopd_pool_stock{pool=\"keys\",state=\"delivered\"} 1",
        &format!("xianyu_shopd_item_stock_remaining{{item=\"{PHYSICAL_ITEM}\"}} 0"),
        "xianyu_shopd_delivery_ledger_rows{state=\"needs_human\"} 1",
        "xianyu_shopd_orders{status=\"pending_payment\"} 60",
        "xianyu_shopd_delay_queue_depth 0",
        "xianyu_shopd_token_refreshes_total{account=\"main\",result=\"ok\"} ",
        "xianyu_shopd_reloads_total{result=\"error\"} ",
        "xianyu_shopd_events_received_total{kind=\"order\"} ",
    ] {
        assert!(text.contains(sample), "missing sample {sample}\n{text}");
    }
    let rss: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1 << 20, "RSS is at least a MiB: {rss}");
    // The store's own commit (fsync) counter: this shop's setup committed its orders.
    let commits: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("xianyu_shopd_store_commits_total "))
        .expect("the store commit counter is exported")
        .parse()
        .unwrap();
    assert!(commits > 0, "the setup's writes are counted: {commits}");
    // Real fsyncs, counted at the file: redb's two-phase commit syncs at least twice a commit.
    let fsyncs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("xianyu_shopd_store_fsyncs_total "))
        .expect("the store fsync counter is exported")
        .parse()
        .unwrap();
    assert!(
        fsyncs >= 2 * commits,
        "two syncs per commit at least: {fsyncs} fsyncs, {commits} commits"
    );
    // Every sample line is `name{labels} integer`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<i64>().is_ok(), "bad sample line {line}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_read_only_and_unknown_paths_are_404() {
    let s = start(false).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/", "/api/status", "/orders/C1", "/metrics"] {
            let r = status_common::request(s.addr, method, path, &[]).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    // Issue 10 nit: HEAD used to get 405. It answers like GET, without the body.
    for path in ["/", "/api/status", "/orders/C1", "/metrics", "/healthz"] {
        let get = s.get(path).await;
        let head = status_common::request(s.addr, "HEAD", path, &[]).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.body, "", "HEAD {path} has no body");
        assert_eq!(head.header("content-type"), get.header("content-type"));
    }
    assert_eq!(s.get("/nope").await.status, 404);
    let api = s.get("/api/nope").await;
    assert_eq!(api.status, 404);
    assert!(
        api.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    // The state the page shows did not change.
    assert_eq!(s.json("/api/orders").await["total"], PAID as usize + UNPAID);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_appears_without_a_restart() {
    let s = start(false).await;
    assert_eq!(s.json("/api/status").await["today"]["paid"], PAID);
    let mut ev = support::event("C2", xianyu_shopd::event::EventStatus::Paid, CARD_ITEM);
    ev.amount = Some("2.00".into());
    s.harness.ingest(ev).await;
    s.harness.settle().await;
    // The page serves a cached view that may be up to 4 rebuilds old (milliseconds for a
    // store this size, see status::snapshot); the order must show up well within a second.
    let started = std::time::Instant::now();
    loop {
        let paid = s.json("/api/status").await["today"]["paid"]
            .as_u64()
            .unwrap();
        if paid == PAID + 1 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {paid} paid"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        s.json("/api/orders/C2").await["order"]["delivery"],
        "delivered"
    );
    s.stop().await;
}

/// The container health check (`xianyu-shopd healthcheck`) passes against a serving daemon and
/// fails, with a reason, once the page is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_follows_the_status_page() {
    let running = start(false).await;
    let url = format!("http://{}/healthz", running.addr);
    let probe = |url: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
                .args(["healthcheck", "--url", &url])
                .output()
                .unwrap()
        })
    };
    let up = probe(url.clone()).await.unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    running.stop().await;
    let down = probe(url).await.unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));
}
