//! 会话 (`/chats`): the most recent conversations the chat pipeline saw — the buyer's last
//! question, the last reply, which stage answered (or why nothing was sent), and whether the
//! bot is paused there because the seller took over. Reads the store itself (one scan of the
//! conversation rows, newest first); never shows a card key (replies never contain one: the
//! output guard blocks them).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::store::{ChatSkip, ConversationRow, Takeover};

use crate::status::page::{Built, Input};

/// Conversations listed.
const LIMIT: usize = 100;

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let now = input.now;
        let rows = input.ctx.store.call(|s| s.chat_recent(LIMIT)).await;
        let counts = input.ctx.store.call(|s| s.chat_reply_counts()).await;
        match (rows, counts) {
            (Ok(rows), Ok(counts)) => Built::Page(Box::new(ChatsPage {
                enabled: input.config.chat.is_enabled(),
                stages: input.config.chat.stages.iter().map(|s| s.name()).collect(),
                sent: counts.get("sent").copied().unwrap_or(0),
                unknown: counts.get("unknown").copied().unwrap_or(0),
                not_delivered: counts.get("not_delivered").copied().unwrap_or(0),
                conversations: rows.iter().map(|r| ChatRow::new(r, now)).collect(),
            })),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "Status page cannot read the conversations.");
                Built::Failed
            }
        }
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatsPage {
    /// The config has a `chat:` section.
    pub enabled: bool,
    pub stages: Vec<&'static str>,
    /// Replies by outcome (kept for the store's retention period).
    pub sent: u64,
    pub unknown: u64,
    pub not_delivered: u64,
    pub conversations: Vec<ChatRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatRow {
    pub account: String,
    pub cid: String,
    pub buyer_id: String,
    pub buyer_nick: Option<String>,
    pub item_id: Option<String>,
    pub last_question: Option<String>,
    pub last_question_at: Option<u64>,
    pub last_reply: Option<String>,
    pub last_reply_at: Option<u64>,
    /// Code: the answering stage (`llm`), `stage:state` for a reply that did not go out
    /// cleanly, or a skip reason.
    pub outcome: Option<String>,
    pub outcome_label: String,
    /// Why the last reply did not go out (an image upload that failed, …), in Chinese.
    pub note: Option<String>,
    pub takeover: &'static str,
    pub takeover_label: String,
    pub paused: bool,
    pub updated_at: u64,
}

impl ChatRow {
    fn new(r: &ConversationRow, now: u64) -> Self {
        Self {
            account: r.account.clone(),
            cid: r.cid.clone(),
            buyer_id: r.buyer_id.clone(),
            buyer_nick: r.buyer_nick.clone(),
            item_id: r.item_id.clone(),
            last_question: r.last_question.clone(),
            last_question_at: r.last_question_at,
            last_reply: r.last_reply.clone(),
            last_reply_at: r.last_reply_at,
            outcome_label: r.last_outcome.as_deref().map(outcome_label).unwrap_or_default(),
            outcome: r.last_outcome.clone(),
            note: r.last_note.as_deref().map(crate::why::shown_error),
            takeover: match r.takeover {
                Takeover::Auto => "auto",
                Takeover::PausedUntil { .. } if r.takeover.silences(now) => "paused",
                Takeover::PausedUntil { .. } => "auto",
                Takeover::Manual { .. } => "manual",
            },
            takeover_label: r.takeover.label(now),
            paused: r.takeover.silences(now),
            updated_at: r.updated_at,
        }
    }
}

/// `keywords` → 关键词回复; `llm:unknown` → AI 回复 · 结果未知; `too_old` → the skip label.
pub fn outcome_label(code: &str) -> String {
    if let Some(skip) = ChatSkip::from_code(code) {
        return skip.label().to_string();
    }
    let (stage, state) = code.split_once(':').unwrap_or((code, ""));
    let stage = match stage {
        "keywords" => "关键词回复",
        "order-status" => "订单状态回复",
        "bargain" => "议价回复",
        "llm" => "AI 回复",
        "default" => "兜底回复",
        other => other,
    };
    match state {
        "" => stage.to_string(),
        "unknown" => format!("{stage} · 发送结果未知（不会重发）"),
        "not_delivered" => format!("{stage} · 未送达"),
        "abandoned" => format!("{stage} · 已作废"),
        other => format!("{stage} · {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_in_chinese() {
        assert_eq!(outcome_label("keywords"), "关键词回复");
        assert_eq!(outcome_label("llm:unknown"), "AI 回复 · 发送结果未知（不会重发）");
        assert_eq!(outcome_label("taken_over"), "人工接管中，未回复");
    }
}
