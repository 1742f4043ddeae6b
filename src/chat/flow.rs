//! One run of the chat stages over a conversation's pending buyer messages: load what the
//! stages read, run them in the seller's order, perform what they ask for (hold, call the
//! model), and — for an answer — wait the reply delay, re-check, commit and send.
//!
//! [`Mode::DryRun`] (`chat-test`) runs the same stages and the same model call but never
//! waits, never commits and never sends.

use std::time::Duration;

use super::input::ChatInput;
use super::orders::OrderFacts;
use super::runner::ChatRunner;
use super::stage::{Answer, ChatCtx, ItemFacts, ModelAsk, Question, Step};
use super::stages::{self, AfterModel, ModelOutcome, ModelProblem, send};
use crate::config::Config;
use crate::config::chat::{ChatStage, LlmParams, SendParams};
use crate::llm::{LlmClient, LlmError, Settings};
use crate::metrics;
use crate::store::{
    ChatSkip, ChatSnapshot, PlanOutcome, PlannedReply, ReplyImage, ReplyState, StoreError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    /// Decide and call the model, but never wait, commit or send.
    DryRun,
}

/// What a run did, for logs, `chat-test` and tests.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub account: String,
    pub cid: String,
    /// The stage that answered.
    pub stage: Option<&'static str>,
    pub messages: Vec<String>,
    /// The reply's images (config paths), sent after the messages.
    pub images: Vec<String>,
    pub skipped: Option<ChatSkip>,
    /// A newer message (or the seller) arrived; the newer run answers.
    pub superseded: bool,
    /// The exact request body sent to the model, and where.
    pub model_request: Option<serde_json::Value>,
    pub model_endpoint: Option<String>,
    pub model_problem: Option<ModelProblem>,
    pub model_latency: Option<Duration>,
    pub reply_id: Option<u64>,
    pub state: Option<ReplyState>,
}

impl RunReport {
    /// One log line; chat text is never logged, only its size.
    pub fn log(&self) {
        let chars: usize = self.messages.iter().map(|m| m.chars().count()).sum();
        tracing::info!(
            account = %self.account,
            cid = %self.cid,
            stage = self.stage.unwrap_or("-"),
            skipped = self.skipped.map_or("-", |s| s.code()),
            superseded = self.superseded,
            messages = self.messages.len(),
            chars,
            state = self.state.map_or("-", |s| s.as_str()),
            "Chat run finished."
        );
    }
}

/// What the stages read, loaded once per run (and again after a hold).
struct Facts {
    snapshot: ChatSnapshot,
    item: Option<ItemFacts>,
    orders: Vec<OrderFacts>,
    keys: Vec<String>,
}

impl Facts {
    fn question(&self) -> Option<Question> {
        let pending = &self.snapshot.pending;
        if pending.is_empty() {
            return None;
        }
        let texts: Vec<(String, String)> = pending
            .iter()
            .map(|(id, row)| (id.clone(), row.text.clone()))
            .collect();
        let turns = self
            .snapshot
            .conversation
            .as_ref()
            .map_or(0, |c| c.next_seq);
        Some(Question::merge(&texts, turns as usize <= pending.len()))
    }
}

pub(super) async fn run(
    runner: &ChatRunner,
    input: ChatInput,
    generation: u64,
    mode: Mode,
) -> RunReport {
    let config = runner.inner.config.load_full();
    let mut report = RunReport {
        account: input.account.clone(),
        cid: input.cid.clone(),
        ..RunReport::default()
    };
    let mut facts = match load(runner, &config, &input).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(account = %input.account, cid = %input.cid, error = %e, "Could not load the conversation; not answering.");
            return report;
        }
    };
    let Some(mut question) = facts.question() else {
        report.superseded = true;
        return report;
    };
    let answer = match stage_loop(
        runner,
        &config,
        &input,
        generation,
        mode,
        &mut facts,
        &mut question,
        &mut report,
    )
    .await
    {
        Some(a) => a,
        None => return report,
    };
    report.messages.clone_from(&answer.0.messages);
    report.images = answer.0.images.iter().map(|i| i.path.clone()).collect();
    report.stage = Some(answer.1);
    if mode == Mode::DryRun {
        return report;
    }
    deliver(
        runner,
        &config,
        &input,
        generation,
        &question,
        answer,
        &mut report,
    )
    .await;
    report
}

