//! Statistics: the rollups kept in each order's own transaction equal a recount from the
//! order records after a long random history (refunds, duplicates, restarts), days are cut at
//! the seller's midnight, and the `stats` table shows them.

mod status_common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use support::*;
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock::{Clock, ManualClock, SharedClock};
use xianyu_shopd::config;
use xianyu_shopd::event::EventStatus::{self, *};
use xianyu_shopd::marketplace::SendOutcome;
use xianyu_shopd::marketplace::memory::MemoryMarketplace;
use xianyu_shopd::stats::{self, By, Query};
use xianyu_shopd::store::{Counters, Day, RollupRow, Store};

/// 2026-11-20T15:00:00Z, an hour before midnight in Beijing.
const START_MS: u64 = 1_795_186_800_000;

struct Rig {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Store,
    market: Arc<MemoryMarketplace>,
    shop: Shop,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_extra("")
    }

    /// A rig whose pipeline.yaml ends with `extra` (top-level keys).
    fn with_extra(extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            &(pipeline_yaml(
                "{ min: 0s, max: 0s }",
                "{ mode: send_then_confirm, max_retries: 1, retry_delay: 1s }",
            )
            .replace(
                "accounts:\n",
                "accounts:\n  - id: second\n    cookies_env: TEST_COOKIES_2\n",
            ) + extra),
            &products_yaml("send_then_confirm"),
        );
        let clock = Arc::new(ManualClock::new(START_MS));
        let (store, market, shop) = Rig::open(dir.path(), &clock);
        let text: String = (0..400).map(|i| format!("KEY-{i:04}-SECRET\n")).collect();
        store.import_cards("keys", &text, false, "test").unwrap();
        Rig {
            dir,
            clock,
            store,
            market,
            shop,
        }
    }

    fn open(
        dir: &std::path::Path,
        clock: &Arc<ManualClock>,
    ) -> (Store, Arc<MemoryMarketplace>, Shop) {
        let config = config::load(dir).unwrap();
        let shared: SharedClock = clock.clone();
        let store = Store::open(&dir.join("state"), shared).unwrap();
        let market = Arc::new(MemoryMarketplace::new());
        let shop = Shop::new(store.clone(), config, market.clone()).unwrap();
        (store, market, shop)
    }

    /// Drop the shop and the store handle and open them again, as a restart does.
    fn restart(&mut self) {
        let (store, market, shop) = Rig::open(self.dir.path(), &self.clock);
        self.shop = shop;
        self.market = market;
        self.store = store;
    }

    async fn settle(&self) {
        let clock = self.clock.clone();
        let jump = move |ms: u64| clock.set_ms(ms.max(clock.now_ms()));
        let run = self.shop.scheduler.run_until_idle(Some(&jump));
        if tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .is_err()
        {
            let now = self.clock.now_ms();
            let jobs = self.store.due_jobs(u64::MAX, 10).unwrap();
            panic!(
                "stuck at {now}: next {:?} jobs {jobs:#?} running {}",
                self.store.next_job_due(),
                self.shop.scheduler.running()
            );
        }
    }
}

fn all_rows(store: &Store) -> Vec<RollupRow> {
    store.rollups(Day(19700101), Day(99991231), None).unwrap()
}

/// The per-day-per-account totals equal the item rows summed over items, key by key.
fn assert_totals_match_items(store: &Store) {
    let mut from_items: BTreeMap<(Day, String), Counters> = BTreeMap::new();
    for r in all_rows(store) {
        let sum = from_items.entry((r.day, r.account.clone())).or_default();
        sum.add(&r.counters);
    }
    from_items.retain(|_, c| !c.is_zero());
    let totals = store
        .rollup_totals(Day(19700101), Day(99991231), None)
        .unwrap();
    assert!(
        totals
            .iter()
            .all(|r| r.item == xianyu_shopd::store::ALL_ITEMS)
    );
    let totals: BTreeMap<(Day, String), Counters> = totals
        .into_iter()
        .map(|r| ((r.day, r.account), r.counters))
        .collect();
    assert_eq!(totals, from_items);
}

