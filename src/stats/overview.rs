//! The overview the 统计 page shows: today, yesterday, 7 and 30 days each against the period
//! before, the 30-day charts, the per-item ranking and replies by chat stage, all from one read
//! of 60 days of rollup rows.

use serde::Serialize;

use super::chart::{Chart, Frame};
use super::{By, Line, lines};
use crate::store::rollup_facts::{Counters, Day, LATENCY_BOUNDS_MS};
use crate::store::{RollupRow, Store, StoreError};

/// One period against the one before it.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub label: &'static str,
    pub from: String,
    pub to: String,
    pub current: Line,
    pub previous: Line,
    /// `+12%`, `-3%`, `持平`; none when the previous period had nothing.
    pub orders_change: Option<String>,
    pub revenue_change: Option<String>,
    /// `up`, `down` or `same`, for the colour.
    pub orders_trend: &'static str,
    pub revenue_trend: &'static str,
}

fn change(now: i64, before: i64) -> (Option<String>, &'static str) {
    let trend = match now.cmp(&before) {
        std::cmp::Ordering::Greater => "up",
        std::cmp::Ordering::Less => "down",
        std::cmp::Ordering::Equal => "same",
    };
    if before == 0 {
        return (None, trend);
    }
    if now == before {
        return (Some("持平".into()), trend);
    }
    let pct = (now - before) as f64 * 100.0 / before.abs() as f64;
    (Some(format!("{pct:+.0}%")), trend)
}

/// The sum of the rows of days `a..=b`.
fn total_within(rows: &[RollupRow], a: Day, b: Day) -> Counters {
    let mut sum = Counters::default();
    for r in rows.iter().filter(|r| r.day >= a && r.day <= b) {
        sum.add(&r.counters);
    }
    sum
}

fn period(rows: &[RollupRow], label: &'static str, from: Day, to: Day, len: i32) -> Period {
    let current = Line::of(label, &total_within(rows, from, to));
    let previous = Line::of("上一期", &total_within(rows, from.add(-len), to.add(-len)));
    let (orders_change, orders_trend) = change(current.orders, previous.orders);
    let (revenue_change, revenue_trend) = change(current.revenue_fen, previous.revenue_fen);
    Period {
        label,
        from: from.label(),
        to: to.label(),
        current,
        previous,
        orders_change,
        revenue_change,
        orders_trend,
        revenue_trend,
    }
}

/// Today, yesterday, the last 7 and 30 days (today included), each against the period before;
/// `rows` may be the per-day totals ([`Store::rollup_totals`]).
pub fn periods(rows: &[RollupRow], today: Day) -> Vec<Period> {
    let yesterday = today.add(-1);
    vec![
        period(rows, "今天", today, today, 1),
        period(rows, "昨天", yesterday, yesterday, 1),
        period(rows, "近 7 天", today.add(-6), today, 7),
        period(rows, "近 30 天", today.add(-29), today, 30),
    ]
}

/// Per-day lines of the last `days` days (today included); rows of other days are ignored.
pub fn daily(rows: &[RollupRow], today: Day, days: i32) -> Vec<Line> {
    lines(rows, By::Day, today.add(-(days - 1)), today)
}

/// `11-30` from `2026-11-30`.
fn short(day_label: &str) -> String {
    day_label.get(5..).unwrap_or(day_label).to_string()
}

/// Revenue bars and an orders line over the given days.
pub fn revenue_chart(days: &[Line]) -> Chart {
    let f = Frame::WIDE;
    let mut c = f.empty("每天营业额（柱）和订单数（线）");
    let revenue: Vec<f64> = days
        .iter()
        .map(|d| d.revenue_fen.max(0) as f64 / 100.0)
        .collect();
    let titles = |f: &dyn Fn(&Line) -> String| days.iter().map(f).collect::<Vec<_>>();
    f.bars(
        &mut c,
        &revenue,
        titles(&|d| format!("{} 营业额 ¥{}", d.key, d.revenue)),
    );
    let orders: Vec<Option<f64>> = days.iter().map(|d| Some(d.orders as f64)).collect();
    let orders_max =
        super::chart::nice_max(&days.iter().map(|d| d.orders as f64).collect::<Vec<_>>());
    c.lines.push(f.line(
        &orders,
        Some(orders_max),
        "line-a",
        "订单数",
        titles(&|d| format!("{} 下单 {} 单", d.key, d.orders)),
    ));
    let labels: Vec<String> = days.iter().map(|d| short(&d.key)).collect();
    f.x_labels(&mut c, &labels, 7);
    f.y_label(
        &mut c,
        format!("¥{}", super::chart::nice_max(&revenue)),
        false,
    );
    f.y_label(&mut c, format!("{orders_max} 单"), true);
    c
}

