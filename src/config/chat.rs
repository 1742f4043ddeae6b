//! The validated chat configuration: the `chat:` stage list of `pipeline.yaml` and the chat
//! parts of a product (`price`, `replies`, `facts`, `greeting`, `bargain`).
//!
//! Like the rest of the model this is immutable once built. Reply texts written inline in the
//! YAML are compiled once into a small minijinja environment ([`InlineTexts`]) so a broken
//! inline template is a `check` error, not a failed reply; file templates live in the shared
//! `templates/` environment under `chat/`.

use std::time::Duration;

use minijinja::Environment;
use serde::Serialize;

use super::delivery::DeliveryImage;
use super::model::Window;
use super::render::{self, Problem, RenderError};
use crate::money::Cents;
use crate::secret::SecretRef;

/// The `chat:` section: stages in the order the seller listed them.
#[derive(Debug, Default)]
pub struct ChatConfig {
    pub stages: Vec<ChatStage>,
    /// Every chat reply text: built-ins, the seller's `templates/chat/` files, inline texts.
    pub texts: ChatTexts,
}

impl ChatConfig {
    /// Parameters of the first stage of a kind, if the chat pipeline has it.
    pub fn stage<T>(&self, pick: impl Fn(&ChatStage) -> Option<&T>) -> Option<&T> {
        self.stages.iter().find_map(pick)
    }

    pub fn takeover(&self) -> Option<&TakeoverParams> {
        self.stage(|s| match s {
            ChatStage::Takeover(p) => Some(p),
            _ => None,
        })
    }

    pub fn filter(&self) -> Option<&FilterParams> {
        self.stage(|s| match s {
            ChatStage::Filter(p) => Some(p),
            _ => None,
        })
    }

    pub fn llm(&self) -> Option<&LlmParams> {
        self.stage(|s| match s {
            ChatStage::Llm(p) => Some(p),
            _ => None,
        })
    }

    pub fn send(&self) -> Option<&SendParams> {
        self.stage(|s| match s {
            ChatStage::Send(p) => Some(p),
            _ => None,
        })
    }

    pub fn is_enabled(&self) -> bool {
        !self.stages.is_empty()
    }
}

/// One chat stage kind. The declaration order is the canonical order `check` enforces.
#[derive(Debug, Clone)]
pub enum ChatStage {
    Filter(FilterParams),
    Takeover(TakeoverParams),
    Debounce(DebounceParams),
    Keywords(KeywordsParams),
    OrderStatus(OrderStatusParams),
    Bargain(BargainParams),
    Llm(LlmParams),
    Default(DefaultParams),
    Send(SendParams),
}

/// The names a seller writes, in canonical order.
pub const CHAT_STAGE_NAMES: [&str; 9] = [
    "filter",
    "takeover",
    "debounce",
    "keywords",
    "order-status",
    "bargain",
    "llm",
    "default",
    "send",
];

impl ChatStage {
    pub fn name(&self) -> &'static str {
        CHAT_STAGE_NAMES[self.rank()]
    }

    /// Position in the canonical order.
    pub fn rank(&self) -> usize {
        match self {
            Self::Filter(_) => 0,
            Self::Takeover(_) => 1,
            Self::Debounce(_) => 2,
            Self::Keywords(_) => 3,
            Self::OrderStatus(_) => 4,
            Self::Bargain(_) => 5,
            Self::Llm(_) => 6,
            Self::Default(_) => 7,
            Self::Send(_) => 8,
        }
    }

    /// Stages that can produce a reply (as opposed to gatekeepers and the sender).
    pub fn answers(&self) -> bool {
        matches!(
            self,
            Self::Keywords(_)
                | Self::OrderStatus(_)
                | Self::Bargain(_)
                | Self::Llm(_)
                | Self::Default(_)
        )
    }
}

/// `filter:` — which messages never get a reply.
#[derive(Debug, Clone)]
pub struct FilterParams {
    /// Messages older than this (the backlog after a reconnect) are not answered.
    pub max_age: Duration,
    /// Buyer ids that never get an automatic reply.
    pub blacklist: Vec<String>,
    /// Beijing-time window in which the bot stays silent (the seller answers in the morning).
    pub quiet_hours: Option<QuietHours>,
    /// Extra system-notice texts to ignore, besides the built-in list.
    pub ignore_texts: Vec<String>,
}

impl Default for FilterParams {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(5 * 60),
            blacklist: Vec::new(),
            quiet_hours: None,
            ignore_texts: Vec::new(),
        }
    }
}

/// Minutes after midnight, Beijing time; `from > to` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from_min: u32,
    pub to_min: u32,
}

