//! The YAML files as written: serde types with no meaning attached yet.
//!
//! Everything a seller can type has a field here; `validate` turns these into the model in
//! `model.rs`. Durations stay strings until validation so a bad one is reported with its
//! position alongside every other problem, not as the first and only serde error.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{Category, ProductStatus};
use crate::order::ShipMode;

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
    /// Where and how the Goofish client connects; every key optional.
    #[serde(default)]
    pub marketplace: Marketplace,
}

/// `marketplace:` — endpoints and timings of the Goofish client. The defaults are the real
/// service; tests and the demo point the URLs at a loopback fake and shorten the timings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Marketplace {
    pub mtop_url: Option<String>,
    pub ws_url: Option<String>,
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
    pub dedupe_window: Option<String>,
    pub cooldown: BTreeMap<String, String>,
    pub recovery: Option<bool>,
}

/// One entry of `channels:`, chosen by `type:`. Every kind takes `timeout` and
/// `max_per_minute`; secrets are `<name>_env` or `<name>_file` (under `state/`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    Webhook(WebhookChannel),
    Log {},
    Wecom(WecomChannel),
    Dingtalk(DingtalkChannel),
    Feishu(FeishuChannel),
    Bark(BarkChannel),
    Telegram(TelegramChannel),
    Serverchan(ServerchanChannel),
    Pushplus(PushplusChannel),
    Email(EmailChannel),
    AliyunSms(AliyunSmsChannel),
    TencentSms(TencentSmsChannel),
}

/// A value sellers write either quoted or as a bare number (phone numbers, chat ids).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Int(i64),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookChannel {
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// `whsec_…` Standard Webhooks signing secret (optional).
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WecomChannel {
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub mention_users: Vec<String>,
    pub mention_mobiles: Vec<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DingtalkChannel {
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub at_mobiles: Vec<String>,
    pub at_user_ids: Vec<String>,
    pub at_all: bool,
    pub keyword: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeishuChannel {
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub at_all: bool,
    pub at_user_ids: Vec<String>,
    pub keyword: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BarkChannel {
    pub server: Option<String>,
    pub device_key_env: Option<String>,
    pub device_key_file: Option<String>,
    pub group: Option<String>,
    pub sound: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramChannel {
    pub api_base: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub chat_id: Option<Scalar>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerchanChannel {
    pub sendkey_env: Option<String>,
    pub sendkey_file: Option<String>,
    pub api_base: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushplusChannel {
    pub url: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub channel: Option<String>,
    pub topic: Option<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailChannel {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `implicit` (465), `starttls` (587) or `none` (loopback only).
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AliyunSmsChannel {
    pub endpoint: Option<String>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<String>,
    pub access_key_secret_env: Option<String>,
    pub access_key_secret_file: Option<String>,
    pub sign_name: Option<String>,
    pub template_code: Option<String>,
    pub phone_numbers: Vec<Scalar>,
    pub region: Option<String>,
    pub params: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TencentSmsChannel {
    pub endpoint: Option<String>,
    pub secret_id_env: Option<String>,
    pub secret_id_file: Option<String>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<String>,
    pub sdk_app_id: Option<Scalar>,
    pub sign_name: Option<String>,
    pub template_id: Option<Scalar>,
    pub phone_numbers: Vec<Scalar>,
    pub region: Option<String>,
    pub params: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
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
