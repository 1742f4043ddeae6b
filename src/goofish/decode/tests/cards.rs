//! Shapes D, E, F and the trade cards of reference §5.5.

use super::*;

/// The seller-side paid event of the §5.5.4 fixture order, seen through message `msg_id`.
fn paid_order_3310(msg_id: &str, created_at_ms: Option<u64>) -> DecodedEvent {
    DecodedEvent::Order {
        order_id: "3310145690545023994".into(),
        item_id: Some("1063177864132".into()),
        buyer_id: Some("2222315258815".into()),
        cid: Some("63107041124".into()),
        status: OrderStatus::Paid,
        role: Role::Seller,
        source_msg_id: Some(msg_id.into()),
        created_at_ms,
    }
}
use crate::goofish::decode::signals::{order_id_from_url, scan_order_id};

// --- shapes D, E, F and trade cards --------------------------------

#[test]
fn paid_card_fixture_is_paid_seller_order() {
    let event = event_of(&paid_card("付款完成待发货_卖家-正向升级"), Some(SELLER));
    assert_eq!(
        event,
        paid_order_3310("4e449a32c59c499594c4c5dffa5ddef0", None)
    );
}

#[test]
fn buyer_role_copy_is_marked_buyer() {
    let event = event_of(&paid_card("付款完成待发货_买家"), Some(SELLER));
    assert!(matches!(
        event,
        DecodedEvent::Order {
            role: Role::Buyer,
            status: OrderStatus::Paid,
            ..
        }
    ));
    // role= in the card URL decides too.
    let content = order_card_content("我已付款，等待你发货", "buyer");
    let raw = card(
        "[我已付款，等待你发货]",
        26,
        &content,
        &json!({"contentType": "26"}),
    );
    assert!(matches!(
        event_of(&raw, None),
        DecodedEvent::Order {
            role: Role::Buyer,
            ..
        }
    ));
    // A payment card "sent" by this account means the account bought.
    let raw = card(
        "[我已付款，等待你发货]",
        26,
        &json!({"contentType": 26}),
        &json!({"updateKey": "47983389096:2503688126356636370:10:TRADE_PAID:26"}),
    );
    let event = event_of(&raw, Some("3149637063"));
    assert!(
        matches!(&event, DecodedEvent::Order { role: Role::Buyer, buyer_id: Some(b), .. } if b == "3149637063")
    );
    assert!(matches!(
        event_of(&raw, Some(SELLER)),
        DecodedEvent::Order {
            role: Role::Seller,
            ..
        }
    ));
}

#[test]
fn shape_d_red_reminder_has_no_order_id() {
    let raw = json!({"1": "63107041124@goofish", "2": 1, "3": {"redReminder": "等待卖家发货"}});
    assert_eq!(
        event_of(&raw, None),
        DecodedEvent::PaidHint {
            cid: Some("63107041124".into())
        }
    );
    let raw = json!({"1": "63107041124@goofish", "2": 1, "3": {"redReminder": "交易关闭", "userId": "2222315258815"}});
    assert!(reason_of(&event_of(&raw, None)).contains("status=closed"));
}

#[test]
fn shape_e_prefers_reminder_content_over_stale_red_reminder() {
    let ext = json!({"reminderContent": "[已付款，待发货]", "redReminder": "等待买家付款",
                     "bizTag": "{\"taskName\":\"已拍下_未付款_卖家\"}", "extJson": "{\"contentType\":\"26\"}"});
    let raw = json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": ext, "5": 1751448105809_u64});
    assert_eq!(
        event_of(&raw, None),
        DecodedEvent::PaidHint {
            cid: Some("63107041124".into())
        }
    );

    let ext = json!({"reminderContent": "[已付款，待发货]", "redReminder": "等待买家付款",
                     "extJson": "{\"contentType\":\"26\",\"messageId\":\"abc\",\"updateKey\":\"63107041124:3310145690545023994:10:TRADE_PAID:26\"}",
                     "senderUserId": "2222315258815",
                     "reminderUrl": "fleamarket://message_chat?itemId=1063177864132&peerUserId=2222315258815&sid=63107041124"});
    let raw = json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": ext, "5": 1751448105809_u64});
    assert_eq!(
        event_of(&raw, Some(SELLER)),
        paid_order_3310("3500000000002.PNM", Some(1751448105809))
    );
}