/// Run the stages until one answers; `None` when the run ends without an answer to send
/// (skipped, superseded — recorded in `report`).
#[allow(clippy::too_many_arguments)]
async fn stage_loop(
    runner: &ChatRunner,
    config: &Config,
    input: &ChatInput,
    generation: u64,
    mode: Mode,
    facts: &mut Facts,
    question: &mut Question,
    report: &mut RunReport,
) -> Option<(Answer, &'static str)> {
    let mut prefix = Answer::text(Vec::new(), Vec::new());
    for stage in &config.chat.stages {
        if matches!(stage, ChatStage::Send(_)) {
            continue;
        }
        let step = {
            let ctx = context(runner, config, input, facts, question);
            stages::decide(stage, &ctx)
        };
        match step {
            Step::Continue => {}
            Step::Prefix(p) => prefix = prefix.then(p),
            Step::Silent(why) => {
                skip(runner, input, question, why, mode, report).await;
                return None;
            }
            Step::Hold { until } => {
                if mode == Mode::DryRun {
                    continue;
                }
                let wait = until.saturating_sub(runner.store().now());
                tokio::time::sleep(Duration::from_millis(wait)).await;
                if runner.superseded(&input.account, &input.cid, generation) {
                    report.superseded = true;
                    return None;
                }
                *facts = load(runner, config, input).await.ok()?;
                let Some(q) = facts.question() else {
                    report.superseded = true;
                    return None;
                };
                *question = q;
            }
            Step::Answer(a) => return Some((prefix.then(a), stage.name())),
            Step::Ask(ask) => {
                match ask_model(runner, config, input, &ask, &facts.keys, report).await {
                    ModelOutcome::Answer(a) | ModelOutcome::Fallback { answer: a, .. } => {
                        return Some((prefix.then(a), stage.name()));
                    }
                    ModelOutcome::Failed {
                        then: Step::Silent(why),
                        ..
                    } => {
                        skip(runner, input, question, why, mode, report).await;
                        return None;
                    }
                    ModelOutcome::Failed { .. } => {}
                }
            }
        }
    }
    if !prefix.is_empty() {
        return Some((prefix, "keywords"));
    }
    skip(runner, input, question, ChatSkip::NoAnswer, mode, report).await;
    None
}

fn context<'a>(
    runner: &ChatRunner,
    config: &'a Config,
    input: &'a ChatInput,
    facts: &'a Facts,
    question: &'a Question,
) -> ChatCtx<'a> {
    let item_id = facts.item.as_ref().map(|i| i.item_id.as_str());
    ChatCtx {
        now: runner.store().now(),
        input,
        question,
        snapshot: &facts.snapshot,
        item: facts.item.as_ref(),
        product: item_id.and_then(|id| config.product(id)).map(|p| &p.chat),
        orders: &facts.orders,
        delivered_keys: &facts.keys,
        texts: &config.chat.texts,
        shop: config
            .account(&input.account)
            .map_or("", |a| a.name.as_str()),
        model: config.chat.llm(),
    }
}

async fn load(
    runner: &ChatRunner,
    config: &Config,
    input: &ChatInput,
) -> Result<Facts, StoreError> {
    let history = config.chat.llm().map_or(10, |l| l.history_turns);
    let store = runner.store();
    let (account, cid, buyer) = (
        input.account.clone(),
        input.cid.clone(),
        input.sender_id.clone(),
    );
    let snapshot = {
        let (a, c, b) = (account.clone(), cid.clone(), buyer.clone());
        let item = input.item_id.clone();
        store
            .call(move |s| s.chat_snapshot(&a, &c, item.as_deref(), &b, history))
            .await?
    };
    let (orders, keys) = store
        .call(move |s| {
            let orders = s.chat_buyer_orders(&account, &buyer)?;
            let keys = s.chat_delivered_keys(&orders)?;
            Ok((orders, keys))
        })
        .await?;
    let item_id = input.item_id.clone().or_else(|| {
        snapshot
            .conversation
            .as_ref()
            .and_then(|c| c.item_id.clone())
    });
    let item = match item_id {
        Some(id) => Some(item_facts(runner, config, &input.account, &id).await),
        None => None,
    };
    Ok(Facts {
        snapshot,
        item,
        orders: orders
            .iter()
            .map(|o| OrderFacts::new(&o.order, o.delivery.as_ref()))
            .collect(),
        keys,
    })
}

