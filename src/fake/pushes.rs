//! Non-trade payloads (reference §5.3–§5.5): a buyer's chat message and the account's own
//! echo (shape A), read receipts (C), typing (B), session cards (F, plain JSON), the
//! "你已发货" tip; and the `syncPushPackage.data[]` item envelopes that wrap payloads
//! (MessagePack via `encode_payload`, or base64 JSON for `/s/vulcan`).

use base64::Engine;
use serde_json::{Value, json};

use super::hub::{Channel, Push};
use super::wire::{handle, quote};
use crate::goofish::decode::encode_payload;

/// objectType of chat messages, cards and card updates.
pub(crate) const OBJECT_MESSAGE: u32 = 40000;
/// objectType of read receipts.
pub(crate) const OBJECT_READ: u32 = 40103;
/// objectType of typing indicators.
pub(crate) const OBJECT_TYPING: u32 = 40006;
/// objectType of `/s/vulcan` session cards.
pub(crate) const OBJECT_SESSION: u32 = 370_000;

/// A message typed by a person (shape A, `1.7 == 2`).
pub(crate) struct ChatFacts<'a> {
    pub sender: &'a str,
    pub sender_nick: &'a str,
    /// Nick as `reminderUrl` masks it; None leaves `peerUserNick` out (the web echo has none).
    pub sender_masked: Option<&'a str>,
    pub cid: &'a str,
    pub item_id: Option<&'a str>,
    pub message_id: &'a str,
    /// The 32-hex `messageId` inside bizTag/extJson.
    pub card_id: &'a str,
    pub created_ms: u64,
    /// `1.6.3.2` and reminderContent: the text, or `[图片]`.
    pub summary: &'a str,
    /// `1.6.3.4`.
    pub content_type: i64,
    /// `1.6.3.5`, the content JSON as text.
    pub content: &'a str,
    /// `_platform`: `android` for buyers in the fake, `web` for the account's own echo.
    pub platform: &'a str,
    /// `needPush`: `"false"` for the account's own echo.
    pub need_push: bool,
}

