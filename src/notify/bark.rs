//! Bark (iOS push): `POST {server}/push` with the V2 JSON body. The server only takes the JSON
//! parser when Content-Type starts with `application/json`, which `reqwest`'s `.json()` sets.
//! Urgent events use `level: timeSensitive` so they break through Focus modes.
//!
//! The answer's `code` mirrors the HTTP status: 200 accepted, 400 (empty or unknown device
//! key) permanent, 500 (APNs failure) retryable; HTTP 418 is a wrong Basic-auth password on a
//! self-hosted server (permanent).

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, text};
use crate::config::BarkSpec;

/// APNs payloads are at most 4096 bytes including title and JSON overhead.
pub const BODY_MAX_BYTES: usize = 3000;

pub struct BarkChannel {
    http: reqwest::Client,
    url: String,
    device_key: String,
    spec: BarkSpec,
    timeout: Duration,
}

impl BarkChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &BarkSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            http,
            url: format!("{}/push", spec.server.trim_end_matches('/')),
            device_key: spec.device_key.resolve()?,
            spec: spec.clone(),
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
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
}

#[async_trait::async_trait]
impl Channel for BarkChannel {
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
    if reply.status.as_u16() == 418 {
        return SendResult::permanent("HTTP 418: wrong Basic-auth credentials for the Bark server");
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
