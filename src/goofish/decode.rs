//! Decoding of Goofish IM pushes into typed events.
//!
//! The IM WebSocket delivers `/s/sync`, `/s/para` and `/s/vulcan` frames whose
//! `body.syncPushPackage.data[]` items each carry a base64 `data` field. That
//! field is either UTF-8 JSON (session cards) or plain MessagePack with integer
//! keys (everything else; reference §5.1–5.2). This module turns it into:
//!
//! * a `raw` [`serde_json::Value`] (MessagePack map keys become strings, `1` →
//!   `"1"`), kept for logging, replay and dedupe, and
//! * a [`DecodedEvent`] recognised from the payload's shape (reference §5.3,
//!   shapes A–F) using the extraction recipes of §5.6/§5.7.
//!
//! It also offers [`encode_msgpack`], the inverse used by the fake server, which
//! reproduces the real service's encoder choices so captures round-trip
//! byte-for-byte.
//!
//! Input comes from the network, so nothing here may panic: every lookup is
//! `get`-based, MessagePack nesting is depth-limited, and decoding problems are
//! reported as [`DecodeError`] or as [`DecodedEvent::Ignored`].

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde_json::{Map, Value};

use self::OrderStatus::{Closed, Completed, Paid, PendingPayment, Refunded, Refunding, Shipped};

/// Suffix of IM user and conversation handles (`<id>@goofish`).
const HANDLE_SUFFIX: &str = "@goofish";

/// Real payloads nest about six levels; the limit only stops hostile input from
/// exhausting the stack.
const MAX_MSGPACK_DEPTH: usize = 64;

/// Order ids are 19 digits in every sample; zn accepts 10 or more, and so do we
/// (item ids are 12 digits, but they never sit under an order-id key).
const MIN_ORDER_ID_DIGITS: usize = 10;

/// Why an input could not be decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid MessagePack: {0}")]
    MsgPack(String),
    #[error("unknown frame: {0}")]
    UnknownFrame(String),
}

/// Order state as announced by a trade card or reminder: the event vocabulary every source
/// shares.
pub use crate::event::EventStatus as OrderStatus;

/// Which side of the order this account is on. Buyer-role copies arrive when the
/// account itself buys something and must never trigger delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Seller,
    Buyer,
}

/// What one push item means. Ids are bare numeric strings (no `@goofish`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecodedEvent {
    /// A trade card or reminder that names an order.
    Order {
        order_id: String,
        item_id: Option<String>,
        buyer_id: Option<String>,
        cid: Option<String>,
        status: OrderStatus,
        role: Role,
        /// Server message id (`<digits>.PNM`), else the card's 32-hex
        /// `messageId`; for dedupe.
        source_msg_id: Option<String>,
        /// Server create time of the message, epoch ms.
        created_at_ms: Option<u64>,
    },
    /// A message a person typed (text, image, audio, emoji).
    Chat {
        cid: String,
        sender_id: String,
        message_id: String,
        text: String,
        item_id: Option<String>,
        /// The account's own message echoed back (sent by us or typed by the
        /// seller in another client).
        own: bool,
    },
    /// Typing indicator (shape B). The reference does not say whether `user_id`
    /// is the typist or the addressee.
    Typing { cid: String, user_id: String },
    /// Read receipt (shape C) for message `message_id`.
    ReadReceipt {
        cid: String,
        message_id: String,
        read_at_ms: Option<u64>,
    },
    /// Session "arouse" card (shape F, `/s/vulcan`): a conversation was opened.
    Session {
        cid: String,
        item_id: Option<String>,
        seller_id: Option<String>,
        buyer_id: Option<String>,
    },
    /// Decoded but not actionable: system tips, unknown shapes, order hints
    /// without an order id, undecodable items inside a frame.
    Ignored { reason: String },
}

/// One decoded push item: the event and the raw structure it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    pub event: DecodedEvent,
    pub raw: Value,
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Decodes one base64 payload (an item's `data` field).
///
/// # Errors
/// [`DecodeError`] when the text is not base64 or the bytes are neither JSON
/// nor a single MessagePack value.
pub fn decode_payload(b64: &str, account_id: Option<&str>) -> Result<Vec<Decoded>, DecodeError> {
    let raw = payload_to_value(b64)?;
    Ok(vec![decoded(raw, account_id)])
}

/// Decodes every item of a push frame's `body.syncPushPackage.data`.
///
/// An item that cannot be decoded becomes [`DecodedEvent::Ignored`] (with the
/// item as `raw`) so one bad item never hides the others. Frames without a
/// push package (responses, heartbeats) are [`DecodeError::UnknownFrame`].
///
/// # Errors
/// [`DecodeError::Json`] for text that is not JSON, [`DecodeError::UnknownFrame`]
/// for JSON without a `body.syncPushPackage.data` array.
pub fn decode_frame(json: &str, account_id: Option<&str>) -> Result<Vec<Decoded>, DecodeError> {
    let frame: Value = serde_json::from_str(json)?;
    decode_frame_value(&frame, account_id)
}

/// Decodes whatever a replay file or a log line holds: a whole frame (JSON with
/// `lwp`/`body`/`headers`), an already-decoded payload as JSON (e.g. a `raw`
/// value), or a base64 payload.
///
/// # Errors
/// As [`decode_frame`] or [`decode_payload`]; [`DecodeError::Empty`] for blank input.
pub fn decode_input(s: &str, account_id: Option<&str>) -> Result<Vec<Decoded>, DecodeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !s.starts_with('{') {
        return decode_payload(s, account_id);
    }
    let value: Value = serde_json::from_str(s)?;
    if ["lwp", "body", "headers"]
        .iter()
        .any(|k| value.get(k).is_some())
    {
        decode_frame_value(&value, account_id)
    } else {
        Ok(vec![decoded(value, account_id)])
    }
}

/// Decodes a base64 payload into its raw JSON structure without classifying it.
///
/// # Errors
/// As [`decode_payload`].
pub fn payload_to_value(b64: &str) -> Result<Value, DecodeError> {
    bytes_to_value(&decode_base64(b64)?)
}

/// Decodes payload bytes: UTF-8 JSON if they are JSON, MessagePack otherwise.
///
/// # Errors
/// [`DecodeError::Json`] for broken JSON, [`DecodeError::MsgPack`] for broken,
/// truncated or trailing MessagePack, [`DecodeError::Empty`] for no bytes.
pub fn bytes_to_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    // All bots try JSON first. A MessagePack payload never starts with `{`/`[`:
    // those bytes are lone positive fixints, and a payload is a single map.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => Ok(serde_json::from_slice(bytes)?),
        _ => msgpack_to_value(bytes),
    }
}

