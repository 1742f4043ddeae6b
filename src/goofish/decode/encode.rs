//! Writing MessagePack the way the real service does, for the fake server (and the
//! classifier's reading of a JSON value, see [`super::classify`]).

use base64::Engine;
use serde_json::{Map, Value};

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
