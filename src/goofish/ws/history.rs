//! A conversation's history (`/r/MessageManager/listUserMessages`, reference §4.8): what the
//! read-back of an uncertain delivery reads to see whether the message is there.
//!
//! Request body `["<cid>@goofish", false, <cursor>, <limit>, false]`, first cursor
//! `9007199254740991` (JavaScript's `MAX_SAFE_INTEGER`), then the answer's `nextCursor` while
//! `hasMore` is 1. The answer lists `userMessageModels[].message` newest first, each with
//! `messageId`, `createAt` (epoch ms), `sender.uid`, `extension.senderUserId` and
//! `content.custom.data` (base64 JSON, `{"contentType":1,"text":{"text":…}}` for text).
//! Real clients that call it: `cv-cat/XianYuApis` `goofish_live.py` (`list_all_conversations`:
//! pages on `nextCursor`, decodes `custom.data`, reads `extension.senderUserId`) and
//! `zhinianboke/xianyu-auto-reply` `backend-web/app/services/chat_new/im_client.py`
//! (`get_messages`: same body, 20 a page). Message texts carry card keys: compared in memory,
//! never logged.

use base64::Engine;
use serde_json::{Value, json};

use super::conn::RequestError;
use super::send::ImHandle;
use super::{HANDLE, frames};
use crate::goofish::values::{as_u64, id_text};

/// `MAX_SAFE_INTEGER`: "from the newest message on".
const FIRST_CURSOR: u64 = 9_007_199_254_740_991;
/// Messages asked for per page (cvcat and zn ask for 20; §4.8 allows up to 50).
const PAGE: u64 = 50;
/// A read-back looks at most this many pages back (delivery messages are recent).
const MAX_PAGES: usize = 4;

/// One message of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    pub message_id: Option<String>,
    /// Server time, epoch ms (0 when the answer has none).
    pub created_ms: u64,
    /// The sender's user id, without `@goofish`.
    pub sender: Option<String>,
    /// The text of a text message; `None` for anything else.
    pub text: Option<String>,
}

impl ImHandle {
    /// The messages of conversation `cid` created at or after `since_ms`, newest first. An
    /// error means the history could not be read (not connected, refused, no answer).
    pub async fn history_since(
        &self,
        cid: &str,
        since_ms: u64,
    ) -> Result<Vec<HistoryMessage>, String> {
        let conn = self
            .connection()
            .await
            .ok_or_else(|| "IM not connected".to_string())?;
        let cid = format!("{}{HANDLE}", frames::strip_handle(cid));
        let mut cursor = FIRST_CURSOR;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let body = json!([cid, false, cursor, PAGE, false]);
            let answer = conn
                .request(
                    "/r/MessageManager/listUserMessages",
                    json!({}),
                    Some(body),
                    self.send_timeout(),
                )
                .await
                .map_err(|e| match e {
                    RequestError::NotSent(r) | RequestError::NoAnswer(r) => {
                        format!("history not read: {r}")
                    }
                })?;
            let page = parse_page(&answer)?;
            let older_than_wanted = page
                .messages
                .iter()
                .any(|m| m.created_ms != 0 && m.created_ms < since_ms);
            out.extend(
                page.messages
                    .into_iter()
                    .filter(|m| m.created_ms == 0 || m.created_ms >= since_ms),
            );
            match page.next_cursor {
                Some(next) if !older_than_wanted && next < cursor => cursor = next,
                _ => break,
            }
        }
        Ok(out)
    }
}

/// One answer: its messages, and the cursor of the next page if there is one.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    messages: Vec<HistoryMessage>,
    next_cursor: Option<u64>,
}

/// Reads one `listUserMessages` answer; a refusal (non-200 code or a reason) is an error.
fn parse_page(answer: &Value) -> Result<Page, String> {
    let code = answer.get("code").and_then(Value::as_i64);
    if code.is_some_and(|c| c != 200) || frames::reason_of(answer).is_some() {
        let why = frames::reason_of(answer).unwrap_or_default();
        return Err(format!("history refused (code {code:?}) {why}")
            .trim_end()
            .to_string());
    }
    let body = answer.get("body").unwrap_or(&Value::Null);
    let models = body
        .get("userMessageModels")
        .and_then(Value::as_array)
        .ok_or_else(|| "history answer without userMessageModels".to_string())?;
    let messages = models
        .iter()
        .filter_map(|m| m.get("message"))
        .map(parse_message)
        .collect();
    let more = body.get("hasMore").and_then(as_u64) == Some(1);
    let next_cursor = body.get("nextCursor").and_then(as_u64).filter(|_| more);
    Ok(Page {
        messages,
        next_cursor,
    })
}

fn parse_message(m: &Value) -> HistoryMessage {
    let text_of = |v: Option<&Value>| v.and_then(id_text);
    let sender = text_of(m.pointer("/sender/uid"))
        .or_else(|| text_of(m.pointer("/extension/senderUserId")))
        .map(|s| frames::strip_handle(&s).to_string());
    let text = m
        .pointer("/content/custom/data")
        .and_then(Value::as_str)
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|c| c.get("contentType").and_then(as_u64) == Some(1))
        .and_then(|c| {
            c.pointer("/text/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    HistoryMessage {
        message_id: text_of(m.get("messageId")),
        created_ms: m.get("createAt").and_then(as_u64).unwrap_or(0),
        sender,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> String {
        let inner = json!({"contentType": 1, "text": {"text": text}}).to_string();
        base64::engine::general_purpose::STANDARD.encode(inner)
    }

    #[test]
    fn a_page_of_history() {
        let answer = json!({"code": 200, "headers": {"mid": "1 0"}, "body": {
        "hasMore": 1, "nextCursor": 1_751_448_000_000_u64,
        "userMessageModels": [
            {"message": {"messageId": "3593867116846.PNM", "createAt": 1_751_448_105_809_u64,
                         "cid": "51204613184@goofish", "sender": {"uid": "2150369819@goofish"},
                         "content": {"contentType": 101, "custom": {"type": 1, "data": data("卡密：K-1"), "summary": "卡密：K-1"}},
                         "extension": {"senderUserId": "2150369819", "reminderTitle": "x"}}},
            {"message": {"messageId": "3593867116840.PNM", "createAt": "1751448000001",
                         "content": {"contentType": 101, "custom": {"type": 2, "data": "bm90IGpzb24="}},
                         "extension": {"senderUserId": "3149637063"}}}
        ]}});
        let page = parse_page(&answer).unwrap();
        assert_eq!(page.next_cursor, Some(1_751_448_000_000));
        assert_eq!(
            page.messages[0],
            HistoryMessage {
                message_id: Some("3593867116846.PNM".into()),
                created_ms: 1_751_448_105_809,
                sender: Some("2150369819".into()),
                text: Some("卡密：K-1".into()),
            }
        );
        assert_eq!(page.messages[1].sender.as_deref(), Some("3149637063"));
        assert_eq!(page.messages[1].created_ms, 1_751_448_000_001);
        assert_eq!(page.messages[1].text, None);
    }

    #[test]
    fn refusals_and_the_last_page() {
        assert!(parse_page(&json!({"code": 500, "body": {"reason": "busy"}})).is_err());
        assert!(parse_page(&json!({"code": 200, "body": {"reason": "FLOW_CONTROL"}})).is_err());
        assert!(parse_page(&json!({"code": 200, "body": {}})).is_err());
        let last =
            parse_page(&json!({"body": {"hasMore": 0, "nextCursor": 5, "userMessageModels": []}}))
                .unwrap();
        assert_eq!(last.next_cursor, None);
    }
}
