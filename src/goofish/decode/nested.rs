//! The JSON documents a message carries as strings: the content (`1.6.3.5`) and the extension
//! map's `bizTag` and `extJson`. Each is read in one pass into a small struct that borrows
//! its strings from the document and holds only what the classifier asks for; the rest is
//! skipped without being kept.
//!
//! The readers answer what lookups in a parsed `serde_json::Value` answered, which is what
//! the classifier used before them: a document that is not valid JSON is absent as a whole
//! (every value goes through `deserialize_any`, so the syntax, escape, number-range and
//! nesting checks are the ones a `Value` gets); a field of an unexpected type is absent; a
//! key that appears twice counts with its last value.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The content JSON (`1.6.3.5`).
#[derive(Default)]
pub(super) struct Content<'a> {
    /// `contentType`: a number or a numeric string.
    pub(super) content_type: Option<i64>,
    /// `text.text`: what a person typed.
    pub(super) text: Option<Cow<'a, str>>,
    /// `dxCard.item.main`: a trade card.
    pub(super) card: Option<CardMain<'a>>,
    /// `dynamicOperation.changeContent.dxCard.item.main`: an update of a trade card.
    pub(super) update: Option<CardMain<'a>>,
}

/// The `main` part of a trade card.
#[derive(Default)]
pub(super) struct CardMain<'a> {
    /// `targetUrl`.
    pub(super) target_url: Option<Cow<'a, str>>,
    /// `exContent.title`.
    pub(super) title: Option<Cow<'a, str>>,
    /// `exContent.button.targetUrl`.
    pub(super) button_url: Option<Cow<'a, str>>,
    /// `exContent.button.text`.
    pub(super) button_text: Option<Cow<'a, str>>,
}

/// What the classifier reads from `bizTag` or `extJson` (either may hold any of these).
#[derive(Default)]
pub(super) struct Tags<'a> {
    pub(super) task_name: Option<Cow<'a, str>>,
    pub(super) update_key: Option<Cow<'a, str>>,
    pub(super) message_id: Option<Cow<'a, str>>,
    /// A string, or a number written as JSON writes it.
    pub(super) item_id: Option<Cow<'a, str>>,
    /// A number or a numeric string.
    pub(super) content_type: Option<i64>,
}

/// The content, or `None` when `json` is not a JSON document.
pub(super) fn content(json: &str) -> Option<Content<'_>> {
    read::<Object<Content<'_>>>(json).map(|c| c.0.unwrap_or_default())
}

/// The tags; all absent when `json` is not a JSON object.
pub(super) fn tags(json: &str) -> Tags<'_> {
    read::<Object<Tags<'_>>>(json)
        .and_then(|t| t.0)
        .unwrap_or_default()
}

/// Reads a whole document, as `serde_json::from_str` does (nothing may follow it).
fn read<'de, T: Lenient<'de>>(json: &'de str) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = Reader::<T>::at(&[]).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

// The objects of interest

impl<'de> Fields<'de> for Content<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "contentType" => self.content_type = next::<Int, _>(map, &[])?.0,
            "text" => self.text = next::<Text<'de>, _>(map, &["text"])?.0,
            "dxCard" => self.card = next::<Object<CardMain<'de>>, _>(map, &["item", "main"])?.0,
            "dynamicOperation" => {
                let path = &["changeContent", "dxCard", "item", "main"];
                self.update = next::<Object<CardMain<'de>>, _>(map, path)?.0;
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for CardMain<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "targetUrl" => self.target_url = next::<Text<'de>, _>(map, &[])?.0,
            "exContent" => {
                let ex = next::<Object<ExContent<'de>>, _>(map, &[])?.0;
                let ex = ex.unwrap_or_default();
                self.title = ex.title;
                self.button_url = ex.button_url;
                self.button_text = ex.button_text;
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `exContent` of a trade card.
#[derive(Default)]
struct ExContent<'a> {
    title: Option<Cow<'a, str>>,
    button_url: Option<Cow<'a, str>>,
    button_text: Option<Cow<'a, str>>,
}

impl<'de> Fields<'de> for ExContent<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "title" => self.title = next::<Text<'de>, _>(map, &[])?.0,
            "button" => {
                let button = next::<Object<Button<'de>>, _>(map, &[])?.0;
                let button = button.unwrap_or_default();
                self.button_url = button.target_url;
                self.button_text = button.text;
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct Button<'a> {
    target_url: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
}

impl<'de> Fields<'de> for Button<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "targetUrl" => self.target_url = next::<Text<'de>, _>(map, &[])?.0,
            "text" => self.text = next::<Text<'de>, _>(map, &[])?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for Tags<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "taskName" => self.task_name = next::<Text<'de>, _>(map, &[])?.0,
            "updateKey" => self.update_key = next::<Text<'de>, _>(map, &[])?.0,
            "messageId" => self.message_id = next::<Text<'de>, _>(map, &[])?.0,
            "itemId" => self.item_id = next::<Id<'de>, _>(map, &[])?.0,
            "contentType" => self.content_type = next::<Int, _>(map, &[])?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

// Lenient values

/// A value read leniently: whatever JSON holds in its place, the answer is the value or
/// absent, never a type error.
trait Lenient<'de>: Sized {
    fn absent() -> Self;
    fn borrowed_str(s: &'de str) -> Self {
        Self::transient_str(s)
    }
    /// A string with escapes, decoded into a scratch buffer.
    fn transient_str(_: &str) -> Self {
        Self::absent()
    }
    fn unsigned(_: u64) -> Self {
        Self::absent()
    }
    fn signed(_: i64) -> Self {
        Self::absent()
    }
    fn float(_: f64) -> Self {
        Self::absent()
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_key_seed(Reader::<Skip>::at(&[]))?.is_some() {
            skip(&mut map)?;
        }
        Ok(Self::absent())
    }
}

/// Any value, read and dropped.
struct Skip;

impl Lenient<'_> for Skip {
    fn absent() -> Self {
        Skip
    }
}