/// Recognises the shape of a raw payload and extracts its event.
pub fn classify(raw: &Value, account_id: Option<&str>) -> DecodedEvent {
    let Some(obj) = raw.as_object() else {
        return ignored("payload is not a map");
    };
    match obj.get("1") {
        Some(Value::Object(msg)) => shape_a(msg, account_id),
        Some(Value::Array(list)) => shape_b(list),
        Some(Value::String(first)) => shape_c_d_e(obj, first, account_id),
        _ if obj.contains_key("sessionInfo") || obj.contains_key("sessionId") => shape_f(obj),
        _ => ignored("unrecognized payload shape"),
    }
}

fn decoded(raw: Value, account_id: Option<&str>) -> Decoded {
    Decoded {
        event: classify(&raw, account_id),
        raw,
    }
}

fn decode_frame_value(
    frame: &Value,
    account_id: Option<&str>,
) -> Result<Vec<Decoded>, DecodeError> {
    let Some(items) = frame.pointer("/body/syncPushPackage/data") else {
        let lwp = frame.get("lwp").and_then(Value::as_str).unwrap_or("<none>");
        return Err(DecodeError::UnknownFrame(format!(
            "no body.syncPushPackage.data (lwp {lwp})"
        )));
    };
    let items = items
        .as_array()
        .ok_or_else(|| DecodeError::UnknownFrame("syncPushPackage.data is not an array".into()))?;
    Ok(items
        .iter()
        .map(|item| decode_item(item, account_id))
        .collect())
}

fn decode_item(item: &Value, account_id: Option<&str>) -> Decoded {
    let failed = |reason: String| Decoded {
        event: DecodedEvent::Ignored { reason },
        raw: item.clone(),
    };
    match item.get("data").and_then(Value::as_str) {
        None => failed("push item without a data string".into()),
        Some(data) => match payload_to_value(data) {
            Ok(raw) => decoded(raw, account_id),
            Err(err) => failed(format!("undecodable push item: {err}")),
        },
    }
}

// ---------------------------------------------------------------------------
// base64 and MessagePack
// ---------------------------------------------------------------------------

/// Standard alphabet, padding optional: captures are padded, but bots re-pad
/// defensively and so do we.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64, tolerating whitespace (line-wrapped logs) and the URL-safe
/// alphabet (one SDK maps `-`/`_` first).
fn decode_base64(s: &str) -> Result<Vec<u8>, DecodeError> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    if cleaned.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(LENIENT_BASE64.decode(cleaned)?)
}

fn msgpack_to_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_MSGPACK_DEPTH)
        .map_err(|e| DecodeError::MsgPack(e.to_string()))?;
    if !rest.is_empty() {
        // One item is one value in every capture; leftovers mean corruption.
        return Err(DecodeError::MsgPack(format!(
            "{} trailing bytes after the value",
            rest.len()
        )));
    }
    mp_to_json(value)
}

fn mp_to_json(value: rmpv::Value) -> Result<Value, DecodeError> {
    use rmpv::Value as Mp;
    Ok(match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(n)) => Value::from(n),
            (None, None) => Value::Null,
        },
        Mp::F32(f) => float(f64::from(f)),
        Mp::F64(f) => float(f),
        Mp::String(s) => Value::String(utf8_lossy(s.as_bytes())),
        // Bots render bin as UTF-8 text; never seen in captures.
        Mp::Binary(b) => Value::String(utf8_lossy(&b)),
        Mp::Array(items) => Value::Array(
            items
                .into_iter()
                .map(mp_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Mp::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(mp_key(k)?, mp_to_json(v)?);
            }
            Value::Object(map)
        }
        // No capture has one and no bot handles them; refuse rather than guess.
        Mp::Ext(ty, _) => return Err(DecodeError::MsgPack(format!("unsupported ext type {ty}"))),
    })
}

/// Map keys become strings: integer `1` → `"1"`, like `strict_map_key=False`.
fn mp_key(key: rmpv::Value) -> Result<String, DecodeError> {
    Ok(match mp_to_json(key)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

fn float(f: f64) -> Value {
    // JSON has no NaN/infinity.
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn utf8_lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Encoder (for the fake server)
// ---------------------------------------------------------------------------

/// Encodes a raw payload the way the real service does (reference §5.2, §9):
///
/// * map keys that are canonical decimal integers (`"1"`, `"12"`) are written as
///   integers — the service's structural keys — and come first, ascending;
///   other keys are strings in ascending byte order (the extension map);
/// * strings of up to 31 bytes are fixstr, longer ones str16 even where str8
///   would fit (the service never emits str8), str32 beyond 65535 bytes;
/// * integers use the smallest form, so ms timestamps become uint64;
/// * maps/arrays use fix/16/32 forms by size; floats are float64.
///
/// `bytes_to_value(&encode_msgpack(v))` gives back `v` for every JSON value.
pub fn encode_msgpack(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

/// [`encode_msgpack`] followed by standard padded base64, i.e. an item's `data`.
pub fn encode_payload(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode_msgpack(value))
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            write_len(out, items.len(), 0x90, 15, 0xdc, 0xdd);
            for item in items {
                write_value(out, item);
            }
        }
        Value::Object(map) => write_map(out, map),
    }
}

fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        write_uint(out, u);
    } else if let Some(i) = n.as_i64() {
        write_int(out, i);
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
    }
}