#[test]
fn shape_f_session_card() {
    let raw = json!({"chatType":1,"incrementType":1,"operation":{"content":{"contentType":8,"sessionArouse":{"memberFlags":0,"needKeyBoard":false,"sessionArouseInfo":{"residentFunctions":[],"arouseTimeStamp":1738168886398_u64,"arouseChatScriptInfo":[]}}}},"receiverIds":["2150369819"],"sessionInfo":{"createTime":1738168886000_u64,"extensions":{"itemId":"858405091799","itemTitle":"标题","itemSellerId":"86599526","ownerUserId":"86599526","extUserId":"2150369819"},"groupOwnerId":"86599526","sessionId":"46731209751","sessionType":1,"type":1},"sessionId":"46731209751"});
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw.to_string());
    let decoded = one(&b64, Some(JV_ACCOUNT));
    assert_eq!(decoded.raw, raw);
    assert_eq!(
        decoded.event,
        DecodedEvent::Session {
            cid: "46731209751".into(),
            item_id: Some("858405091799".into()),
            seller_id: Some("86599526".into()),
            buyer_id: Some("2150369819".into()),
        }
    );
    let other = base64::engine::general_purpose::STANDARD.encode(r#"{"hello":1}"#);
    assert!(reason_of(&one(&other, None).event).contains("unrecognized"));
}

#[test]
fn buyer_nudge_is_paid() {
    let raw = card(
        "[记得及时发货]",
        26,
        &json!({"contentType": 26}),
        &json!({"updateKey": "47983389096:2503688126356636370:11:TRADE_PAID:26"}),
    );
    assert_eq!(status_of(&event_of(&raw, None)), Some(OrderStatus::Paid));
    // Without any order id it is only a hint.
    let raw = card(
        "[记得及时发货]",
        26,
        &json!({"contentType": 26}),
        &json!({}),
    );
    assert!(matches!(
        event_of(&raw, None),
        DecodedEvent::PaidHint { .. }
    ));
}

#[test]
fn typed_text_never_becomes_an_order() {
    let mut raw = a5();
    let text = "[我已付款，等待你发货] orderId=2503688126356636370";
    raw["1"]["10"]["reminderContent"] = json!(text);
    raw["1"]["6"]["3"]["5"] = json!(json!({"contentType": 1, "text": {"text": text}}).to_string());
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { text: t, .. } if t == text));
}

#[test]
fn forged_trade_card_from_a_user_is_chat() {
    let content = order_card_content("我已付款，等待你发货", "seller");
    let mut raw = card("[我已付款，等待你发货]", 26, &content, &json!({}));
    raw["1"]["7"] = json!(2);
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { .. }));
}

#[test]
fn system_text_is_not_chat() {
    // 1.7 == 1 makes a plain-text (type 1) message system content.
    let raw = card(
        "[记得及时发货]",
        1,
        &json!({"contentType": 1, "text": {"text": "[记得及时发货]"}}),
        &json!({"updateKey": "47983389096:2503688126356636370:11:TRADE_PAID:1"}),
    );
    assert_eq!(status_of(&event_of(&raw, None)), Some(OrderStatus::Paid));
    let raw = card(
        "[注意！小心假客服骗钱！]",
        1,
        &json!({"contentType": 1}),
        &json!({}),
    );
    assert!(reason_of(&event_of(&raw, None)).starts_with("system message"));
}

#[test]
fn image_message_is_chat() {
    let mut raw = a5();
    raw["1"]["6"]["3"] = json!({"1": "", "2": "[图片]", "3": "", "4": 2,
        "5": "{\"atUsers\":[],\"contentType\":2,\"image\":{\"pics\":[{\"height\":1920,\"type\":0,\"url\":\"https://img.jpg\",\"width\":1080}]}}"});
    raw["1"]["10"]["reminderContent"] = json!("[图片]");
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "[图片]"));
}

#[test]
fn base64_content_json_is_accepted() {
    let mut raw = a5();
    let inner = base64::engine::general_purpose::STANDARD
        .encode(r#"{"contentType":1,"text":{"text":"hello"}}"#);
    raw["1"]["6"]["3"]["5"] = json!(inner);
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "hello"));
}

#[test]
fn status_texts_map_to_statuses() {
    let cases = [
        ("[我已付款，等待你发货]", OrderStatus::Paid),
        ("[已付款，待发货]", OrderStatus::Paid),
        ("我已成功小刀，待发货", OrderStatus::Paid),
        ("[我已修改价格，等待你付款]", OrderStatus::PendingPayment),
        ("[你已发货]", OrderStatus::Shipped),
        ("[你已发货，请等待买家确认收货]", OrderStatus::Shipped),
        ("[记得及时确认收货]", OrderStatus::Shipped),
        ("[买家确认收货，交易成功]", OrderStatus::Completed),
        ("快给ta一个评价吧~", OrderStatus::Completed),
        ("[你关闭了订单，钱款已原路退返]", OrderStatus::Closed),
        ("[未付款，买家关闭了订单]", OrderStatus::Closed),
        ("[我发起了退款申请]", OrderStatus::Refunding),
        ("[买家申请退款]", OrderStatus::Refunding),
        ("「我将「退货退款」修改为「退款」」", OrderStatus::Refunding),
        ("[退款成功，钱款已原路退返]", OrderStatus::Refunded),
        ("[卖家同意退款]", OrderStatus::Refunded),
    ];
    for (text, status) in cases {
        let raw = card(text, 26, &order_card_content("卡片", "seller"), &json!({}));
        let event = event_of(&raw, Some(SELLER));
        assert_eq!(status_of(&event), Some(status), "{text}: {event:?}");
        assert!(
            matches!(&event, DecodedEvent::Order { order_id, .. } if order_id == "2503688126356636370")
        );
    }
}

