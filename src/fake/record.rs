//! What the fake saw the client do, for tests to assert on: chat messages it sent, consign
//! calls it made, and per-account connection and call counters.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// How the fake answered one `sendByReceiverScope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendReply {
    /// `code 200` with `body.messageId`.
    Accepted { message_id: String },
    /// `code 200` with `body.reason` (content security, [`super::Fault::RejectSends`]).
    Rejected { reason: String },
    /// A non-200 code (malformed request, unknown conversation, zombie connection).
    Refused { code: u16, reason: String },
    /// No answer at all ([`super::Fault::LoseSendResponses`],
    /// [`super::Fault::LeaveSendsUnanswered`]).
    Withheld,
    /// The right mid and `body.messageId`, but no `code`
    /// ([`super::Fault::AnswerSendsWithoutCode`]).
    AnsweredWithoutCode { message_id: String },
    /// A `uuid` this account already sent: answered like the first, not delivered again.
    Duplicate { message_id: String },
}

/// One chat message the client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentChat {
    /// The account (connection) that sent it.
    pub account: String,
    /// Conversation id, without `@goofish`.
    pub cid: String,
    /// `actualReceivers`, without `@goofish`.
    pub receivers: Vec<String>,
    /// `text.text` of a text message; `[图片]` for images; empty otherwise.
    pub text: String,
    /// The request's `headers.mid`.
    pub mid: String,
    /// The client's `uuid`.
    pub uuid: String,
    /// The decoded content JSON (`custom.data`), `Null` if undecodable.
    pub content: Value,
    /// Whether it reached the conversation (a buyer would see it). False for rejected or
    /// refused sends and for sends whose receivers miss the peer (zn PR #326: such sends
    /// are answered but silently undelivered).
    pub delivered: bool,
    pub reply: SendReply,
}

/// One consign (confirm shipment) call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consign {
    pub account: String,
    pub order_id: String,
    /// True only for the call that actually shipped the order.
    pub accepted: bool,
    /// The first `ret` element answered.
    pub ret: String,
    /// Which consign API was called (`…logistic.consign.dummy` or the seller-centre
    /// `…logistics.merchant.consign.dummy`).
    pub api: String,
    /// The proof of delivery written into the 无需寄件 form (`tradeText`), as received.
    pub trade_text: String,
    /// Image URLs of the form (`picList`).
    pub pic_list: Vec<String>,
}

/// One image upload the client made (`stream-upload.goofish.com/api/upload.api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUpload {
    /// The uploading account (`unb` of the cookies), empty without a session.
    pub account: String,
    /// The multipart part's file name.
    pub file_name: String,
    /// The part's `Content-Type`.
    pub mime: String,
    /// Size of the uploaded bytes.
    pub bytes: usize,
    /// The CDN URL answered; empty when the upload was refused or failed.
    pub url: String,
}

/// Per-account counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// WebSocket connections attributed to the account (by handshake cookie or `/reg`).
    pub connections: u32,
    /// Successful `/reg`s.
    pub regs: u32,
    /// `/reg`s answered 401.
    pub reg_failures: u32,
    /// Connections currently registered.
    pub live: u32,
    /// `ackDiff` requests (after which a connection receives pushes).
    pub syncs: u32,
    /// Heartbeats (`/!`) answered.
    pub heartbeats: u32,
    /// ACKs that matched a push sent on that connection.
    pub acks: u32,
    /// ACK-shaped frames that matched no outstanding push (duplicates, strays).
    pub stray_acks: u32,
    /// Push frames written to the account's connections.
    pub pushes_sent: u32,
    /// Pushes that reached no connection (offline, not synced, zombie).
    pub pushes_lost: u32,
    /// `sendByReceiverScope` requests.
    pub sends: u32,
    /// mtop calls by API name (every attempt, including failed ones).
    pub mtop_calls: BTreeMap<String, u32>,
    /// mtop calls refused for a missing or stale `_m_h5_tk` (answered with a fresh one).
    pub token_refusals: u32,
    /// The last mtop call's browser headers (`user-agent`, `accept-encoding`, `sec-ch-ua*`;
    /// never the cookie).
    pub mtop_headers: BTreeMap<String, String>,
    /// mtop answers sent gzip-compressed (the client offered `accept-encoding: gzip`).
    pub compressed_answers: u32,
    /// The `ua` header of the last `/reg`.
    pub reg_ua: String,
    /// `listUserMessages` requests (read-backs).
    pub history_reads: u32,
}

impl ConnStats {
    /// Registered and synced (so pushes reach it) at least `times` times, and connected now.
    pub fn connected(&self, times: u32) -> bool {
        self.regs >= times && self.syncs >= times && self.live >= 1
    }

    /// Pushes sent and not (yet) acknowledged.
    pub fn unacked(&self) -> u32 {
        self.pushes_sent.saturating_sub(self.acks)
    }

    /// mtop calls made to `api`.
    pub fn calls(&self, api: &str) -> u32 {
        self.mtop_calls.get(api).copied().unwrap_or(0)
    }
}

/// The recordings.
#[derive(Default)]
pub(crate) struct Recorder {
    pub sent: Vec<SentChat>,
    pub consigns: Vec<Consign>,
    pub uploads: Vec<FakeUpload>,
    stats: HashMap<String, ConnStats>,
}

impl Recorder {
    /// Counters of `account` (created on first use; `""` collects anonymous calls).
    pub(crate) fn stats_mut(&mut self, account: &str) -> &mut ConnStats {
        self.stats.entry(account.to_owned()).or_default()
    }

    pub(crate) fn stats(&self, account: &str) -> ConnStats {
        self.stats.get(account).cloned().unwrap_or_default()
    }

    pub(crate) fn mtop_call(&mut self, account: Option<&str>, api: &str) {
        let calls = &mut self.stats_mut(account.unwrap_or_default()).mtop_calls;
        *calls.entry(api.to_owned()).or_default() += 1;
    }
}
