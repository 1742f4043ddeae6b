//! The chat stage contract: what a stage reads ([`ChatCtx`]) and what it may answer
//! ([`Step`]).
//!
//! Stages are pure decisions, like the order stages: they never touch the network or redb.
//! The runner loads one [`ChatSnapshot`] per question from the store, hands every stage the
//! same context, and performs what the step asks for (wait, call the model, commit and send).
//! A stage that needs the model returns [`Step::Ask`] with the request, the price guard to
//! apply and what to fall back to; the runner calls the model and gives the answer to
//! [`super::stages::after_model`].

use crate::config::DeliveryImage;
use crate::config::chat::{ChatTexts, ProductChat};
use crate::llm::Message;
use crate::money::Cents;
use crate::store::{ChatEffect, ChatSkip, ChatSnapshot};

use super::input::ChatInput;
use super::orders::OrderFacts;
use super::price::PriceGuard;

/// The item a conversation is about, from the config and the item detail API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFacts {
    pub item_id: String,
    pub title: String,
    /// The list price: the live one from the item detail when known, else `price:`.
    pub price: Option<Cents>,
    pub description: String,
}

/// The buyer's question: the pending messages of the conversation, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub text: String,
    /// The inbound message ids it merges, oldest first.
    pub message_ids: Vec<String>,
    /// No one has said anything in this conversation before these messages.
    pub first_in_conversation: bool,
}

impl Question {
    /// Merge pending buyer messages (oldest first) into one question.
    pub fn merge(pending: &[(String, String)], first_in_conversation: bool) -> Self {
        let text = pending
            .iter()
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            text,
            message_ids: pending.iter().map(|(id, _)| id.clone()).collect(),
            first_in_conversation,
        }
    }
}

/// Everything a stage may read.
pub struct ChatCtx<'a> {
    pub now: u64,
    /// The message that triggered this run (the newest).
    pub input: &'a ChatInput,
    pub question: &'a Question,
    pub snapshot: &'a ChatSnapshot,
    pub item: Option<&'a ItemFacts>,
    /// The product's chat settings, if the item is in `products.yaml`.
    pub product: Option<&'a ProductChat>,
    /// This buyer's orders with this account.
    pub orders: &'a [OrderFacts],
    /// Every card key delivered in this conversation (for the output guard; never logged).
    pub delivered_keys: &'a [String],
    pub texts: &'a ChatTexts,
    /// The shop's display name (the account's `name`).
    pub shop: &'a str,
    /// An `llm` stage is configured (the bargain stage may let it phrase offers).
    pub model: Option<&'a crate::config::chat::LlmParams>,
}

impl ChatCtx<'_> {
    pub fn buyer_id(&self) -> &str {
        &self.input.sender_id
    }

    pub fn item_id(&self) -> Option<&str> {
        self.item
            .map(|i| i.item_id.as_str())
            .or(self.input.item_id.as_deref())
    }
}

/// What a stage tells the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not mine: ask the next stage.
    Continue,
    /// Messages and images to send before whatever answers (the item's greeting on a first
    /// message; no effects); if no later stage answers, they are the answer.
    Prefix(Answer),
    /// No reply to this question, on purpose.
    Silent(ChatSkip),
    /// Wait until `until` (unix ms), then continue with the next stage — unless a newer
    /// buyer message arrived meanwhile, in which case its run answers everything.
    Hold {
        until: u64,
    },
    Answer(Answer),
    /// Call the model; see [`ModelAsk`].
    Ask(Box<ModelAsk>),
}

/// A reply and the state it changes, committed together before the first send.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub messages: Vec<String>,
    pub effects: Vec<ChatEffect>,
    /// Images sent after the messages (`images:` of the rule or default reply), each uploaded
    /// before the reply is committed.
    pub images: Vec<DeliveryImage>,
}

impl Answer {
    /// Text messages only.
    pub fn text(messages: Vec<String>, effects: Vec<ChatEffect>) -> Self {
        Self {
            messages,
            effects,
            images: Vec::new(),
        }
    }

    /// Nothing to send (it may still carry effects).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.images.is_empty()
    }

    /// `self` sent before `then`: texts first, then images, each in order; both's effects.
    pub fn then(mut self, then: Answer) -> Answer {
        self.messages.extend(then.messages);
        self.effects.extend(then.effects);
        self.images.extend(then.images);
        self
    }
}

/// A model call a stage wants made.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAsk {
    pub messages: Vec<Message>,
    /// Amounts the answer may name.
    pub price: PriceGuard,
    /// Sent instead when the model fails or its answer is rejected (a template); `None`
    /// means the `llm` stage's `on_error` decides.
    pub fallback: Option<Answer>,
    /// Committed with the model's answer (or the fallback).
    pub effects: Vec<ChatEffect>,
}