/// The auto-delivery rate per day (gaps on days where nothing finished).
pub fn rate_chart(days: &[Line]) -> Chart {
    let f = Frame::WIDE;
    let mut c = f.empty("每天自动发货率");
    let rates: Vec<Option<f64>> = days.iter().map(|d| d.auto_rate).collect();
    c.lines.push(
        f.line(
            &rates,
            Some(1.0),
            "line-b",
            "自动发货率",
            days.iter()
                .map(|d| match d.auto_rate {
                    Some(r) => format!(
                        "{} 自动发货率 {:.1}%（自动 {}，转人工 {}）",
                        d.key,
                        r * 100.0,
                        d.auto_delivered,
                        d.handed
                    ),
                    None => format!("{} 没有完成的发货", d.key),
                })
                .collect(),
        ),
    );
    let labels: Vec<String> = days.iter().map(|d| short(&d.key)).collect();
    f.x_labels(&mut c, &labels, 7);
    f.y_label(&mut c, "100%".into(), false);
    c
}

/// Payment → delivery p50 and p90 per day, on the histogram's bucket scale (each bucket one
/// step up), labelled with the slowest bucket bound.
pub fn latency_chart(days: &[Line]) -> Chart {
    let f = Frame::WIDE;
    let mut c = f.empty("每天付款到自动发货用时 p50 / p90");
    let step = |ms: Option<u64>| {
        ms.map(|ms| {
            LATENCY_BOUNDS_MS
                .iter()
                .position(|&b| b == ms)
                .map_or(LATENCY_BOUNDS_MS.len() as f64, |i| i as f64 + 1.0)
        })
    };
    let top = LATENCY_BOUNDS_MS.len() as f64 + 1.0;
    let label = |ms: Option<u64>| ms.map_or_else(|| "更久".into(), short_duration);
    for (class, name, pick) in [
        (
            "line-a",
            "p50",
            (|d: &Line| d.latency_p50_ms) as fn(&Line) -> Option<u64>,
        ),
        ("line-b", "p90", |d: &Line| d.latency_p90_ms),
    ] {
        let values: Vec<Option<f64>> = days
            .iter()
            .map(|d| {
                if d.latency_count > 0 {
                    Some(step(pick(d)).unwrap_or(top))
                } else {
                    None
                }
            })
            .collect();
        let titles = days
            .iter()
            .map(|d| {
                format!(
                    "{} {name} {}（{} 单）",
                    d.key,
                    label(pick(d)),
                    d.latency_count
                )
            })
            .collect();
        c.lines
            .push(f.line(&values, Some(top), class, name, titles));
    }
    let labels: Vec<String> = days.iter().map(|d| short(&d.key)).collect();
    f.x_labels(&mut c, &labels, 7);
    f.y_label(&mut c, "24小时+".into(), false);
    c
}

/// A 7-day orders sparkline for the dashboard.
pub fn sparkline(days: &[Line]) -> Chart {
    let f = Frame::SPARK;
    let mut c = f.empty("近 7 天每天订单数");
    let values: Vec<Option<f64>> = days.iter().map(|d| Some(d.orders as f64)).collect();
    let titles = days
        .iter()
        .map(|d| format!("{} {} 单", d.key, d.orders))
        .collect();
    c.lines
        .push(f.line(&values, None, "line-a", "订单数", titles));
    c
}

/// `≤10秒`, `≤5分钟`, `≤3小时`: percentiles are bucket bounds, so they read as "at most".
pub fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("≤{s}秒")
    } else if s < 3600 {
        format!("≤{}分钟", s / 60)
    } else {
        format!("≤{}小时", s / 3600)
    }
}

/// Replies that reached buyers per chat stage over `from..=to`, most first.
pub fn replies_by_stage(
    store: &Store,
    from: Day,
    to: Day,
    account: Option<&str>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, acc, stage, n) in store.reply_rollups(from, to)? {
        if account.is_none_or(|a| a == acc) {
            *by.entry(stage).or_default() += n;
        }
    }
    let mut out: Vec<(String, u64)> = by.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_like_a_seller_says_them() {
        assert_eq!(change(12, 10), (Some("+20%".into()), "up"));
        assert_eq!(change(5, 10), (Some("-50%".into()), "down"));
        assert_eq!(change(3, 3), (Some("持平".into()), "same"));
        assert_eq!(change(3, 0), (None, "up"));
    }
}
