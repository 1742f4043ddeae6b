//! Secrets by reference: how a seller names one, the one check, and reading it when needed.
//!
//! Config files live in git, so a secret (cookies, a webhook URL, an API key) is never written
//! in them. The seller writes `<name>_env: VARIABLE` or `<name>_file: state/…` instead; every
//! owner of a secret (an account, the status page, each notification vendor) reads the pair into
//! one [`SecretKeys`] through [`Written`], checks it with [`SecretKeys::check`] (the only place
//! that knows the rules and their wording) and keeps the resulting [`SecretRef`], which is
//! resolved only when the secret is used.
//!
//! A secret file must resolve, symlinks followed, to a regular file below the config directory's
//! own `state/` ([`crate::files::inside`]): a link to `/etc/passwd`, or `state/` itself linked to
//! `/etc`, is refused by `check` and again each time the file is read, and the file is read
//! through [`crate::files`] (regular files only, size-capped, never blocking on a FIFO).
//!
//! Nearly a leaf: `config` and `channels` both import it; it imports only the leaf `files`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Component, Path, PathBuf};

use serde::de::value::{MapDeserializer, StrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

/// Where a secret comes from. The value itself is read only when needed and never stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(SecretFile),
}

/// A secret file: `state/…` written in the config, below the config directory `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    dir: PathBuf,
    path: PathBuf,
}

/// The directory below the config directory that secret files must stay in.
pub const STATE_DIR: &str = "state";

impl SecretFile {
    /// `written` (`state/cookies.txt`) below the config directory `dir`.
    pub fn new(dir: &Path, written: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            path: dir.join(written),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }

    /// Why this file may not be read, if it may not: it resolves outside `state/`.
    fn escapes(&self) -> Option<String> {
        match crate::files::inside(&self.path, &self.dir, STATE_DIR) {
            Ok(true) => None,
            Ok(false) => Some(
                "resolves outside state/ (a symbolic link leads out of it, or state/ itself is a link)"
                    .to_string(),
            ),
            Err(e) => Some(format!("cannot be resolved: {e}")),
        }
    }

    fn read(&self) -> Result<String, SecretError> {
        let fail = |why: String| SecretError::File(self.path.clone(), why);
        if let Some(why) = self.escapes() {
            return Err(fail(why));
        }
        crate::files::read_text(&self.path, crate::files::MAX_SECRET_FILE)
            .map(|v| v.trim().to_string())
            .map_err(|e| fail(e.to_string()))
    }
}

impl SecretRef {
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            Self::Env(name) => std::env::var(name)
                .map(|v| v.trim().to_string())
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            Self::File(file) => file.read(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("secret file {0} {1}")]
    File(PathBuf, String),
}

/// One secret as written: the values of its `<name>_env` and `<name>_file` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretKeys {
    pub env: Option<String>,
    pub file: Option<String>,
}

/// A problem with a written secret, located by its YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    /// The path to point at (`channels.ops.url_env`).
    pub path: String,
    /// Point at where the key is written rather than at its value.
    pub at_key: bool,
    pub message: String,
}

impl SecretKeys {
    /// Neither key was written (fine for optional secrets).
    pub fn is_empty(&self) -> bool {
        self.env.is_none() && self.file.is_none()
    }

