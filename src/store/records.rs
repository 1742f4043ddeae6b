//! The rows the store keeps, serialized as MessagePack in redb values (`codec.rs`).
//!
//! The per-order records (`OrderRecord`, `DeliveryRecord`, `StatusLogEntry`, `CardRow`,
//! `StockLogEntry` and the types nested in them) are stored as positional arrays: a new field
//! goes LAST with `#[serde(default)]`, never `skip_serializing_if`, never reordered (the rules
//! in `codec.rs`; `codec_golden.rs` fails otherwise); their unit enums are stored as one-byte
//! codes (`#[serde(with = "super::coded")]`, `coded.rs`). The others are maps with field names, to
//! which fields are added with `#[serde(default)]` anywhere. The schema version in `meta`
//! guards the changes that need a migration.

use serde::{Deserialize, Serialize};

use crate::alert::EventKind;
use crate::order::{OrderStatus, ShipMode};
use crate::why::Why;

/// An order as the shop knows it: the seed's `orders` table plus account, SKU and quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    pub account: String,
    #[serde(default)]
    pub chat_id: Option<String>,
    #[serde(default)]
    pub buyer_id: Option<String>,
    #[serde(default)]
    pub buyer_nick: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub item_title: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    pub quantity: u32,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(with = "super::coded")]
    pub status: OrderStatus,
    #[serde(default)]
    pub payment_time: Option<u64>,
    #[serde(default)]
    pub ship_time: Option<u64>,
    #[serde(default, with = "super::coded::opt")]
    pub ship_method: Option<ShipMethod>,
    #[serde(default)]
    pub logistics_company: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    /// What was sent in chat, with card keys masked.
    #[serde(default)]
    pub ship_content: Option<String>,
    /// When the order was first seen paid (or past paid); the statistics count it that day.
    #[serde(default)]
    pub paid_at: Option<u64>,
    /// When the refund completed (退款成功).
    #[serde(default)]
    pub refunded_at: Option<u64>,
    /// When the order closed (交易关闭).
    #[serde(default)]
    pub closed_at: Option<u64>,
    pub created_time: u64,
    pub updated_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipMethod {
    Auto,
    Manual,
}

/// Who caused a status change: the seed's `action_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    Auto,
    Manual,
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusLogEntry {
    pub at: u64,
    #[serde(default, with = "super::coded::opt")]
    pub from: Option<OrderStatus>,
    #[serde(with = "super::coded")]
    pub to: OrderStatus,
    #[serde(with = "super::coded")]
    pub action: ActionType,
    pub operator: String,
    /// Free text a seller typed (courier and tracking number); empty otherwise.
    pub remark: String,
    /// Why the status moved, when we moved it.
    #[serde(default)]
    pub why: Option<Why>,
}

/// Where one order's delivery stands. The ledger is the single place that decides whether
/// anything may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Planned,
    Reserved,
    Scheduled,
    /// A send is in flight. Finding this state at start-up means the outcome is unknown.
    Sending,
    Sent,
    Confirming,
    Confirmed,
    /// Every step of the ship mode is done.
    Delivered,
    /// The last attempt provably did not reach the buyer; may be retried.
    FailedSafe,
    /// The outcome of a send is unknown; never retried automatically.
    NeedsHuman,
    /// Handed to the seller (physical item, no rule, short stock, shipping disabled).
    Manual,
    /// The seller recorded a shipment by hand.
    ShippedManually,
    /// The order closed or was refunded before anything reached the buyer.
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Reserved => "reserved",
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Confirming => "confirming",
            Self::Confirmed => "confirmed",
            Self::Delivered => "delivered",
            Self::FailedSafe => "failed_safe",
            Self::NeedsHuman => "needs_human",
            Self::Manual => "manual",
            Self::ShippedManually => "shipped_manually",
            Self::Cancelled => "cancelled",
        }
    }

    /// The delivery waits for the seller or for a retry after a failure.
    pub fn waits_for_someone(self) -> bool {
        matches!(self, Self::Manual | Self::NeedsHuman | Self::FailedSafe)
    }

    /// No further automatic work will happen in this state.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::NeedsHuman
                | Self::Manual
                | Self::ShippedManually
                | Self::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEvent {
    pub at: u64,
    #[serde(with = "super::coded")]
    pub state: DeliveryState,
    /// Chinese text composed by the store from typed facts (a seller's close-out); rows
    /// written before [`Why`] existed may hold English here, which pages do not show.
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub why: Option<Why>,
}

/// What a ledger history entry says: a typed reason, or Chinese text the store composed
/// from typed facts (close-out notes that name key ids and the seller's choice).
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    None,
    Why(Why),
    Said(String),
}

