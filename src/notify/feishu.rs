//! Feishu / Lark custom bot: `{"msg_type":"text","content":{"text":…}}`, with `timestamp` and
//! `sign` in the body when the bot has 签名校验. Unlike DingTalk the timestamp is in seconds
//! and the string-to-sign is the HMAC *key* over an empty message.
//!
//! Verdicts: `code == 0` (or the legacy `StatusCode == 0`) accepted; 11232 and 99991400
//! (throttled; wait `x-ogw-ratelimit-reset` seconds when given) and HTTP 429/5xx retryable;
//! 19021 sign/timestamp, 19022 IP, 19024 keyword, 9499 bad request and others permanent.

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, sign, text};
use crate::config::FeishuSpec;

/// The request body may be 20 KB; the text gets most of it.
pub const TEXT_MAX_BYTES: usize = 18 * 1024;
const THROTTLE_WAIT_MS: u64 = 60_000;

pub struct FeishuChannel {
    http: reqwest::Client,
    url: String,
    secret: Option<String>,
    spec: FeishuSpec,
    timeout: Duration,
}

impl FeishuChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &FeishuSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let url = spec.url.resolve()?;
        http::check_url(&url)
            .map_err(|e| BuildError::Invalid(format!("Feishu webhook URL: {e}")))?;
        let secret = spec.secret.as_ref().map(|s| s.resolve()).transpose()?;
        Ok(Self {
            http,
            url,
            secret,
            spec: spec.clone(),
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification, timestamp_s: u64) -> serde_json::Value {
        let mut content = text::cut_bytes(&n.body(), TEXT_MAX_BYTES);
        if let Some(k) = self
            .spec
            .keyword
            .as_deref()
            .filter(|k| !content.contains(*k))
        {
            content = format!("{k} {content}");
        }
        for id in &self.spec.at_user_ids {
            content.push_str(&format!(" <at user_id=\"{id}\"></at>"));
        }
        if self.spec.at_all {
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

/// `Base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = ""))`.
pub fn signature(secret: &str, timestamp_s: u64) -> String {
    sign::base64(&sign::hmac_sha256(
        format!("{timestamp_s}\n{secret}").as_bytes(),
        b"",
    ))
}

#[async_trait::async_trait]
impl Channel for FeishuChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let body = self.payload(n, http::unix_now_ms() / 1000);
        match http::send(self.http.post(&self.url).json(&body), self.timeout).await {
            Ok(reply) => classify(&reply),
            Err(failed) => failed,
        }
    }
}

pub fn classify(reply: &Reply) -> SendResult {
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
