//! [`LlmClient`]: one reqwest client per configured endpoint, with the retry policy.
//!
//! Policy: a 5xx is retried once after a short pause; a 429 is retried once if its
//! `retry-after` (or `retry-after-ms`) is short, otherwise the call fails and every call until
//! that time fails fast without touching the network; timeouts, other 4xx, non-JSON bodies and
//! empty answers are not retried. At most two attempts per call, so a stuck provider costs a
//! buyer at most two timeouts before the fallback reply.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Completion, LlmError, Message, Settings};

/// Response bodies beyond this are refused (a chat answer is a few KB).
const MAX_BODY: usize = 1 << 20;
const SERVER_ERROR_PAUSE: Duration = Duration::from_millis(500);

pub struct LlmClient {
    http: reqwest::Client,
    settings: Settings,
    /// No calls before this instant (a long `retry-after`).
    cooling_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &self.endpoint())
            .field("model", &self.settings.model)
            .finish()
    }
}

enum Attempt {
    Done(Result<Completion, LlmError>),
    RetryAfter(Duration, LlmError),
}

impl LlmClient {
    pub fn new(settings: Settings) -> Result<Self, LlmError> {
        let url = settings.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LlmError::Settings(format!(
                "base_url must start with http:// or https:// (got `{url}`)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("xianyu-shopd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Settings(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            cooling_until: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `{base_url}/chat/completions`.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.settings.base_url.trim().trim_end_matches('/')
        )
    }

    /// The exact JSON body a call with these messages sends (`chat-test --verbose`).
    pub fn request_body(&self, messages: &[Message]) -> Value {
        let mut body = json!({
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
            "stream": false,
        });
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in &self.settings.extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// Ask the model. See the module doc for the retry policy.
    pub async fn complete(&self, messages: &[Message]) -> Result<Completion, LlmError> {
        if let Some(wait) = self.cooling() {
            return Err(LlmError::RateLimited {
                retry_after: Some(wait),
            });
        }
        let body = self.request_body(messages);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&body).await {
                Attempt::Done(Ok(mut c)) => {
                    c.latency = started.elapsed();
                    c.attempts = attempts;
                    return Ok(c);
                }
                Attempt::Done(Err(e)) => return Err(e),
                Attempt::RetryAfter(wait, err) => {
                    if attempts >= 2 {
                        return Err(err);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn cooling(&self) -> Option<Duration> {
        let mut guard = self.cooling_until.lock().unwrap_or_else(|p| p.into_inner());
        match *guard {
            Some(until) if until > Instant::now() => Some(until - Instant::now()),
            Some(_) => {
                *guard = None;
                None
            }
            None => None,
        }
    }

    fn cool_for(&self, wait: Duration) {
        let mut guard = self.cooling_until.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(Instant::now() + wait);
    }

    async fn attempt(&self, body: &Value) -> Attempt {
        let mut req = self.http.post(self.endpoint()).json(body);
        if let Some(key) = self.settings.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.bearer_auth(key);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(self.transport(e))),
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => return Attempt::Done(Err(self.transport(e))),
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let err = LlmError::RateLimited { retry_after };
            return match retry_after {
                Some(wait) if wait <= self.settings.max_retry_wait => {
                    Attempt::RetryAfter(wait, err)
                }
                Some(wait) => {
                    self.cool_for(wait);
                    Attempt::Done(Err(err))
                }
                None => Attempt::Done(Err(err)),
            };
        }
        if status.is_server_error() {
            let err = LlmError::Server {
                status: status.as_u16(),
            };
            return Attempt::RetryAfter(SERVER_ERROR_PAUSE, err);
        }
        let json: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Attempt::Done(Err(LlmError::Rejected {
                    status: status.as_u16(),
                    message: String::new(),
                }));
            }
            Err(_) => return Attempt::Done(Err(LlmError::NotJson(bytes.len()))),
        };
        if !status.is_success() {
            return Attempt::Done(Err(LlmError::Rejected {
                status: status.as_u16(),
                message: self.scrub(&error_message(&json)),
            }));
        }
        Attempt::Done(parse_completion(&json))
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(self.settings.timeout)
        } else {
            LlmError::Unreachable(self.scrub(&e.without_url().to_string()))
        }
    }

    /// Provider messages sometimes quote the key ("Incorrect API key provided: sk-…").
    fn scrub(&self, text: &str) -> String {
        let mut out: String = text
            .split_whitespace()
            .map(|w| if w.starts_with("sk-") { "[key]" } else { w })
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(key) = self.settings.api_key.as_deref().filter(|k| k.len() >= 4) {
            out = out.replace(key, "[key]");
        }
        out.chars().take(160).collect()
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > MAX_BODY {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `retry-after-ms` (OpenAI), else `retry-after` in seconds. HTTP-date forms are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_millis(ms as u64));
    }
    let secs = get("retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

fn error_message(json: &Value) -> String {
    json.pointer("/error/message")
        .or_else(|| json.get("message"))
        .or_else(|| json.get("error"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `choices[0].message.content` as a string (or text parts joined).
fn parse_completion(json: &Value) -> Result<Completion, LlmError> {
    let choice = json
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or(LlmError::EmptyChoices)?;
    let content = choice.pointer("/message/content");
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    if text.trim().is_empty() {
        return Err(LlmError::EmptyChoices);
    }
    Ok(Completion {
        text,
        model: json.get("model").and_then(Value::as_str).map(str::to_owned),
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        latency: Duration::ZERO,
        attempts: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_parse_in_both_content_forms() {
        let j = json!({"model": "m", "choices": [{"message": {"role": "assistant", "content": "你好"}, "finish_reason": "stop"}]});
        let c = parse_completion(&j).unwrap();
        assert_eq!((c.text.as_str(), c.model.as_deref()), ("你好", Some("m")));
        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]});
        assert_eq!(parse_completion(&parts).unwrap().text, "ab");
        assert_eq!(
            parse_completion(&json!({"choices": []})),
            Err(LlmError::EmptyChoices)
        );
        assert_eq!(
            parse_completion(&json!({"choices": [{"message": {"content": "  "}}]})),
            Err(LlmError::EmptyChoices)
        );
        assert_eq!(parse_completion(&json!({})), Err(LlmError::EmptyChoices));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut date = reqwest::header::HeaderMap::new();
        date.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn keys_are_scrubbed_from_provider_messages() {
        let client = LlmClient::new(Settings {
            base_url: "http://127.0.0.1:1/v1/".into(),
            model: "m".into(),
            api_key: Some("secret-key-123".into()),
            timeout: Duration::from_secs(1),
            max_tokens: 10,
            temperature: 0.5,
            extra: serde_json::Map::new(),
            max_retry_wait: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:1/v1/chat/completions");
        let s = client.scrub("Incorrect API key provided: sk-abc123. Key secret-key-123 bad");
        assert!(
            !s.contains("sk-abc") && !s.contains("secret-key-123"),
            "{s}"
        );
        let mut extra = serde_json::Map::new();
        extra.insert("enable_thinking".into(), json!(false));
        let client = LlmClient::new(Settings {
            extra,
            ..client.settings().clone()
        })
        .unwrap();
        let body = client.request_body(&[Message::user("hi")]);
        assert_eq!(body["enable_thinking"], json!(false));
        assert_eq!(body["messages"][0]["role"], "user");
        assert!(
            LlmClient::new(Settings {
                base_url: "ftp://x".into(),
                ..client.settings().clone()
            })
            .is_err()
        );
    }
}
