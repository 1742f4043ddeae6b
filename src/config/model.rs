//! The validated configuration the daemon runs on.
//!
//! A `Config` is immutable once built; a reload builds a new one beside it and swaps the `Arc`.
//! Each order run holds one `Arc<Config>` for its whole pass, and every durable job records the
//! `version` that scheduled it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::NotifyTemplates;
use super::StageKind;
use super::delivery::{Blacklist, DeliveryOptions};
use super::templates::Templates;
use crate::alert::EventKind;
use crate::channels::ChannelConfig;
use crate::order::ShipMode;
use crate::secret::SecretRef;

#[derive(Debug)]
pub struct Config {
    /// Short content hash of the config files; shown on the status page and stored on jobs.
    pub version: String,
    /// The non-empty files it was built from, relative to `dir` (`products.yaml`,
    /// `templates/card.txt.j2`); a reload that finds one missing or empty is rejected.
    pub files: Vec<String>,
    pub dir: PathBuf,
    pub accounts: Vec<Account>,
    pub status: StatusConfig,
    pub stages: Vec<Stage>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub pools: BTreeMap<String, PoolConfig>,
    pub products: HashMap<String, Product>,
    pub templates: Arc<Templates>,
    pub marketplace: MarketplaceConfig,
    /// The chat pipeline (`chat:`); empty when the seller has none.
    pub chat: super::chat::ChatConfig,
    /// Buyers whose orders are never delivered automatically (`blacklist.buyers`).
    pub blacklist: Blacklist,
    /// The after-sale chores (`aftersale:`).
    pub aftersale: super::aftersale::Aftersale,
    /// `stats:` and `report:`.
    pub stats: StatsSettings,
}

impl Config {
    /// Whether `buyer` is on the seller's blacklist: their paid orders go to the seller, and
    /// the chat side does not answer them. The one place both ask.
    pub fn is_blacklisted(&self, buyer: &str) -> bool {
        self.blacklist.contains(buyer)
    }

    pub fn product(&self, item_id: &str) -> Option<&Product> {
        self.products.get(item_id)
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Parameters of the first stage of a kind, if the pipeline has it.
    pub fn stage<T>(&self, pick: impl Fn(&Stage) -> Option<&T>) -> Option<&T> {
        self.stages.iter().find_map(pick)
    }

    pub fn notify(&self) -> Option<&NotifyParams> {
        self.stage(|s| match s {
            Stage::Notify(p) => Some(p),
            _ => None,
        })
    }

    pub fn ship(&self) -> Option<&ShipParams> {
        self.stage(|s| match s {
            Stage::Ship(p) => Some(p),
            _ => None,
        })
    }

    pub fn stock_check(&self) -> Option<&StockParams> {
        self.stage(|s| match s {
            Stage::StockCheck(p) => Some(p),
            _ => None,
        })
    }

    /// Position of the stage of this kind in the pipeline (at most one per kind).
    pub fn stage_index(&self, kind: StageKind) -> Option<usize> {
        self.stages.iter().position(|s| s.kind() == kind)
    }

    /// The low-stock threshold for a product's stock (or a pool's, for `pool` alone): the
    /// product's `low_stock_alert`, else its pool's, else the stock-check stage's, else
    /// [`DEFAULT_LOW_STOCK_ALERT`]. The stock-check stage and the status page both ask here.
    pub fn low_stock_threshold(&self, product: Option<&Product>, pool: Option<&str>) -> u32 {
        product
            .and_then(|p| p.low_stock_alert)
            .or_else(|| pool.and_then(|n| self.pools.get(n)?.low_stock_alert))
            .or_else(|| self.stock_check().map(|p| p.low_stock_alert))
            .unwrap_or(DEFAULT_LOW_STOCK_ALERT)
    }
}

impl Config {
    /// The low-stock threshold of a counted listing (`stock: N`), or none. An inherited
    /// threshold at or above the listing's own quantity would flag it from the day it is listed
    /// (a one-off second-hand item under the default 5), so then only the product's own
    /// `low_stock_alert` applies.
    pub fn listing_low_stock_threshold(&self, product: &Product, configured: u32) -> Option<u32> {
        match product.low_stock_alert {
            Some(own) => Some(own),
            None => Some(self.low_stock_threshold(None, None)).filter(|t| *t < configured),
        }
    }
}

/// `stock-check.low_stock_alert` when the seller sets none.
pub const DEFAULT_LOW_STOCK_ALERT: u32 = 5;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub cookies: SecretRef,
}