/// The item as the config names it, completed (and its price lowered) by the live detail.
async fn item_facts(
    runner: &ChatRunner,
    config: &Config,
    account: &str,
    item_id: &str,
) -> ItemFacts {
    let product = config.product(item_id);
    let live = runner.live_item(account, item_id).await;
    let configured = product.and_then(|p| p.chat.price);
    let live_price = live.as_ref().and_then(|l| l.price);
    ItemFacts {
        item_id: item_id.to_string(),
        title: product
            .map(|p| p.title.clone())
            .or_else(|| live.as_ref().map(|l| l.title.clone()))
            .unwrap_or_default(),
        price: match (configured, live_price) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        },
        description: live.map(|l| l.description).unwrap_or_default(),
    }
}

async fn skip(
    runner: &ChatRunner,
    input: &ChatInput,
    question: &Question,
    why: ChatSkip,
    mode: Mode,
    report: &mut RunReport,
) {
    report.skipped = Some(why);
    metrics::inc(metrics::CHAT_SKIPPED, &[("reason", why.code())]);
    if mode == Mode::DryRun {
        return;
    }
    let (account, ids) = (input.account.clone(), question.message_ids.clone());
    if let Err(e) = runner
        .store()
        .call(move |s| s.chat_skip(&account, &ids, why))
        .await
    {
        tracing::warn!(account = %input.account, cid = %input.cid, error = %e, "Could not record a chat skip.");
    }
}

/// Call the model for a stage and judge its answer.
async fn ask_model(
    runner: &ChatRunner,
    config: &Config,
    input: &ChatInput,
    ask: &ModelAsk,
    keys: &[String],
    report: &mut RunReport,
) -> ModelOutcome {
    let Some(params) = config.chat.llm() else {
        let problem = ModelProblem::Error(LlmError::Settings("没有配置 llm 阶段".into()));
        return ModelOutcome::Failed {
            problem,
            then: Step::Continue,
        };
    };
    let policy = AfterModel {
        max_chars: params.max_chars,
        delivered_keys: keys,
        on_error: params.on_error,
    };
    let result = match model_client(runner, config, params) {
        Ok(client) => {
            report.model_request = Some(client.request_body(&ask.messages));
            report.model_endpoint = Some(client.endpoint());
            let result = client.complete(&ask.messages).await;
            if let Ok(c) = &result {
                report.model_latency = Some(c.latency);
                metrics::add(metrics::LLM_LATENCY_MS, &[], c.latency.as_millis() as i64);
                metrics::set(
                    metrics::LLM_LAST_LATENCY_MS,
                    &[],
                    c.latency.as_millis() as i64,
                );
            }
            result
        }
        Err(e) => Err(e),
    };
    let outcome_label = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics::inc(metrics::LLM_REQUESTS, &[("outcome", outcome_label)]);
    let outcome = stages::after_model(ask, result, &policy);
    let problem = match &outcome {
        ModelOutcome::Answer(_) => None,
        ModelOutcome::Fallback { problem, .. } | ModelOutcome::Failed { problem, .. } => {
            Some(problem.clone())
        }
    };
    match &problem {
        Some(p) => {
            if let ModelProblem::Rejected(r) = p {
                metrics::inc(metrics::GUARD_REJECTIONS, &[("reason", r.code())]);
            }
            tracing::warn!(account = %input.account, cid = %input.cid, problem = %p.label(), "Model answer not used.");
            if let Some(w) = &runner.inner.watch {
                w.model_problem(&input.account, p);
            }
            report.model_problem = Some(p.clone());
        }
        None => {
            if let Some(w) = &runner.inner.watch {
                w.model_ok(&input.account);
            }
        }
    }
    outcome
}

/// The client for this config's `llm` settings (built once per config version).
fn model_client(
    runner: &ChatRunner,
    config: &Config,
    params: &LlmParams,
) -> Result<std::sync::Arc<LlmClient>, LlmError> {
    let mut slot = runner.inner.model.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((version, client)) = slot.as_ref() {
        if *version == config.version {
            return Ok(client.clone());
        }
    }
    let api_key = match &params.api_key {
        Some(secret) => Some(
            secret
                .resolve()
                .map_err(|e| LlmError::Settings(e.to_string()))?,
        ),
        None => None,
    };
    let client = std::sync::Arc::new(LlmClient::new(Settings {
        base_url: params.base_url.clone(),
        model: params.model.clone(),
        api_key,
        timeout: params.timeout,
        max_tokens: params.max_tokens,
        temperature: params.temperature,
        extra: params.extra.clone(),
        max_retry_wait: Duration::from_secs(5),
    })?);
    *slot = Some((config.version.clone(), client.clone()));
    Ok(client)
}

