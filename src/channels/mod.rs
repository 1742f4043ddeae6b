//! Notification vendors, one file each: how a seller writes one under `channels:`, what is
//! checked, and how a notification is sent to it.
//!
//! Each `<vendor>.rs` holds the whole vendor: its raw shape (`Raw`, serde, with secrets as
//! [`SecretKeys`] fields that sellers write as `<name>_env` / `<name>_file`), its validated
//! `Spec` and defaults ([`Vendor::TIMEOUT`], [`Vendor::RATE`]), `check` (problems go through a
//! [`Check`] to the config loader's `file:line:col` report), `sender` (secrets resolved here,
//! once per config version) and the [`Channel`] that sends, classifying the vendor's body code.
//! What vendors share lives beside them: [`check`] (secrets, required fields, URLs, SMS
//! parameters), [`http`] (sending without ever printing a URL), [`sign`], [`text`].
//!
//! **Adding a vendor** touches one new file and two lines here: write `<vendor>.rs` (`wecom.rs`
//! is a small model), declare it with `pub mod <vendor>;`, and add `"<type>" => Variant(<vendor>),`
//! to the `vendors!` list at the end of this file. That one line declares the vendor's variant
//! in both enums, [`RawChannel`] (what `type:` selects when the YAML is read) and
//! [`ChannelSpec`] (the validated config), plus the matches that dispatch on them; nothing in
//! `config/` or `notify/` names a vendor.
//!
//! **Why this is a top-level module and not part of `notify`.** `config` must hold the
//! validated channel specs and check them while loading, and `notify` (routing and the outbox
//! dispatcher) reads the running `Config`. With the vendors inside `notify`, `config` and
//! `notify` would import each other. Here they sit below both: `config → channels` and
//! `notify → channels`, while `channels` imports only the leaves `alert` (event kinds),
//! `secret` (secret references) and `clock` (timestamps); it reports problems through the
//! [`Report`] trait that `config` implements, so it never needs `config` either.
//! `.ci/module-cycles` checks this.

pub mod check;
pub mod http;
pub mod sign;
pub mod text;

pub mod bark;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod log;
pub mod pushplus;
pub mod serverchan;
pub mod sms_aliyun;
pub mod sms_tencent;
pub mod telegram;
pub mod webhook;
pub mod wecom;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{DeserializeOwned, Deserializer, MapAccess};
use serde::{Deserialize, Serialize};

pub use check::{Check, Report, Scalar, SignedUrl, SmsTarget};

use crate::alert::EventKind;
use crate::secret::{Extra, Keys, SecretError, Written};

/// A notification as a channel sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// The outbox row id: the idempotency key for channels that take one.
    pub id: u64,
    pub event: EventKind,
    pub title: String,
    pub text: String,
    pub order_id: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// Unix ms when the alert was raised.
    pub created_at: u64,
}

impl Notification {
    /// Title and text as one message (IM bots have no title field).
    pub fn body(&self) -> String {
        text::headed(&self.title, &self.text)
    }

    /// The short value `name` (an SMS template variable), at most `max` characters; empty when
    /// the alert has no such fact.
    pub fn var(&self, name: &str, max: usize) -> String {
        text::clip_chars(self.vars.get(name).map_or("", String::as_str), max)
    }
}

/// How a channel answered, classified by its body code (not just the HTTP status) so the
/// dispatcher knows whether to retry, wait, or move on to the fallback chain.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    Accepted,
    /// Worth trying again (timeouts, 5xx, rate-limit answers), after `retry_after_ms` if the
    /// channel said how long.
    Retryable {
        error: String,
        retry_after_ms: Option<u64>,
    },
    /// Will fail the same way every time (bad key, bad signature, bad recipient).
    Permanent {
        error: String,
    },
    /// A quota or penalty: hammering is useless, so fall back now; retried later only when
    /// no fallback is left.
    Quota {
        error: String,
        retry_after_ms: Option<u64>,
    },
}

