//! The generic JSON webhook, signed like Standard Webhooks (standardwebhooks.com).
//!
//! Body: `{id, event, severity, title, message, occurred_at, data}`. Headers `webhook-id`
//! (stable across retries of one outbox row: the receiver's idempotency key),
//! `webhook-timestamp` (unix seconds) and, when a `whsec_…` secret is configured,
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
//! 2xx is accepted; 408/429/5xx and network errors are retried (honouring `Retry-After`);
//! other statuses are permanent. The URL usually embeds a key, so it never appears in errors.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http;
use super::{
    BuildError, Channel, Check, Limits, Notification, SendResult, SignedUrl, Vendor, sign,
};
use crate::secret::SecretKeys;

/// `type: webhook`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub url: SecretKeys,
    /// `whsec_…` Standard Webhooks signing secret (optional).
    pub secret: SecretKeys,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub target: SignedUrl,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = WebhookChannel;
    const SECRETS: &'static [&'static str] = &["url", "secret"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let target = c.signed_url(&raw.url, &raw.secret)?;
        Some(Spec { target })
    }

    fn sender(
        &self,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<WebhookChannel, BuildError> {
        let (url, secret) = self.target.resolve("webhook URL")?;
        Ok(WebhookChannel {
            http,
            url,
            key: secret.map(|s| signing_key(&s)),
            timeout,
        })
    }
}

pub struct WebhookChannel {
    http: reqwest::Client,
    url: String,
    key: Option<Vec<u8>>,
    timeout: Duration,
}

/// `whsec_<base64>` decodes to the key; anything else is used as raw bytes.
pub fn signing_key(secret: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The `webhook-signature` header value.
pub fn signature(key: &[u8], id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let mut msg = format!("{id}.{timestamp_s}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1,{}", sign::base64(&sign::hmac_sha256(key, &msg)))
}

/// Stable per outbox row, so a retried delivery carries the same id.
pub fn message_id(n: &Notification) -> String {
    format!("msg_{}_{}", n.created_at, n.id)
}

pub fn payload(n: &Notification) -> serde_json::Value {
    json!({
        "id": message_id(n),
        "event": n.event,
        "severity": if n.event.urgent() { "critical" } else { "warning" },
        "title": n.title,
        "message": n.text,
        "occurred_at": crate::clock::format_ms(n.created_at),
        "order_id": n.order_id,
        "data": n.vars,
    })
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let body = serde_json::to_vec(&payload(n)).unwrap_or_default();
        let id = message_id(n);
        let ts = http::unix_now_ms() / 1000;
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(key) = &self.key {
            req = req.header("webhook-signature", signature(key, &id, ts, &body));
        }
        http::exchange(req.body(body), self.timeout, classify).await
    }
}

/// The status alone decides: the receiver is the seller's own service.
pub fn classify(reply: &http::Reply) -> SendResult {
    http::by_status(reply, format!("HTTP {}", reply.status.as_u16()))
}