fn random_status(rng: &mut StdRng) -> EventStatus {
    match rng.random_range(0..100) {
        0..=14 => PendingPayment,
        15..=54 => Paid,
        55..=64 => Shipped,
        65..=74 => Completed,
        75..=82 => Refunding,
        83..=90 => Refunded,
        _ => Closed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_a_recount_after_a_random_history_with_refunds_duplicates_and_restarts() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0014);
    let mut rig = Rig::new();
    let mut orders: Vec<String> = Vec::new();
    let items = [CARD_ITEM, STOCK_ITEM, PHYSICAL_ITEM, "123456789"];
    let mut restarts = 0;
    for seq in 0..5_000u64 {
        rig.clock.advance_ms(rng.random_range(0..40 * 60_000));
        let order = if orders.is_empty() || rng.random_range(0..100) < 30 {
            orders.push(format!("R{seq:05}"));
            orders.last().unwrap().clone()
        } else {
            orders[rng.random_range(0..orders.len())].clone()
        };
        let status = random_status(&mut rng);
        let item = items[order.bytes().map(u64::from).sum::<u64>() as usize % items.len()];
        let mut ev = event(&order, status, item);
        ev.account = if order.ends_with('7') {
            "second"
        } else {
            "main"
        }
        .into();
        // Amounts come with some events only, and some orders never show one.
        if rng.random_range(0..100) < 70 && !order.ends_with('3') {
            ev.amount = Some(format!(
                "{}.{:02}",
                rng.random_range(1..200),
                rng.random_range(0..100)
            ));
        }
        // Duplicates: the same message id again, or the same status without one.
        ev.source_msg_id = Some(format!("m{}", rng.random_range(0..4_000)));
        if rng.random_range(0..100) < 3 {
            rig.market.script_sends([SendOutcome::Unknown {
                reason: "timeout".into(),
            }]);
        }
        rig.shop.runner.ingest(ev).await.unwrap();
        if seq % 50 == 49 {
            rig.settle().await;
        }
        if seq % 700 == 699 {
            rig.settle().await;
            rig.restart();
            restarts += 1;
        }
    }
    rig.settle().await;
    assert!(restarts >= 7);

    let kept = all_rows(&rig.store);
    let kept_total = stats::total(&kept);
    assert_totals_match_items(&rig.store);
    // An independent recount of the totals straight from the order records.
    let records = rig.store.list_orders(None).unwrap();
    let mut expect = Counters::default();
    for o in &records {
        expect.created += 1;
        let paid = o.paid_at.or(o.payment_time).is_some();
        expect.paid += i64::from(paid);
        let fen = o
            .amount
            .as_deref()
            .map(|a| xianyu_shopd::money::Cents::parse(a).unwrap().0 as i64);
        if paid {
            match fen {
                Some(f) => expect.paid_fen += f,
                None => expect.paid_unknown += 1,
            }
        }
        let refunded = o.status == xianyu_shopd::order::OrderStatus::Refunded;
        let closed = o.status == xianyu_shopd::order::OrderStatus::Closed;
        expect.refunded += i64::from(refunded);
        expect.closed += i64::from(closed);
        if paid && (refunded || closed) {
            expect.returned_fen += fen.unwrap_or(0);
        }
    }
    assert_eq!(kept_total.created, expect.created);
    assert_eq!(kept_total.paid, expect.paid);
    assert_eq!(kept_total.paid_fen, expect.paid_fen);
    assert_eq!(kept_total.paid_unknown, expect.paid_unknown);
    assert_eq!(kept_total.refunded, expect.refunded);
    assert_eq!(kept_total.closed, expect.closed);
    assert_eq!(kept_total.returned_fen, expect.returned_fen);
    assert!(kept_total.paid > 500, "{kept_total:?}");
    assert!(kept_total.auto_delivered > 30, "{kept_total:?}");
    assert!(kept_total.handed > 20, "{kept_total:?}");
    assert!(kept_total.refunded > 50 && kept_total.returned_fen > 0);
    assert!(kept_total.latency_count > 0);
    let days: std::collections::BTreeSet<Day> = kept.iter().map(|r| r.day).collect();
    assert!(
        days.len() > 40,
        "the history spans many days: {}",
        days.len()
    );

    // `stats rebuild` gives the very same rows, day by day, item by item.
    let report = rig.store.rebuild_rollups().unwrap();
    assert_eq!(report.orders as usize, records.len());
    let rebuilt = all_rows(&rig.store);
    let key = |rows: &[RollupRow]| -> BTreeMap<(Day, String, String), Counters> {
        rows.iter()
            .map(|r| ((r.day, r.account.clone(), r.item.clone()), r.counters))
            .collect()
    };
    assert_eq!(key(&kept), key(&rebuilt));
    assert_totals_match_items(&rig.store);
}

