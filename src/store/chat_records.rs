//! The chat rows the store keeps, JSON like every other record (fields can be added with
//! `#[serde(default)]`).
//!
//! A buyer message is an [`InboundRow`] from the moment it is seen; a reply is a
//! [`ReplyRow`] committed together with the inbound ids it answers before anything is sent,
//! and each of its messages is claimed (`sending`) before the IM socket is called, so a crash
//! leaves either "not sent" (resumable) or "outcome unknown" (never repeated).

use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// A buyer message as first seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInbound {
    pub account: String,
    pub cid: String,
    pub message_id: String,
    pub buyer_id: String,
    #[serde(default)]
    pub buyer_nick: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    pub text: String,
    /// Server time of the message if known, else when it was received (unix ms).
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRow {
    pub cid: String,
    pub buyer_id: String,
    pub text: String,
    pub at: u64,
    pub received_at: u64,
    pub state: InboundState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InboundState {
    /// Waiting for a reply to be planned (or for the debounce window).
    Pending,
    Answered {
        reply_id: u64,
    },
    /// No reply on purpose; `reason` is a [`crate::store::ChatSkip`] code.
    Skipped {
        reason: String,
    },
    /// The account's own message (an echo of our send, or the seller typing).
    Own,
}

/// Who said a history turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnRole {
    Buyer,
    /// The daemon's own reply.
    Bot,
    /// The seller, typing by hand in the app or on the web.
    Seller,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: TurnRole,
    pub text: String,
    pub at: u64,
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Whether the bot may answer in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Takeover {
    #[default]
    Auto,
    /// The seller typed by hand; the bot is quiet until then.
    PausedUntil { until: u64 },
    /// The seller sent the toggle text; the bot is quiet until it is sent again.
    Manual { since: u64 },
}

impl Takeover {
    /// Is the bot silenced at `now`?
    pub fn silences(&self, now: u64) -> bool {
        match self {
            Self::Auto => false,
            Self::PausedUntil { until } => now < *until,
            Self::Manual { .. } => true,
        }
    }

    /// What the status page says.
    pub fn label(&self, now: u64) -> String {
        match self {
            Self::PausedUntil { until } if now < *until => {
                format!("人工接管中（至 {}）", crate::clock::format_beijing(*until))
            }
            Self::Manual { .. } => "人工模式（卖家切换）".into(),
            _ => "自动".into(),
        }
    }
}

/// One conversation (account, cid) as the chat pipeline remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRow {
    pub account: String,
    pub cid: String,
    pub buyer_id: String,
    #[serde(default)]
    pub buyer_nick: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub last_question: Option<String>,
    #[serde(default)]
    pub last_question_at: Option<u64>,
    #[serde(default)]
    pub last_reply: Option<String>,
    #[serde(default)]
    pub last_reply_at: Option<u64>,
    /// The stage that answered last, or why nothing was sent (a [`crate::store::ChatSkip`]).
    #[serde(default)]
    pub last_outcome: Option<String>,
    #[serde(default)]
    pub takeover: Takeover,
    /// When the `default` stage last answered here (its cooldown).
    #[serde(default)]
    pub default_at: Option<u64>,
    /// Sequence number of the next history turn.
    #[serde(default)]
    pub next_seq: u64,
    pub updated_at: u64,
    /// Why the last reply did not go out (Chinese, or a raw error the page classifies).
    #[serde(default)]
    pub last_note: Option<String>,
}

impl ConversationRow {
    /// A conversation nothing has happened in yet.
    pub fn new(account: &str, cid: &str, buyer_id: &str, now: u64) -> Self {
        Self {
            account: account.to_string(),
            cid: cid.to_string(),
            buyer_id: buyer_id.to_string(),
            buyer_nick: None,
            item_id: None,
            last_question: None,
            last_question_at: None,
            last_reply: None,
            last_reply_at: None,
            last_outcome: None,
            takeover: Takeover::Auto,
            default_at: None,
            next_seq: 0,
            updated_at: now,
            last_note: None,
        }
    }
}

/// Where one reply stands. `Planned → Sending → Sent`, or `NotDelivered` (provably not sent),
/// `Unknown` (the buyer may have it; never repeated), `Abandoned` (dropped before sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyState {
    Planned,
    Sending,
    Sent,
    NotDelivered,
    Unknown,
    Abandoned,
}

