//! A serde `Deserializer` over a parsed YAML value that knows where it is and does not stop at
//! the first unknown key.
//!
//! Every raw type denies unknown fields, and serde's derive says which fields a struct has when
//! it asks for one (`deserialize_struct`). This deserializer hands the struct only the keys it
//! knows and records the others (path, name, expected fields) on the side, so one pass over
//! the document finds every unknown key: the cost is linear in the file, where removing one key
//! and deserializing again was quadratic (1,000 typos in 137 KB took 21 s, issue 10 D14).
//!
//! Errors carry the path of the innermost value they concern, spelled like
//! `serde_path_to_error` (`pipeline[4].ship.max_retries`), which is how `YamlDoc` finds their
//! position. Scalars are read the way serde_yaml reads them from text (a number where a string
//! is expected is that string), so moving from text to the parsed value changed no verdict.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_yaml::Value;

/// A key a struct does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnknownKey {
    /// The full path of the key (`products[3].auto_shipp`).
    pub path: String,
    pub name: String,
    pub expected: &'static [&'static str],
}

/// Where unknown keys are collected during one pass.
pub(super) type Sink = RefCell<Vec<UnknownKey>>;

#[derive(Debug)]
pub(super) struct Error {
    /// The path of the value the error concerns ("" for the document); set by the innermost
    /// node the error passes through.
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            path: None,
            message: msg.to_string(),
        }
    }
}

/// Deserialize `T` from `value`, unknown struct keys going to `sink`.
pub(super) fn from_value<T: de::DeserializeOwned>(value: &Value, sink: &Sink) -> Result<T, Error> {
    T::deserialize(Node {
        value,
        path: String::new(),
        sink,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping key as text (YAML allows numbers and booleans as keys).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        _ => "?".to_string(),
    }
}

struct Node<'de, 's> {
    value: &'de Value,
    path: String,
    sink: &'s Sink,
}

impl<'de, 's> Node<'de, 's> {
    /// Attach this node's path to an error that has none yet.
    fn at<T>(path: &str, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|mut e| {
            e.path.get_or_insert_with(|| path.to_string());
            e
        })
    }

    fn map(&self, fields: Option<&'static [&'static str]>) -> Option<MapNode<'de, 's>> {
        match self.value {
            Value::Mapping(m) => Some(MapNode {
                iter: m.iter(),
                pending: None,
                path: self.path.clone(),
                fields,
                sink: self.sink,
            }),
            _ => None,
        }
    }

    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path.clone();
        let r = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Sequence(items) => visitor.visit_seq(SeqNode {
                iter: items.iter().enumerate(),
                path: self.path.clone(),
                sink: self.sink,
            }),
            Value::Mapping(m) => visitor.visit_map(MapNode {
                iter: m.iter(),
                pending: None,
                path: self.path.clone(),
                fields: None,
                sink: self.sink,
            }),
            Value::Tagged(t) => visitor.visit_enum(EnumNode {
                variant: t.tag.to_string().trim_start_matches('!').to_string(),
                value: Some(&t.value),
                path: self.path.clone(),
                sink: self.sink,
            }),
        };
        Self::at(&path, r)
    }
}

impl<'de> de::Deserializer<'de> for Node<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path.clone();
        let r = match self.value {
            // serde_yaml reads a plain scalar as the text it was written as.
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            _ => return self.any(visitor),
        };
        Self::at(&path, r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let path = self.path.clone();
        let r = match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        };
        Self::at(&path, r)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path.clone();
        Self::at(&path, visitor.visit_newtype_struct(self))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.map(Some(fields)) {
            Some(m) => Self::at(&self.path, visitor.visit_map(m)),
            None => self.any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let path = self.path.clone();
        let r = match self.value {
            Value::String(s) => visitor.visit_enum(EnumNode {
                variant: s.clone(),
                value: None,
                path: self.path.clone(),
                sink: self.sink,
            }),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                visitor.visit_enum(EnumNode {
                    variant: key_text(k),
                    value: Some(v),
                    path: self.path.clone(),
                    sink: self.sink,
                })
            }
            _ => return self.any(visitor),
        };
        Self::at(&path, r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct seq tuple tuple_struct map
    }
}

struct SeqNode<'de, 's> {
    iter: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    path: String,
    sink: &'s Sink,
}

impl<'de> SeqAccess<'de> for SeqNode<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = format!("{}[{i}]", self.path);
        let node = Node {
            value,
            path: path.clone(),
            sink: self.sink,
        };
        // Also here, not only in the node: a seed may finish with a value it buffered (an
        // internally tagged enum), after the node has returned.
        Node::at(&path, seed.deserialize(node)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapNode<'de, 's> {
    iter: serde_yaml::mapping::Iter<'de>,
    pending: Option<(&'de Value, String)>,
    path: String,
    /// A struct's field names: other keys are recorded in the sink and skipped.
    fields: Option<&'static [&'static str]>,
    sink: &'s Sink,
}

impl<'de> MapAccess<'de> for MapNode<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.iter.by_ref() {
            let name = key_text(key);
            let path = join(&self.path, &name);
            if let Some(fields) = self.fields
                && !fields.contains(&name.as_str())
            {
                self.sink.borrow_mut().push(UnknownKey {
                    path,
                    name,
                    expected: fields,
                });
                continue;
            }
            let key_node = Node {
                value: key,
                path: path.clone(),
                sink: self.sink,
            };
            self.pending = Some((value, path));
            return seed.deserialize(key_node).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (value, path) = self
            .pending
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value requested before its key"))?;
        let node = Node {
            value,
            path: path.clone(),
            sink: self.sink,
        };
        Node::at(&path, seed.deserialize(node))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `- kind: { params }`, `mode: send_only` or `!kind params`.
struct EnumNode<'de, 's> {
    variant: String,
    value: Option<&'de Value>,
    path: String,
    sink: &'s Sink,
}

impl<'de, 's> EnumAccess<'de> for EnumNode<'de, 's> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        // `- kind: {..}` names the variant as a key; `shape: per_key` is the value itself.
        let at = match self.value {
            Some(_) => join(&self.path, &self.variant),
            None => self.path.clone(),
        };
        let name = StringDeserializer::<Error>::new(self.variant.clone());
        let v = Node::at(&at, seed.deserialize(name))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for EnumNode<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(Error {
                path: Some(self.path),
                message: format!("`{}` takes no settings", self.variant),
            }),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        static NULL: Value = Value::Null;
        let path = join(&self.path, &self.variant);
        let node = Node {
            value: self.value.unwrap_or(&NULL),
            path: path.clone(),
            sink: self.sink,
        };
        Node::at(&path, seed.deserialize(node))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        static NULL: Value = Value::Null;
        let path = join(&self.path, &self.variant);
        Node {
            value: self.value.unwrap_or(&NULL),
            path,
            sink: self.sink,
        }
        .any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        static NULL: Value = Value::Null;
        let path = join(&self.path, &self.variant);
        let node = Node {
            value: self.value.unwrap_or(&NULL),
            path,
            sink: self.sink,
        };
        de::Deserializer::deserialize_struct(node, "", fields, visitor)
    }
}