fn write_uint(out: &mut Vec<u8>, u: u64) {
    match u {
        0..=0x7f => out.push(u as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, u as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    }
}

/// Negative integers only (non-negative ones go through [`write_uint`]).
fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= -32 {
        out.push(i as u8);
    } else if i >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, i as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len <= 31 {
        out.push(0xa0 | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(0xda);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// Writes a container header: fix form up to `fix_max`, then 16-bit, then
/// 32-bit length.
fn write_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, m16: u8, m32: u8) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(m16);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

/// A map key as the service writes it. Variant order gives the sort order:
/// integer keys first (numerically), then string keys (bytewise).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Int(u64),
    Str(&'a str),
}

fn map_key(key: &str) -> Key<'_> {
    let canonical = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'));
    match key.parse() {
        Ok(n) if canonical => Key::Int(n),
        _ => Key::Str(key),
    }
}

fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut entries: Vec<(Key<'_>, &Value)> = map.iter().map(|(k, v)| (map_key(k), v)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    write_len(out, entries.len(), 0x80, 15, 0xde, 0xdf);
    for (key, value) in entries {
        match key {
            Key::Int(n) => write_uint(out, n),
            Key::Str(s) => write_str(out, s),
        }
        write_value(out, value);
    }
}

// ---------------------------------------------------------------------------
// Shapes B, C, D/E, F
// ---------------------------------------------------------------------------

fn ignored(reason: impl Into<String>) -> DecodedEvent {
    DecodedEvent::Ignored {
        reason: reason.into(),
    }
}

/// Shape B: `{"1": [{"1": "<cid>@goofish", "2": 1, "3": 1, "4": "<uid>@goofish"}]}`.
fn shape_b(list: &[Value]) -> DecodedEvent {
    let typing = list.iter().find_map(|entry| {
        let cid = entry
            .get("1")
            .and_then(Value::as_str)
            .filter(|s| s.ends_with(HANDLE_SUFFIX))?;
        let user = entry.get("4").and_then(id_string)?;
        Some(DecodedEvent::Typing {
            cid: strip_handle(cid),
            user_id: strip_handle(&user),
        })
    });
    typing.unwrap_or_else(|| ignored("list payload without a typing entry"))
}

/// Shapes C, D and E all have a string `"1"`; `"2"` tells them apart (§5.3).
fn shape_c_d_e(obj: &Map<String, Value>, first: &str, account_id: Option<&str>) -> DecodedEvent {
    match (obj.get("2"), obj.get("3"), obj.get("4")) {
        (Some(two), _, _) if two.as_i64() == Some(2) => shape_c(obj, first),
        (Some(two), Some(Value::Object(ext)), _) if two.as_i64() == Some(1) => {
            shape_d(first, ext, account_id)
        }
        (Some(Value::String(cid)), _, Some(Value::Object(ext))) => {
            shape_e(obj, first, cid, ext, account_id)
        }
        _ => ignored("unrecognized payload shape"),
    }
}

/// Shape C, read receipt: `{"1": "<msgId>.PNM", "2": 2, "3": 0, "4": "<cid>@goofish", "5": 1, "6": <ms>}`.
fn shape_c(obj: &Map<String, Value>, message_id: &str) -> DecodedEvent {
    match obj.get("4").and_then(id_string) {
        Some(cid) => DecodedEvent::ReadReceipt {
            cid: strip_handle(&cid),
            message_id: message_id.to_owned(),
            read_at_ms: obj.get("6").and_then(Value::as_u64),
        },
        None => ignored("read receipt without a conversation id"),
    }
}

/// Shape D, simplified red reminder: `{"1": "<cid>@goofish", "2": 1, "3": {"redReminder": …}}`.
fn shape_d(cid: &str, ext: &Map<String, Value>, account_id: Option<&str>) -> DecodedEvent {
    let env = Envelope {
        cid: Some(strip_handle(cid)),
        ext: Some(ext),
        content_type: ext_content_type(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape E, card update: `{"1": "<msgId>.PNM", "2": "<cid>@goofish", "3": 1, "4": {ext}, "5": <ms>}`.
fn shape_e(
    obj: &Map<String, Value>,
    message_id: &str,
    cid: &str,
    ext: &Map<String, Value>,
    account_id: Option<&str>,
) -> DecodedEvent {
    let env = Envelope {
        cid: Some(strip_handle(cid)),
        message_id: Some(message_id.to_owned()),
        created_at_ms: obj.get("5").and_then(Value::as_u64),
        ext: Some(ext),
        content_type: ext_content_type(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape F, plain-JSON session card from `/s/vulcan`.
fn shape_f(obj: &Map<String, Value>) -> DecodedEvent {
    let info = obj.get("sessionInfo");
    let cid = obj
        .get("sessionId")
        .or_else(|| info.and_then(|i| i.get("sessionId")))
        .and_then(id_string);
    let Some(cid) = cid else {
        return ignored("session payload without a session id");
    };
    let ext = info.and_then(|i| i.get("extensions"));
    let field = |key: &str| ext.and_then(|e| e.get(key)).and_then(id_string);
    DecodedEvent::Session {
        cid,
        item_id: field("itemId"),
        seller_id: field("itemSellerId")
            .or_else(|| field("ownerUserId"))
            .or_else(|| info.and_then(|i| i.get("groupOwnerId")).and_then(id_string)),
        buyer_id: field("extUserId"),
    }
}

// ---------------------------------------------------------------------------
// Shape A and the shared message classifier
// ---------------------------------------------------------------------------

/// The fields of a message that classification needs, gathered from shape A
/// (full message), D (conversation-level reminder) or E (card update).
#[derive(Default)]
struct Envelope<'a> {
    cid: Option<String>,
    sender_id: Option<String>,
    message_id: Option<String>,
    created_at_ms: Option<u64>,
    /// The extension ("reminder") map: shape A `1.10`, D `3`, E `4`.
    ext: Option<&'a Map<String, Value>>,
    /// Parsed content JSON (`1.6.3.5`); shape A only.
    content: Option<Value>,
    /// Custom content type: 1 text, 2 image, 14 tip, 26 trade card, 32 card update…
    content_type: Option<i64>,
    /// Field `1.7`: 2 for user messages, 1 for system cards.
    kind: Option<i64>,
    /// Summary text `1.6.3.2`.
    summary: Option<String>,
}

/// Shape A: `{"1": {message}, "3": {"needPush": …}}`.
fn shape_a(msg: &Map<String, Value>, account_id: Option<&str>) -> DecodedEvent {
    let custom = msg.get("6").and_then(|c| c.get("3"));
    let content = custom
        .and_then(|c| c.get("5"))
        .and_then(Value::as_str)
        .and_then(parse_content);
    let content_type = custom
        .and_then(|c| c.get("4"))
        .and_then(Value::as_i64)
        .or_else(|| {
            content
                .as_ref()
                .and_then(|c| c.get("contentType"))
                .and_then(as_int)
        });
    let env = Envelope {
        cid: msg.get("2").and_then(id_string).map(|c| strip_handle(&c)),
        sender_id: msg
            .get("1")
            .and_then(|s| s.get("1"))
            .and_then(id_string)
            .map(|s| strip_handle(&s)),
        message_id: msg.get("3").and_then(id_string),
        created_at_ms: msg.get("5").and_then(Value::as_u64),
        ext: msg.get("10").and_then(Value::as_object),
        content,
        content_type,
        kind: msg.get("7").and_then(Value::as_i64),
        summary: custom
            .and_then(|c| c.get("2"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    classify_envelope(&env, account_id)
}

/// The content JSON is plain text in live pushes but base64 JSON in history and
/// "old-format" pushes (zn); accept both.
fn parse_content(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().or_else(|| {
        let bytes = decode_base64(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    })
}

fn classify_envelope(env: &Envelope<'_>, account_id: Option<&str>) -> DecodedEvent {
    if env.is_user_message() {
        // Typed text never drives orders: a buyer could type "[我已付款，等待你发货]".
        return chat(env, account_id);
    }
    match order_signal(env) {
        Some(Signal::Status(status)) => order(env, status, account_id),
        Some(Signal::Skip(why)) => ignored(why),
        None => ignored(format!(
            "system message without order status: {}",
            env.text().unwrap_or_default()
        )),
    }
}

impl Envelope<'_> {
    fn ext_str(&self, key: &str) -> Option<&str> {
        self.ext.and_then(|e| e.get(key)).and_then(Value::as_str)
    }

    /// A JSON document stored as a string inside the extension map.
    fn ext_json(&self, key: &str) -> Option<Value> {
        self.ext_str(key).and_then(|s| serde_json::from_str(s).ok())
    }

    fn reminder_url(&self) -> Option<&str> {
        self.ext_str("reminderUrl")
    }

    fn task_name(&self) -> Option<String> {
        self.ext_json("bizTag")?
            .get("taskName")?
            .as_str()
            .map(str::to_owned)
    }

    fn update_key(&self) -> Option<String> {
        self.ext_json("extJson")?
            .get("updateKey")?
            .as_str()
            .map(str::to_owned)
    }

    /// Whether a person sent this. Field `1.7` is set by the server (2 = user,
    /// 1 = system card) and decides; the content type does not, because the
    /// sending client picks `custom.type` and a buyer could forge a trade card.
    /// Shapes D/E carry no `1.7`, so there the content type has to do.
    fn is_user_message(&self) -> bool {
        match self.kind {
            Some(kind) => kind == 2,
            None => matches!(self.content_type, Some(1 | 2 | 3 | 5)),
        }
    }

    /// The text to act on: `reminderContent`, else the summary.
    fn text(&self) -> Option<&str> {
        self.ext_str("reminderContent").or(self.summary.as_deref())
    }

    fn sender(&self) -> Option<String> {
        self.ext_str("senderUserId")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| self.sender_id.clone())
    }

    fn message_id_or_card_id(&self) -> Option<String> {
        self.message_id.clone().or_else(|| {
            ["extJson", "bizTag"].iter().find_map(|key| {
                self.ext_json(key)?
                    .get("messageId")?
                    .as_str()
                    .map(str::to_owned)
            })
        })
    }

    fn cid_or_fallback(&self) -> Option<String> {
        self.cid.clone().filter(|c| !c.is_empty()).or_else(|| {
            self.reminder_url()
                .and_then(|u| url_param(u, "sid"))
                .map(str::to_owned)
                .or_else(|| self.update_key()?.split(':').next().map(str::to_owned))
                .filter(|c| !c.is_empty())
        })
    }

    fn item_id(&self) -> Option<String> {
        let from_url = self.reminder_url().and_then(|u| url_param(u, "itemId"));
        let from_json = || {
            ["bizTag", "extJson"]
                .iter()
                .find_map(|key| self.ext_json(key)?.get("itemId").and_then(id_string))
        };
        let from_content = || {
            self.content
                .as_ref()
                .and_then(|c| find_url_param(c, "itemId"))
        };
        from_url
            .map(str::to_owned)
            .or_else(from_json)
            .or_else(from_content)
            .filter(|id| !id.is_empty())
    }

    fn card_main(&self) -> Option<&Value> {
        self.content.as_ref()?.pointer("/dxCard/item/main")
    }

    fn update_main(&self) -> Option<&Value> {
        self.content
            .as_ref()?
            .pointer("/dynamicOperation/changeContent/dxCard/item/main")
    }

    /// Card `targetUrl`s in the order the recipes trust them (§5.6).
    fn card_urls(&self) -> Vec<&str> {
        [self.card_main(), self.update_main()]
            .into_iter()
            .flatten()
            .flat_map(|main| {
                [
                    main.pointer("/exContent/button/targetUrl"),
                    main.get("targetUrl"),
                ]
            })
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    fn card_title(&self) -> Option<&str> {
        [self.update_main(), self.card_main()]
            .into_iter()
            .flatten()
            .find_map(|main| main.pointer("/exContent/title")?.as_str())
    }
}

/// Which content-type value an extension map advertises (shapes D/E carry no
/// content, only `extJson.contentType` as a string).
fn ext_content_type(ext: &Map<String, Value>) -> Option<i64> {
    let ext_json: Value = serde_json::from_str(ext.get("extJson")?.as_str()?).ok()?;
    ext_json.get("contentType").and_then(as_int)
}

fn chat(env: &Envelope<'_>, account_id: Option<&str>) -> DecodedEvent {
    let (Some(cid), Some(sender_id), Some(message_id)) = (
        env.cid_or_fallback(),
        env.sender(),
        env.message_id_or_card_id(),
    ) else {
        return ignored("chat message without cid, sender or message id");
    };
    // zn prefers the decoded text for plain text messages; reminderContent can
    // be a truncated notification.
    let typed = env
        .content
        .as_ref()
        .filter(|_| env.content_type == Some(1))
        .and_then(|c| c.pointer("/text/text"))
        .and_then(Value::as_str);
    let text = typed.or(env.text()).unwrap_or_default().to_owned();
    DecodedEvent::Chat {
        own: account_id == Some(sender_id.as_str()),
        cid,
        sender_id,
        message_id,
        text,
        item_id: env.item_id(),
    }
}

fn order(env: &Envelope<'_>, status: OrderStatus, account_id: Option<&str>) -> DecodedEvent {
    let cid = env.cid_or_fallback();
    let Some(order_id) = order_id(env) else {
        // Shape D/E reminders and "你已发货" tips name no order: the caller must
        // look the order up (sold-order list) — it cannot be keyed here.
        return ignored(format!(
            "order hint without order id: status={} cid={}",
            status.as_str(),
            cid.as_deref().unwrap_or("?")
        ));
    };
    let role = role(env, status, account_id);
    DecodedEvent::Order {
        order_id,
        item_id: env.item_id(),
        buyer_id: buyer_id(env, role, account_id),
        cid,
        status,
        role,
        source_msg_id: env.message_id_or_card_id(),
        created_at_ms: env.created_at_ms,
    }
}

// ---------------------------------------------------------------------------
// Order status, id, role, buyer
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Signal {
    Status(OrderStatus),
    /// Recognised, but not an order state this daemon tracks.
    Skip(&'static str),
}

/// Phrases in card texts (§5.5.3–5.5.7, §7.1). First match wins, so phrases that
/// contain another phrase come before it (e.g. `记得及时确认收货` before
/// `确认收货`, `已付款，待发货` before `已发货`).
const TEXT_RULES: &[(&str, Signal)] = &[
    (
        "我已小刀，待刀成",
        Signal::Skip("bargain card waiting for completion (我已小刀，待刀成)"),
    ),
    ("我已成功小刀，待发货", Signal::Status(Paid)),
    ("记得及时确认收货", Signal::Status(Shipped)),
    ("记得及时发货", Signal::Status(Paid)),
    ("我已修改价格，等待你付款", Signal::Status(PendingPayment)),
    ("我已付款，等待你发货", Signal::Status(Paid)),
    ("已付款，待发货", Signal::Status(Paid)),
    ("买家已付款", Signal::Status(Paid)),
    ("付款完成", Signal::Status(Paid)),
    ("等待卖家发货", Signal::Status(Paid)),
    ("已拍下，待付款", Signal::Status(PendingPayment)),
    ("等待买家付款", Signal::Status(PendingPayment)),
    ("退款成功", Signal::Status(Refunded)),
    ("卖家同意退款", Signal::Status(Refunded)),
    ("我发起了退款申请", Signal::Status(Refunding)),
    ("申请退款", Signal::Status(Refunding)),
    ("修改为「退款」", Signal::Status(Refunding)),
    ("关闭了订单", Signal::Status(Closed)),
    ("交易关闭", Signal::Status(Closed)),
    ("交易成功", Signal::Status(Completed)),
    ("快给ta一个评价吧", Signal::Status(Completed)),
    ("完成了评价", Signal::Status(Completed)),
    ("等待买家确认收货", Signal::Status(Shipped)),
    ("已发货", Signal::Status(Shipped)),
    ("订单已签收", Signal::Status(Shipped)),
];

/// `bizTag.taskName` prefixes (§5.7).
const TASK_RULES: &[(&str, OrderStatus)] = &[
    ("已拍下_未付款", PendingPayment),
    ("付款完成待发货", Paid),
    ("发起退款申请", Refunding),
    ("退款申请已同意", Refunded),
    ("提醒发货已发货", Shipped),
];

/// `updateKey` status tokens (§5.7), matched case-insensitively.
const UPDATE_KEY_RULES: &[(&str, OrderStatus)] = &[
    ("NOT_PAY", PendingPayment),
    ("BUYER_CREATE_ORDER", PendingPayment),
    ("TRADE_MODIFY_FEE", PendingPayment),
    ("TRADE_PAID", Paid),
    ("BUYER_RATE_SELLER", Completed),
];

fn text_signal(text: &str) -> Option<Signal> {
    TEXT_RULES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, signal)| *signal)
}

fn task_signal(task: &str) -> Option<Signal> {
    TASK_RULES
        .iter()
        .find(|(prefix, _)| task.starts_with(prefix))
        .map(|(_, s)| Signal::Status(*s))
}

fn update_key_signal(key: &str) -> Option<Signal> {
    // Status sits after `<cid>:<orderId>:`; only look there so ids never match.
    let status = key.splitn(3, ':').nth(2)?.to_ascii_uppercase();
    UPDATE_KEY_RULES
        .iter()
        .find(|(token, _)| status.contains(token))
        .map(|(_, s)| Signal::Status(*s))
}

/// Refund outcome on a card update (custom type 32): the title stays
/// `我发起了退款申请`, the button text carries the outcome (§5.5.5).
fn refund_outcome_signal(env: &Envelope<'_>) -> Option<Signal> {
    let ex = env.update_main()?.get("exContent")?;
    ex.get("title")?.as_str().filter(|t| t.contains("退款"))?;
    match ex.pointer("/button/text")?.as_str()? {
        "已同意" => Some(Signal::Status(Refunded)),
        "已撤销" => Some(Signal::Skip("refund request withdrawn by buyer")),
        "已拒绝" => Some(Signal::Skip("refund request rejected")),
        _ => None,
    }
}

/// Decides the order status from the most trustworthy source first.
/// `redReminder` comes last because it can be stale (§5.3, shape E). For card
/// updates (type 32) the update itself outranks the old reminder text.
fn order_signal(env: &Envelope<'_>) -> Option<Signal> {
    let reminder = || env.text().and_then(text_signal);
    let title = || env.card_title().and_then(text_signal);
    let task = || env.task_name().as_deref().and_then(task_signal);
    let key = || env.update_key().as_deref().and_then(update_key_signal);
    let red = || env.ext_str("redReminder").and_then(text_signal);
    if env.content_type == Some(32) {
        refund_outcome_signal(env)
            .or_else(task)
            .or_else(title)
            .or_else(key)
            .or_else(reminder)
            .or_else(red)
    } else {
        reminder()
            .or_else(title)
            .or_else(task)
            .or_else(key)
            .or_else(red)
    }
}

/// Order id per §5.6: card URLs, then `updateKey`, then a scan of the message.
fn order_id(env: &Envelope<'_>) -> Option<String> {
    let from_urls = env.card_urls().into_iter().find_map(order_id_from_url);
    let from_key = || {
        let key = env.update_key()?;
        key.split(':')
            .nth(1)
            .filter(|id| is_order_id(id))
            .map(str::to_owned)
    };
    let from_scan = || {
        let ext = env.ext.map(|e| Value::Object(e.clone()));
        [env.content.as_ref(), ext.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|v| scan_order_id(&v.to_string()))
    };
    from_urls
        .map(str::to_owned)
        .or_else(from_key)
        .or_else(from_scan)
}

fn order_id_from_url(url: &str) -> Option<&str> {
    // `id` alone is only an order id on order pages; elsewhere it could be an
    // item (`itemId=` is a different parameter and never matches here).
    let on_order_page = url_path(url).contains("order");
    ["orderId", "bizOrderId"]
        .into_iter()
        .find_map(|name| url_param(url, name))
        .or_else(|| url_param(url, "id").filter(|_| on_order_page))
        .filter(|id| is_order_id(id))
}

fn is_order_id(s: &str) -> bool {
    s.len() >= MIN_ORDER_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// zn's last resort: `orderId`/`bizOrderId`/`order_detail?id` followed by `=`
/// or `:` (quotes and JSON escapes allowed around it) and 10+ digits.
fn scan_order_id(text: &str) -> Option<String> {
    ["bizOrderId", "orderId", "order_detail?id"]
        .iter()
        .find_map(|key| {
            text.match_indices(key).find_map(|(at, _)| {
                let rest = text.get(at + key.len()..)?;
                let rest = rest.trim_start_matches(['"', '\\', ' ']);
                let rest = rest.strip_prefix(['=', ':'])?;
                let rest = rest.trim_start_matches(['"', '\\', ' ']);
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                is_order_id(&digits).then_some(digits)
            })
        })
}

/// Role per §5.6: `role=` in card URLs, then the taskName suffix, then the
/// updateKey suffix. Failing those, a payment card whose sender is this account
/// means the account is the buyer (trade cards are sent in the buyer's name).
fn role(env: &Envelope<'_>, status: OrderStatus, account_id: Option<&str>) -> Role {
    let from_url = env
        .card_urls()
        .into_iter()
        .find_map(|url| match url_param(url, "role")? {
            "seller" => Some(Role::Seller),
            "buyer" => Some(Role::Buyer),
            _ => None,
        });
    let from_task = || {
        let task = env.task_name()?;
        (task.contains("_买家").then_some(Role::Buyer))
            .or(task.contains("_卖家").then_some(Role::Seller))
    };
    let from_key = || {
        let key = env.update_key()?.to_ascii_uppercase();
        (key.ends_with("_BUYER").then_some(Role::Buyer))
            .or(key.ends_with("_SELLER").then_some(Role::Seller))
    };
    let from_sender = || {
        let buyer_actions = matches!(status, PendingPayment | Paid);
        let sent_by_us = account_id.is_some() && env.sender().as_deref() == account_id;
        (buyer_actions && sent_by_us).then_some(Role::Buyer)
    };
    from_url
        .or_else(from_task)
        .or_else(from_key)
        .or_else(from_sender)
        .unwrap_or(Role::Seller)
}

/// The buyer: on a seller copy the first of sender / `1.1.1` / `userId` /
/// `peerUserId` that is not this account; on a buyer copy, this account.
fn buyer_id(env: &Envelope<'_>, role: Role, account_id: Option<&str>) -> Option<String> {
    if let (Role::Buyer, Some(me)) = (role, account_id) {
        return Some(me.to_owned());
    }
    let peer = env
        .reminder_url()
        .and_then(|u| url_param(u, "peerUserId"))
        .map(str::to_owned);
    let user = env.ext.and_then(|e| e.get("userId")).and_then(id_string);
    [env.sender(), env.sender_id.clone(), user, peer]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty() && Some(id.as_str()) != account_id)
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Ids arrive as strings or numbers depending on the producer.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer that may be encoded as a number or a numeric string (`"26"`).
fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn strip_handle(s: &str) -> String {
    s.strip_suffix(HANDLE_SUFFIX).unwrap_or(s).to_owned()
}

fn url_path(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// The value of query parameter `name` (exact name match, so `id` never
/// matches `itemId`). Values are used as-is: ids are plain digits.
fn url_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The first string anywhere in `value` that is a URL with parameter `name`.
fn find_url_param(value: &Value, name: &str) -> Option<String> {
    match value {
        Value::String(s) => url_param(s, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        Value::Array(items) => items.iter().find_map(|v| find_url_param(v, name)),
        Value::Object(map) => map.values().find_map(|v| find_url_param(v, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Appendix A1: order created / 等待买家付款 (real capture, §5.5.3).
    const A1: &str = "ggGLAYEBsjMxNDk2MzcwNjNAZ29vZmlzaAKzNDc5ODMzODkwOTZAZ29vZmlzaAOxMzQxNjU2NTI3NDU0Mi5QTk0EAAXPAAABlbKji20GggFlA4UBoAK6W+aIkeW3suaLjeS4i++8jOW+heS7mOasvl0DoAQaBdoEKnsiY29udGVudFR5cGUiOjI2LCJkeENhcmQiOnsiaXRlbSI6eyJtYWluIjp7ImNsaWNrUGFyYW0iOnsiYXJnMSI6Ik1zZ0NhcmQiLCJhcmdzIjp7InNvdXJjZSI6ImltIiwidGFza19pZCI6IjNleFFKSE9UbVBVMSIsIm1zZ19pZCI6ImNjOGJjMmRmN2M5MzRkZjA4NmUwNTY3Y2I2OWYxNTczIn19LCJleENvbnRlbnQiOnsiYmdDb2xvciI6IiNGRkZGRkYiLCJidXR0b24iOnsiYmdDb2xvciI6IiNGRkU2MEYiLCJib3JkZXJDb2xvciI6IiNGRkU2MEYiLCJjbGlja1BhcmFtIjp7ImFyZzEiOiJNc2dDYXJkQWN0aW9uIiwiYXJncyI6eyJzb3VyY2UiOiJpbSIsInRhc2tfaWQiOiIzZXhRSkhPVG1QVTEiLCJtc2dfaWQiOiJjYzhiYzJkZjdjOTM0ZGYwODZlMDU2N2NiNjlmMTU3MyJ9fSwiZm9udENvbG9yIjoiIzMzMzMzMyIsInRhcmdldFVybCI6ImZsZWFtYXJrZXQ6Ly9hZGp1c3RfcHJpY2U/Zmx1dHRlcj10cnVlJmJpek9yZGVySWQ9MjUwMzY4ODEyNjM1NjYzNjM3MCIsInRleHQiOiLkv67mlLnku7fmoLwifSwiZGVzYyI6Iuivt+WPjOaWueayn+mAmuWPiuaXtuehruiupOS7t+agvCIsImRlc2NDb2xvciI6IiNBM0EzQTMiLCJ0aXRsZSI6IuaIkeW3suaLjeS4i++8jOW+heS7mOasviIsInVwZ3JhZGUiOnsidGFyZ2V0VXJsIjoiaHR0cHM6Ly9oNS5tLmdvb2Zpc2guY29tL2FwcC9pZGxlRmlzaC1GMmUvZm0tZG93bmxhb2QvaG9tZS5odG1sP25vUmVkcmllY3Q9dHJ1ZSZjYW5CYWNrPXRydWUmY2hlY2tWZXJzaW9uPXRydWUiLCJ2ZXJzaW9uIjoiNy43LjkwIn19LCJ0YXJnZXRVcmwiOiJmbGVhbWFya2V0Oi8vb3JkZXJfZGV0YWlsP2lkPTI1MDM2ODgxMjYzNTY2MzYzNzAmcm9sZT1zZWxsZXIifX0sInRlbXBsYXRlIjp7Im5hbWUiOiJpZGxlZmlzaF9tZXNzYWdlX3RyYWRlX2NoYXRfY2FyZCIsInVybCI6Imh0dHBzOi8vZGluYW1pY3guYWxpYmFiYXVzZXJjb250ZW50LmNvbS9wdWIvaWRsZWZpc2hfbWVzc2FnZV90cmFkZV9jaGF0X2NhcmQvMTY2NzIyMjA1Mjc2Ny9pZGxlZmlzaF9tZXNzYWdlX3RyYWRlX2NoYXRfY2FyZC56aXAiLCJ2ZXJzaW9uIjoiMTY2NzIyMjA1Mjc2NyJ9fX0HAQgBCQAK3gAQpmJpelRhZ9oAe3sic291cmNlSWQiOiJDMkM6M2V4UUpIT1RtUFUxIiwidGFza05hbWUiOiLlt7Lmi43kuItf5pyq5LuY5qy+X+WNluWutiIsIm1hdGVyaWFsSWQiOiIzZXhRSkhPVG1QVTEiLCJ0YXNrSWQiOiIzZXhRSkhPVG1QVTEifbFjbG9zZVB1c2hSZWNlaXZlcqVmYWxzZbFjbG9zZVVucmVhZE51bWJlcqVmYWxzZaxkZXRhaWxOb3RpY2W6W+aIkeW3suaLjeS4i++8jOW+heS7mOasvl2nZXh0SnNvbtoBr3sibXNnQXJncyI6eyJ0YXNrX2lkIjoiM2V4UUpIT1RtUFUxIiwic291cmNlIjoiaW0iLCJtc2dfaWQiOiJjYzhiYzJkZjdjOTM0ZGYwODZlMDU2N2NiNjlmMTU3MyJ9LCJxdWlja1JlcGx5IjoiMSIsIm1zZ0FyZzEiOiJNc2dDYXJkIiwidXBkYXRlS2V5IjoiNDc5ODMzODkwOTY6MjUwMzY4ODEyNjM1NjYzNjM3MDoxX25vdF9wYXlfc2VsbGVyIiwibWVzc2FnZUlkIjoiY2M4YmMyZGY3YzkzNGRmMDg2ZTA1NjdjYjY5ZjE1NzMiLCJtdWx0aUNoYW5uZWwiOnsiaHVhd2VpIjoiRVhQUkVTUyIsInhpYW9taSI6IjEwODAwMCIsIm9wcG8iOiJFWFBSRVNTIiwiaG9ub3IiOiJOT1JNQUwiLCJhZ29vIjoicHJvZHVjdCIsInZpdm8iOiJPUkRFUiJ9LCJjb250ZW50VHlwZSI6IjI2IiwiY29ycmVsYXRpb25Hcm91cElkIjoiM2V4UUpIT1RtUFUxX0ZGcjRHT1NuOE9RbyJ9qHJlY2VpdmVyrTIyMDI2NDA5MTgwNzmrcmVkUmVtaW5kZXKy562J5b6F5Lmw5a625LuY5qy+sHJlZFJlbWluZGVyU3R5bGWhMa9yZW1pbmRlckNvbnRlbnS6W+aIkeW3suaLjeS4i++8jOW+heS7mOasvl2ucmVtaW5kZXJOb3RpY2W75Lmw5a625bey5ouN5LiL77yM5b6F5LuY5qy+rXJlbWluZGVyVGl0bGW75Lmw5a625bey5ouN5LiL77yM5b6F5LuY5qy+q3JlbWluZGVyVXJs2gCaZmxlYW1hcmtldDovL21lc3NhZ2VfY2hhdD9pdGVtSWQ9OTAwMDUyNjQ0Mjc3JnBlZXJVc2VySWQ9MzE0OTYzNzA2MyZwZWVyVXNlck5pY2s955S3KioqeSZzaWQ9NDc5ODMzODkwOTYmbWVzc2FnZUlkPWNjOGJjMmRmN2M5MzRkZjA4NmUwNTY3Y2I2OWYxNTczJmFkdj1ub6xzZW5kZXJVc2VySWSqMzE0OTYzNzA2M65zZW5kZXJVc2VyVHlwZaEwq3Nlc3Npb25UeXBloTGqdXBkYXRlSGVhZKR0cnVlDAEDgahuZWVkUHVzaKR0cnVl";
    /// Appendix A3: read receipt (real capture).
    const A3: &str = "hgGxMzU5Mzg2NzExNjg0Ni5QTk0CAgMABLM1MTIwNDYxMzE4NEBnb29maXNoBQEGzwAAAZfJtRMa";
    /// Appendix A4: typing indicator (real capture).
    const A4: &str = "gQGRhAGzNTEyMDQ2MTMxODRAZ29vZmlzaAIBAwEEsjIxNTAzNjk4MTlAZ29vZmlzaA==";
    /// The first item of the §4.7 real `/s/sync` push (a read receipt).
    const SYNC_RECEIPT: &str =
        "hgGxMzU5NDMwNTc5NDE1OS5QTk0CAgMABLM1MTIwNDYxMzE4NEBnb29maXNoBQEGzwAAAZfKcTNG";

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
        let decoded = one(A1, Some(SELLER));
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
        let decoded = one(A1, Some(SELLER));
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
        assert_eq!(one(A1, None).event, decoded.event);
    }

    #[test]
    fn a1_event_serializes_with_kind_tag() {
        let event = one(A1, None).event;
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["kind"], "order");
        assert_eq!(json["status"], "pending_payment");
        assert_eq!(json["role"], "seller");
        assert_eq!(json["order_id"], "2503688126356636370");
    }

    #[test]
    fn golden_payloads_reencode_byte_exact() {
        for b64 in [A1, A3, A4, SYNC_RECEIPT] {
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
            }
        );
        let DecodedEvent::Chat { own, .. } = event_of(&a2(), Some("999")) else {
            panic!("chat expected");
        };
        assert!(!own);
    }

    #[test]
    fn a3_read_receipt() {
        let decoded = one(A3, None);
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
        let decoded = one(A4, None);
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
        };
        assert_eq!(event_of(&a5(), Some("3888777108")), expected);
        assert_eq!(event_of(&a5(), None), expected);
    }

    // --- frames ----------------------------------------------------------

    fn sync_frame(items: &[(&str, i64)]) -> String {
        let data: Vec<Value> = items
            .iter()
            .map(
                |(b64, ot)| json!({"bizType": 40, "data": b64, "streamId": "40", "objectType": ot}),
            )
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
        let frame = sync_frame(&[(SYNC_RECEIPT, 40103), (&chat, 40000)]);
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
        let frame = sync_frame(&[("!!!not base64", 40000), ("kQ==", 40000), (A1, 40000)]);
        let decoded = decode_frame(&frame, None).expect("frame");
        assert!(reason_of(&decoded[0].event).contains("base64"));
        assert!(reason_of(&decoded[1].event).contains("MessagePack"));
        assert_eq!(decoded[1].raw["objectType"], 40000);
        assert_eq!(
            status_of(&decoded[2].event),
            Some(OrderStatus::PendingPayment)
        );
        let no_data = r#"{"lwp":"/s/sync","body":{"syncPushPackage":{"data":[{"bizType":40}]}}}"#;
        assert!(
            reason_of(&decode_frame(no_data, None).expect("frame")[0].event).contains("without")
        );
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
        let frame = sync_frame(&[(A3, 40103)]);
        assert!(matches!(
            decode_input(&frame, None).expect("frame")[0].event,
            DecodedEvent::ReadReceipt { .. }
        ));
        assert!(matches!(
            decode_input(A4, None).expect("b64")[0].event,
            DecodedEvent::Typing { .. }
        ));
        let raw_json = a2().to_string();
        let from_raw = decode_input(&raw_json, Some(JV_ACCOUNT)).expect("raw json");
        assert!(matches!(
            from_raw[0].event,
            DecodedEvent::Chat { own: true, .. }
        ));
        // Line-wrapped base64 with surrounding whitespace.
        let wrapped = format!("  {}\n{}\n", &A3[..20], &A3[20..]);
        assert!(matches!(
            decode_input(&wrapped, None).expect("b64")[0].event,
            DecodedEvent::ReadReceipt { .. }
        ));
        assert!(matches!(decode_input("   ", None), Err(DecodeError::Empty)));
    }

    // --- shapes D, E, F and trade cards --------------------------------

    #[test]
    fn paid_card_fixture_is_paid_seller_order() {
        let event = event_of(&paid_card("付款完成待发货_卖家-正向升级"), Some(SELLER));
        assert_eq!(
            event,
            DecodedEvent::Order {
                order_id: "3310145690545023994".into(),
                item_id: Some("1063177864132".into()),
                buyer_id: Some("2222315258815".into()),
                cid: Some("63107041124".into()),
                status: OrderStatus::Paid,
                role: Role::Seller,
                source_msg_id: Some("4e449a32c59c499594c4c5dffa5ddef0".into()),
                created_at_ms: None,
            }
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
        let reason = reason_of(&event_of(&raw, None)).to_owned();
        assert!(
            reason.contains("status=paid") && reason.contains("cid=63107041124"),
            "{reason}"
        );
        let raw = json!({"1": "63107041124@goofish", "2": 1, "3": {"redReminder": "交易关闭", "userId": "2222315258815"}});
        assert!(reason_of(&event_of(&raw, None)).contains("status=closed"));
    }

    #[test]
    fn shape_e_prefers_reminder_content_over_stale_red_reminder() {
        let ext = json!({"reminderContent": "[已付款，待发货]", "redReminder": "等待买家付款",
                         "bizTag": "{\"taskName\":\"已拍下_未付款_卖家\"}", "extJson": "{\"contentType\":\"26\"}"});
        let raw = json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": ext, "5": 1751448105809_u64});
        assert!(reason_of(&event_of(&raw, None)).contains("status=paid cid=63107041124"));

        let ext = json!({"reminderContent": "[已付款，待发货]", "redReminder": "等待买家付款",
                         "extJson": "{\"contentType\":\"26\",\"messageId\":\"abc\",\"updateKey\":\"63107041124:3310145690545023994:10:TRADE_PAID:26\"}",
                         "senderUserId": "2222315258815",
                         "reminderUrl": "fleamarket://message_chat?itemId=1063177864132&peerUserId=2222315258815&sid=63107041124"});
        let raw = json!({"1": "3500000000002.PNM", "2": "63107041124@goofish", "3": 1, "4": ext, "5": 1751448105809_u64});
        assert_eq!(
            event_of(&raw, Some(SELLER)),
            DecodedEvent::Order {
                order_id: "3310145690545023994".into(),
                item_id: Some("1063177864132".into()),
                buyer_id: Some("2222315258815".into()),
                cid: Some("63107041124".into()),
                status: OrderStatus::Paid,
                role: Role::Seller,
                source_msg_id: Some("3500000000002.PNM".into()),
                created_at_ms: Some(1751448105809),
            }
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
        assert!(reason_of(&event_of(&raw, None)).contains("status=paid"));
    }

    #[test]
    fn typed_text_never_becomes_an_order() {
        let mut raw = a5();
        let text = "[我已付款，等待你发货] orderId=2503688126356636370";
        raw["1"]["10"]["reminderContent"] = json!(text);
        raw["1"]["6"]["3"]["5"] =
            json!(json!({"contentType": 1, "text": {"text": text}}).to_string());
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
        assert!(
            matches!(event_of(&raw, None), DecodedEvent::Chat { text, .. } if text == "[图片]")
        );
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
        let truncated = base64::engine::general_purpose::STANDARD.encode(&bytes(A1)[..500]);
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
        let unpadded = A4.trim_end_matches('=');
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
                Just(bytes(A1)),
                Just(bytes(A3)),
                Just(bytes(A4)),
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

            #[test]
            fn classify_never_panics_and_encoding_round_trips(value in json_value()) {
                let _ = classify(&value, Some(SELLER));
                let wrapped = json!({"1": {"10": value.clone(), "6": {"3": {"5": value.to_string()}}}, "4": value.clone()});
                let _ = classify(&wrapped, Some(SELLER));
                prop_assert_eq!(bytes_to_value(&encode_msgpack(&value)).ok(), Some(value));
            }
        }
    }
}