/// Wait the reply delay, make sure the answer still stands, commit it, send it.
async fn deliver(
    runner: &ChatRunner,
    config: &Config,
    input: &ChatInput,
    generation: u64,
    question: &Question,
    (answer, stage): (Answer, &'static str),
    report: &mut RunReport,
) {
    let params = config
        .chat
        .send()
        .cloned()
        .unwrap_or_else(SendParams::default);
    let pause = match send_plan(runner, &params, input) {
        send::SendPlan::RateLimited => {
            skip(
                runner,
                input,
                question,
                ChatSkip::RateLimited,
                Mode::Live,
                report,
            )
            .await;
            return;
        }
        send::SendPlan::After(d) => d,
    };
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    if runner.superseded(&input.account, &input.cid, generation) {
        report.superseded = true;
        return;
    }
    if taken_over(runner, input).await {
        skip(
            runner,
            input,
            question,
            ChatSkip::TakenOver,
            Mode::Live,
            report,
        )
        .await;
        return;
    }
    // Every image is on the CDN before anything of the reply is committed or sent.
    let images = super::images::upload_all(runner, &input.account, &answer.images).await;
    if let Some(id) = commit_reply(runner, input, question, (answer, stage), images, report).await {
        report.reply_id = Some(id);
        report.state = runner.send_reply(id, params.delay.min).await;
    } else if report.state.is_none() {
        return;
    }
    let outcome = report.state.map_or("unknown", |s| s.as_str());
    metrics::inc(
        metrics::CHAT_REPLIES,
        &[("stage", stage), ("outcome", outcome)],
    );
}

/// Whether this conversation may get a reply now, and after which pause (the reply rate
/// over the recent window, a random delay within the send stage's bounds).
fn send_plan(runner: &ChatRunner, params: &SendParams, input: &ChatInput) -> send::SendPlan {
    let now = runner.store().now();
    let recent = runner
        .inner
        .rates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .recent(&input.account, &input.cid, now);
    let mut rng = runner.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
    send::plan(params, recent, &mut *rng)
}

/// Commit the reply before sending it; `None` when a newer question made it stale (marked on
/// the report), the store refused it (logged), or an image of it could not be uploaded (then
/// it is recorded as not delivered with `images`' reason, and nothing is sent).
async fn commit_reply(
    runner: &ChatRunner,
    input: &ChatInput,
    question: &Question,
    (answer, stage): (Answer, &'static str),
    images: Result<Vec<ReplyImage>, String>,
    report: &mut RunReport,
) -> Option<u64> {
    let mut plan = PlannedReply {
        account: input.account.clone(),
        cid: input.cid.clone(),
        buyer_id: input.sender_id.clone(),
        inbound: question.message_ids.clone(),
        messages: answer.messages,
        stage: stage.to_string(),
        effects: answer.effects,
        images: Vec::new(),
    };
    let images = match images {
        Ok(images) => images,
        Err(note) => {
            // Recorded as not delivered, with the reason: there is nothing to send.
            let recorded = runner
                .store()
                .call(move |s| s.chat_reply_unsendable(&plan, &note))
                .await;
            match recorded {
                Ok(PlanOutcome::Planned(_)) => report.state = Some(ReplyState::NotDelivered),
                Ok(PlanOutcome::Stale) => report.superseded = true,
                Err(e) => {
                    tracing::error!(account = %input.account, cid = %input.cid, error = %e, "Could not record a chat reply that cannot be sent.");
                }
            }
            return None;
        }
    };
    plan.images = images;
    match runner.store().call(move |s| s.chat_plan_reply(&plan)).await {
        Ok(PlanOutcome::Planned(id)) => Some(id),
        Ok(PlanOutcome::Stale) => {
            report.superseded = true;
            None
        }
        Err(e) => {
            tracing::error!(account = %input.account, cid = %input.cid, error = %e, "Could not commit a chat reply; not sending it.");
            None
        }
    }
}

async fn taken_over(runner: &ChatRunner, input: &ChatInput) -> bool {
    let (a, c) = (input.account.clone(), input.cid.clone());
    let convo = runner
        .store()
        .call(move |s| s.chat_conversation(&a, &c))
        .await;
    let now = runner.store().now();
    convo
        .ok()
        .flatten()
        .is_some_and(|c| stages::takeover::silenced(Some(c.takeover), now))
}