/// Orders at 15:59:59Z and 16:00:00Z fall on two Beijing days; in UTC they share one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_are_cut_at_midnight_in_the_sellers_zone() {
    let rig = Rig::new();
    // 2026-11-20T15:59:59Z = 23:59:59 Beijing
    let before = START_MS + 3_599_000;
    for (id, at) in [("N1", before), ("N2", before + 1_000)] {
        rig.clock.set_ms(at);
        let mut ev = event(id, Paid, PHYSICAL_ITEM);
        ev.amount = Some("10.00".into());
        rig.shop.runner.ingest(ev).await.unwrap();
    }
    let per_day = |store: &Store| -> Vec<(String, i64, i64)> {
        let rows = store.rollups(Day(20261101), Day(20261130), None).unwrap();
        stats::grouped(&rows, By::Day)
            .into_iter()
            .map(|(d, c)| (d, c.created, c.paid_fen))
            .collect()
    };
    assert_eq!(
        per_day(&rig.store),
        vec![
            ("2026-11-20".to_string(), 1, 1000),
            ("2026-11-21".to_string(), 1, 1000)
        ]
    );
    // Counting in UTC puts both on the 20th; the change rebuilds in the same transaction.
    assert!(rig.store.set_stats_zone("UTC").unwrap());
    assert_eq!(
        per_day(&rig.store),
        vec![("2026-11-20".to_string(), 2, 2000)]
    );
    assert!(rig.store.set_stats_zone("Mars/Olympus").is_err());
    rig.store.set_stats_zone("Asia/Shanghai").unwrap();
    // The table asks for whole days: yesterday and today in Beijing.
    let today = stats::today(&rig.store).unwrap();
    assert_eq!(today, Day(20261121));
    let q = Query::parse(Some("2026-11-20"), None, Some("day"), None, today).unwrap();
    let t = stats::table(&rig.store, &q).unwrap();
    assert_eq!(t.lines.len(), 2);
    assert_eq!(t.total.revenue, "20.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_an_amount_is_counted_but_not_guessed() {
    let rig = Rig::new();
    rig.shop
        .runner
        .ingest(event("U1", Paid, PHYSICAL_ITEM))
        .await
        .unwrap();
    let rows = all_rows(&rig.store);
    let t = stats::total(&rows);
    assert_eq!((t.paid, t.paid_fen, t.paid_unknown), (1, 0, 1));
    // The amount arrives later (the sold list): revenue moves, nothing is counted twice.
    let mut ev = event("U1", Paid, PHYSICAL_ITEM);
    ev.amount = Some("29.70".into());
    rig.shop.runner.ingest(ev).await.unwrap();
    let t = stats::total(&all_rows(&rig.store));
    assert_eq!((t.paid, t.paid_fen, t.paid_unknown), (1, 2970, 0));
    // A refund takes the money back out on the day it completes.
    rig.clock.advance_ms(3 * 86_400_000);
    rig.shop
        .runner
        .ingest(event("U1", Refunded, PHYSICAL_ITEM))
        .await
        .unwrap();
    let t = stats::total(&all_rows(&rig.store));
    assert_eq!((t.refunded, t.revenue_fen()), (1, 0));
    assert_eq!(all_rows(&rig.store).len(), 2, "paid day and refund day");
}

