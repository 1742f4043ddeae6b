//! WeCom (企业微信) group bot: `POST {"msgtype":"text",…}` to the bot's webhook URL, whose `key=`
//! is the whole credential. Text messages, because only they carry `mentioned_list` /
//! `mentioned_mobile_list` (markdown ignores them). Content is cut to 2048 bytes.
//!
//! WeCom answers HTTP 200 for everything; the verdict is `errcode`: 0 accepted, 45009 (more
//! than 20 a minute) retry after 65 s, -1 busy, every other code (93000 bad key, 40008,
//! 44004, 40058) permanent. The local limit is 20 a minute unless `max_per_minute` says
//! otherwise.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, SendResult, Vendor, text};
use crate::secret::{SecretKeys, SecretRef};

/// `text.content` limit in bytes (UTF-8).
pub const TEXT_MAX_BYTES: usize = 2048;
/// The common fixed wait after 45009; the window is one minute.
const FREQ_WAIT_MS: u64 = 65_000;

/// `type: wecom`, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    /// `url_env` / `url_file`: the whole webhook URL (with `key=`) is the secret.
    pub url: SecretKeys,
    /// WeCom user ids (or `@all`) to mention.
    pub mention_users: Vec<String>,
    pub mention_mobiles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub url: SecretRef,
    /// The mentions, used as written.
    pub written: Raw,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Spec>;
    const SECRETS: &'static [&'static str] = &["url"];
    const RATE: Option<u32> = Some(20);

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        Some(Spec {
            url: c.secret("url", &raw.url)?,
            written: raw.clone(),
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let url = http::checked_url(self.url.resolve()?, "WeCom webhook URL")?;
        Ok(JsonPost::new(http, url, timeout, self.clone()))
    }
}

impl JsonApi for Spec {
    fn body(&self, n: &Notification) -> serde_json::Value {
        let mut text = json!({ "content": text::cut_bytes(&n.body(), TEXT_MAX_BYTES) });
        if !self.written.mention_users.is_empty() {
            text["mentioned_list"] = json!(self.written.mention_users);
        }
        if !self.written.mention_mobiles.is_empty() {
            text["mentioned_mobile_list"] = json!(self.written.mention_mobiles);
        }
        json!({ "msgtype": "text", "text": text })
    }

    fn classify(reply: &Reply) -> SendResult {
        http::by_code(reply, "errcode", "errmsg", |code, error| match code {
            0 => SendResult::Accepted,
            45009 => SendResult::retryable(error, Some(FREQ_WAIT_MS)),
            -1 => SendResult::retryable(error, None),
            _ => SendResult::permanent(error),
        })
    }
}
