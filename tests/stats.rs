//! Statistics: the rollups kept in each order's own transaction equal a recount from the
//! order records after a long random history (refunds, duplicates, restarts), days are cut at
//! the seller's midnight, and the `stats` table shows them.

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
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            &pipeline_yaml(
                "{ min: 0s, max: 0s }",
                "{ mode: send_then_confirm, max_retries: 1, retry_delay: 1s }",
            )
            .replace(
                "accounts:\n",
                "accounts:\n  - id: second\n    cookies_env: TEST_COOKIES_2\n",
            ),
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

/// A store written before the statistics existed gets them computed from its orders when it
/// is first opened.
#[test]
fn an_older_store_gets_its_statistics_when_first_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-schema1.redb");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture, state.join("shop.redb")).unwrap();
    let store = Store::open(&state, xianyu_shopd::clock::system()).unwrap();
    let t = stats::total(&all_rows(&store));
    assert_eq!(t.created, 5, "{t:?}");
    assert!(t.paid >= 4 && t.paid_fen > 0, "{t:?}");
    assert!(t.auto_delivered >= 1 && t.handed >= 1, "{t:?}");
    let before = all_rows(&store);
    store.rebuild_rollups().unwrap();
    assert_eq!(all_rows(&store), before);
}
