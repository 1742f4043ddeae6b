//! Chat replies and the outgoing registry: "claim before call" for chat.
//!
//! A reply is committed with the inbound ids it answers ([`Store::chat_plan_reply`]); a second
//! run that finds one of those ids already answered gets `Stale` and sends nothing. Each
//! message of a reply is claimed ([`Store::chat_begin_send`], state `sending`, and its text
//! registered as outgoing) before the IM socket is called; finding `sending` again means the
//! process stopped mid-send, and the reply becomes `unknown`, never repeated. Chat is
//! at-most-once.
//!
//! The outgoing registry holds a fingerprint (never the text: delivery messages carry card keys)
//! of everything the daemon sends in a conversation, so the echo of our own send is never
//! mistaken for the seller typing by hand.

use redb::{ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use super::chat::{append_turn, load_conversation, save_conversation, settle_inbound, summary};
use super::chat_records::*;
use super::write_tx::WriteTx;
use super::{Result, Store, decode, encode, next_id};

pub(super) const REPLIES: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_replies");
/// Replies still `planned` or `sending`.
pub(super) const REPLIES_OPEN: TableDefinition<u64, ()> = TableDefinition::new("chat_replies_open");
/// (account, cid, text fingerprint) → our sends not yet echoed back.
pub(super) const OUTGOING: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("chat_outgoing");

/// How long an unconsumed outgoing registration can still match an echo.
const ECHO_WINDOW_MS: u64 = 24 * 3600 * 1000;

pub(super) fn create_tables(tx: &WriteTx) -> Result<()> {
    tx.replies()?;
    tx.replies_open()?;
    tx.outgoing()?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanOutcome {
    Planned(u64),
    /// One of the buyer messages was already answered or skipped: another run got there first.
    Stale,
}

/// May the next message of a reply go out?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginSend {
    Go {
        account: String,
        cid: String,
        buyer_id: String,
        text: String,
    },
    /// Go ahead with the reply's next image (after its texts).
    GoImage {
        account: String,
        cid: String,
        buyer_id: String,
        image: ReplyImage,
    },
    /// Every message of the reply is sent.
    Done,
    /// A claim was found unfinished: the process stopped mid-send. The reply is now `unknown`.
    OutcomeUnknown,
    /// The reply was closed (not delivered, unknown, abandoned) or does not exist.
    Closed,
}

/// How a claimed message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Accepted { message_id: Option<String> },
    NotDelivered { reason: String },
    Unknown { reason: String },
}

impl Store {
    /// Commit a reply with the buyer messages it answers and the state it changes.
    pub fn chat_plan_reply(&self, plan: &PlannedReply) -> Result<PlanOutcome> {
        self.plan_reply(plan, None)
    }

    /// Record a reply that cannot go out (one of its images could not be uploaded): it
    /// answers the buyer messages and is closed `not_delivered` at once with `note` (Chinese,
    /// shown on the 会话 page); nothing of it is sent and its effects are not applied.
    pub fn chat_reply_unsendable(&self, plan: &PlannedReply, note: &str) -> Result<PlanOutcome> {
        self.plan_reply(plan, Some(note))
    }

    fn plan_reply(&self, plan: &PlannedReply, unsendable: Option<&str>) -> Result<PlanOutcome> {
        let now = self.now();
        self.write(|tx| {
            let id = next_id(tx, "chat_reply")?;
            let account = plan.account.as_str();
            for msg in &plan.inbound {
                let answered = InboundState::Answered { reply_id: id };
                if settle_inbound(tx, account, msg, answered)?.is_none() {
                    return Err(super::StoreError::Rejected(STALE.into()));
                }
            }
            let row = ReplyRow {
                id,
                account: plan.account.clone(),
                cid: plan.cid.clone(),
                buyer_id: plan.buyer_id.clone(),
                inbound: plan.inbound.clone(),
                messages: plan.messages.clone(),
                stage: plan.stage.clone(),
                state: ReplyState::Planned,
                sent: 0,
                created_at: now,
                updated_at: now,
                note: None,
                images: plan.images.clone(),
            };
            if let Some(note) = unsendable {
                let mut row = row;
                close(tx, &mut row, ReplyState::NotDelivered, note, now)?;
                return Ok(PlanOutcome::Planned(id));
            }
            tx.replies()?.insert(id, encode(&row).as_slice())?;
            tx.replies_open()?.insert(id, ())?;
            apply_effects(tx, plan, now)?;
            Ok(PlanOutcome::Planned(id))
        })
        .or_else(|e| match e {
            // The aborted transaction changed nothing.
            super::StoreError::Rejected(m) if m == STALE => Ok(PlanOutcome::Stale),
            other => Err(other),
        })
    }

