//! What every HTTP channel shares: sending a request without ever printing its URL (webhook URLs
//! embed keys), reading the answer into memory, and the classification of transport failures
//! and plain HTTP statuses that the channel's own body-code rules fall back on.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::{BuildError, Channel, Notification, SendResult};

/// A channel's answer, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Send and read the answer. A transport failure (refused, reset, timeout) is retryable; the
/// error text is taken `without_url()` so a key in the URL cannot reach a log or the store.
pub async fn send(req: RequestBuilder, timeout: Duration) -> Result<Reply, SendResult> {
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(e.without_url()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| transport(e.without_url()))?;
    Ok(Reply {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// Send and classify the answer with the vendor's rules (`classify`); a transport failure is
/// retryable whatever the vendor.
pub async fn exchange(
    req: RequestBuilder,
    timeout: Duration,
    classify: fn(&Reply) -> SendResult,
) -> SendResult {
    match send(req, timeout).await {
        Ok(reply) => classify(&reply),
        Err(failed) => failed,
    }
}

/// A vendor API that takes one JSON POST to a fixed URL: the vendor writes the body and
/// judges the answer, [`JsonPost`] does the sending.
pub trait JsonApi: Send + Sync + 'static {
    fn body(&self, n: &Notification) -> serde_json::Value;
    fn classify(reply: &Reply) -> SendResult;
}

/// The channel of a [`JsonApi`] vendor.
pub struct JsonPost<A> {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
    api: A,
}

impl<A: JsonApi> JsonPost<A> {
    pub fn new(http: reqwest::Client, url: String, timeout: Duration, api: A) -> Self {
        Self {
            http,
            url,
            timeout,
            api,
        }
    }
}

#[async_trait::async_trait]
impl<A: JsonApi> Channel for JsonPost<A> {
    async fn send(&self, n: &Notification) -> SendResult {
        let req = self.http.post(&self.url).json(&self.api.body(n));
        exchange(req, self.timeout, A::classify).await
    }
}

fn transport(e: reqwest::Error) -> SendResult {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else {
        "request failed"
    };
    SendResult::Retryable {
        error: format!("{what}: {e}"),
        retry_after_ms: None,
    }
}

/// `Retry-After: <seconds>` in milliseconds (the HTTP-date form is not used by these APIs).
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    header_secs(headers, RETRY_AFTER.as_str())
}

/// A header holding whole seconds, in milliseconds.
pub fn header_secs(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000))
}

/// The verdict when the body says nothing useful: 2xx accepted, 408/429/5xx retryable (honouring
/// `Retry-After`), anything else permanent.
pub fn by_status(reply: &Reply, error: String) -> SendResult {
    let s = reply.status;
    if s.is_success() {
        SendResult::Accepted
    } else if s.is_server_error()
        || s == StatusCode::TOO_MANY_REQUESTS
        || s == StatusCode::REQUEST_TIMEOUT
    {
        SendResult::Retryable {
            error,
            retry_after_ms: retry_after_ms(&reply.headers),
        }
    } else {
        SendResult::Permanent { error }
    }
}

/// A short, log-safe rendering of a vendor message: cut at the first `, hint:` (WeCom echoes
/// the caller's IP after it) and at 120 characters.
pub fn vendor_msg(msg: &str) -> String {
    let msg = msg.split(", hint:").next().unwrap_or(msg).trim();
    super::text::clip_chars(msg, 120)
}

/// Whether `url` may be used: https, or http to a loopback test server. The error never
/// repeats the URL, which may carry a key.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if parsed.host_str().is_some_and(is_loopback) => Ok(()),
        "http" => {
            Err("use https:// (plain http is only allowed for a loopback test server)".into())
        }
        other => Err(format!("unsupported URL scheme `{other}`")),
    }
}

/// A resolved endpoint URL that passes [`check_url`], for building a channel; `what` names it
/// in the error (`WeCom webhook URL: use https://…`), which never repeats the URL itself.
pub fn checked_url(url: String, what: &str) -> Result<String, BuildError> {
    check_url(&url).map_err(|e| BuildError::Invalid(format!("{what}: {e}")))?;
    Ok(url)
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A vendor that reports results in the body answered without a result code: on 2xx that is
/// not a success we can trust (a proxy's page, say), so it is permanent and the fallback
/// chain takes over; otherwise the status decides.
/// The vendor's numeric result code with an error text `"<code_key> <code>: <message>"`, or
/// the classification of a reply that carries no code at all.
pub fn vendor_result(
    reply: &Reply,
    code_key: &str,
    msg_key: &str,
) -> Result<(i64, String), SendResult> {
    let body = reply.json().ok_or_else(|| no_code(reply))?;
    let code = body[code_key].as_i64().ok_or_else(|| no_code(reply))?;
    let msg = vendor_msg(body[msg_key].as_str().unwrap_or(""));
    Ok((code, format!("{code_key} {code}: {msg}")))
}

/// Classify by the vendor's numeric result code: `verdict(code, error)` decides, a reply
/// without a code is classified by [`no_code`].
pub fn by_code(
    reply: &Reply,
    code_key: &str,
    msg_key: &str,
    verdict: impl FnOnce(i64, String) -> SendResult,
) -> SendResult {
    match vendor_result(reply, code_key, msg_key) {
        Ok((code, error)) => verdict(code, error),
        Err(unclassified) => unclassified,
    }
}

pub fn no_code(reply: &Reply) -> SendResult {
    let error = format!("HTTP {} without a result code", reply.status.as_u16());
    if reply.status.is_success() {
        SendResult::Permanent { error }
    } else {
        by_status(reply, error)
    }
}

/// Wall-clock seconds and milliseconds for request signatures, which vendors check against
/// their own real clocks (so this is never the injectable store clock).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(crate::clock::millis)
        .unwrap_or(0)
}
