//! The shop's numbers: rollup rows (kept by the store, see `store/rollup.rs`) grouped by day,
//! item or account, compared with the period before, drawn as small SVG charts, exported as
//! CSV, and summed up in the daily report.
//!
//! Everything here reads rollups through `Store` methods and never scans orders, except the
//! CSV export, which lists orders by design. Pure functions over rows, so the status page,
//! `/api/stats` and the `stats` command show the same numbers.

pub mod chart;
pub mod csv;
pub mod overview;
pub mod report;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::rollup_facts::{self, Counters, Day};
use crate::store::{RollupRow, Store, StoreError};

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Day,
    Item,
    Account,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        match s {
            "day" => Some(By::Day),
            "item" => Some(By::Item),
            "account" => Some(By::Account),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            By::Day => "日期",
            By::Item => "商品",
            By::Account => "账号",
        }
    }
}

/// One line of a statistics table: a day, an item or an account (or the total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Line {
    /// `2026-11-30`, an item id (empty: item unknown) or an account id.
    pub key: String,
    pub orders: i64,
    pub paid: i64,
    pub auto_delivered: i64,
    pub handed: i64,
    pub refunded: i64,
    pub closed: i64,
    /// Paid minus refunded, in fen; orders with an unknown amount are not in it.
    pub revenue_fen: i64,
    /// `123.45`
    pub revenue: String,
    /// Paid or refunded orders whose amount is unknown ("金额未知").
    pub amount_unknown: i64,
    /// 0..=1; none when no delivery finished.
    pub auto_rate: Option<f64>,
    pub latency_count: i64,
    pub latency_avg_ms: Option<i64>,
    /// Upper bounds of the histogram buckets the 50th / 90th percentile fall in.
    pub latency_p50_ms: Option<u64>,
    pub latency_p90_ms: Option<u64>,
}

impl Line {
    pub fn of(key: impl Into<String>, c: &Counters) -> Line {
        Line {
            key: key.into(),
            orders: c.created,
            paid: c.paid,
            auto_delivered: c.auto_delivered,
            handed: c.handed,
            refunded: c.refunded,
            closed: c.closed,
            revenue_fen: c.revenue_fen(),
            revenue: yuan(c.revenue_fen()),
            amount_unknown: c.paid_unknown + c.returned_unknown,
            auto_rate: c.auto_rate(),
            latency_count: c.latency_count,
            latency_avg_ms: (c.latency_count > 0).then(|| c.latency_sum_ms / c.latency_count),
            latency_p50_ms: c.latency_quantile_ms(0.5),
            latency_p90_ms: c.latency_quantile_ms(0.9),
        }
    }
}

/// `12345` fen → `123.45`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

/// Sum of every row's counters.
pub fn total(rows: &[RollupRow]) -> Counters {
    let mut c = Counters::default();
    for r in rows {
        c.add(&r.counters);
    }
    c
}

/// Counters per group key, in key order (days ascending).
pub fn grouped(rows: &[RollupRow], by: By) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for r in rows {
        let key = match by {
            By::Day => r.day.label(),
            By::Item => r.item.clone(),
            By::Account => r.account.clone(),
        };
        out.entry(key).or_default().add(&r.counters);
    }
    out
}

/// The table for `from..=to` grouped `by`: days in order (every day, empty ones too), items
/// by revenue then orders, accounts by name.
pub fn lines(rows: &[RollupRow], by: By, from: Day, to: Day) -> Vec<Line> {
    lines_of(&grouped(rows, by), by, from, to)
}

/// [`lines`] from counters already grouped `by` (see [`grouped`]).
pub fn lines_of(groups: &BTreeMap<String, Counters>, by: By, from: Day, to: Day) -> Vec<Line> {
    match by {
        By::Day => {
            let mut out = Vec::new();
            let mut day = from;
            while day <= to && out.len() < MAX_DAYS {
                let label = day.label();
                let c = groups.get(&label).copied().unwrap_or_default();
                out.push(Line::of(label, &c));
                day = day.add(1);
            }
            out
        }
        By::Item => {
            let mut out: Vec<Line> = groups.iter().map(|(k, c)| Line::of(k, c)).collect();
            out.sort_by(|a, b| {
                (b.revenue_fen, b.paid, b.orders).cmp(&(a.revenue_fen, a.paid, a.orders))
            });
            out
        }
        By::Account => groups.iter().map(|(k, c)| Line::of(k, c)).collect(),
    }
}

