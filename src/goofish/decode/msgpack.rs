//! Reading payload bytes: base64 into a caller's buffer, and MessagePack as a borrowed view
//! ([`Node`]) that is checked once from end to end and then read lazily, so the classifier
//! looks at a few fields without copying a string or building a tree. [`to_value`] turns a
//! view into JSON for `decode --raw`, replay files and the fake.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rmp::Marker;
use serde_json::{Map, Value};

use super::DecodeError;

// base64

/// Standard alphabet, padding optional: captures are padded, but bots re-pad
/// defensively and so do we.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64 into `out` (cleared first), tolerating whitespace (line-wrapped logs) and
/// the URL-safe alphabet (one SDK maps `-`/`_` first).
pub(super) fn decode_base64_into(s: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    // Live payloads are canonical padded base64, which the SIMD decoder takes; the lenient
    // decoder gives the same bytes for them. Whatever it refuses (no padding, whitespace,
    // `-`/`_`, stray bits) goes the lenient way, which gives the bytes or the error it gave.
    if !s.is_empty() && base64_simd::STANDARD.decode_append(s, out).is_ok() {
        return Ok(());
    }
    decode_base64_lenient(s, out)
}

/// [`decode_base64_into`] without the SIMD decoder.
pub(super) fn decode_base64_lenient(s: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    // Whitespace, `-` and `_` are not in the alphabet: input with any of them fails here and
    // is decoded again cleaned, which gives exactly the bytes or the error that cleaning
    // first gave.
    if !s.is_empty() && LENIENT_BASE64.decode_vec(s, out).is_ok() {
        return Ok(());
    }
    out.clear();
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
    Ok(LENIENT_BASE64.decode_vec(cleaned, out)?)
}

pub(super) fn decode_base64(s: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_base64_into(s, &mut out)?;
    Ok(out)
}

// Checking

/// How deep a value may nest below the top (a string one level less). These are the limits
/// the `rmpv` reader with a depth budget of 64 enforced before this reader replaced it (a
/// nesting level costs it two units, a string one more), kept so that exactly the same
/// inputs are accepted. Real payloads nest about six levels; the limit only stops hostile
/// input from exhausting the stack of [`to_value`].
const MAX_LEVEL: usize = 31;
const MAX_STR_LEVEL: usize = 30;

/// A MessagePack payload that passed [`check`].
#[derive(Clone, Copy)]
pub(super) struct Checked<'a> {
    pub(super) root: Node<'a>,
    /// Every string is UTF-8. When one is not, the classifier reads the payload through
    /// [`to_value`], which repairs it the way the JSON form always did (U+FFFD).
    pub(super) utf8: bool,
}