impl SendResult {
    pub fn class(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Retryable { .. } => "retryable",
            Self::Permanent { .. } => "permanent",
            Self::Quota { .. } => "quota",
        }
    }

    pub fn retryable(error: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self::Retryable {
            error: error.into(),
            retry_after_ms,
        }
    }

    pub fn permanent(error: impl Into<String>) -> Self {
        Self::Permanent {
            error: error.into(),
        }
    }

    pub fn quota(error: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self::Quota {
            error: error.into(),
            retry_after_ms,
        }
    }
}

impl fmt::Display for SendResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::Permanent { error } => write!(f, "permanent: {error}"),
            Self::Retryable {
                error,
                retry_after_ms,
            }
            | Self::Quota {
                error,
                retry_after_ms,
            } => {
                write!(f, "{}: {error}", self.class())?;
                if let Some(ms) = retry_after_ms {
                    write!(f, " (retry after {}s)", ms.div_ceil(1000))?;
                }
                Ok(())
            }
        }
    }
}

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, n: &Notification) -> SendResult;
}

/// Why a configured channel cannot be built (always a configuration problem: permanent).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Invalid(String),
}

/// One notification vendor, implemented by its validated `Spec`.
pub trait Vendor: Sized {
    /// The entry as written under `channels.<name>` (besides `type`, `timeout`,
    /// `max_per_minute`), read through [`Written`].
    type Raw: DeserializeOwned + fmt::Debug;
    /// The keys every entry takes beside its own: [`Limits`] (`()` for `log`, which takes none).
    type Extra: Extra + EntryLimits;
    /// The [`SecretKeys`](crate::secret::SecretKeys) fields of `Raw`, which sellers write as
    /// `<name>_env` / `<name>_file`.
    const SECRETS: &'static [&'static str] = &[];
    /// Per-request timeout when `timeout:` is not given.
    const TIMEOUT: Duration = Duration::from_secs(10);
    /// Local sends per minute when `max_per_minute:` is not given: the vendor's documented
    /// per-bot limit (its module doc says which), `None` for no local limit.
    const RATE: Option<u32> = None;
    /// Check the entry, reporting every problem; `None` when it cannot be used.
    fn check(raw: &Self::Raw, c: &mut Check<'_>) -> Option<Self>;
    /// What sends to this vendor.
    type Sender: Channel + 'static;
    /// The sending side, with secrets resolved now (once per config version).
    fn sender(&self, http: reqwest::Client, timeout: Duration) -> Result<Self::Sender, BuildError>;
}

/// A vendor's raw entry; `Written<Entry<S>>` reads it with its secrets and limits.
#[derive(Debug)]
pub struct Entry<S: Vendor>(pub S::Raw);

impl<S: Vendor> Keys for Entry<S> {
    const SECRETS: &'static [&'static str] = S::SECRETS;
    type Extra = S::Extra;
}

impl<'de, S: Vendor> Deserialize<'de> for Entry<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        S::Raw::deserialize(deserializer).map(Entry)
    }
}

/// The keys every vendor's entry takes beside its own: `timeout` and `max_per_minute`.
#[derive(Debug, Default)]
pub struct Limits {
    pub timeout: Option<String>,
    pub max_per_minute: Option<u32>,
}

impl Extra for Limits {
    const KEYS: &'static [&'static str] = &["timeout", "max_per_minute"];

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "timeout" => self.timeout = map.next_value()?,
            _ => self.max_per_minute = map.next_value()?,
        }
        Ok(())
    }
}

/// `timeout` and `max_per_minute` of an entry, whether or not its kind takes them.
pub trait EntryLimits {
    fn limits(&self) -> (Option<&str>, Option<u32>);
}

impl EntryLimits for Limits {
    fn limits(&self) -> (Option<&str>, Option<u32>) {
        (self.timeout.as_deref(), self.max_per_minute)
    }
}

impl EntryLimits for () {
    fn limits(&self) -> (Option<&str>, Option<u32>) {
        (None, None)
    }
}