/// Shape A for a typed message (5.5.1 for a buyer, A2 for the account's own echo).
pub(crate) fn chat_message(f: &ChatFacts<'_>) -> Value {
    let mut url = String::from("fleamarket://message_chat?");
    if let Some(item) = f.item_id {
        url.push_str(&format!("itemId={item}&"));
    }
    url.push_str(&format!("peerUserId={}&", f.sender));
    if let Some(nick) = f.sender_masked {
        url.push_str(&format!("peerUserNick={nick}&"));
    }
    url.push_str(&format!("sid={}&messageId={}&adv=no", f.cid, f.card_id));
    let card = quote(f.card_id);
    json!({
        "1": {
            "1": {"1": handle(f.sender)},
            "2": handle(f.cid),
            "3": f.message_id,
            "4": 0,
            "5": f.created_ms,
            "6": {"1": 101, "3": {"1": "", "2": f.summary, "3": "", "4": f.content_type, "5": f.content}},
            "7": 2, "8": 1, "9": 0,
            "10": {
                "_platform": f.platform,
                "bizTag": format!(r#"{{"sourceId":"S:1","messageId":{card}}}"#),
                "detailNotice": f.summary,
                "extJson": format!(r#"{{"quickReply":"1","messageId":{card},"tag":"u"}}"#),
                "reminderContent": f.summary,
                "reminderNotice": "发来一条新消息",
                "reminderTitle": f.sender_nick,
                "reminderUrl": url,
                "senderUserId": f.sender,
                "senderUserType": "0",
                "sessionType": "1"
            },
            "12": 1
        },
        "3": {"needPush": if f.need_push { "true" } else { "false" }}
    })
}

/// Content JSON of a buyer's text, as the app sends it (5.5.1).
pub(crate) fn text_content(text: &str) -> String {
    format!(
        r#"{{"atUsers":[],"contentType":1,"text":{{"text":{}}}}}"#,
        quote(text)
    )
}

/// Shape C, read receipt of `message_id` (A3).
pub(crate) fn read_receipt(message_id: &str, cid: &str, read_ms: u64) -> Value {
    json!({"1": message_id, "2": 2, "3": 0, "4": handle(cid), "5": 1, "6": read_ms})
}

/// Shape B, typing indicator (A4: field 4 is the receiving account).
pub(crate) fn typing(cid: &str, account: &str) -> Value {
    json!({"1": [{"1": handle(cid), "2": 1, "3": 1, "4": handle(account)}]})
}

/// The "你已发货" tip after a consign: custom type 14, no order id (23Star PR #14).
pub(crate) fn shipped_tip(
    cid: &str,
    buyer: &str,
    item_id: &str,
    message_id: &str,
    now_ms: u64,
) -> Value {
    let content = r#"{"contentType":14,"tip":{"argInfo":{"arg1":"SellerConsign"}}}"#;
    json!({
        "1": {
            "1": {"1": handle(buyer)}, "2": handle(cid), "3": message_id, "4": 0, "5": now_ms,
            "6": {"1": 101, "3": {"1": "", "2": "[你已发货]", "3": "", "4": 14, "5": content}},
            "7": 1, "8": 1, "9": 0,
            "10": {
                "detailNotice": "[你已发货]",
                "extJson": r#"{"msgArg1":"MsgTips","contentType":"14"}"#,
                "reminderContent": "[你已发货]",
                "reminderNotice": "你已发货",
                "reminderTitle": "你已发货",
                "reminderUrl": format!("fleamarket://message_chat?itemId={item_id}&peerUserId={buyer}&sid={cid}&adv=no"),
                "senderUserId": buyer, "senderUserType": "0", "sessionType": "1"
            },
            "12": 1
        },
        "3": {"needPush": "true"}
    })
}

/// Facts of a session card (shape F).
pub(crate) struct SessionFacts<'a> {
    pub cid: &'a str,
    pub seller: &'a str,
    pub buyer: &'a str,
    pub item_id: &'a str,
    pub item_title: &'a str,
    pub now_ms: u64,
}

/// Shape F, the `/s/vulcan` session "arouse" card sent when a conversation opens.
pub(crate) fn session_card(f: &SessionFacts<'_>) -> Value {
    json!({
        "chatType": 1,
        "incrementType": 1,
        "operation": {"content": {"contentType": 8, "sessionArouse": {
            "memberFlags": 0, "needKeyBoard": false,
            "sessionArouseInfo": {"residentFunctions": [], "arouseTimeStamp": f.now_ms,
                                  "arouseChatScriptInfo": []}}}},
        "receiverIds": [f.seller],
        "sessionInfo": {
            "createTime": f.now_ms / 1000 * 1000,
            "extensions": {"itemId": f.item_id, "itemTitle": f.item_title,
                           "itemSellerId": f.seller, "ownerUserId": f.seller, "extUserId": f.buyer},
            "groupOwnerId": f.seller,
            "sessionId": f.cid,
            "sessionType": 1,
            "type": 1
        },
        "sessionId": f.cid
    })
}

/// One `syncPushPackage.data[]` item carrying a MessagePack payload.
pub(crate) fn item(payload: &Value, object_type: u32) -> Value {
    json!({"bizType": 40, "data": encode_payload(payload), "streamId": "40", "objectType": object_type})
}

/// One `/s/para` item (the capture adds an empty `syncId`).
pub(crate) fn para_item(payload: &Value) -> Value {
    let mut it = item(payload, OBJECT_TYPING);
    it["syncId"] = json!("");
    it
}

/// One `/s/vulcan` item: base64 of the JSON text, not MessagePack.
pub(crate) fn vulcan_item(payload: &Value) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
    json!({"bizType": 370, "data": data, "streamId": "370", "objectType": OBJECT_SESSION})
}

/// `/s/sync` push of payloads with their object types, in order.
pub(crate) fn sync(items: &[(&Value, u32)]) -> Push {
    Push {
        channel: Channel::Sync,
        items: items.iter().map(|(p, ot)| item(p, *ot)).collect(),
    }
}