impl ReplyState {
    pub fn is_open(self) -> bool {
        matches!(self, Self::Planned | Self::Sending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::NotDelivered => "not_delivered",
            Self::Unknown => "unknown",
            Self::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyRow {
    pub id: u64,
    pub account: String,
    pub cid: String,
    pub buyer_id: String,
    /// The buyer messages this reply answers.
    pub inbound: Vec<String>,
    pub messages: Vec<String>,
    /// The chat stage that produced it (`keywords`, `llm`, …).
    pub stage: String,
    pub state: ReplyState,
    /// Messages accepted by the platform so far.
    pub sent: usize,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default)]
    pub note: Option<String>,
    /// Images sent after `messages` (each already on the CDN when the reply was committed);
    /// `sent` counts through the messages, then the images.
    #[serde(default)]
    pub images: Vec<ReplyImage>,
}

impl ReplyRow {
    /// Chat messages in the reply: texts, then images.
    pub fn parts(&self) -> usize {
        self.messages.len() + self.images.len()
    }
}

/// An image of a chat reply, as uploaded: what the image message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyImage {
    /// As written in the config (relative to the config dir).
    pub path: String,
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// A reply to commit together with the inbound ids it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedReply {
    pub account: String,
    pub cid: String,
    pub buyer_id: String,
    pub inbound: Vec<String>,
    pub messages: Vec<String>,
    pub stage: String,
    pub effects: Vec<ChatEffect>,
    /// Sent after `messages`, already uploaded.
    pub images: Vec<ReplyImage>,
}

/// State a reply changes, committed with the reply itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEffect {
    /// A reply-once rule answered in this conversation.
    Once { key: String },
    /// A bargaining round with this offer.
    Bargain {
        item_id: String,
        offer: Cents,
        rounds: u32,
    },
    /// The default reply was used (its cooldown starts).
    DefaultUsed,
}

/// Bargaining state per (account, item, buyer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BargainRow {
    pub rounds: u32,
    pub last_offer: Cents,
    pub updated_at: u64,
}

/// Our own sends not yet seen echoed back, per (account, cid, text fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingRow {
    pub pending: u32,
    pub at: u64,
}

/// Why a buyer message got no reply. Stored as its code; the status page shows the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatSkip {
    TooOld,
    Blacklisted,
    QuietHours,
    SystemNotice,
    TakenOver,
    Swallowed,
    NoAnswer,
    RateLimited,
    ModelFailed,
    Filtered,
}

impl ChatSkip {
    pub const ALL: [ChatSkip; 10] = [
        Self::TooOld,
        Self::Blacklisted,
        Self::QuietHours,
        Self::SystemNotice,
        Self::TakenOver,
        Self::Swallowed,
        Self::NoAnswer,
        Self::RateLimited,
        Self::ModelFailed,
        Self::Filtered,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::TooOld => "too_old",
            Self::Blacklisted => "blacklisted",
            Self::QuietHours => "quiet_hours",
            Self::SystemNotice => "system_notice",
            Self::TakenOver => "taken_over",
            Self::Swallowed => "swallowed",
            Self::NoAnswer => "no_answer",
            Self::RateLimited => "rate_limited",
            Self::ModelFailed => "model_failed",
            Self::Filtered => "filtered",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// What the seller reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooOld => "消息过旧（重连后的积压），未回复",
            Self::Blacklisted => "黑名单买家，未回复",
            Self::QuietHours => "免打扰时段，未回复",
            Self::SystemNotice => "系统消息，未回复",
            Self::TakenOver => "人工接管中，未回复",
            Self::Swallowed => "命中规则但设置为不回复",
            Self::NoAnswer => "没有可用的回复",
            Self::RateLimited => "回复频率超限，未回复",
            Self::ModelFailed => "模型出错，未回复",
            Self::Filtered => "已过滤，未回复",
        }
    }
}

/// Open replies found at start-up.
#[derive(Debug, Clone, Default)]
pub struct ChatRecovery {
    /// Claimed but never finished: the process stopped mid-send. Now `Unknown`.
    pub unknown: Vec<ReplyRow>,
    /// Planned, never claimed: provably not sent.
    pub planned: Vec<ReplyRow>,
    /// Conversations with buyer messages still waiting for a reply.
    pub pending: Vec<(String, String)>,
}