impl From<Why> for Note {
    fn from(w: Why) -> Self {
        Self::Why(w)
    }
}

impl From<String> for Note {
    fn from(s: String) -> Self {
        debug_assert!(
            s.chars().any(|c| !c.is_ascii()),
            "ledger notes a seller reads are Chinese or typed: {s:?}"
        );
        Self::Said(s)
    }
}

impl From<&str> for Note {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl LedgerEvent {
    pub fn new(at: u64, state: DeliveryState, note: impl Into<Note>) -> Self {
        let (note, why) = match note.into() {
            Note::None => (String::new(), None),
            Note::Why(w) => (String::new(), Some(w)),
            Note::Said(s) => (s, None),
        };
        Self {
            at,
            state,
            note,
            why,
        }
    }

    /// What a seller reads about this entry: the typed reason rendered, else the store's
    /// Chinese text; English from old rows is not shown.
    pub fn seller_text(&self) -> String {
        match &self.why {
            Some(w) => w.label(),
            None if self.note.chars().any(|c| !c.is_ascii()) => self.note.clone(),
            None => String::new(),
        }
    }
}

/// Which resource a delivery holds. Written by serde's derive (`["cards", pool, ids]` in a
/// positional row, `{"kind": "cards", ...}` in a map); read by hand in `codec.rs`, without the
/// buffering of serde's derive for an internally tagged enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Holding {
    Nothing,
    Cards { pool: String, ids: Vec<u64> },
    Stock { item_id: String, units: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub order_id: String,
    pub account: String,
    #[serde(with = "super::coded")]
    pub state: DeliveryState,
    #[serde(default, with = "super::coded::opt")]
    pub mode: Option<ShipMode>,
    #[serde(default)]
    pub item_id: Option<String>,
    pub holding: Holding,
    /// Wall-clock time the delay stage drew; drawn once, kept across restarts.
    #[serde(default)]
    pub due_ms: Option<u64>,
    pub attempts: u32,
    #[serde(default)]
    pub sent_at: Option<u64>,
    #[serde(default)]
    pub confirmed_at: Option<u64>,
    #[serde(default)]
    pub message_id: Option<String>,
    /// The raw error of the last failure, for developers (English); sellers read `why`.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why the delivery waits for the seller or a retry (`manual`, `needs_human`,
    /// `failed_safe`); `None` once it moves on.
    #[serde(default)]
    pub why: Option<Why>,
    pub config_version: String,
    /// Read with room for more entries: a request that reads a ledger row adds one.
    #[serde(deserialize_with = "super::codec::with_room")]
    pub history: Vec<LedgerEvent>,
    /// An uncertain send whose conversation is being read back (see `store/readback.rs`).
    #[serde(default)]
    pub read_back: Option<ReadBackState>,
    /// The chat messages of the delivery, each with its own sent marker (see
    /// `store/sending.rs`): a retry sends only the parts that did not go out.
    #[serde(default)]
    pub parts: Vec<PartMark>,
    /// The optional message after a successful delivery; sent at most once.
    #[serde(default)]
    pub follow_up: Option<PartMark>,
    /// What the last confirm call carried into the 无需寄件 form, written when it was claimed.
    #[serde(default)]
    pub proof: Option<ConfirmProof>,
}

/// The proof of delivery a confirm call carried (`delivery.proof`, `delivery.proof_images`),
/// recorded in the transaction that claims the call, so the status page shows what the
/// platform was sent.
///
/// Never a key: `trade_text` is the `tradeText` exactly as sent when the keys in it were
/// masked (the default); with `proof_cards: plain` the form got the keys in full and this
/// keeps the same text rendered over masked keys (`plain_cards` says so).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmProof {
    /// The confirm attempt that carried it.
    pub attempt: u32,
    /// When that attempt was claimed (unix ms).
    pub at: u64,
    /// `tradeText`; empty when the product has no proof text (or it could not be built).
    pub trade_text: String,
    /// The form got the keys in full (`proof_cards: plain`); `trade_text` shows them masked.
    pub plain_cards: bool,
    /// `picList`: the CDN URLs of the images, in order.
    pub pic_list: Vec<String>,
    /// Why the proof text could not be built (the shipment was confirmed without it).
    pub error: Option<String>,
}

/// What a part of a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    Text,
    Image,
}

/// Where one part of a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Not sent yet (or provably not delivered: a retry sends it).
    Pending,
    /// Claimed and handed to the marketplace; finding this after a crash means unknown.
    Sending,
    Sent,
    /// No answer came: the buyer may have it; never sent again automatically.
    Unknown,
}

impl PartState {
    /// The buyer has (or may have) this part.
    pub fn may_have_reached(self) -> bool {
        !matches!(self, Self::Pending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Unknown => "unknown",
        }
    }
}

