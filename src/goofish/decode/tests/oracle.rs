//! The decoder's answers on a fixed corpus, recorded in `tests/data/decode_oracle.txt`.
//!
//! The corpus is generated from a fixed seed, so it is the same on every run: the golden
//! captures mutated byte by byte (overwritten, inserted, bit-flipped, truncated), random
//! bytes, and generated payloads shaped like the real ones (the keys and phrases the
//! classifier reads, nested JSON documents as strings, some of them cut short), written as
//! MessagePack and as JSON. For each input the file holds what the decoder made of it: the
//! event as JSON and a digest of the `raw` form, or the kind of error.
//!
//! The file was first written by the decoder the zero-copy one replaced (rmpv into a JSON
//! tree, classified by lookups in the tree), so this test shows that the two give the same
//! answers. From then on it pins every answer: a deliberate change of behaviour rewrites the
//! file with `DECODE_ORACLE_WRITE=1 cargo test --lib decode::tests::oracle`, and the diff of
//! the file is what a reviewer reads.
//!
//! Every input also has to classify the same through the daemon's [`PushDecoder`] and, for
//! decodable ones, through [`classify`] of the `raw` form (replay files hold that form).

use base64::Engine;
use md5::{Digest, Md5};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use super::super::{
    DecodeError, DecodedEvent, PushDecoder, classify, decode_payload, encode_msgpack,
};
use crate::goofish::captures;

const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/decode_oracle.txt");
const CASES: usize = 2000;
const SEED: [u8; 32] = *b"xianyu-shopd decoder oracle 2026";

const PHRASES: &[&str] = &[
    "[我已付款，等待你发货]",
    "[已付款，待发货]",
    "等待卖家发货",
    "等待买家付款",
    "[你已发货]",
    "交易关闭",
    "退款成功",
    "我发起了退款申请",
    "已同意",
    "已撤销",
    "已拒绝",
    "我已小刀，待刀成",
    "[图片]",
    "111",
    "",
    "付款完成待发货_卖家",
    "已拍下_未付款_买家",
    "发起退款申请_卖家",
    "47983389096:2503688126356636370:10:TRADE_PAID:26",
    "47983389096:2503688126356636370:1_not_pay_seller",
    "47983389096:2503688126356636370:1_not_pay_BUYER",
    "fleamarket://order_detail?id=2503688126356636370&role=seller",
    "fleamarket://order_detail?id=2503688126356636370&role=buyer",
    "fleamarket://x?bizOrderId=3310145690545023994",
    "fleamarket://message_chat?itemId=900052644277&peerUserId=3149637063&sid=47983389096",
    "fleamarket://message_chat?itemId=&sid=",
    "fleamarket://custom_chat?sid=47983389096",
    "bizOrderId:3310145690545023994",
    "3149637063@goofish",
    "47983389096@goofish",
    "3416565274542.PNM",
    "2202640918079",
    "3149637063",
    "26",
    " 1",
    "sha修",
];

const KEYS: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "10",
    "01",
    "reminderContent",
    "reminderUrl",
    "reminderTitle",
    "senderNick",
    "senderUserId",
    "redReminder",
    "userId",
    "bizTag",
    "extJson",
    "sessionInfo",
    "sessionId",
    "extensions",
    "itemId",
    "itemSellerId",
    "ownerUserId",
    "extUserId",
    "groupOwnerId",
    "contentType",
    "text",
    "dxCard",
    "item",
    "main",
    "exContent",
    "button",
    "targetUrl",
    "title",
    "dynamicOperation",
    "changeContent",
    "taskName",
    "updateKey",
    "messageId",
    "orderId",
    "note",
];

const ACCOUNTS: &[&str] = &["2202640918079", "3149637063", "2150369819"];

/// Any JSON value built from the keys and phrases the classifier reads.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..40).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5i64..0).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(2503688126356636370_u64)),
        prop::sample::select(PHRASES).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..8).prop_map(
                |entries| Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )
            ),
            // A JSON document as a string (content, bizTag, extJson), sometimes cut short.
            (inner, 0usize..6).prop_map(|(v, cut)| {
                let s = v.to_string();
                if cut == 0 && s.len() > 2 {
                    Value::String(s.chars().take(s.chars().count() / 2).collect())
                } else {
                    Value::String(s)
                }
            }),
        ]
    })
}

