//! Feishu / Lark custom bot: `{"msg_type":"text","content":{"text":…}}`, with `timestamp` and
//! `sign` in the body when the bot has 签名校验. Unlike DingTalk the timestamp is in seconds
//! and the string-to-sign is the HMAC *key* over an empty message.
//!
//! Verdicts: `code == 0` (or the legacy `StatusCode == 0`) accepted; 11232 and 99991400
//! (throttled; wait `x-ogw-ratelimit-reset` seconds when given) and HTTP 429/5xx retryable;
//! 19021 sign/timestamp, 19022 IP, 19024 keyword, 9499 bad request and others permanent.
//! A bot takes 100 requests a minute, so that is the local limit unless `max_per_minute` says
//! otherwise.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, SendResult, SignedUrl, Vendor, sign, text};
use crate::secret::SecretKeys;

/// The request body may be 20 KB; the text gets most of it.
pub const TEXT_MAX_BYTES: usize = 18 * 1024;
const THROTTLE_WAIT_MS: u64 = 60_000;

/// `type: feishu`, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub url: SecretKeys,
    pub secret: SecretKeys,
    pub at_all: bool,
    pub at_user_ids: Vec<String>,
    pub keyword: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// The webhook URL, and the 签名校验 secret if the bot has one.
    pub target: SignedUrl,
    /// Mentions and keyword, used as written.
    pub written: Raw,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Bot>;
    const SECRETS: &'static [&'static str] = &["url", "secret"];
    const RATE: Option<u32> = Some(100);

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        Some(Spec {
            target: c.signed_url(&raw.url, &raw.secret)?,
            written: raw.clone(),
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let (url, secret) = self.target.resolve("Feishu webhook URL")?;
        let bot = Bot {
            secret,
            written: self.written.clone(),
        };
        Ok(JsonPost::new(http, url, timeout, bot))
    }
}

/// The bot's signing secret, read once per config version, and its mentions.
pub struct Bot {
    secret: Option<String>,
    written: Raw,
}

impl Bot {
    pub fn payload(&self, n: &Notification, timestamp_s: u64) -> serde_json::Value {
        let mut content = text::with_keyword(
            text::cut_bytes(&n.body(), TEXT_MAX_BYTES),
            self.written.keyword.as_deref(),
        );
        for id in &self.written.at_user_ids {
            content.push_str(&format!(" <at user_id=\"{id}\"></at>"));
        }
        if self.written.at_all {
            content.push_str(" <at user_id=\"all\">所有人</at>");
        }
        let mut body = json!({ "msg_type": "text", "content": { "text": content } });
        if let Some(secret) = &self.secret {
            body["timestamp"] = json!(timestamp_s.to_string());
            body["sign"] = json!(signature(secret, timestamp_s));
        }
        body
    }
}

impl JsonApi for Bot {
    fn body(&self, n: &Notification) -> serde_json::Value {
        self.payload(n, http::unix_now_ms() / 1000)
    }

    fn classify(reply: &Reply) -> SendResult {
        let reset = http::header_secs(&reply.headers, "x-ogw-ratelimit-reset");
        let Some(body) = reply.json() else {
            return http::no_code(reply);
        };
        let code = body["code"]
            .as_i64()
            .or_else(|| body["StatusCode"].as_i64());
        let Some(code) = code else {
            return http::no_code(reply);
        };
        let msg = body["msg"]
            .as_str()
            .or_else(|| body["StatusMessage"].as_str())
            .unwrap_or("");
        let error = format!("code {code}: {}", http::vendor_msg(msg));
        match code {
            0 => SendResult::Accepted,
            11232 | 99991400 => SendResult::retryable(error, reset.or(Some(THROTTLE_WAIT_MS))),
            _ if reply.status.is_server_error() || reply.status.as_u16() == 429 => {
                SendResult::retryable(error, reset)
            }
            _ => SendResult::permanent(error),
        }
    }
}

/// `Base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = ""))`.
pub fn signature(secret: &str, timestamp_s: u64) -> String {
    sign::base64(&sign::hmac_sha256(
        format!("{timestamp_s}\n{secret}").as_bytes(),
        b"",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_signature_vector() {
        assert_eq!(
            signature("feishu-test-secret", 1_700_000_000),
            "e3MJ8Q5llVxGJ8pVkGPBhexDAgjvYqpjPP1GkY9XceI="
        );
    }
}