/// One chat message of a delivery, with its sent marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMark {
    #[serde(with = "super::coded")]
    pub kind: PartKind,
    #[serde(with = "super::coded")]
    pub state: PartState,
    /// What the status page may show: the text with keys masked (shortened), or an image's
    /// file name. Never a key.
    pub summary: String,
    /// Short content hash, to tell whether a retry would send the same content.
    pub fingerprint: String,
    #[serde(default)]
    pub message_id: Option<String>,
    /// When it was last claimed or settled.
    #[serde(default)]
    pub at: u64,
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt did not deliver it, if it did not.
    #[serde(default)]
    pub last_error: Option<String>,
    /// An image part's CDN URL, as planned from the upload cache (`None` for text).
    #[serde(default)]
    pub url: Option<String>,
}

/// The read-back of one uncertain send: which attempt, since when, how it went so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBackState {
    /// `attempts` of the send being read back; a later attempt makes this one stale.
    pub attempt: u32,
    /// When that send was claimed (unix ms): only messages from then on can be it.
    pub since_ms: u64,
    /// Reads that could not read the conversation.
    pub unreadable: u32,
    /// Reads that found the conversation without the message.
    pub absent: u32,
    /// The part whose outcome is unknown (a delivery of several messages); `None` in rows
    /// written before parts existed (a single message).
    #[serde(default)]
    pub part: Option<usize>,
}

impl DeliveryRecord {
    pub fn new(order_id: &str, account: &str, config_version: &str, at: u64) -> Self {
        Self {
            order_id: order_id.to_string(),
            account: account.to_string(),
            state: DeliveryState::Planned,
            mode: None,
            item_id: None,
            holding: Holding::Nothing,
            due_ms: None,
            attempts: 0,
            sent_at: None,
            confirmed_at: None,
            message_id: None,
            last_error: None,
            why: None,
            config_version: config_version.to_string(),
            history: vec![LedgerEvent::new(at, DeliveryState::Planned, Note::None)],
            read_back: None,
            parts: Vec::new(),
            follow_up: None,
            proof: None,
        }
    }

    /// A send is in flight (a crash now leaves its outcome unknown): the step is `sending`
    /// and one of its parts is (rows from before parts: the step alone says so).
    pub fn send_in_flight(&self) -> bool {
        self.state == DeliveryState::Sending
            && (self.parts.is_empty() || self.parts.iter().any(|p| p.state == PartState::Sending))
    }

    /// Whether any content of this delivery reached (or may have reached) the buyer: the
    /// whole message was accepted, a part was or may have been, or the outcome is unknown.
    /// Keys of such a delivery are never given back by a refund, a re-plan or `orders ship`.
    pub fn anything_sent(&self) -> bool {
        self.sent_at.is_some()
            || self.state == DeliveryState::NeedsHuman
            || self.parts.iter().any(|p| p.state.may_have_reached())
    }

    /// Move to `state` with a history entry. A problem reason becomes the delivery's `why`;
    /// a state that no longer waits for anyone clears it.
    pub fn set_state(&mut self, state: DeliveryState, at: u64, note: impl Into<Note>) {
        self.state = state;
        let event = LedgerEvent::new(at, state, note);
        match &event.why {
            Some(w) if w.is_problem() => self.why = Some(w.clone()),
            _ if !state.waits_for_someone() => self.why = None,
            _ => {}
        }
        self.history.push(event);
    }

    /// A history entry that does not change the state.
    pub fn note(&mut self, at: u64, note: impl Into<Note>) {
        let event = LedgerEvent::new(at, self.state, note);
        if let Some(w) = event.why.as_ref().filter(|w| w.is_problem()) {
            self.why = Some(w.clone());
        }
        self.history.push(event);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    Available,
    Reserved,
    Delivered,
    Revoked,
}

impl CardState {
    pub const ALL: [CardState; 4] = [
        Self::Available,
        Self::Reserved,
        Self::Delivered,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Delivered => "delivered",
            Self::Revoked => "revoked",
        }
    }
}

/// One card key. The secret never leaves the store except into a delivery message.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRow {
    pub secret: String,
    #[serde(with = "super::coded")]
    pub state: CardState,
    #[serde(default)]
    pub order_id: Option<String>,
    /// A reusable key (a shared link, a public code) is never used up.
    #[serde(default)]
    pub reusable: bool,
    pub imported_at: u64,
    #[serde(default)]
    pub updated_at: u64,
}

impl std::fmt::Debug for CardRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRow")
            .field("secret", &mask_secret(&self.secret))
            .field("state", &self.state)
            .field("order_id", &self.order_id)
            .field("reusable", &self.reusable)
            .finish()
    }
}