/// `stats --by item` prints the item titles from the config in columns that line up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_command_prints_an_aligned_table_with_titles() {
    let rig = Rig::new();
    rig.clock.set_ms(xianyu_shopd::clock::now_ms());
    for (id, item, amount) in [("T1", CARD_ITEM, "9.90"), ("T2", PHYSICAL_ITEM, "1200")] {
        let mut ev = event(id, Paid, item);
        ev.amount = Some(amount.into());
        rig.shop.runner.ingest(ev).await.unwrap();
    }
    rig.shop
        .runner
        .ingest(event("T3", Paid, STOCK_ITEM))
        .await
        .unwrap();
    rig.settle().await;
    let Rig {
        dir: keep,
        shop,
        store,
        ..
    } = rig;
    drop((shop, store));
    let dir = keep.path().to_path_buf();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
            .arg("--config-dir")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["stats", "--by", "item"]);
    assert!(text.contains("测试激活码 (900000000001)"), "{text}");
    assert!(text.contains("另有 1 单金额未知"), "{text}");
    let table: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("另有"))
        .collect();
    let widths: Vec<usize> = table
        .iter()
        .map(|l| unicode_width::UnicodeWidthStr::width(*l))
        .collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
    let total = table.last().unwrap();
    assert!(
        total.starts_with("合计") && total.contains("1209.90"),
        "{text}"
    );
    let rebuilt = run(&["stats", "rebuild"]);
    assert!(rebuilt.contains("统计已从 3 个订单重新计算"), "{rebuilt}");
    assert_eq!(run(&["stats", "--by", "item"]), text);
}

/// `dir/state` holding a copy of the schema-1 fixture (a store from before the statistics).
fn schema1_store(dir: &std::path::Path) -> std::path::PathBuf {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-schema1.redb");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture, state.join("shop.redb")).unwrap();
    state
}

/// A store written before the statistics existed gets them computed from its orders when it
/// is first opened.
#[test]
fn an_older_store_gets_its_statistics_when_first_opened() {
    let dir = tempfile::tempdir().unwrap();
    let state = schema1_store(dir.path());
    let store = Store::open(&state, xianyu_shopd::clock::system()).unwrap();
    let t = stats::total(&all_rows(&store));
    assert_eq!(t.created, 5, "{t:?}");
    assert!(t.paid >= 4 && t.paid_fen > 0, "{t:?}");
    assert!(t.auto_delivered >= 1 && t.handed >= 1, "{t:?}");
    let before = all_rows(&store);
    store.rebuild_rollups().unwrap();
    assert_eq!(all_rows(&store), before);
}

/// A store whose statistics predate the per-day totals (item rows, no totals table and no
/// marker) gets the totals computed once when it is opened, so its 统计 page is not empty.
#[test]
fn a_store_from_before_the_day_totals_gets_them_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let state = schema1_store(dir.path());
    let rows = all_rows(&Store::open(&state, xianyu_shopd::clock::system()).unwrap());
    assert!(!rows.is_empty());
    // What the previous release left: its tables, without the totals.
    {
        let db = redb::Database::open(state.join("shop.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        let totals: redb::TableDefinition<(u32, &str), &[u8]> =
            redb::TableDefinition::new("stats_rollup_totals");
        assert!(tx.delete_table(totals).unwrap());
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("stats_meta");
        assert!(
            tx.open_table(meta)
                .unwrap()
                .remove("totals")
                .unwrap()
                .is_some()
        );
        tx.commit().unwrap();
    }
    let store = Store::open(&state, xianyu_shopd::clock::system()).unwrap();
    assert_eq!(all_rows(&store), rows);
    assert_totals_match_items(&store);
    let totals = store
        .rollup_totals(Day(19700101), Day(99991231), None)
        .unwrap();
    assert_eq!(stats::total(&totals), stats::total(&rows));
}

/// A chunked HTTP/1.1 body as its bytes.
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
}

async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (head, body)
}

