//! The built-in `log` channel: a notification becomes a warning in the daemon's log.
//! Always available, so alerts are never silently dropped when nothing else is configured.

use std::time::Duration;

use serde::Deserialize;

use super::{BuildError, Channel, Check, Notification, SendResult, Vendor};

/// `type: log` takes no other key (not even `timeout`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {}

#[derive(Debug, Clone)]
pub struct Spec;

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = ();
    type Sender = LogChannel;

    fn check(_: &Raw, _: &mut Check<'_>) -> Option<Self> {
        Some(Spec)
    }

    fn sender(&self, _: reqwest::Client, _: Duration) -> Result<LogChannel, BuildError> {
        Ok(LogChannel)
    }
}

pub struct LogChannel;

#[async_trait::async_trait]
impl Channel for LogChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        tracing::warn!(event = %n.event, order_id = n.order_id.as_deref().unwrap_or(""), title = %n.title, text = %n.text, "Notification.");
        SendResult::Accepted
    }
}
