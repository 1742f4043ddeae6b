//! Decoder tests: fixtures and the golden captures here; frames, shapes and robustness in
//! the sibling files.

mod cards;
mod forms;
mod frames;
mod oracle;
mod robustness;

use super::*;
use crate::goofish::captures;
use base64::Engine;
use serde_json::Map;
use serde_json::json;

const SELLER: &str = "2202640918079";
const JV_ACCOUNT: &str = "2150369819";

fn one(b64: &str, account: Option<&str>) -> Decoded {
    let mut all = decode_payload(b64, account).expect("decodes");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn event_of(raw: &Value, account: Option<&str>) -> DecodedEvent {
    let b64 = encode_payload(raw);
    let decoded = one(&b64, account);
    assert_eq!(&decoded.raw, raw, "round trip through MessagePack");
    decoded.event
}

fn bytes(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64")
}

fn a1_content_expected() -> Value {
    json!({"contentType": 26,
     "dxCard": {"item": {"main": {
       "clickParam": {"arg1": "MsgCard", "args": {"source": "im", "task_id": "3exQJHOTmPU1", "msg_id": "cc8bc2df7c934df086e0567cb69f1573"}},
       "exContent": {
         "bgColor": "#FFFFFF",
         "button": {"bgColor": "#FFE60F", "borderColor": "#FFE60F",
                    "clickParam": {"arg1": "MsgCardAction", "args": {"source": "im", "task_id": "3exQJHOTmPU1", "msg_id": "cc8bc2df7c934df086e0567cb69f1573"}},
                    "fontColor": "#333333",
                    "targetUrl": "fleamarket://adjust_price?flutter=true&bizOrderId=2503688126356636370",
                    "text": "修改价格"},
         "desc": "请双方沟通及时确认价格", "descColor": "#A3A3A3",
         "title": "我已拍下，待付款",
         "upgrade": {"targetUrl": "https://h5.m.goofish.com/app/idleFish-F2e/fm-downlaod/home.html?noRedriect=true&canBack=true&checkVersion=true", "version": "7.7.90"}},
       "targetUrl": "fleamarket://order_detail?id=2503688126356636370&role=seller"}},
      "template": {"name": "idlefish_message_trade_chat_card",
                   "url": "https://dinamicx.alibabausercontent.com/pub/idlefish_message_trade_chat_card/1667222052767/idlefish_message_trade_chat_card.zip",
                   "version": "1667222052767"}}})
}

fn a1_expected_without_content() -> Value {
    json!({"1": {
       "1": {"1": "3149637063@goofish"},
       "2": "47983389096@goofish",
       "3": "3416565274542.PNM",
       "4": 0, "5": 1742458817389_u64,
       "6": {"1": 101, "3": {"1": "", "2": "[我已拍下，待付款]", "3": "", "4": 26, "5": "<content>"}},
       "7": 1, "8": 1, "9": 0,
       "10": {
         "bizTag": "{\"sourceId\":\"C2C:3exQJHOTmPU1\",\"taskName\":\"已拍下_未付款_卖家\",\"materialId\":\"3exQJHOTmPU1\",\"taskId\":\"3exQJHOTmPU1\"}",
         "closePushReceiver": "false", "closeUnreadNumber": "false",
         "detailNotice": "[我已拍下，待付款]",
         "extJson": "{\"msgArgs\":{\"task_id\":\"3exQJHOTmPU1\",\"source\":\"im\",\"msg_id\":\"cc8bc2df7c934df086e0567cb69f1573\"},\"quickReply\":\"1\",\"msgArg1\":\"MsgCard\",\"updateKey\":\"47983389096:2503688126356636370:1_not_pay_seller\",\"messageId\":\"cc8bc2df7c934df086e0567cb69f1573\",\"multiChannel\":{\"huawei\":\"EXPRESS\",\"xiaomi\":\"108000\",\"oppo\":\"EXPRESS\",\"honor\":\"NORMAL\",\"agoo\":\"product\",\"vivo\":\"ORDER\"},\"contentType\":\"26\",\"correlationGroupId\":\"3exQJHOTmPU1_FFr4GOSn8OQo\"}",
         "receiver": "2202640918079",
         "redReminder": "等待买家付款",
         "redReminderStyle": "1",
         "reminderContent": "[我已拍下，待付款]",
         "reminderNotice": "买家已拍下，待付款",
         "reminderTitle": "买家已拍下，待付款",
         "reminderUrl": "fleamarket://message_chat?itemId=900052644277&peerUserId=3149637063&peerUserNick=男***y&sid=47983389096&messageId=cc8bc2df7c934df086e0567cb69f1573&adv=no",
         "senderUserId": "3149637063",
         "senderUserType": "0", "sessionType": "1", "updateHead": "true"},
       "12": 1},
     "3": {"needPush": "true"}})
}

/// Appendix A2 (own web message echoed back), from its decoded form.
fn a2() -> Value {
    json!({"1":{"1":{"1":"2150369819@goofish"},"2":"51204613184@goofish","3":"3593867116846.PNM","4":0,"5":1751431117553_u64,"6":{"1":101,"3":{"1":"","2":"cc","3":"","4":1,"5":"{\"contentType\":1,\"text\":{\"text\":\"cc\"}}"}},"7":2,"8":1,"9":0,"10":{"_platform":"web","bizTag":"{\"sourceId\":\"S:1\",\"messageId\":\"985619c3807d4e9e8830500c6a47592c\"}","detailNotice":"cc","extJson":"{\"quickReply\":\"1\",\"messageId\":\"985619c3807d4e9e8830500c6a47592c\",\"tag\":\"u\"}","reminderContent":"cc","reminderNotice":"发来一条新消息","reminderTitle":"Joki2020","reminderUrl":"fleamarket://message_chat?itemId=788175479471&peerUserId=2150369819&sid=51204613184&messageId=985619c3807d4e9e8830500c6a47592c&adv=no","senderUserId":"2150369819","senderUserType":"0","sessionType":"1"},"12":1},"3":{"needPush":"false"}})
}

/// §5.5.1 buyer text `111` (decoded form of the held-back capture A5).
fn a5() -> Value {
    json!({"1": {
       "1": {"1": "2202640918079@goofish"},
       "2": "47812870000@goofish",
       "3": "3402391472503.PNM",
       "4": 0,
       "5": 1741704978866_u64,
       "6": {"1": 101,
             "3": {"1": "", "2": "111", "3": "", "4": 1,
                   "5": "{\"atUsers\":[],\"contentType\":1,\"text\":{\"text\":\"111\"}}"}},
       "7": 2, "8": 1, "9": 0,
       "10": {"_platform": "android",
              "bizTag": "{\"sourceId\":\"S:1\",\"messageId\":\"f36902eff45445bdb2d1b0fd168f8264\"}",
              "detailNotice": "111",
              "extJson": "{\"quickReply\":\"1\",\"messageId\":\"f36902eff45445bdb2d1b0fd168f8264\",\"tag\":\"u\"}",
              "reminderContent": "111",
              "reminderNotice": "发来一条新消息",
              "reminderTitle": "sha修",
              "reminderUrl": "fleamarket://message_chat?itemId=897742748011&peerUserId=2202640918079&peerUserNick=t***1&sid=47812870000&messageId=f36902eff45445bdb2d1b0fd168f8264&adv=no",
              "senderUserId": "2202640918079",
              "senderUserType": "0",
              "sessionType": "1"},
       "12": 1},
     "3": {"needPush": "true"}})
}

/// §5.5.4 paid card fixture (yd `mustPaidDeliveryCard`), with `task` as taskName.
fn paid_card(task: &str) -> Value {
    let biz_tag = json!({"sourceId": "C2C:4Ytd4BSQKIiz", "taskName": task}).to_string();
    json!({"1": {"2": "63107041124@goofish",
           "10": {"bizTag": biz_tag,
                  "extJson": "{\"msgArg1\":\"MsgCard\",\"contentType\":\"26\",\"messageId\":\"4e449a32c59c499594c4c5dffa5ddef0\",\"updateKey\":\"63107041124:3310145690545023994:10:TRADE_PAID:26\"}",
                  "redReminder": "等待卖家发货",
                  "reminderContent": "[我已付款，等待你发货]",
                  "senderUserId": "2222315258815",
                  "reminderUrl": "fleamarket://message_chat?itemId=1063177864132&peerUserId=2222315258815"},
           "6": {"3": {"4": 26, "5": "{\"contentType\":26}"}}}})
}

/// A system card message (shape A) with the given text, content and extJson.
fn card(text: &str, content_type: i64, content: &Value, ext_json: &Value) -> Value {
    json!({"1": {
        "1": {"1": "3149637063@goofish"}, "2": "47983389096@goofish", "3": "3500000000001.PNM",
        "4": 0, "5": 1742458817389_u64,
        "6": {"1": 101, "3": {"1": "", "2": text, "3": "", "4": content_type, "5": content.to_string()}},
        "7": 1, "8": 1, "9": 0,
        "10": {"extJson": ext_json.to_string(), "reminderContent": text, "senderUserId": "3149637063",
               "reminderUrl": "fleamarket://message_chat?itemId=900052644277&peerUserId=3149637063&sid=47983389096"},
        "12": 1},
      "3": {"needPush": "true"}})
}

fn order_card_content(title: &str, role: &str) -> Value {
    json!({"contentType": 26, "dxCard": {"item": {"main": {
        "exContent": {"title": title, "button": {"text": "查看", "targetUrl": "fleamarket://x?orderId=2503688126356636370"}},
        "targetUrl": format!("fleamarket://order_detail?id=2503688126356636370&role={role}")}}}})
}

fn status_of(event: &DecodedEvent) -> Option<OrderStatus> {
    match event {
        DecodedEvent::Order { status, .. } => Some(*status),
        _ => None,
    }
}

fn reason_of(event: &DecodedEvent) -> &str {
    match event {
        DecodedEvent::Ignored { reason } => reason,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

// --- golden payloads -------------------------------------------------

#[test]
fn a1_decodes_exactly() {
    let decoded = one(captures::a1(), Some(SELLER));
    let mut raw = decoded.raw.clone();
    let content = raw
        .pointer_mut("/1/6/3/5")
        .map(|v| std::mem::replace(v, json!("<content>")))
        .expect("content present");
    assert_eq!(raw, a1_expected_without_content());
    let content: Value = serde_json::from_str(content.as_str().expect("string")).expect("json");
    assert_eq!(content, a1_content_expected());
}

#[test]
fn a1_is_pending_payment_order() {
    let decoded = one(captures::a1(), Some(SELLER));
    assert_eq!(
        decoded.event,
        DecodedEvent::Order {
            order_id: "2503688126356636370".into(),
            item_id: Some("900052644277".into()),
            buyer_id: Some("3149637063".into()),
            cid: Some("47983389096".into()),
            status: OrderStatus::PendingPayment,
            role: Role::Seller,
            source_msg_id: Some("3416565274542.PNM".into()),
            created_at_ms: Some(1742458817389),
        }
    );
    // Same result without knowing the account.
    assert_eq!(one(captures::a1(), None).event, decoded.event);
}

#[test]
fn a1_event_serializes_with_kind_tag() {
    let event = one(captures::a1(), None).event;
    let json = serde_json::to_value(&event).expect("serializes");
    assert_eq!(json["kind"], "order");
    assert_eq!(json["status"], "pending_payment");
    assert_eq!(json["role"], "seller");
    assert_eq!(json["order_id"], "2503688126356636370");
}

#[test]
fn golden_payloads_reencode_byte_exact() {
    for b64 in [
        captures::a1(),
        captures::a3(),
        captures::a4(),
        captures::sync_receipt(),
    ] {
        let raw = payload_to_value(b64).expect("decodes");
        assert_eq!(encode_msgpack(&raw), bytes(b64), "{b64:.24}…");
        assert_eq!(encode_payload(&raw), b64);
    }
}

#[test]
fn a2_own_echo() {
    let event = event_of(&a2(), Some(JV_ACCOUNT));
    assert_eq!(
        event,
        DecodedEvent::Chat {
            cid: "51204613184".into(),
            sender_id: JV_ACCOUNT.into(),
            message_id: "3593867116846.PNM".into(),
            text: "cc".into(),
            item_id: Some("788175479471".into()),
            own: true,
            sender_nick: Some("Joki2020".into()),
            sent_at_ms: Some(1751431117553),
        }
    );
    let DecodedEvent::Chat { own, .. } = event_of(&a2(), Some("999")) else {
        panic!("chat expected");
    };
    assert!(!own);
}

#[test]
fn a3_read_receipt() {
    let decoded = one(captures::a3(), None);
    assert_eq!(
        decoded.raw,
        json!({"1":"3593867116846.PNM","2":2,"3":0,"4":"51204613184@goofish","5":1,"6":1751435776794_u64})
    );
    assert_eq!(
        decoded.event,
        DecodedEvent::ReadReceipt {
            cid: "51204613184".into(),
            message_id: "3593867116846.PNM".into(),
            read_at_ms: Some(1751435776794),
        }
    );
}

#[test]
fn a4_typing() {
    let decoded = one(captures::a4(), None);
    assert_eq!(
        decoded.raw,
        json!({"1":[{"1":"51204613184@goofish","2":1,"3":1,"4":"2150369819@goofish"}]})
    );
    assert_eq!(
        decoded.event,
        DecodedEvent::Typing {
            cid: "51204613184".into(),
            user_id: "2150369819".into()
        }
    );
}

#[test]
fn a5_buyer_text() {
    let expected = DecodedEvent::Chat {
        cid: "47812870000".into(),
        sender_id: "2202640918079".into(),
        message_id: "3402391472503.PNM".into(),
        text: "111".into(),
        item_id: Some("897742748011".into()),
        own: false,
        sender_nick: Some("sha修".into()),
        sent_at_ms: Some(1741704978866),
    };
    assert_eq!(event_of(&a5(), Some("3888777108")), expected);
    assert_eq!(event_of(&a5(), None), expected);
}

#[test]
fn a5_file_is_the_exact_decoded_form() {
    let decoded = one(captures::a5(), Some("3888777108"));
    assert_eq!(decoded.raw, a5());
    assert_eq!(encode_payload(&a5()), captures::a5());
    assert!(matches!(decoded.event, DecodedEvent::Chat { text, .. } if text == "111"));
}
