//! Forms the service does not send but the decoder has always accepted the same way (string
//! keys, repeated keys, escapes, numbers as strings, invalid UTF-8, the nesting limit), so
//! a faster reader cannot quietly change what a payload means.

use super::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// MessagePack fixstr (up to 31 bytes).
fn fixstr(s: &str) -> Vec<u8> {
    assert!(s.len() <= 31);
    let mut out = vec![0xa0 | s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// A typing entry `{"1": "<cid>@goofish", "4": "<uid>@goofish"}` with string keys.
fn typing_entry_with_string_keys() -> Vec<u8> {
    let mut out = vec![0x82];
    out.extend(fixstr("1"));
    out.extend(fixstr("51204613184@goofish"));
    out.extend(fixstr("4"));
    out.extend(fixstr("2150369819@goofish"));
    out
}

fn typing() -> DecodedEvent {
    DecodedEvent::Typing {
        cid: "51204613184".into(),
        user_id: "2150369819".into(),
    }
}

#[test]
fn string_keys_name_the_same_fields_as_integer_keys() {
    let mut bytes = vec![0x81];
    bytes.extend(fixstr("1"));
    bytes.push(0x91);
    bytes.extend(typing_entry_with_string_keys());
    assert_eq!(one(&b64(&bytes), None).event, typing());
    // "01" is not the key 1.
    let mut bytes = vec![0x81];
    bytes.extend(fixstr("01"));
    bytes.push(0x91);
    bytes.extend(typing_entry_with_string_keys());
    assert!(reason_of(&one(&b64(&bytes), None).event).contains("unrecognized"));
}

#[test]
fn a_repeated_key_counts_with_its_last_value() {
    // {1: "x", 1: [typing entry]} and {1: [typing entry], 1: 5}.
    let mut bytes = vec![0x82, 0x01];
    bytes.extend(fixstr("x"));
    bytes.extend([0x01, 0x91]);
    bytes.extend(typing_entry_with_string_keys());
    assert_eq!(one(&b64(&bytes), None).event, typing());
    let mut bytes = vec![0x82, 0x01, 0x91];
    bytes.extend(typing_entry_with_string_keys());
    bytes.extend([0x01, 0x05]);
    assert!(reason_of(&one(&b64(&bytes), None).event).contains("unrecognized"));
    // The same inside the content JSON.
    let mut raw = a5();
    raw["1"]["6"]["3"]["5"] =
        json!(r#"{"contentType":1,"text":{"text":"first"},"text":{"text":"second"}}"#);
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "second"));
    raw["1"]["6"]["3"]["5"] = json!(r#"{"contentType":1,"text":{"text":"first"},"text":"x"}"#);
    assert!(matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "111"));
}

#[test]
fn nested_json_with_escapes_and_loose_types() {
    // Content type only in the content, as a string; the text has escapes.
    let mut raw = a5();
    raw["1"]["6"]["3"] =
        json!({"2": "x", "5": r#"{"contentType":" 1","text":{"text":"say \"hi\"\n\u4f60"}}"#});
    assert!(
        matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "say \"hi\"\n你")
    );
    // Escaped slashes in a card URL; the item id as a number in bizTag, no URL with one.
    let content = r#"{"contentType":26,"dxCard":{"item":{"main":{"targetUrl":"fleamarket:\/\/order_detail?id=2503688126356636370&role=seller"}}}}"#;
    let mut raw = card("[我已付款，等待你发货]", 26, &json!({}), &json!({}));
    raw["1"]["6"]["3"]["5"] = json!(content);
    raw["1"]["10"]["reminderUrl"] = json!("fleamarket://message_chat?sid=47983389096");
    raw["1"]["10"]["bizTag"] = json!(r#"{"itemId":900052644277}"#);
    let event = event_of(&raw, Some(SELLER));
    assert!(
        matches!(&event, DecodedEvent::Order { order_id, item_id: Some(item), status: OrderStatus::Paid, role: Role::Seller, .. }
            if order_id == "2503688126356636370" && item == "900052644277"),
        "{event:?}"
    );
    // A card whose main part has the wrong types names no order through it.
    raw["1"]["6"]["3"]["5"] = json!(r#"{"contentType":26,"dxCard":{"item":"main"}}"#);
    assert!(matches!(
        event_of(&raw, Some(SELLER)),
        DecodedEvent::PaidHint { .. }
    ));
}

#[test]
fn invalid_utf8_reads_as_replacement_characters() {
    let mut raw = a5();
    raw["1"]["6"]["3"]["4"] = json!(2);
    raw["1"]["10"]["reminderContent"] = json!("[图片]~");
    let mut bytes = encode_msgpack(&raw);
    let at = bytes
        .windows(2)
        .position(|w| w == "]~".as_bytes())
        .expect("marker present");
    bytes[at + 1] = 0xff;
    let decoded = one(&b64(&bytes), None);
    assert!(
        matches!(&decoded.event, DecodedEvent::Chat { text, .. } if text == "[图片]\u{fffd}"),
        "{:?}",
        decoded.event
    );
    assert_eq!(decoded.raw["1"]["10"]["reminderContent"], "[图片]\u{fffd}");
}

/// `depth` arrays around `inner`.
fn nested(depth: usize, inner: &[u8]) -> String {
    let mut bytes = vec![0x91; depth];
    bytes.extend_from_slice(inner);
    b64(&bytes)
}

#[test]
fn nesting_limit_is_unchanged() {
    let ok = |b64: &str| decode_payload(b64, None).is_ok();
    // Values 31 levels deep, strings 30.
    assert!(ok(&nested(31, &[0x01])));
    assert!(!ok(&nested(32, &[0x01])));
    assert!(ok(&nested(31, &[0x90])));
    assert!(ok(&nested(30, &fixstr("s"))));
    assert!(!ok(&nested(31, &fixstr("s"))));
    // The reserved byte 0xc1 reads as nil.
    assert_eq!(payload_to_value("wQ==").expect("decodes"), Value::Null);
}
