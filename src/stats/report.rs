//! The daily report: once a day at `report.at` (in the statistics zone), yesterday's orders,
//! revenue, auto-delivery rate, the orders waiting for the seller and the pools running low,
//! sent through the notification router (template `templates/notify/daily_report.txt.j2`).
//!
//! At most once per day, even across restarts: the day's marker is claimed in the same store
//! transaction that queues the outbox rows (`Store::claim_daily_report`), so a crash leaves
//! both or neither, and a daemon started after `report.at` sends the day's report then.
//! The same loop keeps the store's statistics zone equal to `stats.time_zone`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Line, yuan};
use crate::alert::{Alert, EventKind};
use crate::config::{Config, ConfigHandle, ReportSettings};
use crate::notify::Router;
use crate::store::rollup_facts::{self, Day};
use crate::store::{CardState, Store, StoreError};

/// How often the loop looks at the clock (the report goes out at most this late).
pub const TICK: Duration = Duration::from_secs(30);

/// Run until `shutdown`: keep the zone, send each day's report once.
pub async fn run(store: Store, config: ConfigHandle, shutdown: CancellationToken) {
    loop {
        let cfg = config.load_full();
        if let Err(e) = tick(&store, &cfg).await {
            tracing::warn!(error = %e, "Daily report / statistics zone: store not available; trying again.");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// What one look at the clock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// No `report:`, or not yet time today.
    Idle,
    /// Today's report had been claimed already (by this or an earlier run).
    AlreadySent,
    /// Queued for these channels.
    Sent { day: String, channels: Vec<String> },
}

/// One pass: align the zone, and send today's report if it is due and not sent yet.
pub async fn tick(store: &Store, config: &Arc<Config>) -> Result<Tick, StoreError> {
    let zone_name = config.stats.time_zone.clone();
    store
        .call(move |s| s.set_stats_zone(&zone_name).map(drop))
        .await?;
    let Some(report) = config.stats.report.clone() else {
        return Ok(Tick::Idle);
    };
    let config = config.clone();
    store.call(move |s| send_if_due(s, &config, &report)).await
}

fn send_if_due(
    store: &Store,
    config: &Config,
    report: &ReportSettings,
) -> Result<Tick, StoreError> {
    let zone = rollup_facts::zone(&config.stats.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = store.now();
    let today = Day::of(now, &zone);
    let due = today.start_ms(&zone) + u64::from(report.minute_of_day) * 60_000;
    if now < due {
        return Ok(Tick::Idle);
    }
    let alert = summary(store, config, today.add(-1))?;
    let notify = config.notify();
    let router = Router::new(notify);
    let channels: Vec<String> = if report.channels.is_empty() {
        notify.map_or_else(|| vec!["log".to_string()], |p| p.channels.clone())
    } else {
        report.channels.clone()
    };
    let drafts = router.drafts_to(&alert, &channels);
    if store.claim_daily_report(&today.label(), &drafts)? {
        Ok(Tick::Sent {
            day: today.label(),
            channels,
        })
    } else {
        Ok(Tick::AlreadySent)
    }
}

/// Yesterday's numbers as an alert the template renders.
pub fn summary(store: &Store, config: &Config, day: Day) -> Result<Alert, StoreError> {
    let rows = store.rollup_totals(day, day, None)?;
    let l = Line::of(day.label(), &super::total(&rows));
    let pending = pending_manual(store)?;
    let low = low_pools(store, config)?;
    let mut alert = Alert::new(EventKind::DailyReport)
        .fact("日期", day.label())
        .fact("下单", format!("{} 单", l.orders))
        .fact("付款", format!("{} 单", l.paid))
        .fact("营业额", format!("¥{}", yuan(l.revenue_fen)));
    if l.amount_unknown > 0 {
        alert = alert.fact(
            "金额未知",
            format!("{} 单（未计入营业额）", l.amount_unknown),
        );
    }
    alert = alert
        .fact(
            "自动发货率",
            l.auto_rate.map_or_else(
                || "—（没有完成的发货）".to_string(),
                |r| {
                    format!(
                        "{:.1}%（自动 {}，转人工 {}）",
                        r * 100.0,
                        l.auto_delivered,
                        l.handed
                    )
                },
            ),
        )
        .fact("退款", format!("{} 单", l.refunded))
        .fact("待人工发货", format!("{pending} 单"))
        .fact(
            "库存不足的卡池",
            if low.is_empty() {
                "无".to_string()
            } else {
                low.join("、")
            },
        );
    if pending > 0 {
        alert = alert.action("请打开状态页的“待人工发货”处理等待中的订单");
    }
    Ok(alert)
}

/// Paid orders waiting for the seller now (handed over, or a send whose outcome is unknown).
fn pending_manual(store: &Store) -> Result<usize, StoreError> {
    // Once a day, so reading the whole view is fine here.
    Ok(store.shop_view()?.manual_queue().len())
}

/// `pool（剩 3）` for every pool at or below its low-stock line.
fn low_pools(store: &Store, config: &Config) -> Result<Vec<String>, StoreError> {
    let counts = store.card_counts()?;
    let mut out = Vec::new();
    for name in config.pools.keys() {
        let available = counts.get(name).map_or(0, |c| c.get(CardState::Available));
        let line = config.low_stock_threshold(None, Some(name));
        if available <= u64::from(line) {
            out.push(format!("{name}（剩 {available}）"));
        }
    }
    Ok(out)
}
