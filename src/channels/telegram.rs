//! Telegram Bot API `sendMessage`, plain text (no parse mode, so nothing needs escaping), with a
//! configurable API base because api.telegram.org is not reachable everywhere.
//!
//! Verdicts: `ok == true` accepted; 429 retryable after `parameters.retry_after`; 5xx
//! retryable; 400 (chat not found), 401 (bad token), 403 (bot blocked) permanent. A bot may
//! post about 20 messages a minute to one group: the local limit unless `max_per_minute` says
//! otherwise.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, Scalar, SendResult, Vendor, text};
use crate::secret::{SecretKeys, SecretRef};

/// `text` may be 1–4096 characters.
pub const TEXT_MAX_CHARS: usize = 4096;

/// `type: telegram`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub api_base: Option<String>,
    pub token: SecretKeys,
    pub chat_id: Option<Scalar>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// `https://api.telegram.org`, or a reverse proxy where that is unreachable.
    pub api_base: String,
    pub token: SecretRef,
    pub chat_id: String,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Chat>;
    const SECRETS: &'static [&'static str] = &["token"];
    const RATE: Option<u32> = Some(20);

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let api_base = c.url(
            "api_base",
            raw.api_base.as_deref(),
            "https://api.telegram.org",
        );
        let chat_id = c.required("chat_id", raw.chat_id.as_ref().map(Scalar::text));
        let token = c.secret("token", &raw.token)?;
        Some(Spec {
            api_base,
            token,
            chat_id: chat_id?,
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let token = self.token.resolve()?;
        let chat_id = match self.chat_id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.chat_id),
        };
        let api_base = self.api_base.trim_end_matches('/');
        let url = format!("{api_base}/bot{token}/sendMessage");
        Ok(JsonPost::new(http, url, timeout, Chat { chat_id }))
    }
}

/// The chat the bot writes to: a number when it looks like one, as the API prefers.
pub struct Chat {
    chat_id: serde_json::Value,
}

impl JsonApi for Chat {
    fn body(&self, n: &Notification) -> serde_json::Value {
        json!({
            "chat_id": self.chat_id,
            "text": text::cut_chars(&n.body(), TEXT_MAX_CHARS),
            "disable_web_page_preview": true,
        })
    }

    fn classify(reply: &Reply) -> SendResult {
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
}