    /// The one validation path: exactly one of `<what>_env` / `<what>_file`, a variable name,
    /// or a relative file under `state/` (resolved against `dir`, the config directory). A bad
    /// name or path is reported but still yields a reference, so the caller's other checks run.
    pub fn check(
        &self,
        dir: &Path,
        path: &str,
        what: &str,
    ) -> (Option<SecretRef>, Option<SecretFinding>) {
        let finding = |key: Option<&str>, at_key, message: String| SecretFinding {
            path: key.map_or_else(|| path.to_string(), |k| format!("{path}.{what}_{k}")),
            at_key,
            message,
        };
        match (&self.env, &self.file) {
            (Some(e), None) => {
                let problem = (!is_env_name(e)).then(|| {
                    let msg =
                        format!("{path}.{what}_env: `{e}` is not an environment variable name");
                    finding(Some("env"), false, msg)
                });
                (Some(SecretRef::Env(e.clone())), problem)
            }
            (None, Some(f)) => {
                let file = SecretFile::new(dir, f);
                let problem = if !is_under_state(f) {
                    Some(format!(
                        "{path}.{what}_file: secret files must be a relative path under state/ (got `{f}`), so they stay out of git"
                    ))
                } else {
                    file.escapes()
                        .map(|why| format!("{path}.{what}_file: `{f}` {why}; secret files must stay inside the config directory's state/"))
                };
                let problem = problem.map(|msg| finding(Some("file"), false, msg));
                (Some(SecretRef::File(file)), problem)
            }
            (Some(_), Some(_)) => {
                let msg = format!("{path}: give either {what}_env or {what}_file, not both");
                (None, Some(finding(Some("file"), true, msg)))
            }
            (None, None) => {
                let msg = format!(
                    "{path}: missing {what}_env (an environment variable) or {what}_file (a file under state/)"
                );
                (None, Some(finding(None, false, msg)))
            }
        }
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_under_state(f: &str) -> bool {
    let p = Path::new(f);
    let mut comps = p.components();
    matches!(comps.next(), Some(Component::Normal(first)) if first == "state")
        && comps.clone().next().is_some()
        && comps.all(|c| matches!(c, Component::Normal(_)))
}

/// A serde struct with secrets, read through [`Written`].
///
/// Its secret fields are [`SecretKeys`] named after the secret (`url`), listed in `SECRETS`;
/// the seller writes them as `url_env` / `url_file`. Field order is kept in error messages.
pub trait Keys {
    /// The fields of type [`SecretKeys`].
    const SECRETS: &'static [&'static str];
    /// Keys the owner reads itself, beside the struct's fields (a channel's `timeout`).
    type Extra: Extra;
}

/// Keys read beside a [`Keys`] struct's own fields, listed after them in error messages.
pub trait Extra: Default + fmt::Debug {
    const KEYS: &'static [&'static str];
    /// Read the value of `key` (one of `KEYS`) from `map`.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

impl Extra for () {
    const KEYS: &'static [&'static str] = &[];
    fn read<'de, A: MapAccess<'de>>(&mut self, _: &str, _: &mut A) -> Result<(), A::Error> {
        Ok(())
    }
}

/// `T` as the seller writes it: every secret as two flat keys, `<name>_env` and `<name>_file`,
/// gathered into `T`'s [`SecretKeys`] field of that name; `T::Extra`'s keys read beside it.
///
/// Unknown keys are rejected in serde's own words ("unknown field `url_evn`, expected one of
/// `url_env`, `url_file`, …", in `T`'s field order), so the loader's "did you mean" works on the
/// keys the seller can actually write. `T`'s field list comes from serde itself (a probe).
#[derive(Debug, Default)]
pub struct Written<T: Keys> {
    pub fields: T,
    pub extra: T::Extra,
}

impl<T: Keys> Deref for Written<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.fields
    }
}

impl<'de, T: Keys + Deserialize<'de>> Deserialize<'de> for Written<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(WrittenVisitor(PhantomData))
    }
}

struct WrittenVisitor<T>(PhantomData<T>);

impl<'de, T: Keys + Deserialize<'de>> Visitor<'de> for WrittenVisitor<T> {
    type Value = Written<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Written<T>, A::Error> {
        let mut feed = Feed {
            map,
            fields: fields_of::<T>(),
            secrets: T::SECRETS,
            extra: T::Extra::default(),
            gathered: Vec::new(),
            outer_done: false,
            pending: None,
        };
        let fields = T::deserialize(de::value::MapAccessDeserializer::new(&mut feed))?;
        Ok(Written {
            fields,
            extra: feed.extra,
        })
    }
}

