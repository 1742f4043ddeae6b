//! PushPlus (推送加): `POST {token, title, content, template: "txt"}`. `code 200` only means
//! *accepted* (delivery is asynchronous), which is all a sender can know.
//!
//! Verdicts by body code: 200 accepted; 900 (system exception, also its throttling signal)
//! retry after a long wait; 903 (sending failed) retryable; 905/907/908/909/912 permanent.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, SendResult, Vendor, text};
use crate::secret::{SecretKeys, SecretRef};

pub const TITLE_MAX_CHARS: usize = 100;
pub const CONTENT_MAX_CHARS: usize = 20_000;
const BACK_OFF_LONG_MS: u64 = 10 * 60 * 1000;

/// `type: pushplus`, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub url: Option<String>,
    pub token: SecretKeys,
    pub channel: Option<String>,
    pub topic: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub url: String,
    pub token: SecretRef,
    /// `channel` and `topic`, used as written.
    pub written: Raw,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Push>;
    const SECRETS: &'static [&'static str] = &["token"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let url = c.url("url", raw.url.as_deref(), "https://www.pushplus.plus/send");
        Some(Spec {
            url,
            token: c.secret("token", &raw.token)?,
            written: raw.clone(),
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let push = Push {
            token: self.token.resolve()?,
            written: self.written.clone(),
        };
        Ok(JsonPost::new(http, self.url.clone(), timeout, push))
    }
}

/// What a message carries besides the notification.
pub struct Push {
    token: String,
    written: Raw,
}

impl JsonApi for Push {
    fn body(&self, n: &Notification) -> serde_json::Value {
        let mut body = json!({
            "token": self.token,
            "title": text::clip_chars(&n.title, TITLE_MAX_CHARS),
            "content": text::cut_chars(&n.text, CONTENT_MAX_CHARS),
            "template": "txt",
        });
        if let Some(c) = &self.written.channel {
            body["channel"] = json!(c);
        }
        if let Some(t) = &self.written.topic {
            body["topic"] = json!(t);
        }
        body
    }

    fn classify(reply: &Reply) -> SendResult {
        http::by_code(reply, "code", "msg", |code, error| match code {
            200 => SendResult::Accepted,
            900 => SendResult::retryable(error, Some(BACK_OFF_LONG_MS)),
            903 => SendResult::retryable(error, None),
            _ => SendResult::permanent(error),
        })
    }
}
