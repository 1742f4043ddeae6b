//! ServerChan (Server酱 Turbo and Server酱³): `POST {title, desp}` as JSON to the URL derived
//! from the SendKey (`SCT…` → sctapi.ftqq.com, `sctp<uid>t…` → `<uid>.push.ft07.com`), or to
//! `api_base` when set. The SendKey is in the URL, so errors are taken without it.
//!
//! Verdicts: `code == 0` accepted; 40001 (bad key) permanent; HTTP 5xx/429 retryable; other
//! codes permanent (free plans have a small daily quota: not a channel to retry into).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::http::{self, JsonApi, JsonPost, Reply};
use super::{BuildError, Check, Limits, Notification, SendResult, Vendor, text};
use crate::secret::{SecretKeys, SecretRef};

pub const TITLE_MAX_CHARS: usize = 32;
pub const DESP_MAX_BYTES: usize = 32 * 1024;

/// `type: serverchan`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub sendkey: SecretKeys,
    pub api_base: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub sendkey: SecretRef,
    /// Overrides the URL derived from the SendKey (tests, proxies): `{api_base}/{key}.send`.
    pub api_base: Option<String>,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = JsonPost<Spec>;
    const SECRETS: &'static [&'static str] = &["sendkey"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let api_base = raw
            .api_base
            .as_deref()
            .map(|u| c.url("api_base", Some(u), ""));
        Some(Spec {
            sendkey: c.secret("sendkey", &raw.sendkey)?,
            api_base,
        })
    }

    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError> {
        let key = self.sendkey.resolve()?;
        let url = match &self.api_base {
            Some(base) => format!("{}/{key}.send", base.trim_end_matches('/')),
            None => default_url(&key),
        };
        Ok(JsonPost::new(http, url, timeout, self.clone()))
    }
}

impl JsonApi for Spec {
    fn body(&self, n: &Notification) -> serde_json::Value {
        json!({
            "title": text::clip_chars(&n.title, TITLE_MAX_CHARS),
            "desp": text::cut_bytes(&n.text, DESP_MAX_BYTES),
        })
    }

    fn classify(reply: &Reply) -> SendResult {
        // `data.readkey` lets anyone read the message: only the code and message are kept.
        http::by_code(reply, "code", "message", |code, error| match code {
            0 => SendResult::Accepted,
            _ if reply.status.is_server_error() || reply.status.as_u16() == 429 => {
                SendResult::retryable(error, http::retry_after_ms(&reply.headers))
            }
            _ => SendResult::permanent(error),
        })
    }
}

/// The official SDK's URL rule.
pub fn default_url(key: &str) -> String {
    let sc3_uid = key
        .strip_prefix("sctp")
        .and_then(|rest| rest.split_once('t'))
        .map(|(uid, _)| uid)
        .filter(|uid| !uid.is_empty() && uid.chars().all(|c| c.is_ascii_digit()));
    match sc3_uid {
        Some(uid) => format!("https://{uid}.push.ft07.com/send/{key}.send"),
        None => format!("https://sctapi.ftqq.com/{key}.send"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_follows_the_sendkey_kind() {
        assert_eq!(
            super::default_url("SCT123abc"),
            "https://sctapi.ftqq.com/SCT123abc.send"
        );
        assert_eq!(
            super::default_url("sctp42tABC"),
            "https://42.push.ft07.com/send/sctp42tABC.send"
        );
    }
}