/// A configured channel: its vendor settings plus the limits every channel has.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub spec: ChannelSpec,
    /// Per-request timeout (`timeout:`, default [`Vendor::TIMEOUT`]).
    pub timeout: Duration,
    /// Local rate limit in sends per minute (`max_per_minute:`, default [`Vendor::RATE`]);
    /// `None` means no local limit.
    pub max_per_minute: Option<u32>,
}

impl ChannelConfig {
    /// The built-in `log` channel, always present.
    pub fn log() -> Self {
        Self {
            spec: ChannelSpec::Log(log::Spec),
            timeout: log::Spec::TIMEOUT,
            max_per_minute: None,
        }
    }
}

/// `channels:` checked: every entry that passed, plus the built-in `log`.
pub fn check_all(
    raw: &BTreeMap<String, RawChannel>,
    report: &mut dyn Report,
) -> BTreeMap<String, ChannelConfig> {
    let mut out = BTreeMap::new();
    out.insert("log".to_string(), ChannelConfig::log());
    for (name, entry) in raw {
        let mut c = Check::new(report, format!("channels.{name}"));
        if let Some(cfg) = entry.check(&mut c) {
            out.insert(name.clone(), cfg);
        }
    }
    out
}

/// The vendor's own checks, then the shared limits.
fn entry<S: Vendor>(
    raw: &Written<Entry<S>>,
    c: &mut Check<'_>,
    wrap: fn(S) -> ChannelSpec,
) -> Option<ChannelConfig> {
    let spec = S::check(&raw.fields.0, c);
    let (timeout, max_per_minute) = raw.extra.limits();
    let timeout = c.duration("timeout", timeout, S::TIMEOUT);
    if max_per_minute == Some(0) {
        let at = c.key("max_per_minute");
        c.err(
            &at,
            format!("{at}: must be at least 1 (leave it out for no local limit)"),
        );
    }
    Some(ChannelConfig {
        spec: wrap(spec?),
        timeout,
        max_per_minute: max_per_minute.or(S::RATE),
    })
}

/// Build the channel implementation for a configured channel. Secrets are resolved here, when
/// the dispatcher (re)builds its channels for a config version, never stored in the config.
pub fn build_channel(
    cfg: &ChannelConfig,
    http: &reqwest::Client,
) -> Result<Box<dyn Channel>, BuildError> {
    cfg.spec.build(http, cfg.timeout)
}

/// Declares both vendor enums, and their dispatch, from one list; see the module doc.
macro_rules! vendors {
    ($($kind:literal => $variant:ident($module:ident),)*) => {
        /// The raw enum is called `Channel` here because serde names it in messages sellers
        /// see ("expected internally tagged enum Channel").
        mod raw {
            use super::*;

            /// One entry of `channels:` as written, chosen by `type:`.
            #[derive(Debug, Deserialize)]
            #[serde(tag = "type", deny_unknown_fields)]
            pub enum Channel {
                $(#[serde(rename = $kind)] $variant(Written<Entry<$module::Spec>>),)*
            }
        }

        pub use raw::Channel as RawChannel;

        /// One configured channel's validated settings. Secrets are `SecretRef`s, resolved
        /// when the channel is built.
        #[derive(Debug, Clone)]
        pub enum ChannelSpec {
            $($variant($module::Spec),)*
        }

        impl RawChannel {
            fn check(&self, c: &mut Check<'_>) -> Option<ChannelConfig> {
                match self {
                    $(Self::$variant(raw) => entry(raw, c, ChannelSpec::$variant),)*
                }
            }
        }

        impl ChannelSpec {
            /// The `type:` it was written with.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)*
                }
            }

            fn build(
                &self,
                http: &reqwest::Client,
                timeout: Duration,
            ) -> Result<Box<dyn Channel>, BuildError> {
                match self {
                    $(Self::$variant(spec) => Ok(Box::new(spec.sender(http.clone(), timeout)?)),)*
                }
            }
        }
    };
}

