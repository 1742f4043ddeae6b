//! A simulated OpenAI-compatible model on loopback: `POST /v1/chat/completions`.
//!
//! Tests and `demo` point the `llm` stage's `base_url` at [`FakeModel::base_url`]. It is a real
//! hyper HTTP/1 server, so the client's whole path (connection, JSON, status codes, headers,
//! timeouts) is exercised. Every answer names itself `simulated-model` in the `model` field and
//! the built-in [`Behavior::Simulated`] replies start with `[模拟模型]`, so a simulated answer
//! is never mistaken for a real model's.
//!
//! Scriptable: a default [`Behavior`] plus a queue of one-shot behaviors (a canned answer, a
//! slow answer, 429 with `retry-after`, 5xx, a non-JSON body, an empty `choices`, echoing the
//! facts of the system prompt). Every request body is recorded for assertions.
//!
//! Wire shape compared with the clients sellers' bots use: the request is what the OpenAI SDK
//! sends (`model`, `messages` with `system`/`user`/`assistant` roles, `max_tokens`,
//! `temperature`, extra top-level fields such as `enable_thinking`), as in
//! `shaxiu/XianyuAutoAgent:XianyuAgent.py` (openai-python `chat.completions.create` against
//! DashScope's compatible mode) and `ucfei/Ydisks-Xianyu-Helper:internal/engine/ai.go`
//! (go-openai `CreateChatCompletion`); the answer is read from `choices[0].message.content`
//! by both, which is what this server returns. Reasoning models served locally put a
//! `<think>…</think>` block in the content (SA strips it); [`Behavior::Answer`] can send one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The `model` every answer reports.
pub const SIMULATED_MODEL: &str = "simulated-model (xianyu-shopd 内置模拟模型)";
/// How simulated answers start.
pub const SIMULATED_LABEL: &str = "[模拟模型]";

const MAX_BODY: usize = 1 << 20;

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// Reply with exactly this content.
    Answer(String),
    /// Wait, then behave as the inner behavior.
    Delay(Duration, Box<Behavior>),
    /// 429, with `retry-after` seconds when given.
    RateLimited { retry_after_secs: Option<u64> },
    /// This HTTP status with an OpenAI-style error body.
    Status(u16),
    /// 200 with an HTML page.
    NotJson,
    /// 200 with `"choices": []`.
    EmptyChoices,
    /// Reply with the facts block of the system prompt (what the model "knows").
    EchoFacts,
    /// A rule-based stand-in for a real model: phrases the allowed bargaining price, or
    /// answers from the facts line closest to the question. Labelled `[模拟模型]`.
    Simulated,
}

#[derive(Debug)]
struct State {
    default: Behavior,
    queue: VecDeque<Behavior>,
    requests: Vec<Value>,
    /// When set, requests without `Authorization: Bearer <key>` get 401.
    key: Option<String>,
}

/// Handle to a running fake model; the server stops when the last clone drops.
#[derive(Clone)]
pub struct FakeModel {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    _lifetime: Arc<Lifetime>,
}

struct Lifetime(CancellationToken);

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl std::fmt::Debug for FakeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeModel")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeModel {
    /// Binds `127.0.0.1:0` and serves [`Behavior::Simulated`] by default.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Binds a given loopback address (the demo keeps a stable port across restarts).
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let state = Arc::new(Mutex::new(State {
            default: Behavior::Simulated,
            queue: VecDeque::new(),
            requests: Vec::new(),
            key: None,
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(super::serve::serve_http1(
            listener,
            cancel.clone(),
            move |req| {
                let state = Arc::clone(&shared);
                async move { handle(req, &state).await }
            },
        ));
        Ok(Self {
            state,
            addr,
            _lifetime: Arc::new(Lifetime(cancel)),
        })
    }

    /// `http://127.0.0.1:PORT/v1`: what `base_url` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Behavior for every request without a queued one.
    pub fn set_default(&self, behavior: Behavior) {
        self.lock().default = behavior;
    }

    /// Queue a behavior for the next request (queued ones are used in order).
    pub fn push(&self, behavior: Behavior) {
        self.lock().queue.push_back(behavior);
    }

    /// Require this bearer key.
    pub fn require_key(&self, key: &str) {
        self.lock().key = Some(key.to_string());
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn handle(req: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || !req.uri().path().ends_with("/chat/completions") {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let behavior = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.requests.push(request.clone());
        if let Some(key) = &st.key {
            if auth.as_deref() != Some(format!("Bearer {key}").as_str()) {
                return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
            }
        }
        st.queue.pop_front().unwrap_or_else(|| st.default.clone())
    };
    respond(&behavior, &request).await
}

async fn respond(behavior: &Behavior, request: &Value) -> Response<Full<Bytes>> {
    let mut behavior = behavior.clone();
    while let Behavior::Delay(wait, inner) = behavior {
        tokio::time::sleep(wait).await;
        behavior = *inner;
    }
    match behavior {
        Behavior::Answer(text) => completion(&text),
        Behavior::Simulated => completion(&simulated_answer(request)),
        Behavior::EchoFacts => completion(&facts_of(request).unwrap_or_default()),
        Behavior::RateLimited { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached");
            if let Some(s) = retry_after_secs {
                r.headers_mut().insert("retry-after", HeaderValue::from(s));
            }
            r
        }
        Behavior::Status(code) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "The server had an error while processing your request",
        ),
        Behavior::NotJson => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<html><body>502 Bad Gateway</body></html>",
            )));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        Behavior::EmptyChoices => json_response(
            StatusCode::OK,
            &json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": SIMULATED_MODEL, "choices": []}),
        ),
        Behavior::Delay(..) => unreachable!("unwrapped above"),
    }
}

