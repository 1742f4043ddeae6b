//! Chat state: buyer messages seen, conversations, their history, takeover, reply-once markers
//! and bargaining rounds. Replies and the outgoing registry are in `chat_send.rs`.
//!
//! Every buyer message is recorded once by `(account, message id)` before any stage runs, so a
//! re-pushed or re-synced message is recognised as a duplicate by the store, not by memory.
//! The account's own messages go through [`Store::chat_observe_own`], which tells our echoes
//! (registered before each send) from the seller typing by hand, and applies the takeover
//! rule in the same transaction.

use std::collections::BTreeSet;

use redb::{ReadableTable, TableDefinition};

use super::chat_records::*;
use super::chat_send;
use super::write_tx::WriteTx;
use super::{Result, Store, decode, encode};

pub(super) const INBOUND: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("chat_inbound");
/// Pending buyer messages per conversation: (account, cid, at, message id).
pub(super) const PENDING: TableDefinition<(&str, &str, u64, &str), ()> =
    TableDefinition::new("chat_pending");
pub(super) const CONVERSATIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("chat_conversations");
pub(super) const HISTORY: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("chat_history");
/// Reply-once markers: (account, cid, rule key) → when.
pub(super) const ONCE: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("chat_once");
/// Bargaining rounds: (account, item, buyer).
pub(super) const BARGAIN: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("chat_bargain");

/// History turns kept per conversation; older ones are dropped as new ones arrive.
pub const HISTORY_KEEP: u64 = 40;
/// Longest question or reply text kept on a conversation row for the status page.
const SUMMARY_CHARS: usize = 120;

pub(super) fn create_tables(tx: &WriteTx) -> Result<()> {
    tx.chat_inbound()?;
    tx.chat_pending()?;
    tx.conversations()?;
    tx.chat_history()?;
    tx.chat_once()?;
    tx.bargain()?;
    chat_send::create_tables(tx)
}

/// True when the chat tables exist (a store made before chat lacks them until first opened).
pub(super) fn tables_exist(tx: &redb::ReadTransaction) -> Result<bool> {
    match tx.open_table(chat_send::OUTGOING) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Was a buyer message new?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    New,
    /// Seen before (a re-push, a re-sync, a second connection).
    Duplicate,
}

/// What the account's own message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMessage {
    /// The echo of something the daemon sent.
    Echo,
    /// The seller typed it; the conversation is now in this state.
    Seller(Takeover),
    /// Seen before.
    Duplicate,
}

/// The seller's takeover rule, as the takeover stage configures it.
#[derive(Debug, Clone)]
pub struct TakeoverRule {
    pub pause_ms: u64,
    pub toggle: String,
}

/// Everything the chat stages read about one conversation, from one read transaction.
#[derive(Debug, Clone, Default)]
pub struct ChatSnapshot {
    pub conversation: Option<ConversationRow>,
    /// Oldest first, at most the number asked for.
    pub history: Vec<Turn>,
    /// Reply-once rule keys already answered here.
    pub once: BTreeSet<String>,
    /// Bargaining state for (account, item, buyer), if an item is known.
    pub bargain: Option<BargainRow>,
    /// Buyer messages waiting for a reply, oldest first: (message id, row).
    pub pending: Vec<(String, InboundRow)>,
}

impl Store {
    /// Record a buyer message (once): the inbound row, the pending index, the conversation and
    /// a history turn, in one transaction.
    pub fn chat_record_inbound(&self, msg: &NewInbound) -> Result<InboundOutcome> {
        let now = self.now();
        self.write(|tx| {
            let mut inbound = tx.chat_inbound()?;
            if inbound
                .get((msg.account.as_str(), msg.message_id.as_str()))?
                .is_some()
            {
                return Ok(InboundOutcome::Duplicate);
            }
            let row = InboundRow {
                cid: msg.cid.clone(),
                buyer_id: msg.buyer_id.clone(),
                text: msg.text.clone(),
                at: msg.at,
                received_at: now,
                state: InboundState::Pending,
            };
            inbound.insert(
                (msg.account.as_str(), msg.message_id.as_str()),
                encode(&row).as_slice(),
            )?;
            tx.chat_pending()?.insert(
                (
                    msg.account.as_str(),
                    msg.cid.as_str(),
                    msg.at,
                    msg.message_id.as_str(),
                ),
                (),
            )?;
            let mut convo = load_conversation(tx, &msg.account, &msg.cid)?
                .unwrap_or_else(|| new_conversation(msg, now));
            if msg.buyer_nick.is_some() {
                convo.buyer_nick.clone_from(&msg.buyer_nick);
            }
            if msg.item_id.is_some() {
                convo.item_id.clone_from(&msg.item_id);
            }
            convo.last_question = Some(summary(&msg.text));
            convo.last_question_at = Some(msg.at);
            let turn = Turn {
                role: TurnRole::Buyer,
                text: msg.text.clone(),
                at: msg.at,
                message_id: Some(msg.message_id.clone()),
            };
            append_turn(tx, &mut convo, &turn)?;
            convo.updated_at = now;
            save_conversation(tx, &convo)?;
            Ok(InboundOutcome::New)
        })
    }

