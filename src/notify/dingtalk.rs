//! DingTalk (钉钉) custom robot: a text message with `at`, the optional 加签 signature in the
//! query, the bot's keyword guaranteed in the content, and `msgUuid` = the outbox row, so a
//! retry after a timeout is dropped by DingTalk instead of shown twice.
//!
//! Signature: `sign = urlencode(base64(HMAC-SHA256(secret, "{timestamp_ms}\n{secret}")))`,
//! URL-encoded (`+ / =` escaped; a raw `+` would decode to a space and fail intermittently).
//! Verdicts by `errcode`: 0 accepted; 130101/410100 (over 20 a minute, then muted 10 minutes)
//! quota; -1 busy, retry; everything else (310000 keyword/sign/IP, 300005 token) permanent.

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, sign, text};
use crate::config::DingtalkSpec;

/// No documented limit; long messages are cut well below what was seen to work.
pub const TEXT_MAX_CHARS: usize = 3800;
/// DingTalk mutes a bot for 10 minutes after it exceeded 20 messages a minute.
const PENALTY_MS: u64 = 10 * 60 * 1000;

pub struct DingtalkChannel {
    http: reqwest::Client,
    url: String,
    secret: Option<String>,
    spec: DingtalkSpec,
    timeout: Duration,
}

impl DingtalkChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &DingtalkSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let url = spec.url.resolve()?;
        http::check_url(&url)
            .map_err(|e| BuildError::Invalid(format!("DingTalk webhook URL: {e}")))?;
        let secret = spec.secret.as_ref().map(|s| s.resolve()).transpose()?;
        Ok(Self {
            http,
            url,
            secret,
            spec: spec.clone(),
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let mut content = text::cut_chars(&n.body(), TEXT_MAX_CHARS);
        if let Some(k) = self
            .spec
            .keyword
            .as_deref()
            .filter(|k| !content.contains(*k))
        {
            content = format!("{k} {content}");
        }
        // The @ only renders when the content names the mobile / user too.
        for who in self.spec.at_mobiles.iter().chain(&self.spec.at_user_ids) {
            content.push_str(&format!(" @{who}"));
        }
        json!({
            "msgtype": "text",
            "text": { "content": content },
            "at": {
                "atMobiles": self.spec.at_mobiles,
                "atUserIds": self.spec.at_user_ids,
                "isAtAll": self.spec.at_all,
            },
            "msgUuid": format!("xianyu-shopd-{}-{}", n.created_at, n.id),
        })
    }

    fn signed_url(&self) -> String {
        match &self.secret {
            Some(secret) => {
                let ts = http::unix_now_ms();
                format!(
                    "{}&timestamp={ts}&sign={}",
                    self.url,
                    sign_query(secret, ts)
                )
            }
            None => self.url.clone(),
        }
    }
}

/// The `sign` query value for `timestamp_ms`, already percent-encoded.
pub fn sign_query(secret: &str, timestamp_ms: u64) -> String {
    let mac = sign::hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    sign::percent_encode(&sign::base64(&mac))
}

#[async_trait::async_trait]
impl Channel for DingtalkChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let req = self.http.post(self.signed_url()).json(&self.payload(n));
        match http::send(req, self.timeout).await {
            Ok(reply) => classify(&reply),
            Err(failed) => failed,
        }
    }
}

pub fn classify(reply: &Reply) -> SendResult {
    let (code, error) = match http::vendor_result(reply, "errcode", "errmsg") {
        Ok(result) => result,
        Err(unclassified) => return unclassified,
    };
    match code {
        0 => SendResult::Accepted,
        130101 | 410100 => SendResult::quota(error, Some(PENALTY_MS)),
        -1 => SendResult::retryable(error, None),
        _ => SendResult::permanent(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_signature_vector() {
        assert_eq!(
            sign_query("SEC0123456789abcdef", 1_700_000_000_000),
            "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
        );
    }
}
