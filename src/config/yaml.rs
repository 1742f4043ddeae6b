//! YAML text → `serde_yaml::Value` plus a map from value paths to `line:col`.
//!
//! serde_yaml reports positions for syntax errors but not for the values our validator later
//! objects to ("min > max" has no serde error), so a second, event-level pass with yaml-rust2
//! records where every key and value starts. Paths use the same spelling as
//! `serde_path_to_error` (`pipeline[4].ship.max_retries`), which is how deserialization errors
//! and validation errors both find their position.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::ConfigError;
use super::yaml_de;

/// A 1-based position in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One parsed file: its value and where each path sits.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    pub file: String,
    pub value: serde_yaml::Value,
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl YamlDoc {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let value: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(serde_yaml::Value::Null) => serde_yaml::Value::Mapping(Default::default()),
            Ok(v) => v,
            Err(e) => {
                let mut pos = e
                    .location()
                    .map(|l| Pos {
                        line: l.line(),
                        col: l.column(),
                    })
                    .unwrap_or(Pos { line: 1, col: 1 });
                // serde_yaml locates a duplicate key at the start of its mapping; point at the
                // repeated key instead (yaml-rust2's event pass does not reject duplicates).
                if e.to_string().contains("duplicate entry") {
                    let mut index = PositionIndex::default();
                    let _ = Parser::new_from_str(text).load(&mut index, false);
                    if let Some((_, _, dup)) = index.duplicates.first() {
                        pos = *dup;
                    }
                }
                let text = e.to_string();
                let message = too_large_number(&text)
                    .unwrap_or_else(|| format!("YAML syntax error: {}", syntax_message(&text)));
                return Err(ConfigError::at(file, pos, message));
            }
        };
        let mut index = PositionIndex::default();
        // serde_yaml accepted the text, so yaml-rust2 failing here would only cost positions.
        let _ = Parser::new_from_str(text).load(&mut index, false);
        Ok(Self {
            file: file.to_string(),
            value,
            keys: index.keys,
            values: index.values,
        })
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor.
    pub fn pos(&self, path: &str) -> Pos {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.values.get(&p).or_else(|| self.keys.get(&p)) {
                return *pos;
            }
            match parent(&p) {
                Some(up) => p = up,
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Position of the key at `path` (where `name:` is written), else `pos(path)`.
    pub fn key_pos(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.pos(path))
    }

    pub fn error(&self, path: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, self.pos(path), msg.into())
    }

    pub fn key_error(&self, path: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, self.key_pos(path), msg.into())
    }

    /// Deserialize into `T`, reporting every unknown key with a suggestion.
    ///
    /// Unknown keys of structs are all found in one pass ([`yaml_de`]), linear in the file.
    /// An unknown kind (`- shipp: {..}`) or an unknown key that only a hand-written reader
    /// sees (a `channels:` entry, read through `secret::Written`) ends a pass; it is reported,
    /// removed, and the pass repeats, at most [`MAX_PASSES`] times.
    pub fn deserialize<T: DeserializeOwned>(&self) -> (Option<T>, Vec<ConfigError>) {
        let mut value = std::borrow::Cow::Borrowed(&self.value);
        let mut errors = Vec::new();
        let mut reported = std::collections::HashSet::new();
        // Parents of removed unknown kinds (`pipeline[4]` for `- shipp: {..}`): removing the kind
        // leaves the parent incomplete, and that follow-on error is noise.
        let mut variant_parents: Vec<String> = Vec::new();
        for _ in 0..MAX_PASSES {
            let sink = yaml_de::Sink::default();
            let result = yaml_de::from_value::<T>(&value, &sink);
            for u in sink.into_inner() {
                if reported.insert(u.path.clone()) {
                    let unknown = UnknownName {
                        name: u.name,
                        expected: u.expected.iter().map(|s| s.to_string()).collect(),
                        variant: false,
                    };
                    errors.push(self.key_error(&u.path, unknown.message(&u.path)));
                }
            }
            let err = match result {
                Ok(t) => return (Some(t), errors),
                Err(e) => e,
            };
            let path = err.path.unwrap_or_default();
            match UnknownName::parse(&err.message) {
                Some(unknown) => {
                    let full = unknown.full_path(&path);
                    if reported.insert(full.clone()) {
                        errors.push(self.key_error(&full, unknown.message(&full)));
                    }
                    if unknown.variant {
                        variant_parents.extend(parent(&full));
                    }
                    if !remove_path(value.to_mut(), &full) {
                        return (None, errors);
                    }
                }
                None => {
                    if !variant_parents.contains(&path) {
                        errors.push(self.error(&path, describe(&path, &err.message)));
                    }
                    return (None, errors);
                }
            }
        }
        errors.push(self.error(
            "",
            format!("stopped after {MAX_PASSES} unknown kinds and channel keys; fix these and run check again"),
        ));
        (None, errors)
    }
}

