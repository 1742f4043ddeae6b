//! The YAML files as written: serde types with no meaning attached yet.
//!
//! Everything a seller can type has a field here; `validate` turns these into the model in
//! `model.rs`. Durations stay strings until validation so a bad one is reported with its
//! position alongside every other problem, not as the first and only serde error.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{Category, ProductStatus, ShipMode};

/// `pipeline.yaml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    #[serde(default)]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub status: Status,
    /// Each item is a one-key map `- kind: { params }`.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub pipeline: Vec<Stage>,
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cookies_env: Option<String>,
    #[serde(default)]
    pub cookies_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
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
    pub logistics_company: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyParams {
    pub events: Vec<String>,
    pub channels: Vec<String>,
    pub fallback: Vec<String>,
    pub routes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    Webhook {
        #[serde(default)]
        url_env: Option<String>,
        #[serde(default)]
        url_file: Option<String>,
        #[serde(default)]
        timeout: Option<String>,
    },
    Log {},
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
