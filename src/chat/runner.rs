//! [`ChatRunner`]: the chat pipeline at run time — one per daemon, fed by every account.
//!
//! For each buyer message: admit it (only typed buyer text), record it once in the store
//! (dedupe), and run the seller's `chat:` stages on the conversation's pending messages
//! ([`super::flow`]). An answer is committed with the messages it answers, then each message
//! is claimed and sent through the [`ChatPort`] (the IM socket in the daemon). A newer buyer
//! message supersedes a run that is still waiting (debounce, model, reply delay): the newer run
//! answers everything. The account's own messages are told apart in the store (our echo or the
//! seller typing) and may pause the conversation.
//!
//! At start, [`ChatRunner::recover`] closes claims left by a crash as unknown (never resent),
//! resumes replies that were planned but provably not sent (if still fresh), and answers
//! conversations whose messages were still waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_util::task::TaskTracker;

use super::flow::{Mode, RunReport};
use super::input::{ChatInput, InputKind};
use super::stages::{ModelProblem, filter, send::SendRates, takeover};
use crate::config::{Config, ConfigHandle};
use crate::llm::LlmClient;
use crate::marketplace::{ImageUpload, SendOutcome, UploadOutcome};
use crate::money::Cents;
use crate::store::{
    BeginSend, InboundOutcome, NewInbound, OwnMessage, ReplyImage, ReplyState, SendResult, Store,
};

/// What the chat pipeline needs of the marketplace.
#[async_trait::async_trait]
pub trait ChatPort: Send + Sync {
    /// Send one text message in a conversation (three-valued, like deliveries).
    async fn send_text(&self, account: &str, cid: &str, buyer_id: &str, text: &str) -> SendOutcome;
    /// The item's live details (title, price, description), if they can be read now.
    async fn item_detail(&self, account: &str, item_id: &str) -> Option<LiveItem>;
    /// Put an image of a reply on the platform's CDN (`images:` of a rule or default reply).
    async fn upload_image(&self, _image: &ImageUpload<'_>) -> UploadOutcome {
        UploadOutcome::Failed {
            reason: "this chat port cannot upload images".into(),
            retryable: false,
        }
    }
    /// Send an uploaded image in a conversation (three-valued, like a text).
    async fn send_image(
        &self,
        _account: &str,
        _cid: &str,
        _buyer_id: &str,
        _image: &ReplyImage,
    ) -> SendOutcome {
        SendOutcome::NotDelivered {
            reason: "this chat port cannot send images".into(),
        }
    }
}

/// An item as the item detail API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveItem {
    pub title: String,
    pub price: Option<Cents>,
    pub description: String,
}

/// Told about model trouble and recovery (the daemon turns it into one alert, not a storm).
pub trait ChatWatch: Send + Sync {
    fn model_problem(&self, account: &str, problem: &ModelProblem);
    fn model_ok(&self, account: &str);
}

/// How long a live item detail is reused, and how long a failed read is not retried.
const ITEM_TTL: Duration = Duration::from_secs(10 * 60);
const ITEM_RETRY: Duration = Duration::from_secs(60);

pub(super) struct Inner {
    pub store: Store,
    pub config: ConfigHandle,
    pub port: Arc<dyn ChatPort>,
    pub watch: Option<Arc<dyn ChatWatch>>,
    /// The model client for the running config's `llm` settings.
    pub model: Mutex<Option<(String, Arc<LlmClient>)>>,
    items: Mutex<HashMap<(String, String), (tokio::time::Instant, Option<LiveItem>)>>,
    /// Per conversation: bumped by every new buyer message (and by the seller typing).
    generations: Mutex<HashMap<(String, String), u64>>,
    pub rates: Mutex<SendRates>,
    pub rng: Mutex<StdRng>,
}

/// The chat pipeline. Cheap to clone.
#[derive(Clone)]
pub struct ChatRunner {
    pub(super) inner: Arc<Inner>,
    tasks: TaskTracker,
}

