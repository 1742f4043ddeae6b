//! Telegram Bot API `sendMessage`, plain text (no parse mode, so nothing needs escaping), with a
//! configurable API base because api.telegram.org is not reachable everywhere.
//!
//! Verdicts: `ok == true` accepted; 429 retryable after `parameters.retry_after`; 5xx
//! retryable; 400 (chat not found), 401 (bad token), 403 (bot blocked) permanent.

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, text};
use crate::config::TelegramSpec;

/// `text` may be 1–4096 characters.
pub const TEXT_MAX_CHARS: usize = 4096;

pub struct TelegramChannel {
    http: reqwest::Client,
    url: String,
    chat_id: serde_json::Value,
    timeout: Duration,
}

impl TelegramChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &TelegramSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let token = spec.token.resolve()?;
        let chat_id = match spec.chat_id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(spec.chat_id),
        };
        Ok(Self {
            http,
            url: format!(
                "{}/bot{token}/sendMessage",
                spec.api_base.trim_end_matches('/')
            ),
            chat_id,
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        json!({
            "chat_id": self.chat_id,
            "text": text::cut_chars(&n.body(), TEXT_MAX_CHARS),
            "disable_web_page_preview": true,
        })
    }
}

#[async_trait::async_trait]
impl Channel for TelegramChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        match http::send(
            self.http.post(&self.url).json(&self.payload(n)),
            self.timeout,
        )
        .await
        {
            Ok(reply) => classify(&reply),
            Err(failed) => failed,
        }
    }
}

pub fn classify(reply: &Reply) -> SendResult {
    let Some(body) = reply.json() else {
        return http::by_status(reply, format!("HTTP {}", reply.status.as_u16()));
    };
    if body["ok"].as_bool() == Some(true) {
        return SendResult::Accepted;
    }
    let code = body["error_code"]
        .as_i64()
        .unwrap_or(reply.status.as_u16() as i64);
    let error = format!(
        "error {code}: {}",
        http::vendor_msg(body["description"].as_str().unwrap_or(""))
    );
    let retry_after = body["parameters"]["retry_after"].as_u64().map(|s| s * 1000);
    match code {
        429 => SendResult::retryable(
            error,
            retry_after.or_else(|| http::retry_after_ms(&reply.headers)),
        ),
        500..=599 => SendResult::retryable(error, retry_after),
        _ => SendResult::permanent(error),
    }
}