/// `marketplace:` — how the Goofish client reaches the service and how patient it is.
///
/// Every field has a default that is right for the real service; tests point the URLs at a
/// loopback fake and shorten the timings so faults play out in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketplaceConfig {
    /// Base of the mtop HTTP API, up to and including `/h5/` (`<base><api>/<v>/`).
    pub mtop_url: String,
    /// The IM WebSocket endpoint.
    pub ws_url: String,
    /// The image upload endpoint (`stream-upload.goofish.com/api/upload.api`, reference §3.8).
    pub upload_url: String,
    /// Browser user agent; should match the browser the cookies came from (risk control).
    pub user_agent: Option<String>,
    /// That browser's `sec-ch-ua` client hint, sent with a custom `user_agent` (without one no
    /// client hints are sent, since they must describe the same browser as the user agent).
    pub sec_ch_ua: Option<String>,
    /// Interval of the IM heartbeat (`/!`); an unanswered heartbeat drops the connection.
    /// Answered heartbeats are what proves a connection alive.
    pub heartbeat: Duration,
    /// After the IM token changed, no business push for this long = a zombie connection
    /// (the token change is what makes one): reconnect once and reconcile.
    pub watchdog: Duration,
    /// No business push for this long reconnects (and reconciles) even with heartbeats
    /// answered and no token change: cheap insurance for a quiet shop, hours apart.
    pub idle_reconnect: Duration,
    /// How often the sold-order list is polled (jittered ±20 %), besides after every reconnect.
    pub reconcile_interval: Duration,
    /// How often the cookie file / variable is re-read while waiting for fresh cookies.
    pub cookies_poll: Duration,
    /// How long a chat send waits for a connection and then for the server's answer.
    pub send_timeout: Duration,
    /// Ceiling of the exponential reconnect backoff.
    pub reconnect_max: Duration,
    /// First wait after risk control before one probe with the same cookies (doubles).
    pub risk_backoff: Duration,
    /// Age at which the IM access token is refreshed (and the socket reconnected).
    pub token_refresh: Duration,
    /// Interval of the `loginuser.get` keep-alive that notices an expired login early.
    pub keepalive: Duration,
}

impl Default for MarketplaceConfig {
    fn default() -> Self {
        Self {
            mtop_url: "https://h5api.m.goofish.com/h5/".into(),
            ws_url: "wss://wss-goofish.dingtalk.com/".into(),
            upload_url: "https://stream-upload.goofish.com/api/upload.api".into(),
            user_agent: None,
            sec_ch_ua: None,
            heartbeat: Duration::from_secs(15),
            watchdog: Duration::from_secs(10 * 60),
            idle_reconnect: Duration::from_secs(6 * 3600),
            reconcile_interval: Duration::from_secs(2 * 60),
            cookies_poll: Duration::from_secs(30),
            send_timeout: Duration::from_secs(20),
            reconnect_max: Duration::from_secs(90),
            risk_backoff: Duration::from_secs(30 * 60),
            // The token API is the risk-control hot spot (reference §8): refresh rarely.
            token_refresh: Duration::from_secs(20 * 3600),
            keepalive: Duration::from_secs(10 * 60),
        }
    }
}

/// `stats:` and `report:`.
#[derive(Debug, Clone)]
pub struct StatsSettings {
    /// IANA name of the zone days are counted in.
    pub time_zone: String,
    pub report: Option<ReportSettings>,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            time_zone: "Asia/Shanghai".into(),
            report: None,
        }
    }
}

/// The daily report: when (minutes after midnight in the statistics zone) and where (empty:
/// the notify stage's channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    pub minute_of_day: u32,
    pub channels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StatusConfig {
    pub listen: SocketAddr,
    pub token: Option<SecretRef>,
}

#[derive(Debug, Clone)]
pub enum Stage {
    Ingest(IngestParams),
    Classify(ClassifyParams),
    StockCheck(StockParams),
    Delay(DelayParams),
    Ship(ShipParams),
    Notify(NotifyParams),
}