/// Passes of [`YamlDoc::deserialize`]; each one is linear in the file.
const MAX_PASSES: usize = 100;

fn describe(path: &str, msg: &str) -> String {
    if path == "." || path.is_empty() {
        msg.to_string()
    } else {
        format!("{path}: {msg}")
    }
}

/// serde_yaml cannot hold an integer beyond 64 bits and says so in its own terms
/// ("invalid type: integer `1e30` as u128, expected any YAML value"); say it plainly.
fn too_large_number(msg: &str) -> Option<String> {
    let (before, rest) = msg.split_once("invalid type: integer `")?;
    let (number, tail) = rest.split_once('`')?;
    if !(tail.starts_with(" as u128") || tail.starts_with(" as i128")) {
        return None;
    }
    Some(format!("{before}the number {number} is too large"))
}

/// libyaml says "{problem} at line L column C[, {context} at line L2 column C2]". The problem
/// position is printed in front, so drop it, but keep the context's: for an unclosed bracket it
/// is where the bracket was opened, usually the line to fix.
fn syntax_message(msg: &str) -> String {
    let Some(i) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[i..];
    let end = rest.find(',').unwrap_or(rest.len());
    if !rest[..end].contains(" column ") {
        return msg.to_string();
    }
    format!("{}{}", &msg[..i], &rest[end..])
}

/// Keys this project deliberately does not have, with the reason a seller should read.
const RETIRED_KEYS: &[(&str, &str)] = &[
    (
        "tracking_prefix",
        "xianyu-shopd never fabricates tracking numbers; ship physical orders yourself and record them with `xianyu-shopd orders ship ID --company C --tracking T`",
    ),
    (
        "physical",
        "physical goods are never shipped automatically, so they have no delivery delay; their manual-ship notification goes out at once. Per-product `delay:` overrides `virtual:`",
    ),
    (
        "password",
        "secrets are never written in config files; use `password_env` (an environment variable) or `password_file` (a file under state/)",
    ),
];

/// An "unknown field" / "unknown variant" error from serde, taken apart.
struct UnknownName {
    name: String,
    expected: Vec<String>,
    variant: bool,
}

impl UnknownName {
    fn parse(msg: &str) -> Option<Self> {
        let (variant, rest) = if let Some(r) = msg.strip_prefix("unknown field `") {
            (false, r)
        } else {
            (true, msg.strip_prefix("unknown variant `")?)
        };
        let (name, tail) = rest.split_once('`')?;
        let expected = tail
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect();
        Some(Self {
            name: name.to_string(),
            expected,
            variant,
        })
    }

    fn full_path(&self, path: &str) -> String {
        if self.variant || path.ends_with(&self.name) {
            path.to_string()
        } else if path == "." || path.is_empty() {
            self.name.clone()
        } else {
            format!("{path}.{}", self.name)
        }
    }

    fn message(&self, full_path: &str) -> String {
        let what = if self.variant {
            "unknown kind"
        } else {
            "unknown key"
        };
        let mut msg = format!("{full_path}: {what} `{}`", self.name);
        if let Some((_, why)) = RETIRED_KEYS.iter().find(|(k, _)| *k == self.name) {
            msg.push_str(&format!(": {why}"));
        } else if let Some(best) = did_you_mean(&self.name, &self.expected) {
            msg.push_str(&format!(", did you mean `{best}`?"));
        } else if !self.expected.is_empty() {
            msg.push_str(&format!(", expected one of: {}", self.expected.join(", ")));
        }
        msg
    }
}