/// The most characters a mask keeps at each end of a key.
const MASK_KEEP_MAX: usize = 3;

/// `ABCD-1234-WXYZ` → `A************Z`: enough to recognise, not enough to use.
///
/// At most a quarter of a key shows (an eighth at each end, at most [`MASK_KEEP_MAX`] each), so
/// an 8-digit PIN keeps one digit per end and a key under 8 characters shows none; no run of
/// [`LEAK_WINDOW`] characters of the key ever survives.
pub fn mask_secret(s: &str) -> String {
    // One string, built in place: every delivery masks its keys on the hot path.
    let len = s.chars().count();
    let keep = (len / 8).min(MASK_KEEP_MAX);
    let mut masked = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        masked.push(if i < keep || i + keep >= len { c } else { '*' });
    }
    masked
}

/// A run of this many characters of a key counts as the key leaking.
pub const LEAK_WINDOW: usize = 8;

/// Whether `text` shows any of `keys`, or a [`LEAK_WINDOW`]-character piece of one, in any
/// letter case and also after percent-decoding (a `code=` link). Texts that do are not stored
/// or shown (issue 10 D5); a key shorter than the window counts only whole.
pub fn reveals_key(text: &str, keys: &[String]) -> bool {
    let plain = text.to_lowercase();
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .to_lowercase();
    // One buffer for every window of every key, not a string per window.
    let mut piece = String::new();
    keys.iter().any(|key| {
        let key: Vec<char> = key.to_lowercase().chars().collect();
        let width = LEAK_WINDOW.min(key.len());
        width > 0
            && key.windows(width).any(|w| {
                piece.clear();
                piece.extend(w);
                plain.contains(piece.as_str()) || decoded.contains(piece.as_str())
            })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockAction {
    Sold,
    Restock,
    Adjust,
    Reserve,
    Release,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockLogEntry {
    pub at: u64,
    /// An item id for counted stock, `pool:<name>` for card pools.
    pub subject: String,
    #[serde(with = "super::coded")]
    pub action: StockAction,
    pub quantity_change: i64,
    pub remaining: i64,
    #[serde(default)]
    pub order_id: Option<String>,
}

/// Counted stock for a product with `stock: N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StockRow {
    /// The quantity the config declared when last synced.
    pub configured: u32,
    /// Units reserved or sold (net of releases).
    pub committed: u32,
}

impl StockRow {
    pub fn remaining(&self) -> i64 {
        i64::from(self.configured) - i64::from(self.committed)
    }
}

/// A unit of durable pipeline work: run `order_id`'s pipeline from stage `stage` at `due_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub order_id: String,
    /// Index in the stage list of the config that scheduled the job.
    pub stage: usize,
    /// Stage name, so a job survives a reload that moved stages around.
    pub stage_name: String,
    pub due_ms: u64,
    pub config_version: String,
    pub created_at: u64,
    /// An after-sale task instead of an order's pipeline (`order_id` is then the task's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<super::aftersale::TaskKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub id: u64,
    pub event: EventKind,
    pub channel: String,
    /// Channels to try, in order, if this one fails permanently.
    #[serde(default)]
    pub fallback: Vec<String>,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub order_id: Option<String>,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_at: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: u64,
    #[serde(default)]
    pub sent_at: Option<u64>,
    /// Rows of one alert share a group; the fallback chain starts only when all of them failed.
    #[serde(default)]
    pub group: u64,
    /// Short facts for channels that take parameters instead of text (SMS templates, webhook data).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// How often an identical alert was suppressed while this one stood for it.
    #[serde(default)]
    pub repeats: u32,
    #[serde(default)]
    pub quiet: Option<Quiet>,
    #[serde(default)]
    pub problem: Option<ProblemMark>,
    /// How the last attempt was classified: `retryable`, `permanent` or `quota`.
    #[serde(default)]
    pub last_class: Option<String>,
}

/// A notification ready to be written to the outbox in the caller's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxDraft {
    pub event: EventKind,
    pub channel: String,
    pub fallback: Vec<String>,
    pub title: String,
    pub text: String,
    pub order_id: Option<String>,
    pub group: u64,
    pub vars: std::collections::BTreeMap<String, String>,
    /// Drop this draft if one with the same key went to the same channel within the window.
    pub quiet: Option<Quiet>,
    pub problem: Option<ProblemMark>,
}

/// De-duplication and cool-down: one alert per `key` and channel per `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiet {
    pub key: String,
    pub window_ms: u64,
}

/// Links an alert to an ongoing problem (a login that expired), so that the recovery message
/// goes out once, and only to channels that heard about the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemMark {
    Opens(String),
    Clears(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: u64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}