/// The push a decoded-shape payload travels in, chosen by its shape (§5.3).
pub(crate) fn push_for_raw(payload: &Value) -> Push {
    let first = payload.get("1");
    if first.is_some_and(Value::is_array) {
        return Push {
            channel: Channel::Para,
            items: vec![para_item(payload)],
        };
    }
    if payload.get("sessionId").is_some() || payload.get("sessionInfo").is_some() {
        return Push {
            channel: Channel::Vulcan,
            items: vec![vulcan_item(payload)],
        };
    }
    let receipt = first.is_some_and(Value::is_string) && payload.get("2") == Some(&json!(2));
    let object_type = if receipt { OBJECT_READ } else { OBJECT_MESSAGE };
    sync(&[(payload, object_type)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goofish::captures;
    use crate::goofish::decode::{self, DecodedEvent};

    #[test]
    fn receipt_and_typing_are_byte_identical_to_captures() {
        let receipt = read_receipt("3593867116846.PNM", "51204613184", 1_751_435_776_794);
        assert_eq!(encode_payload(&receipt), captures::a3());
        assert_eq!(
            encode_payload(&typing("51204613184", "2150369819")),
            captures::a4()
        );
    }

    /// A2's decoded form (the account's own web message echoed back).
    #[test]
    fn own_echo_matches_capture_a2_structure() {
        let content = r#"{"contentType":1,"text":{"text":"cc"}}"#;
        let echo = chat_message(&ChatFacts {
            sender: "2150369819",
            sender_nick: "Joki2020",
            sender_masked: None,
            cid: "51204613184",
            item_id: Some("788175479471"),
            message_id: "3593867116846.PNM",
            card_id: "985619c3807d4e9e8830500c6a47592c",
            created_ms: 1_751_431_117_553,
            summary: "cc",
            content_type: 1,
            content,
            platform: "web",
            need_push: false,
        });
        let a2: Value = serde_json::from_str(r#"{"1":{"1":{"1":"2150369819@goofish"},"2":"51204613184@goofish","3":"3593867116846.PNM","4":0,"5":1751431117553,"6":{"1":101,"3":{"1":"","2":"cc","3":"","4":1,"5":"{\"contentType\":1,\"text\":{\"text\":\"cc\"}}"}},"7":2,"8":1,"9":0,"10":{"_platform":"web","bizTag":"{\"sourceId\":\"S:1\",\"messageId\":\"985619c3807d4e9e8830500c6a47592c\"}","detailNotice":"cc","extJson":"{\"quickReply\":\"1\",\"messageId\":\"985619c3807d4e9e8830500c6a47592c\",\"tag\":\"u\"}","reminderContent":"cc","reminderNotice":"发来一条新消息","reminderTitle":"Joki2020","reminderUrl":"fleamarket://message_chat?itemId=788175479471&peerUserId=2150369819&sid=51204613184&messageId=985619c3807d4e9e8830500c6a47592c&adv=no","senderUserId":"2150369819","senderUserType":"0","sessionType":"1"},"12":1},"3":{"needPush":"false"}}"#).expect("json");
        assert_eq!(echo, a2);
    }

    #[test]
    fn raw_payloads_pick_their_channel() {
        assert_eq!(push_for_raw(&typing("1", "2")).channel, Channel::Para);
        let receipt = push_for_raw(&read_receipt("1.PNM", "1", 1));
        assert_eq!(receipt.items[0]["objectType"], OBJECT_READ);
        let f = SessionFacts {
            cid: "46731209751",
            seller: "86599526",
            buyer: "2150369819",
            item_id: "858405091799",
            item_title: "t",
            now_ms: 1,
        };
        let push = push_for_raw(&session_card(&f));
        assert_eq!(push.channel, Channel::Vulcan);
        let data = push.items[0]["data"].as_str().expect("data");
        match &decode::decode_payload(data, Some("86599526")).expect("decodes")[0].event {
            DecodedEvent::Session { cid, buyer_id, .. } => {
                assert_eq!(cid, "46731209751");
                assert_eq!(buyer_id.as_deref(), Some("2150369819"));
            }
            other => panic!("{other:?}"),
        }
    }
}
