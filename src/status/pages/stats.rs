//! 统计 (`/stats`, `/api/stats?from=&to=&by=day|item|account&account=`): today, yesterday,
//! 7 and 30 days against the period before, 30-day SVG charts (revenue and orders, the
//! auto-delivery rate, payment → delivery p50/p90), the per-item ranking with stock left,
//! replies by chat stage, and the table for the asked range and grouping (the `stats`
//! command's table). Served from the rollups: no order is read.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::stats::chart::Chart;
use crate::stats::overview::{self, Period};
use crate::stats::{self, By, Line, Query, StatsError};
use crate::store::rollup_facts::Day;
use crate::store::views::ShopView;

use crate::status::page::{Built, Input};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let asked = (
            input.param("from").map(String::from),
            input.param("to").map(String::from),
            input.param("by").map(String::from),
            input.param("account").map(String::from),
        );
        let read = input.ctx.store.call(move |s| {
            let today = stats::today(s)?;
            let q = Query::parse(
                asked.0.as_deref(),
                asked.1.as_deref(),
                asked.2.as_deref(),
                asked.3.as_deref(),
                today,
            );
            let q = match q {
                Ok(q) => q,
                Err(e) => return Ok(Err(e)),
            };
            let account = q.account.as_deref();
            Ok(Ok(Read {
                today,
                zone: s.stats_zone()?,
                rows: s.rollup_totals(today.add(-59), today, account)?,
                month_by_item: s.rollups_by_item(today.add(-29), today, account)?,
                table: stats::table(s, &q)?,
                replies: overview::replies_by_stage(s, today.add(-29), today, account)?,
                query: q,
            }))
        });
        match read.await {
            Ok(Ok(read)) => {
                let page = stats_page(input.view, input.config, read);
                Built::Page(Box::new(page))
            }
            Ok(Err(e)) => bad_query(&e),
            Err(e) => {
                tracing::warn!(error = %e, "The statistics page cannot read the store.");
                Built::Failed
            }
        }
    })
}

fn bad_query(e: &StatsError) -> Built {
    Built::Missing {
        title: "查询参数有误",
        message: e.to_string(),
        error: e.to_string(),
    }
}

/// What the builder read from the store.
struct Read {
    today: Day,
    zone: String,
    query: Query,
    /// The per-day totals of the last 60 days (30 and the 30 before).
    rows: Vec<crate::store::RollupRow>,
    /// The last 30 days per item, for the ranking.
    month_by_item: std::collections::BTreeMap<String, crate::store::Counters>,
    table: stats::Table,
    replies: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RankRow {
    pub item_id: String,
    pub title: String,
    pub orders: i64,
    pub paid: i64,
    pub revenue: String,
    pub revenue_fen: i64,
    pub refunded: i64,
    pub amount_unknown: i64,
    /// `12`, `不限`, or none for an item without a rule in `products.yaml`.
    pub stock_left: Option<String>,
    pub low: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableLine {
    /// The day, the item title or the account, as shown.
    pub name: String,
    #[serde(flatten)]
    pub line: Line,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsPage {
    pub zone: String,
    pub today: String,
    /// The account filter, if any, and the accounts to pick from.
    pub account: Option<String>,
    pub accounts: Vec<String>,
    pub periods: Vec<Period>,
    pub revenue_chart: Chart,
    pub rate_chart: Chart,
    pub latency_chart: Chart,
    /// Items over the last 30 days by revenue.
    pub ranking: Vec<RankRow>,
    pub replies: Vec<(String, u64)>,
    /// The asked range and grouping (default: the last 30 days by day).
    pub from: String,
    pub to: String,
    pub by: By,
    pub by_label: &'static str,
    pub total: Line,
    pub lines: Vec<TableLine>,
}

fn stats_page(view: &ShopView, config: &Config, read: Read) -> StatsPage {
    let days = overview::daily(&read.rows, read.today, 30);
    let products = super::products::products(view, config).products;
    let stock = |id: &str| products.iter().find(|p| p.item_id == id);
    let title = |id: &str| match (id, config.product(id)) {
        ("", _) => "（未知商品）".to_string(),
        (_, Some(p)) => p.title.clone(),
        (id, None) => id.to_string(),
    };
    let ranking = stats::lines_of(&read.month_by_item, By::Item, read.today, read.today)
        .into_iter()
        .map(|l| {
            let p = stock(&l.key);
            RankRow {
                title: title(&l.key),
                stock_left: p.map(|p| match (&p.quantity, p.stock_kind) {
                    (Some(q), _) => q.remaining.to_string(),
                    (None, "cards") => p.pools.iter().map(|x| x.available).sum::<u64>().to_string(),
                    _ => "不限".to_string(),
                }),
                low: p.is_some_and(|p| p.low),
                item_id: l.key,
                orders: l.orders,
                paid: l.paid,
                revenue: l.revenue,
                revenue_fen: l.revenue_fen,
                refunded: l.refunded,
                amount_unknown: l.amount_unknown,
            }
        })
        .collect();
    let name = |l: &Line| match read.query.by {
        By::Item => title(&l.key),
        _ => l.key.clone(),
    };
    StatsPage {
        zone: read.zone,
        today: read.today.label(),
        accounts: config.accounts.iter().map(|a| a.id.clone()).collect(),
        account: read.query.account.clone(),
        periods: overview::periods(&read.rows, read.today),
        revenue_chart: overview::revenue_chart(&days),
        rate_chart: overview::rate_chart(&days),
        latency_chart: overview::latency_chart(&days),
        ranking,
        replies: read.replies,
        from: read.table.from.clone(),
        to: read.table.to.clone(),
        by: read.query.by,
        by_label: read.query.by.label(),
        total: read.table.total.clone(),
        lines: read
            .table
            .lines
            .iter()
            .filter(|l| read.query.by == By::Day || l.orders + l.paid > 0)
            .map(|l| TableLine {
                name: name(l),
                line: l.clone(),
            })
            .collect(),
    }
}