    /// Mark buyer messages as deliberately unanswered.
    pub fn chat_skip(&self, account: &str, message_ids: &[String], why: ChatSkip) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let mut cid_seen = None;
            for id in message_ids {
                if let Some(row) = settle_inbound(
                    tx,
                    account,
                    id,
                    InboundState::Skipped {
                        reason: why.code().into(),
                    },
                )? {
                    cid_seen = Some(row.cid);
                }
            }
            if let Some(cid) = cid_seen {
                if let Some(mut convo) = load_conversation(tx, account, &cid)? {
                    convo.last_outcome = Some(why.code().into());
                    convo.last_note = None;
                    convo.updated_at = now;
                    save_conversation(tx, &convo)?;
                }
            }
            Ok(())
        })
    }

    /// Everything the stages read about a conversation.
    pub fn chat_snapshot(
        &self,
        account: &str,
        cid: &str,
        item_id: Option<&str>,
        buyer_id: &str,
        history_turns: usize,
    ) -> Result<ChatSnapshot> {
        self.read(|tx| {
            let convo: Option<ConversationRow> =
                match tx.open_table(CONVERSATIONS)?.get((account, cid))? {
                    Some(v) => Some(decode("chat_conversations", v.value())?),
                    None => None,
                };
            let mut history = Vec::new();
            if let Some(c) = &convo {
                let from = c.next_seq.saturating_sub(history_turns as u64);
                for row in tx
                    .open_table(HISTORY)?
                    .range((account, cid, from)..(account, cid, u64::MAX))?
                {
                    history.push(decode("chat_history", row?.1.value())?);
                }
            }
            let mut once = BTreeSet::new();
            for row in tx.open_table(ONCE)?.range((account, cid, "")..)? {
                let (k, _) = row?;
                let (a, c, key) = k.value();
                if a != account || c != cid {
                    break;
                }
                once.insert(key.to_string());
            }
            let bargain = match item_id {
                Some(item) => match tx.open_table(BARGAIN)?.get((account, item, buyer_id))? {
                    Some(v) => Some(decode("chat_bargain", v.value())?),
                    None => None,
                },
                None => None,
            };
            let pending = pending_in(tx, account, cid)?;
            Ok(ChatSnapshot {
                conversation: convo,
                history,
                once,
                bargain,
                pending,
            })
        })
    }

    /// The buyer messages of a conversation still waiting for a reply, oldest first.
    pub fn chat_pending(&self, account: &str, cid: &str) -> Result<Vec<(String, InboundRow)>> {
        self.read(|tx| pending_in(tx, account, cid))
    }

    pub fn chat_conversation(&self, account: &str, cid: &str) -> Result<Option<ConversationRow>> {
        self.read(
            |tx| match tx.open_table(CONVERSATIONS)?.get((account, cid))? {
                Some(v) => Ok(Some(decode("chat_conversations", v.value())?)),
                None => Ok(None),
            },
        )
    }

    /// The most recently active conversations, newest first.
    pub fn chat_recent(&self, limit: usize) -> Result<Vec<ConversationRow>> {
        self.read(|tx| {
            let mut all: Vec<ConversationRow> = Vec::new();
            for row in tx.open_table(CONVERSATIONS)?.iter()? {
                all.push(decode("chat_conversations", row?.1.value())?);
            }
            all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
            all.truncate(limit);
            Ok(all)
        })
    }

    /// The account's own message in a conversation: our echo (consumes one registration) or
    /// the seller typing, which pauses or toggles the conversation per `rule`.
    pub fn chat_observe_own(
        &self,
        account: &str,
        cid: &str,
        message_id: &str,
        text: &str,
        at: u64,
        rule: Option<&TakeoverRule>,
    ) -> Result<OwnMessage> {
        let now = self.now();
        self.write(|tx| {
            {
                let mut inbound = tx.chat_inbound()?;
                if inbound.get((account, message_id))?.is_some() {
                    return Ok(OwnMessage::Duplicate);
                }
                let row = InboundRow {
                    cid: cid.to_string(),
                    buyer_id: String::new(),
                    text: String::new(),
                    at,
                    received_at: now,
                    state: InboundState::Own,
                };
                inbound.insert((account, message_id), encode(&row).as_slice())?;
            }
            if chat_send::consume_echo(tx, account, cid, text, now)? {
                return Ok(OwnMessage::Echo);
            }
            let Some(mut convo) = load_conversation(tx, account, cid)? else {
                // The seller wrote first in a conversation the bot never saw: nothing to pause
                // yet, but remember it so a later buyer message sees the takeover.
                let mut convo = ConversationRow::new(account, cid, "", now);
                let state = seller_spoke(&mut convo, tx, text, message_id, at, rule)?;
                save_conversation(tx, &convo)?;
                return Ok(OwnMessage::Seller(state));
            };
            let state = seller_spoke(&mut convo, tx, text, message_id, at, rule)?;
            convo.updated_at = now;
            save_conversation(tx, &convo)?;
            Ok(OwnMessage::Seller(state))
        })
    }

    /// Add earlier turns to a conversation's history (`chat-test --history`): they shape what
    /// the model sees, but are not buyer messages waiting for a reply.
    pub fn chat_append_history(
        &self,
        account: &str,
        cid: &str,
        buyer_id: &str,
        turns: &[Turn],
    ) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let mut convo = load_conversation(tx, account, cid)?.unwrap_or_else(|| {
                new_conversation(
                    &NewInbound {
                        account: account.to_string(),
                        cid: cid.to_string(),
                        message_id: String::new(),
                        buyer_id: buyer_id.to_string(),
                        buyer_nick: None,
                        item_id: None,
                        text: String::new(),
                        at: now,
                    },
                    now,
                )
            });
            for turn in turns {
                append_turn(tx, &mut convo, turn)?;
            }
            save_conversation(tx, &convo)
        })
    }

    /// Set a conversation's takeover state directly (a seller command).
    pub fn chat_set_takeover(&self, account: &str, cid: &str, state: Takeover) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            let Some(mut convo) = load_conversation(tx, account, cid)? else {
                return Ok(false);
            };
            convo.takeover = state;
            convo.updated_at = now;
            save_conversation(tx, &convo)?;
            Ok(true)
        })
    }
}

