//! Errors, the encoder, and hostile input that must never panic.

use super::*;

// --- errors ---------------------------------------------------------

#[test]
fn undecodable_inputs_are_errors() {
    assert!(matches!(decode_payload("", None), Err(DecodeError::Empty)));
    assert!(matches!(
        decode_payload("@@@@", None),
        Err(DecodeError::Base64(_))
    ));
    assert!(matches!(
        decode_payload("kQ==", None),
        Err(DecodeError::MsgPack(_))
    )); // array of 1, no element
    let truncated = base64::engine::general_purpose::STANDARD.encode(&bytes(captures::a1())[..500]);
    assert!(matches!(
        decode_payload(&truncated, None),
        Err(DecodeError::MsgPack(_))
    ));
    let trailing = base64::engine::general_purpose::STANDARD.encode([0x01, 0x02]);
    assert!(matches!(
        decode_payload(&trailing, None),
        Err(DecodeError::MsgPack(_))
    ));
    let ext = base64::engine::general_purpose::STANDARD.encode([0xd4, 0x01, 0x00]);
    assert!(matches!(
        decode_payload(&ext, None),
        Err(DecodeError::MsgPack(_))
    ));
    let deep = base64::engine::general_purpose::STANDARD.encode([0x91; 10_000]);
    assert!(matches!(
        decode_payload(&deep, None),
        Err(DecodeError::MsgPack(_))
    ));
    let huge_str =
        base64::engine::general_purpose::STANDARD.encode([0xdb, 0xff, 0xff, 0xff, 0xff, b'a']);
    assert!(matches!(
        decode_payload(&huge_str, None),
        Err(DecodeError::MsgPack(_))
    ));
}

#[test]
fn url_safe_and_unpadded_base64_accepted() {
    let unpadded = captures::a4().trim_end_matches('=');
    assert!(matches!(
        one(unpadded, None).event,
        DecodedEvent::Typing { .. }
    ));
    let b64 = encode_payload(&json!({"k": "\u{fbff}\u{fbff}\u{fbff}"}));
    let url_safe = b64.replace('+', "-").replace('/', "_");
    assert_eq!(
        payload_to_value(&url_safe).expect("decodes"),
        json!({"k": "\u{fbff}\u{fbff}\u{fbff}"})
    );
}

// --- encoder ----------------------------------------------------------

#[test]
fn encoder_follows_service_choices() {
    assert_eq!(encode_msgpack(&json!("a".repeat(31)))[0], 0xbf);
    assert_eq!(
        encode_msgpack(&json!("a".repeat(32)))[..3],
        [0xda, 0x00, 0x20]
    );
    assert_eq!(
        encode_msgpack(&json!("a".repeat(70_000)))[..5],
        [0xdb, 0x00, 0x01, 0x11, 0x70]
    );
    assert_eq!(encode_msgpack(&json!(1742458817389_u64))[0], 0xcf);
    assert_eq!(encode_msgpack(&json!(-1)), [0xff]);
    assert_eq!(encode_msgpack(&json!(-200)), [0xd1, 0xff, 0x38]);
    assert_eq!(encode_msgpack(&json!(1.5))[0], 0xcb);
    // Integer keys first and numeric ("10" after "9"); string keys sorted; "01" stays a string.
    let map = json!({"b": 0, "10": 0, "9": 0, "01": 0, "A": 0});
    assert_eq!(
        encode_msgpack(&map),
        [
            0x85, 0x09, 0x00, 0x0a, 0x00, 0xa2, b'0', b'1', 0x00, 0xa1, b'A', 0x00, 0xa1, b'b',
            0x00
        ]
    );
    let big: Map<String, Value> = (0..16).map(|i| (format!("k{i:02}"), json!(i))).collect();
    assert_eq!(encode_msgpack(&Value::Object(big))[..3], [0xde, 0x00, 0x10]);
    assert_eq!(encode_msgpack(&json!(vec![0; 16]))[..3], [0xdc, 0x00, 0x10]);
}

// --- never panic ------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z0-9@._\u{4e00}-\u{4e10}]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                prop::collection::btree_map("([0-9]{1,3}|[a-zA-Z_]{1,8})", inner, 0..20)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn golden() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(bytes(captures::a1())),
            Just(bytes(captures::a3())),
            Just(bytes(captures::a4())),
            Just(encode_msgpack(&a2()))
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            let _ = decode_payload(&b64, Some(SELLER));
            let _ = bytes_to_value(&data);
        }

        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = decode_input(&s, None);
            let _ = decode_frame(&s, None);
        }

        #[test]
        fn mutated_golden_payloads_never_panic(
            base in golden(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
        ) {
            let mut data = base;
            for (at, byte, op) in edits {
                if data.is_empty() { break; }
                let i = at.index(data.len());
                match op {
                    0 => data[i] = byte,
                    1 => data.insert(i, byte),
                    _ => data.truncate(i),
                }
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            let _ = decode_payload(&b64, Some(SELLER));
            let frame = json!({"lwp": "/s/sync", "body": {"syncPushPackage": {"data": [{"data": b64}]}}});
            prop_assert!(decode_frame(&frame.to_string(), None).is_ok());
        }

        /// The SIMD fast path never answers differently from the lenient decoder: base64 of
        /// random bytes, then edited with characters from both alphabets, padding and
        /// whitespace.
        #[test]
        fn base64_fast_path_agrees_with_the_lenient_decoder(
            data in prop::collection::vec(any::<u8>(), 0..48),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(b"Aa0+/=-_ \nQgw".to_vec()), any::<bool>()), 0..4),
        ) {
            let mut text = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
            for (at, byte, insert) in edits {
                let i = at.index(text.len() + 1);
                match text.get_mut(i) {
                    Some(slot) if !insert => *slot = byte,
                    _ => text.insert(i, byte),
                }
            }
            let text = String::from_utf8(text).expect("ASCII");
            let (mut fast, mut lenient) = (Vec::new(), Vec::new());
            let fast_answer = msgpack::decode_base64_into(&text, &mut fast).map_err(|e| e.to_string());
            let lenient_answer = msgpack::decode_base64_lenient(&text, &mut lenient).map_err(|e| e.to_string());
            prop_assert_eq!(fast_answer, lenient_answer, "{}", text);
            prop_assert_eq!(fast, lenient, "{}", text);
        }

        #[test]
        fn classify_never_panics_and_encoding_round_trips(value in json_value()) {
            let _ = classify(&value, Some(SELLER));
            let wrapped = json!({"1": {"10": value.clone(), "6": {"3": {"5": value.to_string()}}}, "4": value.clone()});
            let _ = classify(&wrapped, Some(SELLER));
            prop_assert_eq!(bytes_to_value(&encode_msgpack(&value)).ok(), Some(value));
        }
    }
}
