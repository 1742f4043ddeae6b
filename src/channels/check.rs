//! What a vendor's `check` reports through, and the checks vendors share.
//!
//! A vendor checks its raw entry with a [`Check`]: every problem goes to the [`Report`] that
//! `config` implements with its YAML positions, so it reaches the seller as `file:line:col:
//! message` next to every other problem of the load. The messages here are the ones sellers
//! already know (`channels.ops: missing url_env …`), so they are written out in full.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{BuildError, http};
use crate::secret::{SecretFinding, SecretKeys, SecretRef};

/// Where checks report; implemented by `config`, which knows where every path is written.
pub trait Report {
    /// A problem with the value at `path` (`channels.ops.url_env`).
    fn err(&mut self, path: &str, message: String);
    /// A problem best shown where the key at `path` is written.
    fn key_err(&mut self, path: &str, message: String);
    /// `text` as a duration (`30s`, `5m`), reported and replaced by `default` when it is not one.
    fn duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration;
    /// The config directory, which secret files are relative to.
    fn dir(&self) -> &Path;
}

impl dyn Report + '_ {
    /// Report what [`SecretKeys::check`] found.
    pub fn secret_finding(&mut self, f: SecretFinding) {
        if f.at_key {
            self.key_err(&f.path, f.message);
        } else {
            self.err(&f.path, f.message);
        }
    }
}

/// One channel entry being checked: its path (`channels.ops`) and the report.
pub struct Check<'a> {
    report: &'a mut dyn Report,
    path: String,
}

impl<'a> Check<'a> {
    pub fn new(report: &'a mut dyn Report, path: String) -> Self {
        Self { report, path }
    }

    /// `channels.<name>`
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `channels.<name>.<key>`
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub fn err(&mut self, at: &str, message: impl Into<String>) {
        self.report.err(at, message.into());
    }

    pub fn duration(&mut self, key: &str, text: Option<&str>, default: Duration) -> Duration {
        let at = self.key(key);
        self.report.duration(&at, text, default)
    }

    /// The secret `what` (`url` for `url_env` / `url_file`); it must be given.
    pub fn secret(&mut self, what: &str, keys: &SecretKeys) -> Option<SecretRef> {
        let (secret, finding) = keys.check(self.report.dir(), &self.path, what);
        if let Some(f) = finding {
            self.report.secret_finding(f);
        }
        secret
    }

    /// Like [`Check::secret`], but giving neither key is fine.
    pub fn opt_secret(&mut self, what: &str, keys: &SecretKeys) -> Option<SecretRef> {
        if keys.is_empty() {
            return None;
        }
        self.secret(what, keys)
    }

    /// `url_env`/`url_file` with the optional `secret_env`/`secret_file` that signs requests.
    pub fn signed_url(&mut self, url: &SecretKeys, secret: &SecretKeys) -> Option<SignedUrl> {
        let secret = self.opt_secret("secret", secret);
        Some(SignedUrl {
            url: self.secret("url", url)?,
            secret,
        })
    }

    /// A field that must be given and not blank, trimmed.
    pub fn required(&mut self, field: &str, value: Option<String>) -> Option<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            _ => {
                let msg = format!("{}: missing `{field}`", self.path);
                self.err(&self.path.clone(), msg);
                None
            }
        }
    }

    /// An endpoint of the vendor at `key`: https, or http to a loopback test server; `default`
    /// when not given. Never repeats the URL in the error (it may carry a key).
    pub fn url(&mut self, key: &str, given: Option<&str>, default: &str) -> String {
        let Some(url) = given else {
            return default.to_string();
        };
        if let Err(e) = http::check_url(url) {
            let at = self.key(key);
            self.err(&at, format!("{at}: {e}"));
        }
        url.trim_end_matches('/').to_string()
    }

    /// What both SMS vendors take after their template: the recipients, the template's
    /// variables and the API key pair (`id`, `key`: the secrets' names and keys), in this order.
    pub fn sms_target(
        &mut self,
        phones: &[Scalar],
        params: &Option<Vec<String>>,
        id: (&str, &SecretKeys),
        key: (&str, &SecretKeys),
    ) -> Option<SmsTarget> {
        let phone_numbers = self.phones(phones);
        let params = self.sms_params(params);
        let id = self.secret(id.0, id.1);
        let key = self.secret(key.0, key.1);
        Some(SmsTarget {
            phone_numbers,
            params,
            keys: (id?, key?),
        })
    }

    /// `phone_numbers:`, which must not be empty.
    fn phones(&mut self, given: &[Scalar]) -> Vec<String> {
        if given.is_empty() {
            let msg = format!("{}: missing `phone_numbers`", self.path);
            self.err(&self.path.clone(), msg);
        }
        given.iter().map(Scalar::text).collect()
    }

    /// `params:` of an SMS template: alert facts by name, `event` and `order_id` by default.
    fn sms_params(&mut self, given: &Option<Vec<String>>) -> Vec<String> {
        const KNOWN: [&str; 11] = [
            "event",
            "order_id",
            "item",
            "sku",
            "quantity",
            "amount",
            "buyer",
            "account",
            "reason",
            "deadline",
            "remaining",
        ];
        let params = given
            .clone()
            .unwrap_or_else(|| vec!["event".into(), "order_id".into()]);
        for (i, p) in params.iter().enumerate() {
            if !KNOWN.contains(&p.as_str()) {
                let hint = match did_you_mean(p, &KNOWN) {
                    Some(b) => format!("did you mean `{b}`?"),
                    None => format!("known: {}", KNOWN.join(", ")),
                };
                let at = self.key(&format!("params[{i}]"));
                self.err(&at, format!("{at}: unknown parameter `{p}`, {hint}"));
            }
        }
        params
    }
}

/// A bot's webhook URL (which embeds its key) and the optional secret that signs requests:
/// the generic webhook, DingTalk and Feishu.
#[derive(Debug, Clone)]
pub struct SignedUrl {
    pub url: SecretRef,
    pub secret: Option<SecretRef>,
}

impl SignedUrl {
    /// Both read now; the URL must pass [`http::check_url`] (`what` names it in the error).
    pub fn resolve(&self, what: &str) -> Result<(String, Option<String>), BuildError> {
        let url = http::checked_url(self.url.resolve()?, what)?;
        let secret = self.secret.as_ref().map(SecretRef::resolve).transpose()?;
        Ok((url, secret))
    }
}

/// Recipients, template variables and API keys of an SMS vendor.
#[derive(Debug, Clone)]
pub struct SmsTarget {
    pub phone_numbers: Vec<String>,
    /// Which alert facts fill the template's variables (`event`, `order_id`, `item`, …), in
    /// the template's order.
    pub params: Vec<String>,
    /// The key id and its secret.
    pub keys: (SecretRef, SecretRef),
}

/// The closest of `known` to `name` when it is a plausible typo (edit distance at most
/// 2, or a third of the candidate).
fn did_you_mean<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A value sellers write either quoted or as a bare number (phone numbers, chat ids).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Int(i64),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(n) => n.to_string(),
        }
    }
}
