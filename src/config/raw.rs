//! The YAML files as written: serde types with no meaning attached yet.
//!
//! Everything a seller can type has a field here, except the notification channels, whose
//! shapes live with their vendors (`channels/<vendor>.rs`); `validate` turns these into the
//! model in `model.rs`. Durations stay strings until validation so a bad one is reported with its
//! position alongside every other problem, not as the first and only serde error.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::delivery::MessageShape;
use super::model::{Category, ProductStatus};
use crate::channels::RawChannel;
use crate::order::ShipMode;
use crate::secret::{Keys, SecretKeys, Written};

/// `pipeline.yaml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    #[serde(default)]
    pub accounts: Vec<Written<Account>>,
    #[serde(default)]
    pub status: Written<Status>,
    /// Each item is a one-key map `- kind: { params }`.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub pipeline: Vec<Stage>,
    /// Each entry's shape is its vendor's (`channels/<vendor>.rs`), chosen by `type:`.
    #[serde(default)]
    pub channels: BTreeMap<String, RawChannel>,
    /// Where and how the Goofish client connects; every key optional.
    #[serde(default)]
    pub marketplace: Marketplace,
    /// The chat pipeline, `- kind: { params }` like `pipeline:`.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub chat: Vec<super::raw_chat::ChatStage>,
    /// Buyers whose orders always go to the seller.
    #[serde(default)]
    pub blacklist: Blacklist,
    /// The after-sale chores (rating, thanks, polishing); every task off by default.
    #[serde(default)]
    pub aftersale: super::aftersale::RawAftersale,
    /// How the statistics count days.
    #[serde(default)]
    pub stats: Stats,
    /// The daily summary; none without the key.
    #[serde(default)]
    pub report: Option<Report>,
}

/// `stats:`
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stats {
    pub time_zone: Option<String>,
}

/// `report:` — `at` a time of day in the statistics zone, `channels` (default: the notify
/// stage's).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Report {
    pub at: Option<String>,
    pub channels: Vec<String>,
}

/// `blacklist:` — buyer ids (numbers, quoted or not).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Blacklist {
    pub buyers: Vec<ItemId>,
}

/// `marketplace:` — endpoints and timings of the Goofish client. The defaults are the real
/// service; tests and the demo point the URLs at a loopback fake and shorten the timings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Marketplace {
    pub mtop_url: Option<String>,
    pub ws_url: Option<String>,
    pub upload_url: Option<String>,
    pub user_agent: Option<String>,
    pub sec_ch_ua: Option<String>,
    pub heartbeat: Option<String>,
    pub watchdog: Option<String>,
    pub idle_reconnect: Option<String>,
    pub reconcile_interval: Option<String>,
    pub cookies_poll: Option<String>,
    pub send_timeout: Option<String>,
    pub reconnect_max: Option<String>,
    pub risk_backoff: Option<String>,
    pub token_refresh: Option<String>,
    pub keepalive: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `cookies_env` / `cookies_file`
    #[serde(default)]
    pub cookies: SecretKeys,
}

impl Keys for Account {
    const SECRETS: &'static [&'static str] = &["cookies"];
    type Extra = ();
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    #[serde(default)]
    pub listen: Option<String>,
    /// `token_env` / `token_file`
    #[serde(default)]
    pub token: SecretKeys,
}

impl Keys for Status {
    const SECRETS: &'static [&'static str] = &["token"];
    type Extra = ();
}