/// `v` where the classifier looks for a message: bare, as shape A's message, inside a
/// shape-A message's extension map and content, or as shape E's extension map.
fn payload(v: Value, wrap: u8) -> Value {
    match wrap {
        0 => v,
        1 => json!({"1": v}),
        2 => json!({"1": {"1": {"1": "3149637063@goofish"}, "2": "47983389096@goofish", "7": 1,
                          "10": v.clone(), "6": {"3": {"4": 26, "5": v.to_string()}}}}),
        _ => json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": v}),
    }
}

/// The golden captures and hand-made payloads of shapes A (paid card, refund update), D, E
/// and F, as bytes.
fn goldens() -> Vec<Vec<u8>> {
    let paid = json!({"1": {"2": "63107041124@goofish",
           "10": {"bizTag": "{\"sourceId\":\"C2C:4Ytd4BSQKIiz\",\"taskName\":\"付款完成待发货_卖家\"}",
                  "extJson": "{\"msgArg1\":\"MsgCard\",\"contentType\":\"26\",\"messageId\":\"4e449a32c59c499594c4c5dffa5ddef0\",\"updateKey\":\"63107041124:3310145690545023994:10:TRADE_PAID:26\"}",
                  "redReminder": "等待卖家发货",
                  "reminderContent": "[我已付款，等待你发货]",
                  "senderUserId": "2222315258815",
                  "reminderUrl": "fleamarket://message_chat?itemId=1063177864132&peerUserId=2222315258815"},
           "6": {"3": {"4": 26, "5": "{\"contentType\":26}"}}}});
    let e = json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1,
        "4": {"reminderContent": "[已付款，待发货]", "redReminder": "等待买家付款",
              "extJson": "{\"contentType\":\"26\",\"messageId\":\"abc\",\"updateKey\":\"63107041124:3310145690545023994:10:TRADE_PAID:26\"}",
              "senderUserId": "2222315258815"},
        "5": 1751448105809_u64});
    let d = json!({"1": "63107041124@goofish", "2": 1, "3": {"redReminder": "交易关闭", "userId": "2222315258815"}});
    let refund = json!({"1": {"1": {"1": "3149637063@goofish"}, "2": "47983389096@goofish", "3": "3500000000001.PNM", "7": 1,
        "6": {"3": {"2": "[我发起了退款申请]", "4": 32, "5": "{\"contentType\":32,\"dynamicOperation\":{\"changeContent\":{\"dxCard\":{\"item\":{\"main\":{\"exContent\":{\"title\":\"我发起了退款申请\",\"button\":{\"text\":\"已同意\",\"targetUrl\":\"fleamarket://refund_detail?bizOrderId=2503688126356636370&role=seller\"}}}}}}}}"}},
        "10": {"reminderContent": "[我发起了退款申请]"}}});
    let f = json!({"sessionInfo":{"extensions":{"itemId":"858405091799","itemSellerId":"86599526","extUserId":"2150369819"},"groupOwnerId":"86599526","sessionId":"46731209751"},"sessionId":"46731209751"});
    let captures = [
        captures::a1(),
        captures::a3(),
        captures::a4(),
        captures::a5(),
        captures::sync_receipt(),
    ];
    let mut out: Vec<Vec<u8>> = captures.iter().map(|s| bytes(s)).collect();
    out.extend([paid, e, d, refund].iter().map(encode_msgpack));
    out.push(f.to_string().into_bytes());
    out
}

/// Some of `fields`, each with a value from its strategy, as a JSON object.
fn some_of(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let chosen: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| prop::option::weighted(0.6, value).prop_map(move |v| (key, v)))
        .collect();
    chosen
        .prop_map(|entries| {
            let object = entries
                .into_iter()
                .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                .collect();
            Value::Object(object)
        })
        .boxed()
}

fn phrase() -> BoxedStrategy<Value> {
    prop::sample::select(PHRASES)
        .prop_map(|s| Value::String(s.to_owned()))
        .boxed()
}

/// A JSON document written into a string, sometimes cut short.
fn as_text(doc: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    (doc, 0..8u8)
        .prop_map(|(doc, cut)| {
            let text = doc.to_string();
            let keep = if cut == 0 {
                text.chars().count() / 2
            } else {
                usize::MAX
            };
            Value::String(text.chars().take(keep).collect())
        })
        .boxed()
}

