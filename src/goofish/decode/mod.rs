//! Decoding of Goofish IM pushes into typed events.
//!
//! The IM WebSocket delivers `/s/sync`, `/s/para` and `/s/vulcan` frames whose
//! `body.syncPushPackage.data[]` items each carry a base64 `data` field. That
//! field is either UTF-8 JSON (session cards) or plain MessagePack with integer
//! keys (everything else; reference §5.1–5.2). This module turns it into a
//! [`DecodedEvent`] recognised from the payload's shape (reference §5.3, shapes A–F)
//! using the extraction recipes of §5.6/§5.7.
//!
//! Two paths share one classifier:
//!
//! * the daemon's ([`PushDecoder`]): base64 into a reused buffer, one allocation-free
//!   check of the whole MessagePack value, then only the fields the classifier reads,
//!   borrowed; the JSON documents nested as strings are read into small borrowed structs,
//!   each only when a rule needs it. No JSON tree is built.
//! * the inspecting one ([`decode_payload`], [`decode_frame`], [`decode_input`]): the same
//!   event plus the payload as a `raw` [`serde_json::Value`] (MessagePack map keys become
//!   strings, `1` → `"1"`), for `decode --raw`, replay and tests.
//!
//! It also offers [`encode_msgpack`], the inverse used by the fake server, which
//! reproduces the real service's encoder choices so captures round-trip
//! byte-for-byte.
//!
//! Input comes from the network, so nothing here may panic: every lookup is
//! `get`-based, MessagePack nesting is depth-limited, and decoding problems are
//! reported as [`DecodeError`] or as [`DecodedEvent::Ignored`].
//!
//! Layout: this file holds the types and entry points; `msgpack` reads base64 and
//! MessagePack (the borrowed view and its JSON form); `encode` writes MessagePack for the
//! fake; `nested` reads the JSON documents inside a message; `shapes` recognises payload
//! shapes A–F and builds events; `signals` reads order status, order id, role and buyer out
//! of a message.

use serde::Serialize;
use serde_json::Value;

mod encode;
mod msgpack;
mod nested;
mod redact;
mod shapes;
mod signals;
#[cfg(test)]
mod tests;

pub use encode::{encode_msgpack, encode_payload};
use msgpack::{Checked, Key, Node, check, decode_base64, decode_base64_into, to_value};
use shapes::{Top, ignored, shape_a, shape_b, shape_c_d_e, shape_f};

/// Suffix of IM user and conversation handles (`<id>@goofish`).
const HANDLE_SUFFIX: &str = "@goofish";

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

/// What one push item means. Ids are bare numeric strings (no `@goofish`). Its `Debug` shows a
/// chat text as its length only (`redact.rs`).
#[derive(Clone, PartialEq, Serialize)]
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
        /// `senderNick`, else `reminderTitle` (a typed message's title is the nick).
        sender_nick: Option<String>,
        /// Server create time of the message, epoch ms (`1.5`).
        sent_at_ms: Option<u64>,
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
    /// A payment reminder that names no order (shape D red reminders, shape E
    /// updates without an update key): only the sold-order list can say which
    /// order was paid.
    PaidHint { cid: Option<String> },
    /// Decoded but not actionable: system tips, unknown shapes, other order
    /// hints without an order id, undecodable items inside a frame.
    Ignored { reason: String },
}

/// One decoded push item: the event and the raw structure it came from (its `Debug` shows the
/// raw structure as its length only).
#[derive(Clone, PartialEq, Serialize)]
pub struct Decoded {
    pub event: DecodedEvent,
    pub raw: Value,
}

/// The daemon's decoder: events only, nothing kept but a buffer reused for every payload.
#[derive(Debug, Default)]
pub struct PushDecoder {
    bytes: Vec<u8>,
}

impl PushDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies one base64 payload (an item's `data` field).
    ///
    /// # Errors
    /// As [`decode_payload`], for the same inputs.
    pub fn decode(
        &mut self,
        b64: &str,
        account_id: Option<&str>,
    ) -> Result<DecodedEvent, DecodeError> {
        decode_base64_into(b64, &mut self.bytes)?;
        Ok(Payload::read(&self.bytes)?.event(account_id))
    }

    /// Classifies every item of a parsed push frame, like [`decode_frame`] without `raw`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownFrame`] for a frame without a `body.syncPushPackage.data` array.
    pub fn decode_frame(
        &mut self,
        frame: &Value,
        account_id: Option<&str>,
    ) -> Result<Vec<DecodedEvent>, DecodeError> {
        Ok(push_items(frame)?
            .iter()
            .map(|item| match item.get("data").and_then(Value::as_str) {
                None => ignored(NO_DATA),
                Some(data) => self
                    .decode(data, account_id)
                    .unwrap_or_else(|err| ignored(undecodable(&err))),
            })
            .collect())
    }
}