impl QuietHours {
    pub fn contains(&self, minute_of_day: u32) -> bool {
        if self.from_min <= self.to_min {
            (self.from_min..self.to_min).contains(&minute_of_day)
        } else {
            minute_of_day >= self.from_min || minute_of_day < self.to_min
        }
    }
}

/// `takeover:` — the seller typing by hand pauses the bot in that conversation.
#[derive(Debug, Clone)]
pub struct TakeoverParams {
    pub pause: Duration,
    /// A message of exactly this text from the seller switches the conversation to manual,
    /// and the next one back to automatic.
    pub toggle: String,
}

impl Default for TakeoverParams {
    fn default() -> Self {
        Self {
            pause: Duration::from_secs(30 * 60),
            toggle: "。".into(),
        }
    }
}

/// `debounce:` — wait and merge a buyer's quick messages into one question.
#[derive(Debug, Clone)]
pub struct DebounceParams {
    pub window: Duration,
}

impl Default for DebounceParams {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
        }
    }
}

/// `keywords:` — global rules (per-item rules live on the product and run first).
#[derive(Debug, Clone, Default)]
pub struct KeywordsParams {
    pub rules: Vec<KeywordRule>,
}

/// One keyword rule.
#[derive(Debug, Clone)]
pub struct KeywordRule {
    /// Stable identity for reply-once markers: where the rule is written plus its matcher.
    pub key: String,
    pub matcher: Matcher,
    pub reply: Reply,
    /// Answer this rule at most once per conversation.
    pub once: bool,
    /// Sent after the reply text, one chat message each (`images:`).
    pub images: Vec<DeliveryImage>,
}

#[derive(Debug, Clone)]
pub enum Matcher {
    /// Any of these substrings (case-insensitive).
    Any(Vec<String>),
    /// All of these substrings (case-insensitive).
    All(Vec<String>),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn matches(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        match self {
            Self::Any(words) => words.iter().any(|w| lower.contains(&w.to_lowercase())),
            Self::All(words) => words.iter().all(|w| lower.contains(&w.to_lowercase())),
            Self::Regex(re) => re.is_match(text),
        }
    }
}

/// What a rule (or the default stage) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// One chat message per entry, in order.
    Messages(Vec<TextSource>),
    /// Match, but send nothing (an empty `reply:`).
    Swallow,
}

/// A reply text: inline in the YAML or a file under `templates/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSource {
    /// Name of the compiled inline text in [`ChatTexts`].
    Inline(String),
    /// Path under `templates/`, e.g. `chat/usage.txt.j2`. A rendered file may hold several
    /// messages separated by a line of `---`.
    File(String),
}

/// What buyers write when they ask about an order they paid for (`order-status: keywords`).
pub const DEFAULT_ORDER_STATUS_WORDS: &[&str] = &[
    "发货了吗",
    "发货没",
    "发了吗",
    "发了没",
    "什么时候发",
    "啥时候发",
    "多久发",
    "几时发",
    "怎么还没发",
    "还没发",
    "没发货",
    "没收到",
    "收不到",
    "还没到",
    "到哪了",
    "没看到",
    "卡密呢",
    "激活码呢",
    "兑换码呢",
    "怎么没有",
    "付款了",
    "已付款",
    "拍了",
    "拍下了",
];

/// What buyers write when they bargain (`bargain: keywords`); a message naming an amount
/// below the list price counts too.
pub const DEFAULT_BARGAIN_WORDS: &[&str] = &[
    "便宜",
    "优惠",
    "少点",
    "少一点",
    "少些",
    "最低",
    "最少",
    "砍价",
    "砍一刀",
    "刀",
    "降价",
    "打折",
    "折扣",
    "能少",
    "再少",
    "让点",
    "让利",
    "实惠",
    "底价",
    "包邮吗",
    "小刀",
];

/// `order-status:` — "发货了吗" answered from the store.
#[derive(Debug, Clone)]
pub struct OrderStatusParams {
    pub keywords: Vec<String>,
    /// Template under `templates/` (default: the built-in `chat/order_status.txt.j2`).
    pub template: String,
}

/// `bargain:` — the program computes the price, the model (if any) only phrases it.
#[derive(Debug, Clone)]
pub struct BargainParams {
    /// What counts as a bargaining message.
    pub keywords: Vec<String>,
    /// Let the `llm` stage's model phrase the offer (guarded); otherwise templates only.
    pub use_model: bool,
    /// Rounds restart after this long without bargaining.
    pub reset_after: Duration,
    /// Template for an offer (also the fallback when the model's phrasing is rejected).
    pub offer_template: String,
    /// Template once `max_rounds` is reached.
    pub final_template: String,
}

/// A product's `bargain: { floor, step, max_rounds }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BargainRule {
    pub floor: Cents,
    pub step: Cents,
    pub max_rounds: u32,
}

