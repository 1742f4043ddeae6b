//! base64 and MessagePack: reading a payload's bytes into JSON, and the encoder the fake
//! server uses to write payloads the way the real service does.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::{DecodeError, MAX_MSGPACK_DEPTH};

// Reading

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
pub(super) fn decode_base64(s: &str) -> Result<Vec<u8>, DecodeError> {
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

pub(super) fn msgpack_to_value(bytes: &[u8]) -> Result<Value, DecodeError> {
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

// Writing (for the fake server)

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
