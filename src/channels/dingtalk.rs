//! DingTalk (钉钉) custom robot: a text message with `at`, the optional 加签 signature in the
//! query, the bot's keyword guaranteed in the content, and `msgUuid` = the outbox row, so a
//! retry after a timeout is dropped by DingTalk instead of shown twice.
//!
//! Signature: `sign = urlencode(base64(HMAC-SHA256(secret, "{timestamp_ms}\n{secret}")))`,
//! URL-encoded (`+ / =` escaped; a raw `+` would decode to a space and fail intermittently).
//! Verdicts by `errcode`: 0 accepted; 130101/410100 (over 20 a minute, then muted 10 minutes)
//! quota; -1 busy, retry; everything else (310000 keyword/sign/IP, 300005 token) permanent.
//! The local limit is 20 a minute unless `max_per_minute` says otherwise.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, Reply};
use super::{
    BuildError, Channel, Check, Limits, Notification, SendResult, SignedUrl, Vendor, sign, text,
};
use crate::secret::SecretKeys;

/// No documented limit; long messages are cut well below what was seen to work.
pub const TEXT_MAX_CHARS: usize = 3800;
/// DingTalk mutes a bot for 10 minutes after it exceeded 20 messages a minute.
const PENALTY_MS: u64 = 10 * 60 * 1000;

/// `type: dingtalk`, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub url: SecretKeys,
    pub secret: SecretKeys,
    pub at_mobiles: Vec<String>,
    pub at_user_ids: Vec<String>,
    pub at_all: bool,
    /// The bot's custom keyword; prepended when a message lacks it (else DingTalk drops it).
    pub keyword: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// The webhook URL, and the `SEC…` signing secret if the bot uses 加签.
    pub target: SignedUrl,
    /// Mentions and keyword, used as written.
    pub written: Raw,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = DingtalkChannel;
    const SECRETS: &'static [&'static str] = &["url", "secret"];
    const RATE: Option<u32> = Some(20);

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        Some(Spec {
            target: c.signed_url(&raw.url, &raw.secret)?,
            written: raw.clone(),
        })
    }

    fn sender(
        &self,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<DingtalkChannel, BuildError> {
        let (url, secret) = self.target.resolve("DingTalk webhook URL")?;
        Ok(DingtalkChannel {
            http,
            url,
            secret,
            written: self.written.clone(),
            timeout,
        })
    }
}

pub struct DingtalkChannel {
    http: reqwest::Client,
    url: String,
    secret: Option<String>,
    written: Raw,
    timeout: Duration,
}

impl DingtalkChannel {
    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let mut content = text::with_keyword(
            text::cut_chars(&n.body(), TEXT_MAX_CHARS),
            self.written.keyword.as_deref(),
        );
        // The @ only renders when the content names the mobile / user too.
        for who in self
            .written
            .at_mobiles
            .iter()
            .chain(&self.written.at_user_ids)
        {
            content.push_str(&format!(" @{who}"));
        }
        json!({
            "msgtype": "text",
            "text": { "content": content },
            "at": {
                "atMobiles": self.written.at_mobiles,
                "atUserIds": self.written.at_user_ids,
                "isAtAll": self.written.at_all,
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
        http::exchange(req, self.timeout, classify).await
    }
}

pub fn classify(reply: &Reply) -> SendResult {
    http::by_code(reply, "errcode", "errmsg", |code, error| match code {
        0 => SendResult::Accepted,
        130101 | 410100 => SendResult::quota(error, Some(PENALTY_MS)),
        -1 => SendResult::retryable(error, None),
        _ => SendResult::permanent(error),
    })
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
