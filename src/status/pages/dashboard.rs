//! 首页 (`/`, `/api/status`): today's numbers, the accounts, the running config and counts of
//! what needs attention.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::health::{Health, ReloadStatus};
use crate::store::DeliveryState;
use crate::store::views::{DayCounts, ShopView};

use crate::stats::chart::Chart;
use crate::stats::overview;
use crate::status::page::{Built, Input};
use crate::status::parts::{AccountView, accounts};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let mut page = dashboard(input.view, input.config, &input.ctx.health, input.now);
        // From the rollups (a few rows), like the 统计 page; a failed read only hides it.
        let spark = input.ctx.store.call(|s| {
            let today = crate::stats::today(s)?;
            let rows = s.rollup_totals(today.add(-6), today, None)?;
            Ok(overview::sparkline(&overview::daily(&rows, today, 7)))
        });
        page.sparkline = spark.await.ok();
        Built::Page(Box::new(page))
    })
}

const DAY_MS: u64 = 24 * 3600 * 1000;
const BEIJING_OFFSET_MS: u64 = 8 * 3600 * 1000;

/// Start of the Beijing calendar day containing `now` (unix ms).
pub fn beijing_day_start(now: u64) -> u64 {
    (now + BEIJING_OFFSET_MS) / DAY_MS * DAY_MS - BEIJING_OFFSET_MS
}

/// `12345` fen → `"123.45"`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

#[derive(Debug, Clone, Serialize)]
pub struct Today {
    pub day_start: u64,
    pub orders: u64,
    pub paid: u64,
    pub shipped: u64,
    pub waiting_manual: u64,
    pub auto_delivered: u64,
    pub auto_failed: u64,
    /// 0..=1, `null` when no automatic delivery finished today.
    pub auto_success_rate: Option<f64>,
    pub revenue_fen: i64,
    pub revenue: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    pub version: String,
    pub ok: bool,
    /// `null` until the first load is recorded.
    pub at: Option<u64>,
    pub errors: Vec<String>,
    /// Unix ms since when a reload has been stuck (given up on); `null` otherwise.
    pub stuck_since: Option<u64>,
    /// The version of the files on disk when they changed but are not running.
    pub unapplied: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigView {
    /// The version running now.
    pub version: String,
    pub last_reload: LastReload,
}

fn config_view(config: &Config, reload: Option<ReloadStatus>) -> ConfigView {
    let last_reload = match reload {
        Some(r) => LastReload {
            version: r.version,
            ok: r.ok,
            // The reloader reports 0 until its first attempt.
            at: (r.at > 0).then_some(r.at),
            errors: r.errors,
            stuck_since: r.stuck_since,
            unapplied: r.unapplied,
        },
        None => LastReload {
            version: config.version.clone(),
            ok: true,
            at: None,
            errors: Vec::new(),
            stuck_since: None,
            unapplied: None,
        },
    };
    ConfigView {
        version: config.version.clone(),
        last_reload,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemCounts {
    pub needs_human: usize,
    pub failed_deliveries: usize,
    pub failing_notifications: u64,
    pub login_problems: usize,
    /// Accounts disconnected with failures piling up (`AccountHealth::needs_attention`).
    pub disconnected: usize,
    pub low_stock: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub now: u64,
    pub today: Today,
    pub accounts: Vec<AccountView>,
    pub config: ConfigView,
    pub problems: ProblemCounts,
    pub pending_jobs: u64,
    pub total_orders: usize,
    /// Orders per day over the last 7 days (see the 统计 page).
    pub sparkline: Option<Chart>,
}

pub fn dashboard(view: &ShopView, config: &Config, health: &Health, now: u64) -> Dashboard {
    let day_start = beijing_day_start(now);
    let day: DayCounts = view.day(day_start, day_start + DAY_MS);
    let accounts = accounts(config, health, now);
    let problems = ProblemCounts {
        needs_human: view.deliveries_in(DeliveryState::NeedsHuman).len(),
        failed_deliveries: view.deliveries_in(DeliveryState::FailedSafe).len(),
        failing_notifications: view.outbox.failed + view.outbox.retrying,
        login_problems: accounts.iter().filter(|a| a.login_problem).count(),
        disconnected: accounts
            .iter()
            .filter(|a| a.connection_attention && !a.login_problem)
            .count(),
        low_stock: super::products::products(view, config).low_stock,
    };
    Dashboard {
        now,
        today: Today {
            day_start,
            orders: day.orders,
            paid: day.paid,
            shipped: day.shipped,
            waiting_manual: view.manual_queue().len() as u64,
            auto_delivered: day.auto_delivered,
            auto_failed: day.auto_failed,
            auto_success_rate: day.auto_success_rate(),
            revenue_fen: day.revenue_fen,
            revenue: yuan(day.revenue_fen),
        },
        accounts,
        config: config_view(config, health.reload()),
        problems,
        pending_jobs: view.pending_jobs,
        total_orders: view.orders.len(),
        sparkline: None,
    }
}