/// The seller's own words: a history turn, then the takeover rule.
fn seller_spoke(
    convo: &mut ConversationRow,
    tx: &WriteTx,
    text: &str,
    message_id: &str,
    at: u64,
    rule: Option<&TakeoverRule>,
) -> Result<Takeover> {
    let turn = Turn {
        role: TurnRole::Seller,
        text: text.to_string(),
        at,
        message_id: Some(message_id.to_string()),
    };
    append_turn(tx, convo, &turn)?;
    if let Some(rule) = rule {
        convo.takeover = next_takeover(convo.takeover, rule, text.trim(), at);
    }
    Ok(convo.takeover)
}

/// The takeover rule: the toggle flips manual mode; any other message pauses for `pause`
/// from the time it was written (so an old message from a backlog pauses nothing now).
pub fn next_takeover(current: Takeover, rule: &TakeoverRule, text: &str, at: u64) -> Takeover {
    if !rule.toggle.is_empty() && text == rule.toggle.trim() {
        return match current {
            Takeover::Manual { .. } => Takeover::Auto,
            _ => Takeover::Manual { since: at },
        };
    }
    match current {
        Takeover::Manual { .. } => current,
        Takeover::PausedUntil { until } => Takeover::PausedUntil {
            until: until.max(at.saturating_add(rule.pause_ms)),
        },
        Takeover::Auto => Takeover::PausedUntil {
            until: at.saturating_add(rule.pause_ms),
        },
    }
}