/// Walks the whole value once, without allocating: markers, lengths, nesting, no ext types,
/// nothing after the value. Reading the view afterwards cannot meet a malformed byte.
///
/// # Errors
/// [`DecodeError::MsgPack`] naming the first problem.
pub(super) fn check(bytes: &[u8]) -> Result<Checked<'_>, DecodeError> {
    let mut cur = Cursor { bytes, pos: 0 };
    // Values still to read in each open container (a map counts keys and values).
    let mut open = [0u64; MAX_LEVEL];
    let mut depth = 0;
    let mut utf8 = true;
    loop {
        match cur.head()? {
            Head::Str(s) => {
                if depth > MAX_STR_LEVEL {
                    return Err(cur.error("nested too deeply"));
                }
                utf8 &= simdutf8::basic::from_utf8(s).is_ok();
            }
            Head::Container(n) if n > 0 => {
                let Some(slot) = open.get_mut(depth) else {
                    return Err(cur.error("nested too deeply"));
                };
                *slot = n;
                depth += 1;
                continue;
            }
            Head::Container(_) | Head::Scalar => {}
        }
        // One value is complete; so is every container it was the last value of.
        loop {
            let Some(left) = depth.checked_sub(1).and_then(|top| open.get_mut(top)) else {
                if cur.pos != bytes.len() {
                    // One item is one value in every capture; leftovers mean corruption.
                    return Err(DecodeError::MsgPack(format!(
                        "{} trailing bytes after the value",
                        bytes.len() - cur.pos
                    )));
                }
                let root = Cursor { bytes, pos: 0 }.node();
                return Ok(Checked { root, utf8 });
            };
            *left -= 1;
            if *left > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// What one marker announces.
enum Head<'a> {
    Scalar,
    /// A string or binary body.
    Str(&'a [u8]),
    /// How many values follow (keys and values for a map).
    Container(u64),
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, what: &str) -> DecodeError {
        DecodeError::MsgPack(format!("{what} at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let taken = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end));
        let Some(taken) = taken else {
            return Err(self.error("truncated value"));
        };
        self.pos += n;
        Ok(taken)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(big_endian(self.take(n)?))
    }

    fn len(&mut self, n: usize) -> Result<usize, DecodeError> {
        let len = self.be(n)?;
        usize::try_from(len).map_err(|_| self.error("length out of range"))
    }

    fn head(&mut self) -> Result<Head<'a>, DecodeError> {
        let marker = match self.take(1)? {
            [byte] => Marker::from_u8(*byte),
            _ => return Err(self.error("truncated value")),
        };
        Ok(match marker {
            // 0xc1 is unused by the format; the reader this one replaced read it as nil.
            Marker::FixPos(_)
            | Marker::FixNeg(_)
            | Marker::Null
            | Marker::True
            | Marker::False
            | Marker::Reserved => Head::Scalar,
            Marker::U8 | Marker::I8 => self.scalar(1)?,
            Marker::U16 | Marker::I16 => self.scalar(2)?,
            Marker::U32 | Marker::I32 | Marker::F32 => self.scalar(4)?,
            Marker::U64 | Marker::I64 | Marker::F64 => self.scalar(8)?,
            Marker::FixStr(n) => Head::Str(self.take(usize::from(n))?),
            Marker::Str8 | Marker::Bin8 => self.string(1)?,
            Marker::Str16 | Marker::Bin16 => self.string(2)?,
            Marker::Str32 | Marker::Bin32 => self.string(4)?,
            Marker::FixArray(n) => Head::Container(u64::from(n)),
            Marker::Array16 => Head::Container(self.be(2)?),
            Marker::Array32 => Head::Container(self.be(4)?),
            Marker::FixMap(n) => Head::Container(2 * u64::from(n)),
            Marker::Map16 => Head::Container(2 * self.be(2)?),
            Marker::Map32 => Head::Container(2 * self.be(4)?),
            // No capture has one and no bot handles them; refuse rather than guess.
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => return Err(self.error("unsupported ext type")),
        })
    }

    fn scalar(&mut self, size: usize) -> Result<Head<'a>, DecodeError> {
        self.take(size)?;
        Ok(Head::Scalar)
    }

    /// A string or binary whose length takes `len_size` bytes.
    fn string(&mut self, len_size: usize) -> Result<Head<'a>, DecodeError> {
        let len = self.len(len_size)?;
        Ok(Head::Str(self.take(len)?))
    }

    /// Skips `n` whole values.
    fn skip(&mut self, mut n: u64) {
        while n > 0 {
            match self.head() {
                Ok(Head::Container(more)) => n = n - 1 + more,
                Ok(_) => n -= 1,
                // Only checked bytes are read; a stop here just ends the view early.
                Err(_) => return self.pos = self.bytes.len(),
            }
        }
    }

    /// The value here (after [`check`]); an unreadable one reads as nil.
    fn node(&mut self) -> Node<'a> {
        let start = self.pos;
        let Some(&first) = self.bytes.get(start) else {
            return Node::Nil;
        };
        let Ok(head) = self.head() else {
            return Node::Nil;
        };
        let data = self.bytes.get(start + 1..self.pos).unwrap_or_default();
        match (head, Marker::from_u8(first)) {
            (Head::Str(s), _) => Node::Str(s),
            (Head::Container(n), marker) => {
                let seq = Seq {
                    len: n,
                    body: self.bytes.get(self.pos..).unwrap_or_default(),
                };
                match marker {
                    Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => Node::Map(seq),
                    _ => Node::Array(seq),
                }
            }
            (Head::Scalar, marker) => scalar_node(marker, data),
        }
    }
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// The value of a number or constant whose marker is `marker` and whose bytes are `data`.
fn scalar_node(marker: Marker, data: &[u8]) -> Node<'static> {
    let be = || big_endian(data);
    // Sign-extends a big-endian integer of `data.len()` (1 to 8) bytes.
    let signed = || {
        let len = u32::try_from(data.len()).unwrap_or(8);
        let unused = 64u32.saturating_sub(8 * len).min(63);
        ((be() << unused) as i64) >> unused
    };
    let int = |i: i64| u64::try_from(i).map_or(Node::Int(i), Node::UInt);
    match marker {
        Marker::FixPos(n) => Node::UInt(u64::from(n)),
        Marker::FixNeg(n) => Node::Int(i64::from(n)),
        Marker::True => Node::Bool(true),
        Marker::False => Node::Bool(false),
        Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => Node::UInt(be()),
        Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => int(signed()),
        Marker::F32 => float(f64::from(f32::from_bits(be() as u32))),
        Marker::F64 => float(f64::from_bits(be())),
        _ => Node::Nil,
    }
}