fn completion(text: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": SIMULATED_MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        }),
    )
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "fake_error", "code": status.as_u16()}}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn message_text(request: &Value, role: &str) -> Vec<String> {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some(role))
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The lines after the system prompt's "资料" heading, up to the rules line.
fn facts_of(request: &Value) -> Option<String> {
    let system = message_text(request, "system").join("\n");
    let start = system.find("资料")?;
    let after = &system[start..];
    let body = after.split_once('\n')?.1;
    let facts: Vec<&str> = body
        .lines()
        .take_while(|l| !l.starts_with("规则"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    (!facts.is_empty()).then(|| facts.join("\n"))
}

/// What the built-in simulated model says.
fn simulated_answer(request: &Value) -> String {
    let system = message_text(request, "system").join("\n");
    if let Some(price) = allowed_price(&system) {
        return format!("{SIMULATED_LABEL} 亲，{price} 元可以出，这已经很实在啦～");
    }
    let question = message_text(request, "user").pop().unwrap_or_default();
    let best = facts_of(request).and_then(|facts| {
        facts
            .lines()
            .map(|l| (overlap(l, &question), l.to_string()))
            .filter(|(score, _)| *score > 0)
            .max_by_key(|(score, _)| *score)
            .map(|(_, l)| l)
    });
    match best {
        Some(line) => format!(
            "{SIMULATED_LABEL} {}",
            line.trim_start_matches(['-', '*', ' '])
        ),
        None => format!("{SIMULATED_LABEL} 亲，这个我帮您问一下卖家，稍等哦～"),
    }
}

/// The price the bargain prompt allows ("唯一允许告诉买家的价格是 X 元").
fn allowed_price(system: &str) -> Option<String> {
    let marker = "唯一允许告诉买家的价格是";
    let rest = &system[system.find(marker)? + marker.len()..];
    let num: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!num.is_empty()).then_some(num)
}

/// Characters the question shares with a line (CJK text has no word boundaries).
fn overlap(line: &str, question: &str) -> usize {
    let ignore = "的了吗呢啊吧是有我你这个么什怎，。？！ ";
    question
        .chars()
        .filter(|c| !ignore.contains(*c))
        .filter(|c| line.contains(*c))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_answers_follow_the_prompt() {
        let bargain = json!({"messages": [
            {"role": "system", "content": "你是客服\n本轮唯一允许告诉买家的价格是 85 元（标价 99 元）。"},
            {"role": "user", "content": "便宜点"}]});
        assert_eq!(
            simulated_answer(&bargain),
            "[模拟模型] 亲，85 元可以出，这已经很实在啦～"
        );
        let facts = json!({"messages": [
            {"role": "system", "content": "商品：X\n卖家提供的资料（只依据这些回答）：\n支持 Win10 和 Win11\n发货后 24 小时内激活有效\n规则：不要编造"},
            {"role": "user", "content": "win11能用吗"}]});
        assert_eq!(simulated_answer(&facts), "[模拟模型] 支持 Win10 和 Win11");
        assert_eq!(
            facts_of(&facts).as_deref(),
            Some("支持 Win10 和 Win11\n发货后 24 小时内激活有效")
        );
        let none = json!({"messages": [{"role": "user", "content": "在吗"}]});
        assert!(simulated_answer(&none).contains("问一下卖家"));
    }
}
