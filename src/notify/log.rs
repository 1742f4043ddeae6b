//! The built-in `log` channel: a notification becomes a warning in the daemon's log.
//! Always available, so alerts are never silently dropped when nothing else is configured.

use super::{Channel, Notification, SendResult};

pub struct LogChannel;

#[async_trait::async_trait]
impl Channel for LogChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        tracing::warn!(event = %n.event, order_id = n.order_id.as_deref().unwrap_or(""), title = %n.title, text = %n.text, "Notification.");
        SendResult::Accepted
    }
}
