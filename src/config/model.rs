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

use super::templates::Templates;
use crate::notify::EventKind;

#[derive(Debug)]
pub struct Config {
    /// Short content hash of the config files; shown on the status page and stored on jobs.
    pub version: String,
    pub dir: PathBuf,
    pub accounts: Vec<Account>,
    pub status: StatusConfig,
    pub stages: Vec<Stage>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub pools: BTreeMap<String, PoolConfig>,
    pub products: HashMap<String, Product>,
    pub templates: Arc<Templates>,
}

impl Config {
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
}

/// Where a secret comes from. The value itself is read only when needed and never stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            Self::Env(name) => std::env::var(name)
                .map(|v| v.trim().to_string())
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| v.trim().to_string())
                .map_err(|e| SecretError::File(path.clone(), e.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {0}: {1}")]
    File(PathBuf, String),
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub cookies: SecretRef,
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
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ingest(_) => "ingest",
            Self::Classify(_) => "classify",
            Self::StockCheck(_) => "stock-check",
            Self::Delay(_) => "delay",
            Self::Ship(_) => "ship",
            Self::Notify(_) => "notify",
        }
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
    pub logistics_company: String,
}

#[derive(Debug, Clone)]
pub struct NotifyParams {
    pub events: Vec<EventKind>,
    pub channels: Vec<String>,
    pub fallback: Vec<String>,
    pub routes: BTreeMap<EventKind, Vec<String>>,
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

#[derive(Debug, Clone)]
pub enum ChannelConfig {
    Webhook { url: SecretRef, timeout: Duration },
    Log,
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
pub enum ShipMode {
    SendThenConfirm,
    ConfirmThenSend,
    SendOnly,
    ConfirmOnly,
}

impl ShipMode {
    pub fn sends(self) -> bool {
        self != Self::ConfirmOnly
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendThenConfirm => "send_then_confirm",
            Self::ConfirmThenSend => "confirm_then_send",
            Self::SendOnly => "send_only",
            Self::ConfirmOnly => "confirm_only",
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
    /// Stock units (or keys) one purchased piece consumes.
    pub units: u32,
    pub active: bool,
    pub low_stock_alert: Option<u32>,
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