/// A string (`Value::as_str`).
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de> Lenient<'de> for Text<'de> {
    fn absent() -> Self {
        Text(None)
    }
    fn borrowed_str(s: &'de str) -> Self {
        Text(Some(Cow::Borrowed(s)))
    }
    fn transient_str(s: &str) -> Self {
        Text(Some(Cow::Owned(s.to_owned())))
    }
}

/// An id: a string, or a number written as JSON writes it.
struct Id<'a>(Option<Cow<'a, str>>);

impl<'de> Lenient<'de> for Id<'de> {
    fn absent() -> Self {
        Id(None)
    }
    fn borrowed_str(s: &'de str) -> Self {
        Id(Some(Cow::Borrowed(s)))
    }
    fn transient_str(s: &str) -> Self {
        Id(Some(Cow::Owned(s.to_owned())))
    }
    fn unsigned(n: u64) -> Self {
        Id(Some(Cow::Owned(n.to_string())))
    }
    fn signed(n: i64) -> Self {
        Id(Some(Cow::Owned(n.to_string())))
    }
    fn float(f: f64) -> Self {
        Id(serde_json::Number::from_f64(f).map(|n| Cow::Owned(n.to_string())))
    }
}

/// An integer encoded as a number or as a numeric string (`"26"`).
struct Int(Option<i64>);

impl Lenient<'_> for Int {
    fn absent() -> Self {
        Int(None)
    }
    fn transient_str(s: &str) -> Self {
        Int(s.trim().parse().ok())
    }
    fn unsigned(n: u64) -> Self {
        Int(i64::try_from(n).ok())
    }
    fn signed(n: i64) -> Self {
        Int(Some(n))
    }
}

/// The fields of interest of an object; every other key is skipped.
trait Fields<'de>: Default {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `Some` for a JSON object, `None` for any other value.
struct Object<T>(Option<T>);

impl<'de, T: Fields<'de>> Lenient<'de> for Object<T> {
    fn absent() -> Self {
        Object(None)
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut fields = T::default();
        while let Some(Text(key)) = map.next_key_seed(Reader::<Text<'de>>::at(&[]))? {
            match key {
                Some(key) => fields.field(&key, &mut map)?,
                None => skip(&mut map)?,
            }
        }
        Ok(Object(Some(fields)))
    }
}

/// The next map value, at `path` below it.
fn next<'de, T: Lenient<'de>, A: MapAccess<'de>>(
    map: &mut A,
    path: &'static [&'static str],
) -> Result<T, A::Error> {
    map.next_value_seed(Reader::<T>::at(path))
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    next::<Skip, A>(map, &[]).map(|_| ())
}

/// Reads a `T` found at `path` (object keys) below the value it is given, as
/// `Value::pointer` would find it; absent when the path does not lead anywhere.
struct Reader<T> {
    path: &'static [&'static str],
    wanted: PhantomData<T>,
}

impl<T> Reader<T> {
    fn at(path: &'static [&'static str]) -> Self {
        Reader {
            path,
            wanted: PhantomData,
        }
    }

    /// `value` if the path ends here, else absent.
    fn here<'de>(&self, value: impl FnOnce() -> T) -> T
    where
        T: Lenient<'de>,
    {
        if self.path.is_empty() {
            value()
        } else {
            T::absent()
        }
    }
}

impl<'de, T: Lenient<'de>> DeserializeSeed<'de> for Reader<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<T, D::Error> {
        // `deserialize_any` for every value: the checks a `Value` gets (see the module doc).
        de.deserialize_any(self)
    }
}

impl<'de, T: Lenient<'de>> Visitor<'de> for Reader<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::absent())
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::absent())
    }

    fn visit_u64<E>(self, n: u64) -> Result<T, E> {
        Ok(self.here(|| T::unsigned(n)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<T, E> {
        Ok(self.here(|| T::signed(n)))
    }

    fn visit_f64<E>(self, f: f64) -> Result<T, E> {
        Ok(self.here(|| T::float(f)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<T, E> {
        Ok(self.here(|| T::borrowed_str(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<T, E> {
        Ok(self.here(|| T::transient_str(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element_seed(Reader::<Skip>::at(&[]))?.is_some() {}
        Ok(T::absent())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return T::object(map);
        };
        let mut found = T::absent();
        while let Some(Text(key)) = map.next_key_seed(Reader::<Text<'de>>::at(&[]))? {
            if key.as_deref() == Some(*first) {
                found = map.next_value_seed(Reader::<T>::at(rest))?;
            } else {
                skip(&mut map)?;
            }
        }
        Ok(found)
    }
}