impl Stage {
    pub fn kind(&self) -> StageKind {
        match self {
            Self::Ingest(_) => StageKind::Ingest,
            Self::Classify(_) => StageKind::Classify,
            Self::StockCheck(_) => StageKind::StockCheck,
            Self::Delay(_) => StageKind::Delay,
            Self::Ship(_) => StageKind::Ship,
            Self::Notify(_) => StageKind::Notify,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

#[derive(Debug, Clone)]
pub struct IngestParams {
    pub dedupe_window: Duration,
}

#[derive(Debug, Clone)]
pub struct ClassifyParams {
    pub virtual_keywords: Vec<String>,
    pub physical_keywords: Vec<String>,
    pub default: Category,
}

#[derive(Debug, Clone)]
pub struct StockParams {
    pub low_stock_alert: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub min: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone)]
pub struct DelayParams {
    pub virtual_: Window,
}

#[derive(Debug, Clone)]
pub struct ShipParams {
    /// The seed's AUTO_SHIP_ENABLED: off means every order goes to manual.
    pub enabled: bool,
    pub mode: ShipMode,
    pub max_retries: u32,
    pub retry_delay: Duration,
    /// An uncertain send (no answer) is read back from the conversation this long after it
    /// (and again, backing off, while the conversation cannot be read).
    pub readback_after: Duration,
    pub logistics_company: String,
}

#[derive(Debug, Clone)]
pub struct NotifyParams {
    pub events: Vec<EventKind>,
    pub channels: Vec<String>,
    /// Tried in order once every channel of an alert failed.
    pub fallback: Vec<String>,
    pub routes: BTreeMap<EventKind, Vec<String>>,
    /// Identical alerts (same event, title and text) within this window go out once.
    pub dedupe_window: Duration,
    /// Per event: repeats about the same subject (account, order) at most once per period.
    pub cooldown: BTreeMap<EventKind, Duration>,
    /// Send `recovered` once a problem that was announced clears.
    pub recovery: bool,
    /// `templates/notify/<event>.txt.j2`, defaults compiled in; checked at load.
    pub templates: Arc<NotifyTemplates>,
}

impl NotifyParams {
    /// Channels for an event, or `None` when the seller did not ask to hear about it.
    pub fn route(&self, event: EventKind) -> Option<&[String]> {
        if let Some(chs) = self.routes.get(&event) {
            return Some(chs);
        }
        self.events
            .contains(&event)
            .then_some(self.channels.as_slice())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Virtual,
    Physical,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Physical => "physical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stock {
    Unlimited,
    Quantity(u32),
    /// Card keys from a pool; `by_sku` overrides the pool for named SKUs.
    Cards {
        pool: Option<String>,
        by_sku: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct PoolConfig {
    pub reusable: bool,
    pub low_stock_alert: Option<u32>,
}

/// The most keys or stock units one purchased piece may consume (`units:`). A larger number is
/// a typo that would make one order ask for millions of keys.
pub const MAX_UNITS: u32 = 1_000;

/// The longest delay (`delay` windows, `ship.retry_delay`): an order waits at most this long
/// before a delivery attempt. Bounds keep every later time computation far from overflow.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// The longest timer of any other kind (windows, cool-downs, the Goofish client's timings,
/// channel timeouts).
pub const MAX_TIMER: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
/// The most retries of a delivery (`ship.max_retries`).
pub const MAX_RETRIES: u32 = 100;
/// The largest low-stock threshold (`low_stock_alert`).
pub const MAX_LOW_STOCK_ALERT: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct Product {
    pub item_id: String,
    pub title: String,
    pub account: Option<String>,
    pub category: Category,
    pub auto_ship: bool,
    pub delay: Option<Window>,
    pub ship_mode: Option<ShipMode>,
    pub max_retries: Option<u32>,
    pub logistics_company: Option<String>,
    pub template: Option<String>,
    pub stock: Stock,
    /// Stock units (or keys) one purchased piece consumes, 1..=[`MAX_UNITS`].
    pub units: u32,
    pub active: bool,
    pub low_stock_alert: Option<u32>,
    /// When the read-back finds the conversation without the delivery message: send again
    /// (`true`) instead of leaving the order to the seller.
    pub resend_if_absent: bool,
    /// Chat settings: list price, per-item replies, facts, greeting, bargaining.
    pub chat: super::chat::ProductChat,
    /// Message shape and follow-up (`delivery:`).
    pub delivery: DeliveryOptions,
    /// Cards bought from an HTTP supplier at delivery time (`supplier:`).
    pub supplier: Option<super::supplier::SupplierConfig>,
}

impl Product {
    /// The pool that serves an order's SKU, if this product delivers card keys.
    pub fn pool_for(&self, sku: Option<&str>) -> Option<&str> {
        let Stock::Cards { pool, by_sku } = &self.stock else {
            return None;
        };
        sku.and_then(|s| by_sku.get(s))
            .map(String::as_str)
            .or(pool.as_deref())
    }
}
