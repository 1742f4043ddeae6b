//! `stats [--from --to --by --account]` prints the statistics table the 统计 page and
//! `/api/stats` show; `stats rebuild` recomputes the rollups from the order records.
//!
//! Reads the config only for item titles (a broken config still prints the numbers).

use std::process::ExitCode;

use super::table::{Align, Table};
use crate::cli::{Dirs, StatsCommand};
use crate::stats::overview::short_duration;
use crate::stats::{self, By, Line, Query};

pub struct StatsArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: String,
    pub account: Option<String>,
}

pub fn run(dirs: &Dirs, cmd: Option<StatsCommand>, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let store = super::open_store(dirs)?;
    if let Some(StatsCommand::Rebuild) = cmd {
        let started = std::time::Instant::now();
        let report = store.rebuild_rollups()?;
        println!(
            "统计已从 {} 个订单重新计算，共 {} 行，用时 {:.1} 秒（时区 {}）",
            report.orders,
            report.rows,
            started.elapsed().as_secs_f64(),
            store.stats_zone()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let today = stats::today(&store)?;
    let q = Query::parse(
        args.from.as_deref(),
        args.to.as_deref(),
        Some(&args.by),
        args.account.as_deref(),
        today,
    )?;
    let table = stats::table(&store, &q)?;
    let titles = super::load_config(dirs).ok();
    let title = |key: &str| -> String {
        match (q.by, key) {
            (By::Item, "") => "（未知商品）".into(),
            (By::Item, id) => titles
                .as_ref()
                .and_then(|c| c.product(id))
                .map_or_else(|| id.to_string(), |p| format!("{} ({id})", p.title)),
            (_, k) => k.to_string(),
        }
    };
    println!(
        "{} 至 {}，按{}{}（时区 {}）",
        table.from,
        table.to,
        q.by.label(),
        q.account
            .as_deref()
            .map(|a| format!("，账号 {a}"))
            .unwrap_or_default(),
        store.stats_zone()?
    );
    let mut out = Table::new(&COLUMNS.map(|(h, a)| (h, a)));
    let shown = table
        .lines
        .iter()
        .filter(|l| q.by == By::Day || l.orders + l.paid > 0);
    for line in shown {
        out.row(cells(title(&line.key), line));
    }
    out.row(cells("合计".into(), &table.total));
    out.print();
    if table.total.amount_unknown > 0 {
        println!(
            "另有 {} 单金额未知，未计入营业额",
            table.total.amount_unknown
        );
    }
    Ok(ExitCode::SUCCESS)
}

const COLUMNS: [(&str, Align); 10] = [
    ("", Align::Left),
    ("下单", Align::Right),
    ("付款", Align::Right),
    ("自动发货", Align::Right),
    ("转人工", Align::Right),
    ("退款", Align::Right),
    ("关闭", Align::Right),
    ("营业额(元)", Align::Right),
    ("自动发货率", Align::Right),
    ("付款到发货 p50/p90", Align::Right),
];

fn cells(name: String, l: &Line) -> Vec<String> {
    let dur = |ms: Option<u64>| ms.map_or_else(|| "—".to_string(), short_duration);
    vec![
        name,
        l.orders.to_string(),
        l.paid.to_string(),
        l.auto_delivered.to_string(),
        l.handed.to_string(),
        l.refunded.to_string(),
        l.closed.to_string(),
        l.revenue.clone(),
        l.auto_rate
            .map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0)),
        format!("{} / {}", dur(l.latency_p50_ms), dur(l.latency_p90_ms)),
    ]
}