/// `llm:` — an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct LlmParams {
    /// Up to and including the version path, e.g. `https://api.deepseek.com/v1`;
    /// the client appends `/chat/completions`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<SecretRef>,
    pub timeout: Duration,
    pub max_tokens: u32,
    pub temperature: f64,
    /// Conversation turns from the store sent as history.
    pub history_turns: usize,
    /// Longest reply that may reach a buyer, in characters.
    pub max_chars: usize,
    /// System prompt template under `templates/` (default: built-in `chat/system.txt.j2`).
    pub system_template: String,
    /// What happens when the model fails or its answer is rejected.
    pub on_error: OnModelError,
    /// Extra top-level fields merged into the request body (`enable_thinking: false` for
    /// Qwen3 on DashScope, `options` for Ollama, …).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnModelError {
    /// Fall through to the next stage (normally `default`).
    Fallthrough,
    /// Send nothing.
    Silence,
}

/// `default:` — the fallback reply, at most once per conversation per `cooldown`.
#[derive(Debug, Clone)]
pub struct DefaultParams {
    pub reply: Reply,
    pub cooldown: Duration,
    /// Sent after the reply text, one chat message each (`images:`).
    pub images: Vec<DeliveryImage>,
}

/// `send:` — a human-looking pause and rate limits before a reply goes out.
#[derive(Debug, Clone)]
pub struct SendParams {
    pub delay: Window,
    pub per_conversation_per_minute: u32,
    pub per_account_per_minute: u32,
}

impl Default for SendParams {
    fn default() -> Self {
        Self {
            delay: Window {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3),
            },
            per_conversation_per_minute: 4,
            per_account_per_minute: 30,
        }
    }
}

/// The chat parts of a product in `products.yaml`.
#[derive(Debug, Clone, Default)]
pub struct ProductChat {
    /// List price in yuan as the seller states it (`price:`); the live price from the item
    /// detail, when known, is used if lower.
    pub price: Option<Cents>,
    /// Per-item keyword rules; they run before the global ones.
    pub replies: Vec<KeywordRule>,
    /// What the model may tell buyers: specs, usage, shipping, after-sale.
    pub facts: String,
    /// Sent before the answer to a buyer's first message about this item.
    pub greeting: Option<Greeting>,
    pub bargain: Option<BargainRule>,
}

/// A product's `greeting`: its texts lead the answer to a buyer's first message, its images
/// go out with the answer's images (texts first, as in every reply).
#[derive(Debug, Clone)]
pub struct Greeting {
    pub reply: Reply,
    /// Sent after the texts, before the answer's own images (`images:`).
    pub images: Vec<DeliveryImage>,
}

/// Chat reply templates the daemon ships (this repository's `templates/chat/`, compiled in);
/// a file of the same name in the seller's `templates/chat/` replaces it.
pub const BUILTIN_TEMPLATES: [(&str, &str); 5] = [
    (
        "chat/system.txt.j2",
        include_str!("../../templates/chat/system.txt.j2"),
    ),
    (
        "chat/bargain_prompt.txt.j2",
        include_str!("../../templates/chat/bargain_prompt.txt.j2"),
    ),
    (
        "chat/bargain_offer.txt.j2",
        include_str!("../../templates/chat/bargain_offer.txt.j2"),
    ),
    (
        "chat/bargain_final.txt.j2",
        include_str!("../../templates/chat/bargain_final.txt.j2"),
    ),
    (
        "chat/order_status.txt.j2",
        include_str!("../../templates/chat/order_status.txt.j2"),
    ),
];

/// Every chat text in one minijinja environment: the built-in templates, the seller's files
/// under `templates/chat/` (replacing built-ins of the same name) and the inline texts of the
/// YAML (named `inline:N`). Strict undefined behaviour; `{% if %}` lines leave no blank lines.
#[derive(Debug)]
pub struct ChatTexts {
    env: Environment<'static>,
    inline_count: usize,
}

impl Default for ChatTexts {
    fn default() -> Self {
        let mut env = render::text_environment();
        for (name, source) in BUILTIN_TEMPLATES {
            env.add_template(name, source)
                .expect("built-in chat templates compile (unit-tested)");
        }
        Self {
            env,
            inline_count: 0,
        }
    }
}

impl ChatTexts {
    /// Compile an inline text; returns its source handle or the syntax error's message.
    pub fn add_inline(&mut self, text: &str) -> Result<TextSource, String> {
        let name = format!("inline:{}", self.inline_count);
        self.env
            .add_template_owned(name.clone(), text.to_string())
            .map_err(|e| e.detail().unwrap_or("syntax error").to_string())?;
        self.inline_count += 1;
        Ok(TextSource::Inline(name))
    }

