//! ServerChan (Server酱 Turbo and Server酱³): `POST {title, desp}` as JSON to the URL derived
//! from the SendKey (`SCT…` → sctapi.ftqq.com, `sctp<uid>t…` → `<uid>.push.ft07.com`), or to
//! `api_base` when set. The SendKey is in the URL, so errors are taken without it.
//!
//! Verdicts: `code == 0` accepted; 40001 (bad key) permanent; HTTP 5xx/429 retryable; other
//! codes permanent (free plans have a small daily quota: not a channel to retry into).

use std::time::Duration;

use serde_json::json;

use super::http::{self, Reply};
use super::{BuildError, Channel, Notification, SendResult, text};
use crate::config::ServerchanSpec;

pub const TITLE_MAX_CHARS: usize = 32;
pub const DESP_MAX_BYTES: usize = 32 * 1024;

pub struct ServerchanChannel {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl ServerchanChannel {
    pub fn new(
        http: reqwest::Client,
        spec: &ServerchanSpec,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let key = spec.sendkey.resolve()?;
        let url = match &spec.api_base {
            Some(base) => format!("{}/{key}.send", base.trim_end_matches('/')),
            None => default_url(&key),
        };
        Ok(Self { http, url, timeout })
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        json!({
            "title": text::clip_chars(&n.title, TITLE_MAX_CHARS),
            "desp": text::cut_bytes(&n.text, DESP_MAX_BYTES),
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

#[async_trait::async_trait]
impl Channel for ServerchanChannel {
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
    // `data.readkey` lets anyone read the message: only the code and message are kept.
    let (code, error) = match http::vendor_result(reply, "code", "message") {
        Ok(result) => result,
        Err(unclassified) => return unclassified,
    };
    match code {
        0 => SendResult::Accepted,
        _ if reply.status.is_server_error() || reply.status.as_u16() == 429 => {
            SendResult::retryable(error, http::retry_after_ms(&reply.headers))
        }
        _ => SendResult::permanent(error),
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