/// A number, a numeric string or a phrase where the classifier expects a content type.
fn content_type() -> BoxedStrategy<Value> {
    prop_oneof![
        prop::sample::select(vec![1u64, 2, 14, 26, 32]).prop_map(Value::from),
        prop::sample::select(vec!["1", "26", "32", " 26"]).prop_map(|s| json!(s)),
        phrase(),
    ]
    .boxed()
}

/// The `main` part of a trade card.
fn card_main() -> BoxedStrategy<Value> {
    let button = some_of(vec![("text", phrase()), ("targetUrl", phrase())]);
    let ex = some_of(vec![("title", phrase()), ("button", button)]);
    some_of(vec![("targetUrl", phrase()), ("exContent", ex)])
}

/// A message's content JSON (`1.6.3.5`).
fn content() -> BoxedStrategy<Value> {
    let card = card_main().prop_map(|main| json!({"item": {"main": main}}));
    let update =
        card_main().prop_map(|main| json!({"changeContent": {"dxCard": {"item": {"main": main}}}}));
    some_of(vec![
        ("contentType", content_type()),
        ("text", phrase().prop_map(|t| json!({"text": t})).boxed()),
        ("dxCard", card.boxed()),
        ("dynamicOperation", update.boxed()),
    ])
}

/// The extension map (`1.10` of shape A, `3` of D, `4` of E).
fn extension() -> BoxedStrategy<Value> {
    let tags = || {
        as_text(some_of(vec![
            ("taskName", phrase()),
            ("updateKey", phrase()),
            ("messageId", phrase()),
            (
                "itemId",
                prop_oneof![phrase(), Just(json!(900052644277_u64))].boxed(),
            ),
            ("contentType", content_type()),
        ]))
    };
    some_of(vec![
        ("reminderContent", phrase()),
        ("reminderUrl", phrase()),
        ("reminderTitle", phrase()),
        ("senderNick", phrase()),
        ("senderUserId", phrase()),
        ("redReminder", phrase()),
        (
            "userId",
            prop_oneof![phrase(), Just(json!(3149637063_u64))].boxed(),
        ),
        ("bizTag", tags()),
        ("extJson", tags()),
    ])
}

/// A payload of shape A, D or E assembled from realistic parts, some missing.
fn message() -> impl Strategy<Value = Value> {
    let custom = some_of(vec![
        ("2", phrase()),
        ("4", content_type()),
        (
            "5",
            prop_oneof![3 => as_text(content()), 1 => phrase()].boxed(),
        ),
    ]);
    let kind = prop::sample::select(vec![json!(1), json!(2), json!("2")]).boxed();
    let shape_a = some_of(vec![
        ("1", phrase().prop_map(|p| json!({"1": p})).boxed()),
        ("2", phrase()),
        ("3", phrase()),
        ("5", Just(json!(1751431117553_u64)).boxed()),
        ("6", custom.prop_map(|c| json!({"3": c})).boxed()),
        ("7", kind),
        ("10", extension()),
    ])
    .prop_map(|message| json!({"1": message, "3": {"needPush": "false"}}));
    let shape_d = extension().prop_map(|ext| json!({"1": "63107041124@goofish", "2": 1, "3": ext}));
    let shape_e = extension().prop_map(|ext| {
        json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": ext, "5": 1751448105809_u64})
    });
    prop_oneof![3 => shape_a, 1 => shape_d, 1 => shape_e]
}

/// A golden payload with up to 6 edits, mostly ones that keep the MessagePack readable.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![4 => Just(0u8), 4 => Just(2u8), 1 => Just(1u8), 1 => Just(3u8)];
    let edit = (any::<prop::sample::Index>(), any::<u8>(), op);
    (
        prop::sample::select(goldens()),
        prop::collection::vec(edit, 0..6),
    )
        .prop_map(|(mut data, edits)| {
            for (at, byte, op) in edits {
                if data.is_empty() {
                    break;
                }
                let i = at.index(data.len());
                match op {
                    0 => data[i] = byte,
                    1 => data.insert(i, byte),
                    2 => data[i] ^= 1 << (byte % 8),
                    _ => data.truncate(i),
                }
            }
            data
        })
}

