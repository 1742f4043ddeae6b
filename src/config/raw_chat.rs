//! The chat parts of the YAML as written: the `chat:` stage list of `pipeline.yaml` and a
//! product's `price`, `replies`, `facts`, `greeting`, `bargain`. Validation (`validate/chat.rs`)
//! turns them into the model in `chat.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::raw::Window;
use crate::secret::{Keys, SecretKeys, Written};

/// One item of the `chat:` list, written `- kind: { params }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatStage {
    Filter(FilterParams),
    Takeover(TakeoverParams),
    Debounce(DebounceParams),
    Keywords(KeywordsParams),
    OrderStatus(OrderStatusParams),
    Bargain(BargainParams),
    Llm(Written<LlmParams>),
    Default(DefaultParams),
    Send(SendParams),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterParams {
    pub max_age: Option<String>,
    pub blacklist: Vec<super::raw::ItemId>,
    pub quiet_hours: Option<QuietHours>,
    pub ignore_texts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TakeoverParams {
    pub pause: Option<String>,
    pub toggle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebounceParams {
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeywordsParams {
    pub rules: Vec<KeywordRule>,
}

/// `any:`/`all:`/`regex:` (exactly one) and `reply:`/`template:` (exactly one).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeywordRule {
    pub any: Option<Vec<String>>,
    pub all: Option<Vec<String>>,
    pub regex: Option<String>,
    pub reply: Option<ReplyText>,
    pub template: Option<String>,
    pub once: bool,
    /// Image files under the config dir, sent after the reply text.
    pub images: Vec<String>,
}

/// One message, or several; `""` (or `[]`) means "match and stay silent".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReplyText {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderStatusParams {
    pub keywords: Option<Vec<String>>,
    pub template: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BargainParams {
    pub keywords: Option<Vec<String>>,
    pub use_model: Option<bool>,
    pub reset_after: Option<String>,
    pub offer_template: Option<String>,
    pub final_template: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmParams {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// `api_key_env` / `api_key_file` (optional: a local model needs no key)
    pub api_key: SecretKeys,
    pub timeout: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub history_turns: Option<usize>,
    pub max_chars: Option<usize>,
    pub system_template: Option<String>,
    pub on_error: Option<OnError>,
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

impl Keys for LlmParams {
    const SECRETS: &'static [&'static str] = &["api_key"];
    type Extra = ();
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fall through to the next stage (normally `default`).
    Default,
    Silence,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultParams {
    pub reply: Option<ReplyText>,
    pub template: Option<String>,
    pub cooldown: Option<String>,
    /// As on a keyword rule.
    pub images: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendParams {
    pub delay: Option<Window>,
    pub per_conversation_per_minute: Option<u32>,
    pub per_account_per_minute: Option<u32>,
}

/// `greeting:` on a product: a text, several texts, or a map with `reply:` or `template:`
/// and `images:` (`{ template: chat/x.txt.j2 }`, `{ reply: 欢迎, images: [images/x.png] }`).
#[derive(Debug, Clone)]
pub enum Greeting {
    Text(ReplyText),
    Params(GreetingParams),
}

/// By the YAML's shape rather than `untagged`, so a mistake inside the map (`imags:`) is
/// reported as that key with the keys it could be, not as "no variant matched".
impl<'de> Deserialize<'de> for Greeting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Greeting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a text, a list of texts, or { reply | template, images }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Greeting, E> {
                Ok(Greeting::Text(ReplyText::One(v.to_string())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Greeting, A::Error> {
                let de = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::deserialize(de).map(|v| Greeting::Text(ReplyText::Many(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Greeting, A::Error> {
                let de = serde::de::value::MapAccessDeserializer::new(map);
                GreetingParams::deserialize(de).map(Greeting::Params)
            }
        }
        d.deserialize_any(Shape)
    }
}

/// `greeting: { reply | template, images }`; images alone need neither text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreetingParams {
    pub reply: Option<ReplyText>,
    pub template: Option<String>,
    /// As on a keyword rule.
    pub images: Vec<String>,
}

/// A product's `bargain:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bargain {
    pub floor: Amount,
    pub step: Amount,
    #[serde(default)]
    pub max_rounds: Option<u32>,
}

/// An amount in yuan written as a number (`99`, `79.5`) or a string (`"79.50"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Amount {
    pub fn text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}