/// "did you mean `x`?" for the closest candidate, or `otherwise()` when none is close: the tail
/// of every "unknown name" error.
pub fn did_you_mean_or(
    name: &str,
    candidates: &[String],
    otherwise: impl FnOnce() -> String,
) -> String {
    did_you_mean(name, candidates).map_or_else(otherwise, |b| format!("did you mean `{b}`?"))
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn parent(path: &str) -> Option<String> {
    if path.is_empty() || path == "." {
        return None;
    }
    let cut = path.rfind(['.', '['])?;
    Some(path[..cut].to_string())
}

/// Remove the entry at `path` (a map key or a sequence item). False when nothing was removed.
fn remove_path(value: &mut serde_yaml::Value, path: &str) -> bool {
    let segs = split_path(path);
    let Some((last, init)) = segs.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in init {
        let next = match (seg, cur) {
            (Seg::Key(k), serde_yaml::Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Seg::Index(i), serde_yaml::Value::Sequence(s)) => s.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Seg::Key(k), serde_yaml::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Seg::Index(i), serde_yaml::Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in rest.split(['[', ']']).filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// Builds path → position maps from yaml-rust2's marked events.
#[derive(Default)]
struct PositionIndex {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
    /// (path, first, repeated) for each key written twice in one mapping.
    duplicates: Vec<(String, Pos, Pos)>,
    stack: Vec<Frame>,
}

enum Frame {
    /// A mapping at `path`; `key` is the pending key once read.
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

impl PositionIndex {
    /// The path the next value will have, advancing the parent's cursor.
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
        }
    }

    /// True when the current mapping waits for a key rather than a value.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for PositionIndex {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match ev {
            Event::Scalar(text, ..) if self.expecting_key() => {
                if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                    // yaml-rust2 marks a block mapping's start at its first `:`; the mapping
                    // really starts at its first key.
                    if let Some(start) = self.values.get_mut(path.as_str())
                        && (pos.line, pos.col) < (start.line, start.col)
                    {
                        *start = pos;
                    }
                    let full = join(path, &text);
                    if let Some(first) = self.keys.insert(full.clone(), pos) {
                        self.duplicates.push((full, first, pos));
                    }
                    *key = Some(text);
                }
            }
            Event::Scalar(..) | Event::Alias(_) => {
                if let Some(p) = self.next_value_path() {
                    self.values.insert(p, pos);
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.values.entry(path.clone()).or_insert(pos);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.values.entry(path.clone()).or_insert(pos);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a:\n  b: 1\n  list:\n    - x: 2\n    - y: hello\n";

    #[test]
    fn positions_follow_paths() {
        let doc = YamlDoc::parse("f.yaml", TEXT).unwrap();
        assert_eq!(doc.key_pos("a.b"), Pos { line: 2, col: 3 });
        assert_eq!(doc.pos("a.b"), Pos { line: 2, col: 6 });
        assert_eq!(doc.pos("a.list[1].y"), Pos { line: 5, col: 10 });
        assert_eq!(doc.key_pos("a.list[0].x"), Pos { line: 4, col: 7 });
        // unknown paths fall back to the nearest ancestor
        assert_eq!(doc.pos("a.list[1].y.zz"), Pos { line: 5, col: 10 });
    }

    #[test]
    fn suggestions() {
        let c = vec!["max_retries".to_string(), "mode".to_string()];
        assert_eq!(did_you_mean("max_retry", &c), Some("max_retries"));
        assert_eq!(did_you_mean("zzzzzz", &c), None);
    }

    #[test]
    fn syntax_errors_carry_position() {
        let err = YamlDoc::parse("p.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.file, "p.yaml");
        assert!(err.line >= 1, "{err}");
    }
}