    /// Claim the next message of a reply. Its text is registered as outgoing in the same
    /// transaction, before the socket is called, so its echo can never look like the seller.
    pub fn chat_begin_send(&self, reply_id: u64) -> Result<BeginSend> {
        let now = self.now();
        self.write(|tx| {
            let Some(mut row) = load_reply(tx, reply_id)? else {
                return Ok(BeginSend::Closed);
            };
            match row.state {
                ReplyState::Sending => {
                    interrupted(tx, &mut row, now)?;
                    return Ok(BeginSend::OutcomeUnknown);
                }
                ReplyState::Planned => {}
                _ => return Ok(BeginSend::Closed),
            }
            if row.sent >= row.parts() {
                close(tx, &mut row, ReplyState::Sent, "", now)?;
                return Ok(BeginSend::Done);
            }
            let text = part_text(&row);
            row.state = ReplyState::Sending;
            row.updated_at = now;
            save_reply(tx, &row)?;
            register(tx, &row.account, &row.cid, &text, now)?;
            let image = row.sent.checked_sub(row.messages.len());
            let image = image.and_then(|i| row.images.get(i).cloned());
            Ok(match image {
                Some(image) => BeginSend::GoImage {
                    account: row.account,
                    cid: row.cid,
                    buyer_id: row.buyer_id,
                    image,
                },
                None => BeginSend::Go {
                    account: row.account,
                    cid: row.cid,
                    buyer_id: row.buyer_id,
                    text,
                },
            })
        })
    }

    /// Record how the claimed message ended; returns the reply's state afterwards.
    pub fn chat_finish_send(&self, reply_id: u64, result: &SendResult) -> Result<ReplyState> {
        let now = self.now();
        self.write(|tx| {
            let Some(mut row) = load_reply(tx, reply_id)? else {
                return Ok(ReplyState::Abandoned);
            };
            if row.state != ReplyState::Sending {
                return Ok(row.state);
            }
            let text = part_text(&row);
            match result {
                SendResult::Accepted { message_id } => {
                    row.sent += 1;
                    record_bot_turn(tx, &row, &text, message_id.clone(), now)?;
                    if row.sent >= row.parts() {
                        close(tx, &mut row, ReplyState::Sent, "", now)?;
                    } else {
                        row.state = ReplyState::Planned;
                        row.updated_at = now;
                        save_reply(tx, &row)?;
                    }
                }
                SendResult::NotDelivered { reason } => {
                    unregister(tx, &row.account, &row.cid, &text)?;
                    close(tx, &mut row, ReplyState::NotDelivered, reason, now)?;
                }
                SendResult::Unknown { reason } => {
                    // The buyer may have it: it belongs to the history the model sees.
                    record_bot_turn(tx, &row, &text, None, now)?;
                    close(tx, &mut row, ReplyState::Unknown, reason, now)?;
                }
            }
            Ok(row.state)
        })
    }