/// Decodes one base64 payload (an item's `data` field), with its raw structure.
///
/// # Errors
/// [`DecodeError`] when the text is not base64 or the bytes are neither JSON
/// nor a single MessagePack value.
pub fn decode_payload(b64: &str, account_id: Option<&str>) -> Result<Vec<Decoded>, DecodeError> {
    let bytes = decode_base64(b64)?;
    Ok(vec![Payload::read(&bytes)?.decoded(account_id)])
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
        Ok(vec![Decoded {
            event: classify(&value, account_id),
            raw: value,
        }])
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
    Ok(Payload::read(bytes)?.into_value())
}

/// Recognises the shape of a raw payload and extracts its event.
///
/// The classifier reads MessagePack, so the value is written as the service would write
/// it first; a value nested deeper than any payload may be is ignored.
pub fn classify(raw: &Value, account_id: Option<&str>) -> DecodedEvent {
    match check(&encode_msgpack(raw)) {
        Ok(checked) => classify_node(checked.root, account_id),
        Err(err) => ignored(format!("unreadable payload: {err}")),
    }
}

/// One payload's bytes, read.
enum Payload<'a> {
    Json(Value),
    MsgPack(Checked<'a>),
}

impl<'a> Payload<'a> {
    /// # Errors
    /// As [`bytes_to_value`].
    fn read(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        // All bots try JSON first. A MessagePack payload never starts with `{`/`[`:
        // those bytes are lone positive fixints, and a payload is a single map.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => Ok(Payload::Json(serde_json::from_slice(bytes)?)),
            _ => Ok(Payload::MsgPack(check(bytes)?)),
        }
    }

    fn event(&self, account_id: Option<&str>) -> DecodedEvent {
        match self {
            // Session cards (`/s/vulcan`), a few per conversation.
            Payload::Json(value) => classify(value, account_id),
            Payload::MsgPack(checked) if checked.utf8 => classify_node(checked.root, account_id),
            // Invalid UTF-8 (never seen): classify the repaired JSON form.
            Payload::MsgPack(checked) => classify(&to_value(checked.root), account_id),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Payload::Json(value) => value,
            Payload::MsgPack(checked) => to_value(checked.root),
        }
    }

    fn decoded(self, account_id: Option<&str>) -> Decoded {
        Decoded {
            event: self.event(account_id),
            raw: self.into_value(),
        }
    }
}

fn classify_node(root: Node<'_>, account_id: Option<&str>) -> DecodedEvent {
    let Some(obj) = root.as_map() else {
        return ignored("payload is not a map");
    };
    let [one, two, three, four, five, six, session_info, session_id] = obj.pick([
        Key::Int(1),
        Key::Int(2),
        Key::Int(3),
        Key::Int(4),
        Key::Int(5),
        Key::Int(6),
        Key::Name("sessionInfo"),
        Key::Name("sessionId"),
    ]);
    let top = Top {
        two,
        three,
        four,
        five,
        six,
    };
    match one {
        Some(Node::Map(msg)) => shape_a(msg, account_id),
        Some(Node::Array(list)) => shape_b(list),
        Some(first @ Node::Str(_)) => match first.as_str() {
            Some(first) => shape_c_d_e(&top, first, account_id),
            None => ignored("unrecognized payload shape"),
        },
        _ if session_info.is_some() || session_id.is_some() => shape_f(session_info, session_id),
        _ => ignored("unrecognized payload shape"),
    }
}

const NO_DATA: &str = "push item without a data string";

fn undecodable(err: &DecodeError) -> String {
    format!("undecodable push item: {err}")
}

/// `body.syncPushPackage.data` of a push frame.
fn push_items(frame: &Value) -> Result<&Vec<Value>, DecodeError> {
    let Some(items) = frame.pointer("/body/syncPushPackage/data") else {
        let lwp = frame.get("lwp").and_then(Value::as_str).unwrap_or("<none>");
        return Err(DecodeError::UnknownFrame(format!(
            "no body.syncPushPackage.data (lwp {lwp})"
        )));
    };
    items
        .as_array()
        .ok_or_else(|| DecodeError::UnknownFrame("syncPushPackage.data is not an array".into()))
}

fn decode_frame_value(
    frame: &Value,
    account_id: Option<&str>,
) -> Result<Vec<Decoded>, DecodeError> {
    Ok(push_items(frame)?
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
        None => failed(NO_DATA.into()),
        Some(data) => match decode_base64(data).and_then(|bytes| {
            let payload = Payload::read(&bytes)?;
            Ok(payload.decoded(account_id))
        }) {
            Ok(decoded) => decoded,
            Err(err) => failed(undecodable(&err)),
        },
    }
}

// Small helpers shared by `shapes` and `signals`.

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
