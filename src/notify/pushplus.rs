//! PushPlus (推送加): `POST {token, title, content, template: "txt"}`. `code 200` only means
//! *accepted* (delivery is asynchronous), which is all a sender can know.
//!
//! Verdicts by body code: 200 accepted; 900 (system exception, also its throttling signal)
//! retry after a long wait; 903 (sending failed) retryable; 905/907/908/909/912 permanent.

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, text};
use crate::config::PushplusSpec;

pub const TITLE_MAX_CHARS: usize = 100;
pub const CONTENT_MAX_CHARS: usize = 20_000;
const BACK_OFF_LONG_MS: u64 = 10 * 60 * 1000;

pub struct PushplusChannel {
    http: reqwest::Client,
    token: String,
    spec: PushplusSpec,
    timeout: Duration,
}

impl PushplusChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &PushplusSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            http,
            token: spec.token.resolve()?,
            spec: spec.clone(),
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let mut body = json!({
            "token": self.token,
            "title": text::clip_chars(&n.title, TITLE_MAX_CHARS),
            "content": text::cut_chars(&n.text, CONTENT_MAX_CHARS),
            "template": "txt",
        });
        if let Some(c) = &self.spec.channel {
            body["channel"] = json!(c);
        }
        if let Some(t) = &self.spec.topic {
            body["topic"] = json!(t);
        }
        body
    }
}

#[async_trait::async_trait]
impl Channel for PushplusChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        match http::send(
            self.http.post(&self.spec.url).json(&self.payload(n)),
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
    let (code, error) = match http::vendor_result(reply, "code", "msg") {
        Ok(result) => result,
        Err(unclassified) => return unclassified,
    };
    match code {
        200 => SendResult::Accepted,
        900 => SendResult::retryable(error, Some(BACK_OFF_LONG_MS)),
        903 => SendResult::retryable(error, None),
        _ => SendResult::permanent(error),
    }
}
