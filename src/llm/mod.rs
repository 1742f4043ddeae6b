//! A client for OpenAI-compatible chat-completions endpoints: the one API shape every model
//! provider a seller might use speaks (DashScope/Qwen compatible mode, DeepSeek, OpenAI, a local
//! Ollama or llama.cpp server).
//!
//! `POST {base_url}/chat/completions` with `model`, `messages`, `max_tokens`, `temperature`
//! (plus any `extra` fields), bearer key from the seller's environment. Every way a call can
//! go wrong is a typed [`LlmError`] with a Chinese label for the status page: unreachable,
//! timeout, 429 (its `retry-after` is honoured, also by later calls), 5xx (one retry),
//! other 4xx, a body that is not JSON, no choices. The key never appears in an error.
//!
//! Leaf module: it knows nothing about chat stages, the store or the config.

mod client;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use client::LlmClient;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Where and how to call the model.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Up to and including the version path (`https://api.deepseek.com/v1`).
    pub base_url: String,
    pub model: String,
    /// The bearer key; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Per attempt, connect to last byte.
    pub timeout: Duration,
    pub max_tokens: u32,
    pub temperature: f64,
    /// Extra top-level request fields.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// A 429 whose `retry-after` is at most this long is waited out and retried once;
    /// a longer one fails the call and pauses calls until it has passed.
    pub max_retry_wait: Duration,
}

/// A model answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// The model name the server reports (a simulated model says so here).
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub latency: Duration,
    pub attempts: u32,
}

/// Why a model call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("model endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("model rate limit (429){}", retry_text(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("model server error (HTTP {status})")]
    Server { status: u16 },
    #[error("model refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("model answer is not JSON ({0} bytes)")]
    NotJson(usize),
    #[error("model answer has no choices")]
    EmptyChoices,
    #[error("bad model settings: {0}")]
    Settings(String),
}

fn retry_text(d: Option<Duration>) -> String {
    d.map(|d| format!(", retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

impl LlmError {
    /// Short code for metrics labels and stored reasons.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Rejected { .. } => "rejected",
            Self::NotJson(_) => "not_json",
            Self::EmptyChoices => "empty",
            Self::Settings(_) => "settings",
        }
    }

    /// What the seller reads.
    pub fn label(&self) -> String {
        match self {
            Self::Unreachable(_) => "连不上模型服务（检查 base_url 和网络）".into(),
            Self::Timeout(d) => format!("模型 {} 秒内没有回答", d.as_secs()),
            Self::RateLimited { retry_after } => match retry_after {
                Some(d) => format!("模型限流（429），{} 秒后再试", d.as_secs()),
                None => "模型限流（429）".into(),
            },
            Self::Server { status } => format!("模型服务出错（HTTP {status}）"),
            Self::Rejected { status, .. } if *status == 401 || *status == 403 => {
                format!("模型拒绝了密钥（HTTP {status}），检查 api_key_env")
            }
            Self::Rejected { status, .. } => {
                format!("模型拒绝了请求（HTTP {status}），检查 model 和参数")
            }
            Self::NotJson(_) => "模型返回的不是 JSON（base_url 可能不对）".into(),
            Self::EmptyChoices => "模型返回了空回答".into(),
            Self::Settings(m) => format!("模型设置有误：{m}"),
        }
    }
}