/// The map `T` sees: its own keys as written, then one entry per gathered secret.
struct Feed<A, X> {
    map: A,
    fields: &'static [&'static str],
    secrets: &'static [&'static str],
    extra: X,
    gathered: Vec<(&'static str, SecretKeys)>,
    outer_done: bool,
    /// The value of the gathered secret whose key was just handed out.
    pending: Option<SecretKeys>,
}

impl<'de, A: MapAccess<'de>, X: Extra> Feed<A, X> {
    fn gather(&mut self, key: &str) -> Result<bool, A::Error> {
        let Some((name, half)) = self.secrets.iter().find_map(|s| {
            let rest = key.strip_prefix(s)?.strip_prefix('_')?;
            matches!(rest, "env" | "file").then_some((*s, rest))
        }) else {
            return Ok(false);
        };
        let value: Option<String> = self.map.next_value()?;
        let i = match self.gathered.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.gathered.push((name, SecretKeys::default()));
                self.gathered.len() - 1
            }
        };
        let keys = &mut self.gathered[i].1;
        *(if half == "env" {
            &mut keys.env
        } else {
            &mut keys.file
        }) = value;
        Ok(true)
    }

    fn unknown(&self, key: &str) -> A::Error {
        let mut expected = Vec::new();
        for f in self.fields {
            if self.secrets.contains(f) {
                expected.push(format!("{f}_env"));
                expected.push(format!("{f}_file"));
            } else {
                expected.push(f.to_string());
            }
        }
        expected.extend(X::KEYS.iter().map(|k| k.to_string()));
        de::Error::custom(unknown_field_message(key, &expected))
    }
}

impl<'de, A: MapAccess<'de>, X: Extra> MapAccess<'de> for Feed<A, X> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while !self.outer_done {
            let Some(key) = self.map.next_key::<String>()? else {
                self.outer_done = true;
                break;
            };
            if X::KEYS.contains(&key.as_str()) {
                self.extra.read(&key, &mut self.map)?;
            } else if self.gather(&key)? {
                continue;
            } else if self.fields.contains(&key.as_str()) && !self.secrets.contains(&key.as_str()) {
                let key: StringDeserializer<A::Error> = key.into_deserializer();
                return seed.deserialize(key).map(Some);
            } else {
                return Err(self.unknown(&key));
            }
        }
        let Some((name, keys)) = self.gathered.pop() else {
            return Ok(None);
        };
        self.pending = Some(keys);
        let name: StrDeserializer<A::Error> = name.into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            Some(keys) => {
                let entries = [("env", keys.env), ("file", keys.file)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)));
                seed.deserialize(MapDeserializer::new(entries))
            }
            None => self.map.next_value_seed(seed),
        }
    }
}

/// Built only by [`Written`], from the `env` / `file` entries it gathered.
impl<'de> Deserialize<'de> for SecretKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = SecretKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`<name>_env` or `<name>_file`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretKeys, A::Error> {
                let mut keys = SecretKeys::default();
                while let Some(k) = map.next_key::<String>()? {
                    let v = Some(map.next_value::<String>()?);
                    match k.as_str() {
                        "env" => keys.env = v,
                        _ => keys.file = v,
                    }
                }
                Ok(keys)
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// serde's wording for an unknown field, which the config loader parses for "did you mean".
fn unknown_field_message(key: &str, expected: &[String]) -> String {
    let quoted: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match quoted.as_slice() {
        [] => format!("unknown field `{key}`, there are no fields"),
        [one] => format!("unknown field `{key}`, expected {one}"),
        [a, b] => format!("unknown field `{key}`, expected {a} or {b}"),
        all => format!("unknown field `{key}`, expected one of {}", all.join(", ")),
    }
}

/// The field names serde's derive gives `deserialize_struct`, asked of a deserializer that
/// only records them.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldsProbe) {
        Err(ProbeError(Some(fields))) => fields,
        _ => &[],
    }
}

struct FieldsProbe;

#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field list probe")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<M: fmt::Display>(_: M) -> Self {
        ProbeError(None)
    }
}