/// The orders export opens in Python's csv module (as Excel would) with its Chinese titles,
/// one row per order of the range, and no card key anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_csv_round_trips_through_python_with_chinese_titles() {
    let s = status_common::start(false).await;
    let (head, body) = raw_get(s.addr, "/export/orders.csv").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/csv; charset=utf-8"), "{head}");
    assert!(head.contains("attachment; filename=\"orders-"), "{head}");
    assert!(
        body.starts_with("\u{feff}".as_bytes()),
        "a UTF-8 BOM for Excel"
    );
    let text = String::from_utf8(body.clone()).unwrap();
    status_common::assert_no_secrets("/export/orders.csv", &text);
    let orders = s.harness.store.list_orders(None).unwrap();
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import csv,io,json,sys\n\
             rows=list(csv.reader(io.TextIOWrapper(sys.stdin.buffer,encoding='utf-8-sig',newline='')))\n\
             print(json.dumps(rows,ensure_ascii=False))",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = python else {
        eprintln!("SKIPPED the Python half of the CSV test: python3 is not installed");
        s.stop().await;
        return;
    };
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0],
        xianyu_shopd::stats::csv::HEADER.map(String::from).to_vec()
    );
    assert_eq!(rows.len(), orders.len() + 1, "one row per order");
    let c1 = rows.iter().find(|r| r[0] == "C1").expect("order C1");
    assert_eq!(c1[3], "商品-C1");
    assert_eq!(c1[7], "已发货");
    assert!(c1[8].starts_with("20"), "{c1:?}");
    // A range without orders is the header alone; a bad date is a Chinese 400.
    let (_, empty) = raw_get(s.addr, "/export/orders.csv?from=2001-01-01&to=2001-01-31").await;
    assert_eq!(String::from_utf8(empty).unwrap().lines().count(), 1);
    let bad = s.get("/export/orders.csv?from=last-week").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("日期"), "{}", bad.body);
    s.stop().await;
}

/// `/api/stats` is the page's table: by day, item or account, with the account filter, and a
/// Chinese error for a bad query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_api_answers_by_day_item_and_account() {
    let s = status_common::start(false).await;
    let by_day = s.json("/api/stats").await;
    assert_eq!(by_day["by"], "day");
    assert_eq!(by_day["lines"].as_array().unwrap().len(), 30);
    let orders = s.harness.store.list_orders(None).unwrap().len() as i64;
    assert_eq!(by_day["total"]["orders"], orders);
    assert_eq!(by_day["periods"][0]["label"], "今天");
    assert!(by_day["revenue_chart"]["bars"].as_array().unwrap().len() == 30);
    let by_item = s.json("/api/stats?by=item").await;
    let items: Vec<&str> = by_item["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(items.contains(&"测试激活码"), "{items:?}");
    let by_account = s.json("/api/stats?by=account&account=main").await;
    assert_eq!(by_account["lines"][0]["key"], "main");
    assert_eq!(by_account["total"]["orders"], orders);
    let nobody = s.json("/api/stats?account=nobody").await;
    assert_eq!(nobody["total"]["orders"], 0);
    let bad = s.get("/api/stats?by=week").await;
    assert_eq!(bad.status, 404);
    assert!(bad.body.contains("day、item 或 account"), "{}", bad.body);
    let page = s.get("/stats").await;
    assert_eq!(page.status, 200);
    for text in [
        "<svg id=\"chart-revenue\"",
        "商品排行",
        "近 30 天",
        "自动发货率",
        "<rect",
    ] {
        assert!(page.body.contains(text), "/stats lacks {text}");
    }
    assert!(!page.body.contains("<script"), "no JavaScript");
    let home = s.get("/").await;
    assert!(
        home.body.contains("<svg id=\"sparkline\""),
        "the dashboard sparkline"
    );
    s.stop().await; // The same token rules as every page.
    let guarded = status_common::start(true).await;
    for path in ["/stats", "/api/stats", "/export/orders.csv"] {
        assert_eq!(guarded.get(path).await.status, 401, "{path}");
    }
    let auth = format!("Bearer {}", status_common::TOKEN);
    let ok = guarded
        .get_with("/export/orders.csv", &[("Authorization", auth.as_str())])
        .await;
    assert_eq!(ok.status, 200);
    guarded.stop().await;
}