#[test]
fn card_title_and_task_name_are_fallbacks() {
    let raw = card(
        "[卡片消息]",
        26,
        &order_card_content("我已成功小刀，待发货", "seller"),
        &json!({}),
    );
    assert_eq!(status_of(&event_of(&raw, None)), Some(OrderStatus::Paid));
    let raw = card(
        "[卡片消息]",
        26,
        &order_card_content("我已小刀，待刀成", "seller"),
        &json!({}),
    );
    assert!(reason_of(&event_of(&raw, None)).contains("bargain"));
    let mut raw = card(
        "[卡片消息]",
        26,
        &order_card_content("x", "seller"),
        &json!({}),
    );
    raw["1"]["10"]["bizTag"] = json!("{\"taskName\":\"发起退款申请_卖家-新逆向url\"}");
    assert_eq!(
        status_of(&event_of(&raw, None)),
        Some(OrderStatus::Refunding)
    );
}

#[test]
fn refund_card_update_outcomes() {
    let update = |button: &str| {
        json!({"contentType": 32, "dynamicOperation": {"changeContent": {"dxCard": {"item": {"main": {
            "exContent": {"title": "我发起了退款申请", "button": {"text": button,
                "targetUrl": "fleamarket://refund_detail?bizOrderId=2503688126356636370&role=seller"}}}}}}}})
    };
    let raw = card("[我发起了退款申请]", 32, &update("已同意"), &json!({}));
    assert_eq!(
        status_of(&event_of(&raw, None)),
        Some(OrderStatus::Refunded)
    );
    let raw = card("[我发起了退款申请]", 32, &update("已撤销"), &json!({}));
    assert!(reason_of(&event_of(&raw, None)).contains("withdrawn"));
    let raw = card("[我发起了退款申请]", 32, &update("待处理"), &json!({}));
    assert_eq!(
        status_of(&event_of(&raw, None)),
        Some(OrderStatus::Refunding)
    );
}

#[test]
fn shipped_tip_without_order_id_is_a_hint() {
    let raw = card(
        "[你已发货]",
        14,
        &json!({"contentType": 14, "tip": {}}),
        &json!({}),
    );
    assert!(reason_of(&event_of(&raw, None)).contains("status=shipped cid=47983389096"));
}

#[test]
fn order_id_scan_fallback() {
    let raw = card(
        "[我已付款，等待你发货]",
        26,
        &json!({"contentType": 26, "note": "bizOrderId:3310145690545023994"}),
        &json!({}),
    );
    assert!(
        matches!(event_of(&raw, None), DecodedEvent::Order { order_id, .. } if order_id == "3310145690545023994")
    );
    assert_eq!(
        scan_order_id(r#"{\"orderId\":\"1234567890123\"}"#).as_deref(),
        Some("1234567890123")
    );
    assert_eq!(scan_order_id("orderId=123"), None);
    assert_eq!(scan_order_id("itemId=1234567890123"), None);
}

#[test]
fn noise_is_ignored() {
    let tip = card(
        "[不想宝贝被砍价?设置不砍价回复  ]",
        14,
        &json!({"contentType":14,"tip":{"argInfo":{"arg1":"NoBargainGuide"}}}),
        &json!({}),
    );
    assert!(reason_of(&event_of(&tip, None)).starts_with("system message"));
    let mut marketing = card(
        "队友喊你来打气",
        101,
        &json!({}),
        &json!({"msgArg1": "MsgTips"}),
    );
    marketing["1"]["10"]["reminderUrl"] = json!("fleamarket://custom_chat?sid=47983389096");
    assert!(reason_of(&event_of(&marketing, None)).starts_with("system message"));
    for raw in [
        json!(5),
        json!({}),
        json!({"1": 3}),
        json!({"1": "x", "2": 9}),
        json!({"1": []}),
        json!({"1": "x.PNM", "2": 2}),
    ] {
        assert!(
            matches!(event_of(&raw, None), DecodedEvent::Ignored { .. }),
            "{raw}"
        );
    }
}

#[test]
fn url_helpers() {
    assert_eq!(url_param("a://b?itemId=1&id=2#frag", "id"), Some("2"));
    assert_eq!(url_param("a://b?itemId=1", "id"), None);
    assert_eq!(
        order_id_from_url("fleamarket://item?id=1234567890123"),
        None
    );
    assert_eq!(
        order_id_from_url("fleamarket://order_detail?id=1234567890123"),
        Some("1234567890123")
    );
}