impl<'de> Deserializer<'de> for FieldsProbe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(fields)))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Bot {
        server: Option<String>,
        token: SecretKeys,
        group: Option<String>,
    }

    impl Keys for Bot {
        const SECRETS: &'static [&'static str] = &["token"];
        type Extra = ();
    }

    fn read(yaml: &str) -> Result<Written<Bot>, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn both_keys_of_a_secret_land_in_one_field() {
        let bot = read("token_env: BOT_TOKEN\nserver: https://x\ntoken_file: state/t").unwrap();
        assert_eq!(bot.token.env.as_deref(), Some("BOT_TOKEN"));
        assert_eq!(bot.token.file.as_deref(), Some("state/t"));
        assert_eq!(bot.server.as_deref(), Some("https://x"));
        assert!(read("group: g").unwrap().token.is_empty());
    }

    #[test]
    fn unknown_keys_list_what_can_be_written_in_field_order() {
        let e = read("token_evn: X").unwrap_err();
        assert!(
            e.starts_with("unknown field `token_evn`, expected one of `server`, `token_env`, `token_file`, `group`"),
            "{e}"
        );
        // The field's own name is not something a seller can write.
        let e = read("token: literal").unwrap_err();
        assert!(
            e.starts_with("unknown field `token`, expected one of"),
            "{e}"
        );
    }

    #[test]
    fn secret_rules_have_one_wording() {
        // An existing directory: secret files are resolved against it.
        let dir = Path::new("/");
        let keys = |env: Option<&str>, file: Option<&str>| SecretKeys {
            env: env.map(String::from),
            file: file.map(String::from),
        };
        let (r, f) = keys(None, Some("state/t")).check(dir, "status", "token");
        assert_eq!(r, Some(SecretRef::File(SecretFile::new(dir, "state/t"))));
        assert_eq!(f, None);
        let (r, f) = keys(Some("a-b"), None).check(dir, "accounts[0]", "cookies");
        assert_eq!(r, Some(SecretRef::Env("a-b".into())));
        let f = f.unwrap();
        assert_eq!(f.path, "accounts[0].cookies_env");
        assert!(f.message.contains("is not an environment variable name"));
        let (r, f) = keys(Some("A"), Some("state/a")).check(dir, "channels.x", "url");
        assert_eq!((r, f.as_ref().map(|f| f.at_key)), (None, Some(true)));
        assert_eq!(f.unwrap().path, "channels.x.url_file");
        let (_, f) = keys(None, Some("state/../x")).check(dir, "c", "url");
        assert!(f.unwrap().message.contains("relative path under state/"));
        let (r, f) = keys(None, None).check(dir, "c", "url");
        assert_eq!(r, None);
        assert_eq!(f.unwrap().path, "c");
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_that_leads_out_of_state_is_refused_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(STATE_DIR);
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", state.join("cookies.txt")).unwrap();
        std::fs::write(state.join("ok.txt"), " unb=1 \n").unwrap();
        let keys = |f: &str| SecretKeys {
            env: None,
            file: Some(f.to_string()),
        };
        let (r, f) = keys("state/cookies.txt").check(dir.path(), "accounts[0]", "cookies");
        assert!(f.unwrap().message.contains("resolves outside state/"));
        let err = r.unwrap().resolve().unwrap_err().to_string();
        assert!(!err.contains("root:"), "never read: {err}");
        let (r, f) = keys("state/ok.txt").check(dir.path(), "accounts[0]", "cookies");
        assert_eq!(f, None);
        assert_eq!(r.unwrap().resolve().unwrap(), "unb=1");
        // `state -> /etc`: both an existing and a missing file below it are refused.
        std::fs::remove_dir_all(&state).unwrap();
        std::os::unix::fs::symlink("/etc", &state).unwrap();
        for f in ["state/passwd", "state/not-there"] {
            let (r, finding) = keys(f).check(dir.path(), "status", "token");
            assert!(finding.is_some(), "{f}");
            assert!(r.unwrap().resolve().is_err(), "{f}");
        }
    }
}
