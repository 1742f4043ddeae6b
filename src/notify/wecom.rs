//! WeCom (企业微信) group bot: `POST {"msgtype":"text",…}` to the bot's webhook URL, whose `key=`
//! is the whole credential. Text messages, because only they carry `mentioned_list` /
//! `mentioned_mobile_list` (markdown ignores them). Content is cut to 2048 bytes.
//!
//! WeCom answers HTTP 200 for everything; the verdict is `errcode`: 0 accepted, 45009 (more
//! than 20 a minute) retry after 65 s, -1 busy, every other code (93000 bad key, 40008,
//! 44004, 40058) permanent.

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, text};
use crate::config::WecomSpec;

/// `text.content` limit in bytes (UTF-8).
pub const TEXT_MAX_BYTES: usize = 2048;
/// The common fixed wait after 45009; the window is one minute.
const FREQ_WAIT_MS: u64 = 65_000;

pub struct WecomChannel {
    http: reqwest::Client,
    url: String,
    mention_users: Vec<String>,
    mention_mobiles: Vec<String>,
    timeout: Duration,
}

impl WecomChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &WecomSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let url = spec.url.resolve()?;
        http::check_url(&url)
            .map_err(|e| BuildError::Invalid(format!("WeCom webhook URL: {e}")))?;
        Ok(Self {
            http,
            url,
            mention_users: spec.mention_users.clone(),
            mention_mobiles: spec.mention_mobiles.clone(),
            timeout,
        })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let mut text = json!({ "content": text::cut_bytes(&n.body(), TEXT_MAX_BYTES) });
        if !self.mention_users.is_empty() {
            text["mentioned_list"] = json!(self.mention_users);
        }
        if !self.mention_mobiles.is_empty() {
            text["mentioned_mobile_list"] = json!(self.mention_mobiles);
        }
        json!({ "msgtype": "text", "text": text })
    }
}

#[async_trait::async_trait]
impl Channel for WecomChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let req = self.http.post(&self.url).json(&self.payload(n));
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
        45009 => SendResult::retryable(error, Some(FREQ_WAIT_MS)),
        -1 => SendResult::retryable(error, None),
        _ => SendResult::permanent(error),
    }
}