    /// Drop a planned reply before it is sent (a newer message, a takeover, a stale resume).
    pub fn chat_abandon(&self, reply_id: u64, note: &str) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            if let Some(mut row) = load_reply(tx, reply_id)? {
                if row.state == ReplyState::Planned {
                    close(tx, &mut row, ReplyState::Abandoned, note, now)?;
                }
            }
            Ok(())
        })
    }

    pub fn chat_reply(&self, reply_id: u64) -> Result<Option<ReplyRow>> {
        self.read(|tx| match tx.open_table(REPLIES)?.get(reply_id)? {
            Some(v) => Ok(Some(decode("chat_replies", v.value())?)),
            None => Ok(None),
        })
    }

    /// At start-up: claims left `sending` become `unknown` (never resent); `planned` replies
    /// and conversations with waiting buyer messages are returned for the runner to resume.
    pub fn chat_recover(&self) -> Result<ChatRecovery> {
        let now = self.now();
        self.write(|tx| {
            let ids: Vec<u64> = tx
                .replies_open()?
                .iter()?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?;
            let mut out = ChatRecovery::default();
            for id in ids {
                let Some(mut row) = load_reply(tx, id)? else {
                    tx.replies_open()?.remove(id)?;
                    continue;
                };
                match row.state {
                    ReplyState::Sending => {
                        interrupted(tx, &mut row, now)?;
                        out.unknown.push(row);
                    }
                    ReplyState::Planned => out.planned.push(row),
                    _ => {
                        tx.replies_open()?.remove(id)?;
                    }
                }
            }
            let mut last: Option<(String, String)> = None;
            for row in tx.chat_pending()?.iter()? {
                let (k, _) = row?;
                let (a, c, _, _) = k.value();
                if last.as_ref().is_some_and(|(la, lc)| la == a && lc == c) {
                    continue;
                }
                last = Some((a.to_string(), c.to_string()));
                out.pending.push((a.to_string(), c.to_string()));
            }
            Ok(out)
        })
    }

    /// Register a send that did not come from a chat reply (a delivery message), so its echo
    /// is recognised. Only a fingerprint is stored. An empty `cid` (the conversation is not
    /// known yet) matches the echo in any conversation of the account.
    pub fn register_outgoing(&self, account: &str, cid: &str, text: &str) -> Result<()> {
        let now = self.now();
        self.write(|tx| register(tx, account, cid, text, now))
    }

    /// Undo a registration for a send that provably did not go out.
    pub fn forget_outgoing(&self, account: &str, cid: &str, text: &str) -> Result<()> {
        self.write(|tx| unregister(tx, account, cid, text))
    }

    /// Drop finished rows older than `before_ms`: answered/skipped buyer message ids, closed
    /// replies and stale outgoing registrations. Buyer messages still pending that old are
    /// marked too old. Returns how many rows went.
    pub fn chat_prune(&self, before_ms: u64) -> Result<usize> {
        self.write(|tx| {
            let mut removed = 0;
            removed += prune_inbound(tx, before_ms)?;
            let mut old_replies = Vec::new();
            for row in tx.replies()?.iter()? {
                let (k, v) = row?;
                let reply: ReplyRow = decode("chat_replies", v.value())?;
                if !reply.state.is_open() && reply.updated_at < before_ms {
                    old_replies.push(k.value());
                }
            }
            let mut replies = tx.replies()?;
            for id in &old_replies {
                replies.remove(*id)?;
            }
            removed += old_replies.len();
            let mut stale = Vec::new();
            for row in tx.outgoing()?.iter()? {
                let (k, v) = row?;
                let out: OutgoingRow = decode("chat_outgoing", v.value())?;
                if out.at < before_ms {
                    let (a, c, f) = k.value();
                    stale.push((a.to_string(), c.to_string(), f.to_string()));
                }
            }
            let mut outgoing = tx.outgoing()?;
            for (a, c, f) in &stale {
                outgoing.remove((a.as_str(), c.as_str(), f.as_str()))?;
            }
            Ok(removed + stale.len())
        })
    }

    /// Sent replies per answering stage.
    pub fn chat_replies_by_stage(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        self.read(|tx| {
            let mut counts = std::collections::BTreeMap::new();
            for row in tx.open_table(REPLIES)?.iter()? {
                let reply: ReplyRow = decode("chat_replies", row?.1.value())?;
                if reply.state == ReplyState::Sent {
                    *counts.entry(reply.stage).or_insert(0) += 1;
                }
            }
            Ok(counts)
        })
    }

    /// Reply rows per state (for `/metrics` and the status page).
    pub fn chat_reply_counts(&self) -> Result<std::collections::BTreeMap<&'static str, u64>> {
        self.read(|tx| {
            let mut counts = std::collections::BTreeMap::new();
            for row in tx.open_table(REPLIES)?.iter()? {
                let reply: ReplyRow = decode("chat_replies", row?.1.value())?;
                *counts.entry(reply.state.as_str()).or_insert(0) += 1;
            }
            Ok(counts)
        })
    }
}