    /// Add (or replace a built-in with) a seller's file, named by its path under
    /// `templates/`. Returns the line and message of a syntax error.
    pub fn add_file(&mut self, name: &str, source: &str) -> Result<(), (usize, String)> {
        self.env
            .add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| {
                (
                    e.line().unwrap_or(1),
                    e.detail().unwrap_or("syntax error").to_string(),
                )
            })
    }

    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Render one template to a single string, within the render budget.
    pub fn render_text(&self, name: &str, view: &impl Serialize) -> Result<String, RenderError> {
        render::render(&self.env, label_dir(name), name, view)
    }

    /// Variables, filters and tests a reply source uses that do not exist, in any branch
    /// (`sample` is what the template sees with the fullest data).
    pub fn static_problems(&self, source: &TextSource, sample: &serde_json::Value) -> Vec<Problem> {
        let name = match source {
            TextSource::Inline(n) | TextSource::File(n) => n,
        };
        render::static_issues(&self.env, label_dir(name), name, sample)
    }

    /// Render a reply source: a file may yield several messages (split on lines of `---`),
    /// an inline text is one. Empty messages are dropped.
    pub fn render(
        &self,
        source: &TextSource,
        view: &impl Serialize,
    ) -> Result<Vec<String>, RenderError> {
        let name = match source {
            TextSource::Inline(n) | TextSource::File(n) => n,
        };
        Ok(split_messages(&self.render_text(name, view)?))
    }
}

/// How a chat text is named to the seller: files by their path under `templates/`, inline texts
/// (`inline:N`) as they are.
fn label_dir(name: &str) -> &'static str {
    if name.starts_with("inline:") {
        ""
    } else {
        "templates/"
    }
}

/// A rendered reply split into chat messages at lines consisting of `---`.
pub fn split_messages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim() == "---" {
            out.push(std::mem::take(&mut current));
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    out.push(current);
    out.into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let night = QuietHours {
            from_min: 23 * 60,
            to_min: 8 * 60,
        };
        assert!(night.contains(23 * 60 + 30));
        assert!(night.contains(3 * 60));
        assert!(!night.contains(8 * 60));
        assert!(!night.contains(12 * 60));
        let lunch = QuietHours {
            from_min: 12 * 60,
            to_min: 13 * 60,
        };
        assert!(lunch.contains(12 * 60 + 59));
        assert!(!lunch.contains(13 * 60));
    }

    #[test]
    fn matchers() {
        let any = Matcher::Any(vec!["在吗".into(), "Hello".into()]);
        assert!(any.matches("老板在吗"));
        assert!(any.matches("hello!"));
        assert!(!any.matches("你好"));
        let all = Matcher::All(vec!["怎么".into(), "用".into()]);
        assert!(all.matches("这个怎么用啊"));
        assert!(!all.matches("怎么买"));
        let re = Matcher::Regex(regex::Regex::new(r"(多少|几)钱").unwrap());
        assert!(re.matches("这个多少钱"));
    }

    #[test]
    fn messages_split_on_dashes_and_drop_empties() {
        assert_eq!(
            split_messages("第一条\n第二行\n---\n\n第二条\n---\n"),
            vec!["第一条\n第二行".to_string(), "第二条".to_string()]
        );
        assert!(split_messages("  \n").is_empty());
    }

    #[test]
    fn texts_render_builtins_files_and_inline() {
        let mut texts = ChatTexts::default();
        let src = texts.add_inline("您好 {{ buyer.nick }}").unwrap();
        let view =
            serde_json::json!({"buyer": {"nick": "小王"}, "offer": "85", "buyer_accepted": false});
        assert_eq!(texts.render(&src, &view).unwrap(), vec!["您好 小王"]);
        assert!(texts.add_inline("{{ unclosed").is_err());
        // strict: an unknown variable is an error, not an empty string
        let bad = texts.add_inline("{{ nobody }}").unwrap();
        assert!(texts.render(&bad, &view).is_err());
        // built-in, then replaced by the seller's file
        let offer = TextSource::File("chat/bargain_offer.txt.j2".into());
        assert_eq!(
            texts.render(&offer, &view).unwrap(),
            vec!["亲，最低 85 元哦，诚心要的话拍下先别付款，我给您改价～"]
        );
        texts
            .add_file("chat/bargain_offer.txt.j2", "{{ offer }}\n---\n第二条")
            .unwrap();
        assert_eq!(texts.render(&offer, &view).unwrap(), vec!["85", "第二条"]);
        assert_eq!(
            texts
                .add_file("chat/x.txt.j2", "ok\n{% if %}")
                .unwrap_err()
                .0,
            2
        );
    }
}
