//! Bark (iOS push): `POST {server}/push` with the V2 JSON body. The server only takes the JSON
//! parser when Content-Type starts with `application/json`, which `reqwest`'s `.json()` sets.
//! Urgent events use `level: timeSensitive` so they break through Focus modes.
//!
//! The answer's `code` mirrors the HTTP status: 200 accepted, 400 (empty or unknown device
//! key) permanent, 500 (APNs failure) retryable; HTTP 418 is a wrong Basic-auth password on a
//! self-hosted server (permanent).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, SendResult, Vendor, text};
use crate::secret::{SecretKeys, SecretRef};

/// APNs payloads are at most 4096 bytes including title and JSON overhead.
pub const BODY_MAX_BYTES: usize = 3000;

/// `type: bark`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub server: Option<String>,
    pub device_key: SecretKeys,
    pub group: Option<String>,
    pub sound: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// `https://api.day.app` or a self-hosted server.
    pub server: String,
    pub device_key: SecretRef,
    pub group: String,
    pub sound: Option<String>,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Push>;
    const SECRETS: &'static [&'static str] = &["device_key"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let server = c.url("server", raw.server.as_deref(), "https://api.day.app");
        Some(Spec {
            server,
            device_key: c.secret("device_key", &raw.device_key)?,
            group: raw.group.clone().unwrap_or_else(|| "xianyu".to_string()),
            sound: raw.sound.clone(),
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let url = format!("{}/push", self.server.trim_end_matches('/'));
        let device_key = self.device_key.resolve()?;
        let push = Push {
            device_key,
            spec: self.clone(),
        };
        Ok(JsonPost::new(http, url, timeout, push))
    }
}

/// What a push carries besides the notification.
pub struct Push {
    device_key: String,
    spec: Spec,
}

impl JsonApi for Push {
    fn body(&self, n: &Notification) -> serde_json::Value {
        let mut body = json!({
            "device_key": self.device_key,
            "title": n.title,
            "body": text::cut_bytes(&n.text, BODY_MAX_BYTES),
            "group": self.spec.group,
            "level": if n.event.urgent() { "timeSensitive" } else { "active" },
        });
        if let Some(sound) = &self.spec.sound {
            body["sound"] = json!(sound);
        }
        body
    }

    fn classify(reply: &Reply) -> SendResult {
        if reply.status.as_u16() == 418 {
            return SendResult::permanent(
                "HTTP 418: wrong Basic-auth credentials for the Bark server",
            );
        }
        let Some(body) = reply.json() else {
            return http::no_code(reply);
        };
        let Some(code) = body["code"].as_i64() else {
            return http::no_code(reply);
        };
        // The message can quote the device key ("failed to get [KEY] device token"): keep it out.
        let msg = body["message"].as_str().unwrap_or("");
        let msg = if msg.contains('[') {
            msg.split('[').next().unwrap_or("").trim()
        } else {
            msg
        };
        let error = format!("code {code}: {}", http::vendor_msg(msg));
        match code {
            200 => SendResult::Accepted,
            500..=599 => SendResult::retryable(error, None),
            _ => SendResult::permanent(error),
        }
    }
}