/// The longest range a query may ask for (a bad `from` must not make a million-line answer).
pub const MAX_DAYS: usize = 3660;

/// Why a statistics query cannot be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("日期 `{0}` 看不懂，请写成 2026-11-30 (bad date `{0}`, write it like 2026-11-30)")]
    BadDate(String),
    #[error("分组 `{0}` 只能是 day、item 或 account (bad `by` `{0}`: day, item or account)")]
    BadBy(String),
    #[error(
        "起始日期 {from} 晚于结束日期 {to}，或范围超过 {MAX_DAYS} 天 (from {from} is after to {to}, or the range is longer than {MAX_DAYS} days)"
    )]
    BadRange { from: String, to: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A query as asked: `from`/`to` (inclusive days, default the last 30 days), `by`, account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: Day,
    pub to: Day,
    pub by: By,
    pub account: Option<String>,
}

impl Query {
    /// From optional texts; `today` is the seller's today.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        by: Option<&str>,
        account: Option<&str>,
        today: Day,
    ) -> Result<Query, StatsError> {
        let day = |t: Option<&str>, default: Day| match t.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Day::parse(t).ok_or_else(|| StatsError::BadDate(t.to_string())),
            None => Ok(default),
        };
        let to_day = day(to, today)?;
        let from_day = day(from, to_day.add(-29))?;
        let span_ok = from_day
            .date()
            .zip(to_day.date())
            .is_some_and(|(f, t)| f <= t && (t - f).get_days() < MAX_DAYS as i32);
        if !span_ok {
            return Err(StatsError::BadRange {
                from: from_day.label(),
                to: to_day.label(),
            });
        }
        let by = match by.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => By::parse(b).ok_or_else(|| StatsError::BadBy(b.to_string()))?,
            None => By::Day,
        };
        Ok(Query {
            from: from_day,
            to: to_day,
            by,
            account: account
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from),
        })
    }
}

/// The seller's today, in the store's statistics zone.
pub fn today(store: &Store) -> Result<Day, StoreError> {
    let name = store.stats_zone()?;
    let zone = rollup_facts::zone(&name).unwrap_or_else(|| {
        rollup_facts::zone(rollup_facts::DEFAULT_ZONE).unwrap_or(jiff::tz::TimeZone::UTC)
    });
    Ok(Day::of(store.now(), &zone))
}

/// The answer to a [`Query`]: its lines and their total.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub from: String,
    pub to: String,
    pub by: By,
    pub account: Option<String>,
    pub total: Line,
    pub lines: Vec<Line>,
}

/// Days and accounts come from the per-day totals, items from the item rows summed as they
/// are read.
pub fn table(store: &Store, q: &Query) -> Result<Table, StoreError> {
    let account = q.account.as_deref();
    let groups = match q.by {
        By::Item => store.rollups_by_item(q.from, q.to, account)?,
        By::Day | By::Account => grouped(&store.rollup_totals(q.from, q.to, account)?, q.by),
    };
    let mut sum = Counters::default();
    for c in groups.values() {
        sum.add(c);
    }
    Ok(Table {
        from: q.from.label(),
        to: q.to.label(),
        by: q.by,
        account: q.account.clone(),
        total: Line::of("合计", &sum),
        lines: lines_of(&groups, q.by, q.from, q.to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_default_to_the_last_thirty_days_and_refuse_nonsense() {
        let today = Day(20261130);
        let q = Query::parse(None, None, None, None, today).unwrap();
        assert_eq!((q.from, q.to, q.by), (Day(20261101), today, By::Day));
        assert!(matches!(
            Query::parse(Some("2026-12-01"), None, None, None, today),
            Err(StatsError::BadRange { .. })
        ));
        assert!(matches!(
            Query::parse(Some("yesterday"), None, None, None, today),
            Err(StatsError::BadDate(_))
        ));
        assert!(matches!(
            Query::parse(None, None, Some("week"), None, today),
            Err(StatsError::BadBy(_))
        ));
        assert!(matches!(
            Query::parse(Some("1990-01-01"), None, None, None, today),
            Err(StatsError::BadRange { .. })
        ));
    }

    #[test]
    fn yuan_keeps_the_sign() {
        assert_eq!(yuan(12345), "123.45");
        assert_eq!(yuan(-5), "-0.05");
    }
}