fn new_conversation(msg: &NewInbound, now: u64) -> ConversationRow {
    ConversationRow {
        buyer_nick: msg.buyer_nick.clone(),
        item_id: msg.item_id.clone(),
        ..ConversationRow::new(&msg.account, &msg.cid, &msg.buyer_id, now)
    }
}

pub(super) fn summary(text: &str) -> String {
    let mut s: String = text.chars().take(SUMMARY_CHARS).collect();
    if text.chars().count() > SUMMARY_CHARS {
        s.push('…');
    }
    s
}

pub(super) fn load_conversation(
    tx: &WriteTx,
    account: &str,
    cid: &str,
) -> Result<Option<ConversationRow>> {
    match tx.conversations()?.get((account, cid))? {
        Some(v) => Ok(Some(decode("chat_conversations", v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn save_conversation(tx: &WriteTx, convo: &ConversationRow) -> Result<()> {
    tx.conversations()?.insert(
        (convo.account.as_str(), convo.cid.as_str()),
        encode(convo).as_slice(),
    )?;
    Ok(())
}

/// Append a history turn and drop the ones beyond [`HISTORY_KEEP`].
pub(super) fn append_turn(tx: &WriteTx, convo: &mut ConversationRow, turn: &Turn) -> Result<()> {
    let mut history = tx.chat_history()?;
    let (account, cid) = (convo.account.as_str(), convo.cid.as_str());
    history.insert((account, cid, convo.next_seq), encode(turn).as_slice())?;
    convo.next_seq += 1;
    if convo.next_seq > HISTORY_KEEP {
        let drop_below = convo.next_seq - HISTORY_KEEP;
        // Only the one turn that just fell out: earlier ones went the same way.
        history.remove((account, cid, drop_below - 1))?;
    }
    Ok(())
}

/// Move a pending inbound message to a final state; returns its row if it was pending.
pub(super) fn settle_inbound(
    tx: &WriteTx,
    account: &str,
    message_id: &str,
    state: InboundState,
) -> Result<Option<InboundRow>> {
    let mut inbound = tx.chat_inbound()?;
    let row: Option<InboundRow> = match inbound.get((account, message_id))? {
        Some(v) => Some(decode("chat_inbound", v.value())?),
        None => None,
    };
    let Some(mut row) = row.filter(|r| r.state == InboundState::Pending) else {
        return Ok(None);
    };
    tx.chat_pending()?
        .remove((account, row.cid.as_str(), row.at, message_id))?;
    row.state = state;
    inbound.insert((account, message_id), encode(&row).as_slice())?;
    Ok(Some(row))
}

fn pending_in(
    tx: &redb::ReadTransaction,
    account: &str,
    cid: &str,
) -> Result<Vec<(String, InboundRow)>> {
    let pending = tx.open_table(PENDING)?;
    let inbound = tx.open_table(INBOUND)?;
    let mut out = Vec::new();
    for row in pending.range((account, cid, 0u64, "")..)? {
        let (k, _) = row?;
        let (a, c, _, id) = k.value();
        if a != account || c != cid {
            break;
        }
        if let Some(v) = inbound.get((account, id))? {
            out.push((id.to_string(), decode("chat_inbound", v.value())?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> TakeoverRule {
        TakeoverRule {
            pause_ms: 30 * 60_000,
            toggle: "。".into(),
        }
    }

    #[test]
    fn takeover_rule() {
        let r = rule();
        assert_eq!(
            next_takeover(Takeover::Auto, &r, "稍等我看看", 1000),
            Takeover::PausedUntil {
                until: 1000 + 30 * 60_000
            }
        );
        // a later manual message extends, an older one never shortens
        let paused = Takeover::PausedUntil { until: 5_000_000 };
        assert_eq!(
            next_takeover(paused, &r, "hi", 10),
            Takeover::PausedUntil { until: 5_000_000 }
        );
        // the toggle flips, and a plain message in manual mode keeps it manual
        let manual = next_takeover(Takeover::Auto, &r, "。", 7);
        assert_eq!(manual, Takeover::Manual { since: 7 });
        assert_eq!(next_takeover(manual, &r, "好的", 9), manual);
        assert_eq!(next_takeover(manual, &r, "。", 11), Takeover::Auto);
        assert!(manual.silences(u64::MAX));
        assert!(!Takeover::Auto.silences(0));
        assert!(!Takeover::PausedUntil { until: 5 }.silences(5));
    }
}