/// JSON has no NaN or infinity: those read as nil, as they always became `null`.
fn float(f: f64) -> Node<'static> {
    if f.is_finite() {
        Node::Float(f)
    } else {
        Node::Nil
    }
}

// The view

/// One checked MessagePack value, borrowing the payload bytes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Node<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    /// Negative integers only.
    Int(i64),
    Float(f64),
    /// A string or binary (bots render bin as text).
    Str(&'a [u8]),
    Array(Seq<'a>),
    Map(Seq<'a>),
}

/// The values of an array or the keys and values of a map, in order.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seq<'a> {
    len: u64,
    /// Starts at the first value and runs to the end of the payload.
    body: &'a [u8],
}

impl<'a> Seq<'a> {
    pub(super) fn values(self) -> impl Iterator<Item = Node<'a>> {
        let mut cur = Cursor {
            bytes: self.body,
            pos: 0,
        };
        (0..self.len).map(move |_| {
            let node = cur.node();
            if let Node::Array(seq) | Node::Map(seq) = node {
                cur.skip(seq.len);
            }
            node
        })
    }
}

/// A map key the classifier looks up. Integer keys match the integer or its decimal string,
/// as they did when every key became a JSON string (`1` → `"1"`).
#[derive(Clone, Copy)]
pub(super) enum Key {
    Int(u64),
    /// Never a decimal number (those are [`Key::Int`]).
    Name(&'static str),
}

impl Key {
    fn matches(self, key: &Node<'_>) -> bool {
        match (self, key) {
            (Key::Int(n), Node::UInt(k)) => n == *k,
            (Key::Int(n), Node::Str(s)) => is_decimal(s, n),
            (Key::Name(name), Node::Str(s)) => name.as_bytes() == *s,
            _ => false,
        }
    }
}

/// Whether `s` is how `n` is written in decimal.
fn is_decimal(s: &[u8], n: u64) -> bool {
    let canonical = s == b"0" || s.first().is_some_and(|b| *b != b'0');
    canonical
        && s.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()) == Some(n)
}

impl<'a> Node<'a> {
    pub(super) fn as_map(self) -> Option<Seq<'a>> {
        match self {
            Node::Map(seq) => Some(seq),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> Option<&'a str> {
        match self {
            Node::Str(s) => simdutf8::basic::from_utf8(s).ok(),
            _ => None,
        }
    }

    pub(super) fn as_i64(self) -> Option<i64> {
        match self {
            Node::UInt(u) => i64::try_from(u).ok(),
            Node::Int(i) => Some(i),
            _ => None,
        }
    }

    pub(super) fn as_u64(self) -> Option<u64> {
        match self {
            Node::UInt(u) => Some(u),
            _ => None,
        }
    }

    /// Ids arrive as strings or numbers depending on the producer; numbers are written as
    /// JSON writes them.
    pub(super) fn id_string(self) -> Option<Cow<'a, str>> {
        match self {
            Node::Str(_) => self.as_str().map(Cow::Borrowed),
            Node::UInt(u) => Some(Cow::Owned(u.to_string())),
            Node::Int(i) => Some(Cow::Owned(i.to_string())),
            Node::Float(f) => serde_json::Number::from_f64(f).map(|n| Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// `get` on a map; `None` for anything else.
    pub(super) fn get(self, key: Key) -> Option<Node<'a>> {
        let [value] = self.as_map()?.pick([key]);
        value
    }
}

impl<'a> Seq<'a> {
    /// The values of `keys` in one pass over a map. A key that appears twice counts with its
    /// last value, as it did when maps became JSON objects.
    pub(super) fn pick<const N: usize>(self, keys: [Key; N]) -> [Option<Node<'a>>; N] {
        let mut found = [None; N];
        let mut values = self.values();
        while let (Some(key), Some(value)) = (values.next(), values.next()) {
            if let Some(i) = keys.iter().position(|k| k.matches(&key)) {
                found[i] = Some(value);
            }
        }
        found
    }
}

// To JSON

/// The JSON form: map keys become strings (`1` → `"1"`), strings and binaries become text
/// (invalid UTF-8 replaced by U+FFFD), NaN and infinity `null`.
pub(super) fn to_value(node: Node<'_>) -> Value {
    match node {
        Node::Nil => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::UInt(u) => Value::from(u),
        Node::Int(i) => Value::from(i),
        Node::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(String::from_utf8_lossy(s).into_owned()),
        Node::Array(seq) => Value::Array(seq.values().map(to_value).collect()),
        Node::Map(seq) => {
            let mut map = Map::new();
            let mut values = seq.values();
            while let (Some(key), Some(value)) = (values.next(), values.next()) {
                let key = match to_value(key) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, to_value(value));
            }
            Value::Object(map)
        }
    }
}
