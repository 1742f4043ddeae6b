//! Whole push frames and `decode_input`.

use super::*;

// --- frames ----------------------------------------------------------

fn sync_frame(items: &[(&str, i64)]) -> String {
    let data: Vec<Value> = items
        .iter()
        .map(|(b64, ot)| json!({"bizType": 40, "data": b64, "streamId": "40", "objectType": ot}))
        .collect();
    json!({"headers": {"app-key": IM_KEY, "mid": "84a4001c 0", "sid": "213ffe1d6864f8fe0753a9cd09b592ae3ae5a1e2e4a5"},
           "lwp": "/s/sync",
           "body": {"syncPushPackage": {"maxHighPts": 0, "startSeq": 1, "endSeq": 2, "minCreateTime": 1751448105809_u64,
                                        "data": data, "maxPts": 1751448127805000_u64, "hasMore": 0, "timestamp": 1751448127809_u64},
                    "syncExtensionModel": {"reconnectType": 0, "failover": 0, "fingerprint": -898528959}}})
    .to_string()
}

const IM_KEY: &str = "444e9908a51d1cb236a27862abc769c9";

#[test]
fn frame_yields_every_item_not_just_the_first() {
    let chat = encode_payload(&a2());
    let frame = sync_frame(&[(captures::sync_receipt(), 40103), (&chat, 40000)]);
    let events: Vec<DecodedEvent> = decode_frame(&frame, Some(JV_ACCOUNT))
        .expect("frame")
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0],
        DecodedEvent::ReadReceipt {
            cid: "51204613184".into(),
            message_id: "3594305794159.PNM".into(),
            read_at_ms: Some(1751448105798),
        }
    );
    assert!(matches!(&events[1], DecodedEvent::Chat { own: true, text, .. } if text == "cc"));
}

#[test]
fn real_para_typing_frame() {
    let frame = r#"{"headers":{"mid":"a3e20004 0"},"lwp":"/s/para","body":{"syncPushPackage":{"maxHighPts":0,"startSeq":0,"endSeq":0,"data":[{"bizType":40,"data":"gQGRhAGzNTEyMDQ2MTMxODRAZ29vZmlzaAIBAwEEsjIxNTAzNjk4MTlAZ29vZmlzaA==","streamId":"40","objectType":40006,"syncId":""}],"maxPts":0,"hasMore":0,"timestamp":0},"syncExtensionModel":{}}}"#;
    let decoded = decode_frame(frame, None).expect("frame");
    assert_eq!(decoded.len(), 1);
    assert!(matches!(decoded[0].event, DecodedEvent::Typing { .. }));
}

#[test]
fn frame_with_bad_item_keeps_good_ones() {
    let frame = sync_frame(&[
        ("!!!not base64", 40000),
        ("kQ==", 40000),
        (captures::a1(), 40000),
    ]);
    let decoded = decode_frame(&frame, None).expect("frame");
    assert!(reason_of(&decoded[0].event).contains("base64"));
    assert!(reason_of(&decoded[1].event).contains("MessagePack"));
    assert_eq!(decoded[1].raw["objectType"], 40000);
    assert_eq!(
        status_of(&decoded[2].event),
        Some(OrderStatus::PendingPayment)
    );
    let no_data = r#"{"lwp":"/s/sync","body":{"syncPushPackage":{"data":[{"bizType":40}]}}}"#;
    assert!(reason_of(&decode_frame(no_data, None).expect("frame")[0].event).contains("without"));
    let empty = r#"{"lwp":"/s/sync","body":{"syncPushPackage":{"data":[]}}}"#;
    assert!(decode_frame(empty, None).expect("frame").is_empty());
}

#[test]
fn non_push_frames_are_unknown() {
    for frame in [
        r#"{"code":200,"headers":{"mid":"5701741704675979 0"}}"#,
        r#"{"lwp":"/s/sync","body":{"syncPushPackage":{"data":"x"}}}"#,
        "[1,2]",
    ] {
        assert!(
            matches!(decode_frame(frame, None), Err(DecodeError::UnknownFrame(_))),
            "{frame}"
        );
    }
    assert!(matches!(
        decode_frame("{not json", None),
        Err(DecodeError::Json(_))
    ));
    let broken_json = base64::engine::general_purpose::STANDARD.encode("{\"a\":");
    assert!(matches!(
        decode_payload(&broken_json, None),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn decode_input_auto_detects() {
    let frame = sync_frame(&[(captures::a3(), 40103)]);
    assert!(matches!(
        decode_input(&frame, None).expect("frame")[0].event,
        DecodedEvent::ReadReceipt { .. }
    ));
    assert!(matches!(
        decode_input(captures::a4(), None).expect("b64")[0].event,
        DecodedEvent::Typing { .. }
    ));
    let raw_json = a2().to_string();
    let from_raw = decode_input(&raw_json, Some(JV_ACCOUNT)).expect("raw json");
    assert!(matches!(
        from_raw[0].event,
        DecodedEvent::Chat { own: true, .. }
    ));
    // Line-wrapped base64 with surrounding whitespace.
    let wrapped = format!("  {}\n{}\n", &captures::a3()[..20], &captures::a3()[20..]);
    assert!(matches!(
        decode_input(&wrapped, None).expect("b64")[0].event,
        DecodedEvent::ReadReceipt { .. }
    ));
    assert!(matches!(decode_input("   ", None), Err(DecodeError::Empty)));
}
