//! A generic JSON webhook: `POST {event, title, text, order_id, id}` to the seller's URL.
//!
//! 2xx is accepted; 408/429/5xx and network errors are retried (honouring `Retry-After`);
//! other statuses are permanent. The URL usually embeds a key, so it never appears in errors.

use std::time::Duration;

use super::{Channel, Notification, SendResult};

pub struct WebhookChannel {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl WebhookChannel {
    pub fn new(http: reqwest::Client, url: String, timeout: Duration) -> Self {
        Self { http, url, timeout }
    }
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let resp = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .json(n)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return SendResult::Retryable {
                    error: e.without_url().to_string(),
                    retry_after_ms: None,
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return SendResult::Accepted;
        }
        let retry_after_ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s * 1000);
        let error = format!("HTTP {}", status.as_u16());
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            SendResult::Retryable {
                error,
                retry_after_ms,
            }
        } else {
            SendResult::Permanent { error }
        }
    }
}
