//! Telling the seller: events → outbox rows → channels.
//!
//! Stages describe what happened as an [`Alert`]; the [`Router`] (built from the `notify` stage
//! of the running config) turns it into outbox drafts, one per channel, which the store commits
//! in the same transaction as the state change. The [`dispatcher`] drains the outbox with
//! retries and fallbacks. One file per channel kind.

pub mod dispatcher;
mod log;
pub mod webhook;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{ChannelConfig, NotifyParams};
use crate::store::OutboxDraft;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ManualShip,
    ShipFailed,
    NeedsHuman,
    OutOfStock,
    LowStock,
    LoginExpired,
    RiskControl,
    Delivered,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        Self::ManualShip,
        Self::ShipFailed,
        Self::NeedsHuman,
        Self::OutOfStock,
        Self::LowStock,
        Self::LoginExpired,
        Self::RiskControl,
        Self::Delivered,
    ];

    /// What a seller hears about when `events:` is not given: everything that needs a human.
    pub const DEFAULT_ALERTS: [EventKind; 7] = [
        Self::ManualShip,
        Self::ShipFailed,
        Self::NeedsHuman,
        Self::OutOfStock,
        Self::LowStock,
        Self::LoginExpired,
        Self::RiskControl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManualShip => "manual_ship",
            Self::ShipFailed => "ship_failed",
            Self::NeedsHuman => "needs_human",
            Self::OutOfStock => "out_of_stock",
            Self::LowStock => "low_stock",
            Self::LoginExpired => "login_expired",
            Self::RiskControl => "risk_control",
            Self::Delivered => "delivered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Chinese title shown in the notification.
    pub fn title(self) -> &'static str {
        match self {
            Self::ManualShip => "【待人工发货】",
            Self::ShipFailed => "【自动发货失败】",
            Self::NeedsHuman => "【发货结果未知，请人工核实】",
            Self::OutOfStock => "【库存不足】",
            Self::LowStock => "【库存预警】",
            Self::LoginExpired => "【登录失效】",
            Self::RiskControl => "【触发风控】",
            Self::Delivered => "【已自动发货】",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the seller may need to hear about, with the facts to tell.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: EventKind,
    pub order_id: Option<String>,
    /// `(label, value)` lines in Chinese, in display order.
    pub facts: Vec<(&'static str, String)>,
    /// What the seller should do, in Chinese.
    pub action: String,
}

impl Alert {
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            order_id: None,
            facts: Vec::new(),
            action: String::new(),
        }
    }

    pub fn order(mut self, order_id: &str) -> Self {
        self.order_id = Some(order_id.to_string());
        self.fact("订单号", order_id)
    }

    pub fn fact(mut self, label: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.facts.push((label, value));
        }
        self
    }

    pub fn action(mut self, text: impl Into<String>) -> Self {
        self.action = text.into();
        self
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (label, value) in &self.facts {
            out.push_str(&format!("{label}：{value}\n"));
        }
        if !self.action.is_empty() {
            out.push_str(&format!("处理建议：{}\n", self.action));
        }
        out
    }
}

/// Turns alerts into outbox drafts according to the running config's `notify` stage.
#[derive(Debug, Clone, Copy)]
pub struct Router<'a> {
    params: Option<&'a NotifyParams>,
}

impl<'a> Router<'a> {
    pub fn new(params: Option<&'a NotifyParams>) -> Self {
        Self { params }
    }

    pub fn drafts(&self, alert: &Alert) -> Vec<OutboxDraft> {
        let (channels, fallback): (Vec<String>, Vec<String>) = match self.params {
            Some(p) => match p.route(alert.kind) {
                Some(chs) => (chs.to_vec(), p.fallback.clone()),
                None => return Vec::new(),
            },
            // Without a notify stage the seller still sees alerts in the log.
            None if EventKind::DEFAULT_ALERTS.contains(&alert.kind) => {
                (vec!["log".into()], Vec::new())
            }
            None => return Vec::new(),
        };
        let text = alert.text();
        channels
            .iter()
            .map(|ch| OutboxDraft {
                event: alert.kind,
                channel: ch.clone(),
                fallback: fallback.iter().filter(|f| *f != ch).cloned().collect(),
                title: alert.kind.title().to_string(),
                text: text.clone(),
                order_id: alert.order_id.clone(),
            })
            .collect()
    }
}

/// A notification as a channel sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: u64,
    pub event: EventKind,
    pub title: String,
    pub text: String,
    pub order_id: Option<String>,
}

/// How a channel answered, classified so the dispatcher knows whether to retry.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    Accepted,
    Retryable {
        error: String,
        retry_after_ms: Option<u64>,
    },
    Permanent {
        error: String,
    },
}

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, n: &Notification) -> SendResult;
}

/// Build the channel implementation for a configured channel. Secrets are resolved here, at
/// send time, so a rotated environment file takes effect on the next reload.
pub fn build_channel(
    cfg: &ChannelConfig,
    http: &reqwest::Client,
) -> Result<Box<dyn Channel>, String> {
    match cfg {
        ChannelConfig::Log => Ok(Box::new(log::LogChannel)),
        ChannelConfig::Webhook { url, timeout } => {
            let url = url.resolve().map_err(|e| e.to_string())?;
            Ok(Box::new(webhook::WebhookChannel::new(
                http.clone(),
                url,
                *timeout,
            )))
        }
    }
}