/// The daily report goes out once a day at `report.at`, also when the daemon restarts in
/// between, and says what yesterday looked like.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_is_sent_once_per_day_across_restarts() {
    use xianyu_shopd::alert::EventKind;
    use xianyu_shopd::stats::report::{Tick, tick};
    let mut rig = Rig::with_extra("report:\n  at: \"09:00\"\n");
    // Two paid orders on 2026-11-20 (Beijing), one of them without an amount.
    for (id, amount) in [("D1", Some("12.50")), ("D2", None)] {
        let mut ev = event(id, Paid, PHYSICAL_ITEM);
        ev.amount = amount.map(String::from);
        rig.shop.runner.ingest(ev).await.unwrap();
    }
    rig.settle().await;
    let config = rig.shop.config.load_full();
    // 2026-11-21 08:59 in Beijing: not yet.
    rig.clock.set_ms(START_MS + (9 * 60 + 59) * 60_000);
    assert_eq!(tick(&rig.store, &config).await.unwrap(), Tick::Idle);
    rig.clock.advance_ms(60_000);
    assert_eq!(
        tick(&rig.store, &config).await.unwrap(),
        Tick::Sent {
            day: "2026-11-21".into(),
            channels: vec!["log".into()]
        }
    );
    assert_eq!(tick(&rig.store, &config).await.unwrap(), Tick::AlreadySent);
    rig.clock.advance_ms(3 * 3_600_000);
    rig.restart();
    let config = rig.shop.config.load_full();
    assert_eq!(tick(&rig.store, &config).await.unwrap(), Tick::AlreadySent);
    let reports = |store: &Store| -> Vec<String> {
        store
            .notifications(1000)
            .unwrap()
            .into_iter()
            .filter(|n| n.event == EventKind::DailyReport)
            .map(|n| n.text)
            .collect()
    };
    let sent = reports(&rig.store);
    assert_eq!(sent.len(), 1, "{sent:?}");
    for text in [
        "日期：2026-11-20",
        "下单：2 单",
        "付款：2 单",
        "营业额：¥12.50",
        "金额未知：1 单",
        "待人工发货：2 单",
    ] {
        assert!(sent[0].contains(text), "{text} missing in:\n{}", sent[0]);
    }
    // The next day, after a restart that came later than 09:00: sent then, once.
    rig.clock.advance_ms(24 * 3_600_000);
    rig.restart();
    let config = rig.shop.config.load_full();
    assert!(matches!(
        tick(&rig.store, &config).await.unwrap(),
        Tick::Sent { .. }
    ));
    assert_eq!(tick(&rig.store, &config).await.unwrap(), Tick::AlreadySent);
    let sent = reports(&rig.store);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().any(|t| t.contains("日期：2026-11-21")));
}

/// A reply counts for its chat stage once, on the day it reached the buyer; one that was not
/// delivered does not count.
#[test]
fn replies_count_by_stage_when_they_reach_the_buyer() {
    use xianyu_shopd::store::{BeginSend, NewInbound, PlanOutcome, PlannedReply, SendResult};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let shared: SharedClock = clock.clone();
    let store = Store::open(&dir.path().join("state"), shared).unwrap();
    let reply = |id: &str, stage: &str, ok: bool| {
        store
            .chat_record_inbound(&NewInbound {
                account: "main".into(),
                cid: format!("c-{id}"),
                buyer_id: "b1".into(),
                buyer_nick: None,
                item_id: None,
                message_id: id.into(),
                text: "在吗".into(),
                at: START_MS,
            })
            .unwrap();
        let planned = PlannedReply {
            account: "main".into(),
            cid: format!("c-{id}"),
            buyer_id: "b1".into(),
            inbound: vec![id.into()],
            messages: vec!["在的".into()],
            stage: stage.into(),
            effects: Vec::new(),
            images: Vec::new(),
        };
        let PlanOutcome::Planned(rid) = store.chat_plan_reply(&planned).unwrap() else {
            panic!("planned")
        };
        assert!(matches!(
            store.chat_begin_send(rid).unwrap(),
            BeginSend::Go { .. }
        ));
        let result = if ok {
            SendResult::Accepted { message_id: None }
        } else {
            SendResult::NotDelivered {
                reason: "offline".into(),
            }
        };
        store.chat_finish_send(rid, &result).unwrap();
        if ok {
            // A second look at a sent reply changes nothing.
            assert_eq!(store.chat_begin_send(rid).unwrap(), BeginSend::Closed);
        }
    };
    reply("1.PNM", "keywords", true);
    reply("2.PNM", "keywords", true);
    reply("3.PNM", "llm", true);
    reply("4.PNM", "llm", false);
    let counts =
        stats::overview::replies_by_stage(&store, Day(20261101), Day(20261130), None).unwrap();
    assert_eq!(
        counts,
        vec![("keywords".to_string(), 2), ("llm".to_string(), 1)]
    );
}
