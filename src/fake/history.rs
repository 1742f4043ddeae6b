//! `/r/MessageManager/listUserMessages` (reference §4.8): a conversation's messages, newest
//! first, in pages under a cursor. The answer's shape follows the reference and the clients
//! that read it: `cv-cat/XianYuApis` `goofish_live.py` (`list_all_conversations`: body
//! `["<cid>@goofish", false, 9007199254740991, 20, false]`, pages on `hasMore`/`nextCursor`,
//! reads `message.extension.senderUserId` and the base64 `content.custom.data`) and
//! `zhinianboke/xianyu-auto-reply` `backend-web/app/services/chat_new/im_client.py`
//! (`get_messages`: the same body, the answer's `body` with `hasMore`, `nextCursor`,
//! `userMessageModels`). No capture of an answer exists: the cursor is taken as a creation
//! time (`nextCursor` = the oldest message returned), which both clients are consistent with.
//! Faults: [`super::Fault::FailHistory`], [`super::Fault::LoseHistoryAnswers`].

use base64::Engine;
use serde_json::{Value, json};

use super::book::HistoryEntry;
use super::state::State;
use super::wire::{handle, strip_handle};

/// Most messages one page returns, whatever the client asks for.
const MAX_LIMIT: u64 = 100;

/// Answers one `listUserMessages` request of `account`; `None` leaves it unanswered.
pub(crate) fn list_user_messages(
    st: &mut State,
    account: &str,
    mid: &str,
    frame: &Value,
) -> Option<Value> {
    st.record.stats_mut(account).history_reads += 1;
    if st.faults.lose_history(Some(account)) {
        return None;
    }
    if st.faults.fail_history(Some(account)) {
        return Some(answer(mid, 500, json!({"reason": "SYSTEM_ERROR"})));
    }
    let body = frame.get("body");
    let arg = |i: usize| body.and_then(|b| b.get(i));
    let cid = arg(0).and_then(Value::as_str).map(strip_handle);
    let cursor = arg(2).and_then(Value::as_u64).unwrap_or(u64::MAX);
    let limit = arg(3)
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .clamp(1, MAX_LIMIT);
    let conv = cid.and_then(|c| st.book.conversation_by_cid(c));
    let Some(conv) = conv.filter(|c| c.seller == account || c.buyer == account) else {
        return Some(answer(
            mid,
            400,
            json!({"reason": "conversation not exist"}),
        ));
    };
    let older: Vec<&HistoryEntry> = conv
        .history
        .iter()
        .rev()
        .filter(|m| m.created_ms < cursor)
        .collect();
    let page: Vec<&HistoryEntry> = older.iter().take(limit as usize).copied().collect();
    let more = older.len() > page.len();
    let next = page.last().map_or(0, |m| m.created_ms);
    let models: Vec<Value> = page.iter().map(|m| model(&conv.cid, m)).collect();
    Some(answer(
        mid,
        200,
        json!({"hasMore": u8::from(more), "nextCursor": next, "userMessageModels": models}),
    ))
}

fn answer(mid: &str, code: u16, body: Value) -> Value {
    json!({"code": code, "headers": {"mid": mid}, "body": body})
}

/// One `userMessageModels` entry.
fn model(cid: &str, m: &HistoryEntry) -> Value {
    let content: Value = serde_json::from_str(&m.content).unwrap_or(Value::Null);
    let custom_type = content
        .get("contentType")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let data = base64::engine::general_purpose::STANDARD.encode(&m.content);
    json!({"message": {
        "messageId": m.message_id,
        "createAt": m.created_ms,
        "cid": handle(cid),
        "sender": {"uid": handle(&m.sender)},
        "content": {"contentType": 101, "custom": {"type": custom_type, "data": data, "summary": m.summary}},
        "extension": {"senderUserId": m.sender, "reminderContent": m.summary}
    }})
}