const STALE: &str = "chat reply is stale";

/// What an image message reads as in the conversation (its echo, the history).
pub const IMAGE_ECHO: &str = "[图片]";

/// The text of the reply's part `sent`: a message, or [`IMAGE_ECHO`] for an image.
fn part_text(row: &ReplyRow) -> String {
    match row.messages.get(row.sent) {
        Some(text) => text.clone(),
        None => IMAGE_ECHO.to_string(),
    }
}

fn load_reply(tx: &WriteTx, id: u64) -> Result<Option<ReplyRow>> {
    match tx.replies()?.get(id)? {
        Some(v) => Ok(Some(decode("chat_replies", v.value())?)),
        None => Ok(None),
    }
}

/// Every reply write; a reply that just reached the buyer counts for its stage's statistics
/// in this transaction.
fn save_reply(tx: &WriteTx, row: &ReplyRow) -> Result<()> {
    let mut replies = tx.replies()?;
    let newly_sent = row.state == ReplyState::Sent
        && match replies.get(row.id)? {
            Some(v) => decode::<ReplyRow>("chat_replies", v.value())?.state != ReplyState::Sent,
            None => true,
        };
    replies.insert(row.id, encode(row).as_slice())?;
    drop(replies);
    if newly_sent {
        super::rollup::count_reply(tx, row.updated_at, &row.account, &row.stage)?;
    }
    Ok(())
}

fn close(tx: &WriteTx, row: &mut ReplyRow, state: ReplyState, note: &str, now: u64) -> Result<()> {
    row.state = state;
    row.updated_at = now;
    if !note.is_empty() {
        row.note = Some(note.to_string());
    }
    save_reply(tx, row)?;
    tx.replies_open()?.remove(row.id)?;
    if let Some(mut convo) = load_conversation(tx, &row.account, &row.cid)? {
        convo.last_outcome = Some(match state {
            ReplyState::Sent => row.stage.clone(),
            other => format!("{}:{}", row.stage, other.as_str()),
        });
        convo.last_note = (state != ReplyState::Sent && !note.is_empty()).then(|| note.to_string());
        convo.updated_at = now;
        save_conversation(tx, &convo)?;
    }
    Ok(())
}

/// A claim found unfinished: the process stopped mid-send. The buyer may have the message,
/// so it joins the history, and the reply is closed as unknown.
fn interrupted(tx: &WriteTx, row: &mut ReplyRow, now: u64) -> Result<()> {
    if row.sent < row.parts() {
        record_bot_turn(tx, row, &part_text(row), None, now)?;
    }
    close(
        tx,
        row,
        ReplyState::Unknown,
        "进程在发送时中断，买家可能已收到",
        now,
    )
}

fn record_bot_turn(
    tx: &WriteTx,
    row: &ReplyRow,
    text: &str,
    message_id: Option<String>,
    now: u64,
) -> Result<()> {
    let Some(mut convo) = load_conversation(tx, &row.account, &row.cid)? else {
        return Ok(());
    };
    let turn = Turn {
        role: TurnRole::Bot,
        text: text.to_string(),
        at: now,
        message_id,
    };
    append_turn(tx, &mut convo, &turn)?;
    convo.last_reply = Some(summary(text));
    convo.last_reply_at = Some(now);
    convo.updated_at = now;
    save_conversation(tx, &convo)
}