// The order is the one `check` lists when `type:` is unknown.
vendors! {
    "webhook" => Webhook(webhook),
    "log" => Log(log),
    "wecom" => Wecom(wecom),
    "dingtalk" => Dingtalk(dingtalk),
    "feishu" => Feishu(feishu),
    "bark" => Bark(bark),
    "telegram" => Telegram(telegram),
    "serverchan" => Serverchan(serverchan),
    "pushplus" => Pushplus(pushplus),
    "email" => Email(email),
    "aliyun_sms" => AliyunSms(sms_aliyun),
    "tencent_sms" => TencentSms(sms_tencent),
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A report that keeps the messages, for checks run without a YAML file.
    #[derive(Default)]
    struct Collected(Vec<String>);

    impl Report for Collected {
        fn err(&mut self, _: &str, message: String) {
            self.0.push(message);
        }
        fn key_err(&mut self, _: &str, message: String) {
            self.0.push(message);
        }
        fn duration(&mut self, _: &str, text: Option<&str>, default: Duration) -> Duration {
            text.map_or(default, |t| humantime::parse_duration(t).unwrap())
        }
        fn dir(&self) -> &Path {
            Path::new("/")
        }
    }

    fn checked(yaml: &str) -> (BTreeMap<String, ChannelConfig>, Vec<String>) {
        let raw: BTreeMap<String, RawChannel> = serde_yaml::from_str(yaml).unwrap();
        let mut report = Collected::default();
        (check_all(&raw, &mut report), report.0)
    }

    #[test]
    fn every_vendor_gets_its_kind_and_default_limits() {
        let (channels, errors) = checked(
            "
w: { type: webhook, url_env: U }
l: { type: log }
wc: { type: wecom, url_env: U }
d: { type: dingtalk, url_env: U }
f: { type: feishu, url_env: U }
b: { type: bark, device_key_env: K }
t: { type: telegram, token_env: T, chat_id: 1 }
s: { type: serverchan, sendkey_env: K }
p: { type: pushplus, token_env: T }
e: { type: email, host: smtp.example.com, from: a@example.com, to: [b@example.com] }
a: { type: aliyun_sms, access_key_id_env: A, access_key_secret_env: B, sign_name: S, template_code: T, phone_numbers: [1] }
tc: { type: tencent_sms, secret_id_env: A, secret_key_env: B, sdk_app_id: 1, sign_name: S, template_id: 2, phone_numbers: [1] }
",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let seen: Vec<(&str, &str, u64, Option<u32>)> = channels
            .iter()
            .map(|(name, c)| {
                let kind = c.spec.kind();
                (name.as_str(), kind, c.timeout.as_secs(), c.max_per_minute)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("a", "aliyun_sms", 10, None),
                ("b", "bark", 10, None),
                ("d", "dingtalk", 10, Some(20)),
                ("e", "email", 30, None),
                ("f", "feishu", 10, Some(100)),
                ("l", "log", 10, None),
                ("log", "log", 10, None),
                ("p", "pushplus", 10, None),
                ("s", "serverchan", 10, None),
                ("t", "telegram", 10, Some(20)),
                ("tc", "tencent_sms", 10, None),
                ("w", "webhook", 10, None),
                ("wc", "wecom", 10, Some(20)),
            ]
        );
    }

    #[test]
    fn given_limits_win_and_a_zero_rate_is_refused() {
        let (channels, errors) =
            checked("x: { type: wecom, url_file: state/u, timeout: 3s, max_per_minute: 7 }");
        let x = &channels["x"];
        assert_eq!((x.timeout.as_secs(), x.max_per_minute), (3, Some(7)));
        assert!(errors.is_empty(), "{errors:?}");
        let (_, errors) = checked("x: { type: bark, device_key_env: K, max_per_minute: 0 }");
        assert_eq!(
            errors,
            ["channels.x.max_per_minute: must be at least 1 (leave it out for no local limit)"]
        );
    }
}