/// One item of the `pipeline:` list, written `- kind: { params }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Ingest(IngestParams),
    Classify(ClassifyParams),
    StockCheck(StockParams),
    Delay(DelayParams),
    Ship(ShipParams),
    Notify(NotifyParams),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestParams {
    pub dedupe_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyParams {
    pub virtual_keywords: Vec<String>,
    pub physical_keywords: Vec<String>,
    pub default: Option<Category>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StockParams {
    pub on_short: Option<OnShort>,
    pub low_stock_alert: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnShort {
    Manual,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelayParams {
    #[serde(rename = "virtual")]
    pub virtual_: Option<Window>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub min: String,
    pub max: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShipParams {
    pub enabled: Option<bool>,
    pub mode: Option<ShipMode>,
    pub max_retries: Option<u32>,
    pub retry_delay: Option<String>,
    pub readback_after: Option<String>,
    pub logistics_company: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyParams {
    pub events: Vec<String>,
    pub channels: Vec<String>,
    pub fallback: Vec<String>,
    pub routes: BTreeMap<String, Vec<String>>,
    pub dedupe_window: Option<String>,
    pub cooldown: BTreeMap<String, String>,
    pub recovery: Option<bool>,
}

/// `products.yaml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsFile {
    #[serde(default)]
    pub pools: BTreeMap<String, Pool>,
    #[serde(default)]
    pub products: Vec<Product>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pool {
    pub reusable: bool,
    pub low_stock_alert: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub item_id: ItemId,
    pub title: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub auto_ship: bool,
    #[serde(default)]
    pub delay: Option<Window>,
    #[serde(default)]
    pub ship: Option<ProductShip>,
    #[serde(default)]
    pub logistics_company: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    /// `unlimited`, a number, or `{ quantity: N }`.
    #[serde(default)]
    pub stock: Option<serde_yaml::Value>,
    #[serde(default)]
    pub cards: Option<String>,
    #[serde(default)]
    pub sku_cards: BTreeMap<String, String>,
    #[serde(default)]
    pub units: Option<u32>,
    #[serde(default)]
    pub status: Option<ProductStatus>,
    #[serde(default)]
    pub low_stock_alert: Option<u32>,
    /// List price in yuan (chat: bargaining, the guard, templates).
    #[serde(default)]
    pub price: Option<super::raw_chat::Amount>,
    /// Per-item keyword rules for chat.
    #[serde(default)]
    pub replies: Vec<super::raw_chat::KeywordRule>,
    /// What the chat model may tell buyers about this item.
    #[serde(default)]
    pub facts: Option<String>,
    /// Sent before the answer to a buyer's first message about this item.
    #[serde(default)]
    pub greeting: Option<super::raw_chat::Greeting>,
    #[serde(default)]
    pub bargain: Option<super::raw_chat::Bargain>,
    #[serde(default)]
    pub readback: Option<ProductReadBack>,
    #[serde(default)]
    pub delivery: Option<ProductDelivery>,
    /// Cards bought from an HTTP supplier at delivery time.
    #[serde(default)]
    pub supplier: Option<Supplier>,
}

/// `supplier:` — the buying call (and an optional `return:` call for refunds). The URL is a
/// secret (`url_env` / `url_file`), so are the values of `headers_env` (header name →
/// environment variable).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supplier {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<serde_yaml::Value>,
    pub response: String,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, rename = "return")]
    pub return_call: Option<SupplierReturn>,
}

/// `supplier.return:` — the call that gives a fetched card back on a refund.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplierReturn {
    pub method: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub headers_env: BTreeMap<String, String>,
    pub body: Option<serde_yaml::Value>,
}

/// `delivery:` — how the delivered content is shaped and what follows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductDelivery {
    pub shape: Option<MessageShape>,
    pub follow_up: Option<String>,
    pub proof: Option<super::delivery::ProofKind>,
    pub proof_template: Option<String>,
    pub proof_cards: Option<super::delivery::ProofCards>,
    /// Image files under the config dir, sent after the text.
    pub images: Vec<String>,
    /// Put the images' CDN URLs into the 无需寄件 form (`picList`).
    pub proof_images: Option<bool>,
    /// SKU → the images its orders get instead of `images`.
    pub sku_images: BTreeMap<String, Vec<String>>,
}

/// `readback:` — what to do when the read-back of an uncertain send does not find it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductReadBack {
    pub resend_if_absent: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductShip {
    pub mode: Option<ShipMode>,
    pub max_retries: Option<u32>,
}

/// Item ids are long digit strings; accept them quoted or not.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ItemId {
    Text(String),
    Number(u64),
}

impl ItemId {
    pub fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}