fn apply_effects(tx: &WriteTx, plan: &PlannedReply, now: u64) -> Result<()> {
    let (account, cid) = (plan.account.as_str(), plan.cid.as_str());
    for effect in &plan.effects {
        match effect {
            ChatEffect::Once { key } => {
                tx.chat_once()?.insert((account, cid, key.as_str()), now)?;
            }
            ChatEffect::Bargain {
                item_id,
                offer,
                rounds,
            } => {
                let row = BargainRow {
                    rounds: *rounds,
                    last_offer: *offer,
                    updated_at: now,
                };
                tx.bargain()?.insert(
                    (account, item_id.as_str(), plan.buyer_id.as_str()),
                    encode(&row).as_slice(),
                )?;
            }
            ChatEffect::DefaultUsed => {
                if let Some(mut convo) = load_conversation(tx, account, cid)? {
                    convo.default_at = Some(now);
                    save_conversation(tx, &convo)?;
                }
            }
        }
    }
    Ok(())
}

/// Short fingerprint of a message text as the echo will carry it.
pub(super) fn fingerprint(text: &str) -> String {
    let digest = Sha256::digest(text.trim().as_bytes());
    hex::encode(&digest[..12])
}

pub(super) fn register(tx: &WriteTx, account: &str, cid: &str, text: &str, now: u64) -> Result<()> {
    let fp = fingerprint(text);
    let mut table = tx.outgoing()?;
    let mut row: OutgoingRow = match table.get((account, cid, fp.as_str()))? {
        Some(v) => decode("chat_outgoing", v.value())?,
        None => OutgoingRow {
            pending: 0,
            at: now,
        },
    };
    row.pending += 1;
    row.at = now;
    table.insert((account, cid, fp.as_str()), encode(&row).as_slice())?;
    Ok(())
}

pub(super) fn unregister(tx: &WriteTx, account: &str, cid: &str, text: &str) -> Result<()> {
    take_one(tx, account, cid, text, u64::MAX).map(|_| ())
}

/// Our echo? Consumes one registration of this text in this conversation if there is one.
pub(super) fn consume_echo(
    tx: &WriteTx,
    account: &str,
    cid: &str,
    text: &str,
    now: u64,
) -> Result<bool> {
    let not_before = now.saturating_sub(ECHO_WINDOW_MS);
    // A delivery into a conversation the daemon had to create is registered without a cid.
    Ok(take_one(tx, account, cid, text, not_before)?
        || take_one(tx, account, "", text, not_before)?)
}

fn take_one(tx: &WriteTx, account: &str, cid: &str, text: &str, not_before: u64) -> Result<bool> {
    let fp = fingerprint(text);
    let mut table = tx.outgoing()?;
    let row: Option<OutgoingRow> = match table.get((account, cid, fp.as_str()))? {
        Some(v) => Some(decode("chat_outgoing", v.value())?),
        None => None,
    };
    let Some(mut row) = row else {
        return Ok(false);
    };
    if row.pending == 0 || (not_before != u64::MAX && row.at < not_before) {
        return Ok(false);
    }
    row.pending -= 1;
    if row.pending == 0 {
        table.remove((account, cid, fp.as_str()))?;
    } else {
        table.insert((account, cid, fp.as_str()), encode(&row).as_slice())?;
    }
    Ok(true)
}

fn prune_inbound(tx: &WriteTx, before_ms: u64) -> Result<usize> {
    let mut old = Vec::new();
    let mut too_old = Vec::new();
    for row in tx.chat_inbound()?.iter()? {
        let (k, v) = row?;
        let r: InboundRow = decode("chat_inbound", v.value())?;
        if r.received_at >= before_ms {
            continue;
        }
        let (a, id) = k.value();
        if r.state == InboundState::Pending {
            too_old.push((a.to_string(), id.to_string()));
        } else {
            old.push((a.to_string(), id.to_string()));
        }
    }
    for (a, id) in &too_old {
        let why = InboundState::Skipped {
            reason: ChatSkip::TooOld.code().into(),
        };
        settle_inbound(tx, a, id, why)?;
    }
    let mut inbound = tx.chat_inbound()?;
    for (a, id) in &old {
        inbound.remove((a.as_str(), id.as_str()))?;
    }
    // History is bounded per conversation already; conversations are kept for the status page.
    Ok(old.len())
}