impl ChatRunner {
    /// `watch` hears about model trouble and recovery (alerts, the status page).
    pub fn new(
        store: Store,
        config: ConfigHandle,
        port: Arc<dyn ChatPort>,
        watch: Option<Arc<dyn ChatWatch>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                port,
                watch,
                model: Mutex::new(None),
                items: Mutex::new(HashMap::new()),
                generations: Mutex::new(HashMap::new()),
                rates: Mutex::new(SendRates::default()),
                rng: Mutex::new(StdRng::from_rng(&mut rand::rng())),
            }),
            tasks: TaskTracker::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs still in flight (tests and shutdown wait on these).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// One chat push. Buyer messages are recorded before this returns (so their order is
    /// kept) and answered on a task of their own.
    pub async fn handle(&self, input: ChatInput) {
        let config = self.inner.config.load_full();
        if !config.chat.is_enabled() {
            return;
        }
        crate::metrics::inc(
            crate::metrics::CHAT_MESSAGES,
            &[("kind", kind_label(input.kind))],
        );
        match input.kind {
            InputKind::Own => self.own_message(&config, &input).await,
            InputKind::Typing | InputKind::ReadReceipt => {}
            InputKind::Buyer => {
                if let Err(why) = filter::admit(&input) {
                    crate::metrics::inc(crate::metrics::CHAT_SKIPPED, &[("reason", why.code())]);
                    return;
                }
                // The shop's buyer blacklist (`blacklist.buyers`, shared with the order
                // pipeline) silences a buyer whatever the chat stages say.
                if config.is_blacklisted(&input.sender_id) {
                    let code = crate::store::ChatSkip::Blacklisted.code();
                    crate::metrics::inc(crate::metrics::CHAT_SKIPPED, &[("reason", code)]);
                    return;
                }
                let Some(generation) = self.record(&input).await else {
                    return;
                };
                let runner = self.clone();
                self.tasks.spawn(async move {
                    let report = runner.run(input, generation, Mode::Live).await;
                    report.log();
                });
            }
        }
    }

    /// Record a buyer message; `None` if it was seen before.
    async fn record(&self, input: &ChatInput) -> Option<u64> {
        let store = &self.inner.store;
        let msg = NewInbound {
            account: input.account.clone(),
            cid: input.cid.clone(),
            message_id: input.message_id.clone(),
            buyer_id: input.sender_id.clone(),
            buyer_nick: input.sender_nick.clone(),
            item_id: input.item_id.clone(),
            text: input.text.clone(),
            at: input.at(store.now()),
        };
        match store.call(move |s| s.chat_record_inbound(&msg)).await {
            Ok(InboundOutcome::New) => Some(self.bump(&input.account, &input.cid)),
            Ok(InboundOutcome::Duplicate) => None,
            Err(e) => {
                tracing::error!(account = %input.account, cid = %input.cid, error = %e, "Could not record a buyer message; it is not answered.");
                None
            }
        }
    }

    async fn own_message(&self, config: &Config, input: &ChatInput) {
        let rule = config.chat.takeover().map(takeover::rule);
        let (account, cid, id, text) = (
            input.account.clone(),
            input.cid.clone(),
            input.message_id.clone(),
            input.text.clone(),
        );
        let at = input.at(self.inner.store.now());
        let seen = self
            .inner
            .store
            .call(move |s| s.chat_observe_own(&account, &cid, &id, &text, at, rule.as_ref()))
            .await;
        match seen {
            Ok(OwnMessage::Seller(state)) => {
                // A run preparing a reply in this conversation must not send it now.
                self.bump(&input.account, &input.cid);
                tracing::info!(account = %input.account, cid = %input.cid, takeover = ?state, "The seller wrote in a conversation by hand.");
            }
            Ok(OwnMessage::Echo | OwnMessage::Duplicate) => {}
            Err(e) => {
                tracing::warn!(account = %input.account, cid = %input.cid, error = %e, "Could not record the account's own message.");
            }
        }
    }

    pub(super) fn bump(&self, account: &str, cid: &str) -> u64 {
        let mut g = self
            .inner
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = g.entry((account.to_string(), cid.to_string())).or_insert(0);
        *n += 1;
        *n
    }

    /// Has a newer message (or the seller) arrived since `generation`?
    pub(super) fn superseded(&self, account: &str, cid: &str, generation: u64) -> bool {
        let g = self
            .inner
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.get(&(account.to_string(), cid.to_string()))
            .is_some_and(|n| *n != generation)
    }

    /// Answer the conversation's pending messages as `input` left them.
    pub async fn run(&self, input: ChatInput, generation: u64, mode: Mode) -> RunReport {
        super::flow::run(self, input, generation, mode).await
    }

    /// Send every message of a committed reply, each claimed first.
    pub(super) async fn send_reply(&self, reply_id: u64, pause: Duration) -> Option<ReplyState> {
        let store = &self.inner.store;
        let mut last = None;
        let mut first = true;
        loop {
            let begin = store.call(move |s| s.chat_begin_send(reply_id)).await;
            let (account, cid, buyer, part) = match begin {
                Ok(BeginSend::Go {
                    account,
                    cid,
                    buyer_id,
                    text,
                }) => (account, cid, buyer_id, Part::Text(text)),
                Ok(BeginSend::GoImage {
                    account,
                    cid,
                    buyer_id,
                    image,
                }) => (account, cid, buyer_id, Part::Image(image)),
                Ok(BeginSend::OutcomeUnknown) => return Some(ReplyState::Unknown),
                Ok(BeginSend::Done | BeginSend::Closed) => return last,
                Err(e) => {
                    tracing::error!(reply_id, error = %e, "Could not claim a chat reply; not sending it.");
                    return last;
                }
            };
            if !first && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            first = false;
            let port = &self.inner.port;
            let outcome = match &part {
                Part::Text(text) => port.send_text(&account, &cid, &buyer, text).await,
                Part::Image(image) => port.send_image(&account, &cid, &buyer, image).await,
            };
            let result = match outcome {
                SendOutcome::Accepted { message_id } => SendResult::Accepted { message_id },
                SendOutcome::NotDelivered { reason } => SendResult::NotDelivered { reason },
                SendOutcome::Unknown { reason } => SendResult::Unknown { reason },
            };
            self.inner
                .rates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(&account, &cid, store.now());
            match store
                .call(move |s| s.chat_finish_send(reply_id, &result))
                .await
            {
                Ok(ReplyState::Planned) => last = Some(ReplyState::Planned),
                Ok(state) => return Some(state),
                Err(e) => {
                    tracing::error!(reply_id, error = %e, "Could not record a chat send.");
                    return Some(ReplyState::Unknown);
                }
            }
        }
    }

    /// After a restart: unknown claims, resumable replies, waiting conversations.
    pub async fn recover(&self) {
        let config = self.inner.config.load_full();
        let Ok(rec) = self.inner.store.call(|s| s.chat_recover()).await else {
            tracing::error!("Could not read the chat replies left by the last run.");
            return;
        };
        for row in &rec.unknown {
            tracing::warn!(account = %row.account, cid = %row.cid, reply_id = row.id, "A chat reply was being sent when the process stopped; it is not repeated.");
        }
        let max_age = config
            .chat
            .filter()
            .map_or(Duration::from_secs(300), |f| f.max_age);
        let now = self.inner.store.now();
        let pause = config.chat.send().map_or(Duration::ZERO, |s| s.delay.min);
        for row in rec.planned {
            if now.saturating_sub(row.created_at) > crate::clock::millis(max_age) {
                let id = row.id;
                let _ = self
                    .inner
                    .store
                    .call(move |s| s.chat_abandon(id, "重启后已过期，未发送"))
                    .await;
                continue;
            }
            let runner = self.clone();
            self.tasks.spawn(async move {
                runner.send_reply(row.id, pause).await;
            });
        }
        for (account, cid) in rec.pending {
            self.resume_conversation(&account, &cid).await;
        }
    }

    async fn resume_conversation(&self, account: &str, cid: &str) {
        let (a, c) = (account.to_string(), cid.to_string());
        let store = &self.inner.store;
        let Ok(pending) = store.call(move |s| s.chat_pending(&a, &c)).await else {
            return;
        };
        let Some((id, row)) = pending.last().cloned() else {
            return;
        };
        let (a, c) = (account.to_string(), cid.to_string());
        let convo = store
            .call(move |s| s.chat_conversation(&a, &c))
            .await
            .ok()
            .flatten();
        let input = ChatInput {
            account: account.to_string(),
            cid: cid.to_string(),
            message_id: id,
            sender_id: row.buyer_id,
            sender_nick: convo.as_ref().and_then(|c| c.buyer_nick.clone()),
            item_id: convo.and_then(|c| c.item_id),
            text: row.text,
            sent_at: Some(row.at),
            kind: InputKind::Buyer,
        };
        let generation = self.bump(account, cid);
        let runner = self.clone();
        self.tasks.spawn(async move {
            runner.run(input, generation, Mode::Live).await.log();
        });
    }

    /// The item's live details, cached per (account, item).
    pub(super) async fn live_item(&self, account: &str, item_id: &str) -> Option<LiveItem> {
        let key = (account.to_string(), item_id.to_string());
        {
            let cache = self.inner.items.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, item)) = cache.get(&key) {
                let ttl = if item.is_some() { ITEM_TTL } else { ITEM_RETRY };
                if at.elapsed() < ttl {
                    return item.clone();
                }
            }
        }
        let item = self.inner.port.item_detail(account, item_id).await;
        let mut cache = self.inner.items.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (tokio::time::Instant::now(), item.clone()));
        item
    }
}

/// One claimed message of a reply.
enum Part {
    Text(String),
    Image(ReplyImage),
}

fn kind_label(kind: InputKind) -> &'static str {
    match kind {
        InputKind::Buyer => "buyer",
        InputKind::Own => "own",
        InputKind::Typing => "typing",
        InputKind::ReadReceipt => "read_receipt",
    }
}
