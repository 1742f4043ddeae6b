//! One file per chat stage kind, plus what they share: rendering a reply text and turning a
//! model's answer into a reply that passed the output guard.
//!
//! Every stage is `decide(params, ctx) -> Step` (send: `plan`). Order of resolution is the
//! seller's `chat:` list; the canonical order (filter → takeover → debounce → keywords →
//! order-status → bargain → llm → default → send) is what `check` enforces.

pub mod bargain;
pub mod debounce;
pub mod default;
pub mod filter;
pub mod keywords;
pub mod llm;
pub mod order_status;
pub mod send;
pub mod takeover;

use serde::Serialize;

use super::guard::{GuardRejection, OutputGuard};
use super::stage::{Answer, ChatCtx, ModelAsk, Step};
use crate::config::chat::{ChatStage, OnModelError, TextSource};
use crate::llm::{Completion, LlmError};
use crate::store::ChatSkip;

/// Run one stage's decision (the `send` stage is planned by the runner, not decided here).
pub fn decide(stage: &ChatStage, ctx: &ChatCtx<'_>) -> Step {
    match stage {
        ChatStage::Filter(p) => filter::decide(p, ctx),
        ChatStage::Takeover(_) => takeover::decide(ctx),
        ChatStage::Debounce(p) => debounce::decide(p, ctx),
        ChatStage::Keywords(p) => keywords::decide(p, ctx),
        ChatStage::OrderStatus(p) => order_status::decide(p, ctx),
        ChatStage::Bargain(p) => bargain::decide(p, ctx),
        ChatStage::Llm(p) => llm::decide(p, ctx),
        ChatStage::Default(p) => default::decide(p, ctx),
        ChatStage::Send(_) => Step::Continue,
    }
}

/// Render a reply source; a template that fails at run time (it rendered at load, so only
/// data can break it) yields nothing and is logged without the data.
pub(crate) fn render(
    ctx: &ChatCtx<'_>,
    source: &TextSource,
    view: &impl Serialize,
) -> Option<Vec<String>> {
    match ctx.texts.render(source, view) {
        Ok(messages) => Some(messages),
        Err(e) => {
            tracing::warn!(cid = %ctx.input.cid, error = %e, "Chat template failed to render.");
            None
        }
    }
}

/// Why a model answer did not reach the buyer as written.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelProblem {
    Error(LlmError),
    Rejected(GuardRejection),
}

impl ModelProblem {
    pub fn label(&self) -> String {
        match self {
            Self::Error(e) => e.label(),
            Self::Rejected(r) => format!("模型回复被拦截：{}", r.label()),
        }
    }
}

/// What a model call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelOutcome {
    /// The model's text passed the guard.
    Answer(Answer),
    /// The stage's fallback template is sent instead.
    Fallback {
        answer: Answer,
        problem: ModelProblem,
    },
    /// Nothing from this stage: `then` is `Continue` (fall through) or `Silent`.
    Failed { problem: ModelProblem, then: Step },
}

/// The guard applied to every model answer, and the fallback policy.
pub struct AfterModel<'a> {
    pub max_chars: usize,
    pub delivered_keys: &'a [String],
    pub on_error: OnModelError,
}

/// Turn a model result into what the buyer gets.
pub fn after_model(
    ask: &ModelAsk,
    result: Result<Completion, LlmError>,
    policy: &AfterModel<'_>,
) -> ModelOutcome {
    let problem = match result {
        Ok(c) => {
            let guard = OutputGuard {
                max_chars: policy.max_chars,
                delivered_keys: policy.delivered_keys,
                price: &ask.price,
            };
            match guard.check(&c.text) {
                Ok(text) => {
                    return ModelOutcome::Answer(Answer::text(vec![text], ask.effects.clone()));
                }
                Err(r) => ModelProblem::Rejected(r),
            }
        }
        Err(e) => ModelProblem::Error(e),
    };
    match &ask.fallback {
        Some(answer) => ModelOutcome::Fallback {
            answer: answer.clone(),
            problem,
        },
        None => ModelOutcome::Failed {
            problem,
            then: match policy.on_error {
                OnModelError::Fallthrough => Step::Continue,
                OnModelError::Silence => Step::Silent(ChatSkip::ModelFailed),
            },
        },
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A context with everything a stage reads, owned, for stage unit tests.

    use crate::chat::input::{ChatInput, InputKind};
    use crate::chat::orders::OrderFacts;
    use crate::chat::stage::{ChatCtx, ItemFacts, Question};
    use crate::config::chat::{ChatTexts, LlmParams, OnModelError, ProductChat};
    use crate::money::Cents;
    use crate::store::{ChatSnapshot, ConversationRow};
    use std::time::Duration;

    pub fn input(text: &str) -> ChatInput {
        ChatInput {
            account: "main".into(),
            cid: "c1".into(),
            message_id: "m1.PNM".into(),
            sender_id: "buyer1".into(),
            sender_nick: Some("小王".into()),
            item_id: Some("900".into()),
            text: text.into(),
            sent_at: None,
            kind: InputKind::Buyer,
        }
    }

    pub fn llm_params() -> LlmParams {
        LlmParams {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "test".into(),
            api_key: None,
            timeout: Duration::from_secs(5),
            max_tokens: 200,
            temperature: 0.3,
            history_turns: 10,
            max_chars: 80,
            system_template: "chat/system.txt.j2".into(),
            on_error: OnModelError::Fallthrough,
            extra: serde_json::Map::new(),
        }
    }

    pub struct Fixture {
        pub now: u64,
        pub input: ChatInput,
        pub question: Question,
        pub snapshot: ChatSnapshot,
        pub item: Option<ItemFacts>,
        pub product: Option<ProductChat>,
        pub orders: Vec<OrderFacts>,
        pub keys: Vec<String>,
        pub texts: ChatTexts,
        pub model: Option<LlmParams>,
    }

    impl Fixture {
        pub fn new(text: &str) -> Self {
            let input = input(text);
            Self {
                now: 1_780_000_000_000,
                question: Question {
                    text: text.into(),
                    message_ids: vec![input.message_id.clone()],
                    first_in_conversation: false,
                },
                input,
                snapshot: ChatSnapshot::default(),
                item: Some(ItemFacts {
                    item_id: "900".into(),
                    title: "Office 2021 激活码".into(),
                    price: Some(Cents::from_yuan(99)),
                    description: "正版永久激活".into(),
                }),
                product: Some(ProductChat {
                    price: Some(Cents::from_yuan(99)),
                    facts: "支持 Win10/Win11，一码一机".into(),
                    ..ProductChat::default()
                }),
                orders: Vec::new(),
                keys: Vec::new(),
                texts: ChatTexts::default(),
                model: None,
            }
        }

        /// Set the question text (and the triggering message's text).
        pub fn ask(&mut self, text: &str) {
            self.input.text = text.into();
            self.question.text = text.into();
        }

        pub fn conversation(&mut self) -> &mut ConversationRow {
            self.snapshot
                .conversation
                .get_or_insert_with(|| ConversationRow {
                    item_id: Some("900".into()),
                    next_seq: 1,
                    ..ConversationRow::new("main", "c1", "buyer1", 0)
                })
        }

        pub fn ctx(&self) -> ChatCtx<'_> {
            ChatCtx {
                now: self.now,
                input: &self.input,
                question: &self.question,
                snapshot: &self.snapshot,
                item: self.item.as_ref(),
                product: self.product.as_ref(),
                orders: &self.orders,
                delivered_keys: &self.keys,
                texts: &self.texts,
                shop: "测试小店",
                model: self.model.as_ref(),
            }
        }
    }
}