/// One input (payload bytes) and the account it is decoded for.
fn case() -> impl Strategy<Value = (Vec<u8>, Option<&'static str>)> {
    let input = prop_oneof![
        4 => mutated(),
        4 => message().prop_map(|m| encode_msgpack(&m)),
        3 => (value(), 0..4u8).prop_map(|(v, wrap)| encode_msgpack(&payload(v, wrap))),
        1 => (value(), 0..4u8).prop_map(|(v, wrap)| payload(v, wrap).to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    (input, prop::option::of(prop::sample::select(ACCOUNTS)))
}

fn bytes(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64")
}

/// The corpus, the same on every run.
fn corpus() -> Vec<(String, Option<&'static str>)> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &SEED);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = case();
    (0..CASES)
        .map(|_| {
            let (data, account) = strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current();
            (
                base64::engine::general_purpose::STANDARD.encode(data),
                account,
            )
        })
        .collect()
}

/// What the decoder makes of one input, as the oracle file writes it.
fn outcome(b64: &str, account: Option<&str>) -> String {
    match decode_payload(b64, account) {
        Ok(decoded) => {
            let [decoded] = <[_; 1]>::try_from(decoded).expect("one payload, one item");
            let event = serde_json::to_string(&decoded.event).expect("events serialize");
            format!("{event} raw:{}", digest(&decoded.raw))
        }
        Err(err) => format!("error: {}", error_kind(&err)),
    }
}

/// One line of the oracle file: case number, account (`-` for none), outcome.
fn line(case: usize, account: Option<&str>, outcome: &str) -> String {
    format!("{case}\t{}\t{outcome}", account.unwrap_or("-"))
}

/// The first 16 hex digits of the MD5 of the compact JSON text (a digest, not security).
fn digest(raw: &Value) -> String {
    let hash = Md5::digest(raw.to_string().as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The error's kind: its message up to the detail, which names positions that differ
/// between readers.
fn error_kind(err: &DecodeError) -> String {
    let message = err.to_string();
    message.split(':').next().unwrap_or_default().to_owned()
}

/// The other two ways in agree with `decode_payload`.
fn check_paths(b64: &str, account: Option<&str>) -> Result<(), String> {
    let daemon = PushDecoder::new().decode(b64, account);
    match (decode_payload(b64, account), daemon) {
        (Ok(decoded), Ok(event)) => {
            let decoded = &decoded[0];
            let replayed: DecodedEvent = classify(&decoded.raw, account);
            if event != decoded.event {
                return Err(format!("PushDecoder: {event:?} vs {:?}", decoded.event));
            }
            if replayed != decoded.event {
                return Err(format!(
                    "classify(raw): {replayed:?} vs {:?}",
                    decoded.event
                ));
            }
            Ok(())
        }
        (Err(a), Err(b)) if error_kind(&a) == error_kind(&b) => Ok(()),
        (a, b) => Err(format!("decode_payload {a:?} vs PushDecoder {b:?}")),
    }
}

#[test]
fn decoder_answers_match_the_recorded_oracle() {
    let corpus = corpus();
    let lines: Vec<String> = corpus
        .iter()
        .enumerate()
        .map(|(i, (b64, account))| line(i, *account, &outcome(b64, *account)))
        .collect();
    for (b64, account) in &corpus {
        if let Err(why) = check_paths(b64, *account) {
            panic!("paths disagree on {b64} ({account:?}): {why}");
        }
    }
    if std::env::var_os("DECODE_ORACLE_WRITE").is_some() {
        std::fs::write(ORACLE, lines.join("\n") + "\n").expect("write the oracle");
        return;
    }
    let recorded = std::fs::read_to_string(ORACLE).expect("tests/data/decode_oracle.txt");
    let recorded: Vec<&str> = recorded.lines().collect();
    assert_eq!(recorded.len(), lines.len(), "corpus size changed");
    let differing: Vec<String> = lines
        .iter()
        .zip(&recorded)
        .zip(&corpus)
        .filter(|((now, then), _)| now != *then)
        .map(|((now, then), (b64, _))| format!("input {b64}\n  recorded {then}\n  now      {now}"))
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {CASES} answers differ from the oracle; the first ones:\n{}",
        differing.len(),
        differing[..differing.len().min(5)].join("\n")
    );
}
