//! raw → model, collecting every problem with its `file:line:col`.
//!
//! Each `check_*` function reads one part of the raw config, pushes errors for what is wrong,
//! and returns what it could build; `load_dir` returns a `Config` only when no error was pushed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::NotifyTemplates;
use super::chat::ChatConfig;
use super::model::*;
use super::overlay::Overlay;
use super::raw;
use super::template_files::TemplateFiles;
use super::templates::{TemplateError, Templates};
use super::yaml::{Pos, YamlDoc, did_you_mean, did_you_mean_or};
use super::{
    ConfigError, ConfigErrors, PIPELINE_FILE, PRODUCTS_FILE, StageKind, TEMPLATES_DIR, version_of,
};
use crate::alert::{self, EventKind};
use crate::channels::ChannelConfig;
use crate::order::ShipMode;
use crate::secret::{SecretKeys, SecretRef, Written};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub(super) fn load_dir(dir: &Path, overlay: &Overlay) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let pipeline_text = read_file(dir, PIPELINE_FILE, true, &mut errors);
    let products_text = read_file(dir, PRODUCTS_FILE, false, &mut errors);
    let (files, unreadable) = TemplateFiles::read(dir);
    let (templates, template_errors) = Templates::load(&files, unreadable);
    errors.extend(template_errors.into_iter().map(template_file_error));
    // A file that could not be read is not validated as if it were empty.
    let (Some(pipeline_text), Some(products_text)) = (pipeline_text, products_text) else {
        return Err(ConfigErrors(errors));
    };

    let pipeline = parse::<raw::PipelineFile>(PIPELINE_FILE, &pipeline_text, overlay, &mut errors);
    let products = parse::<raw::ProductsFile>(
        PRODUCTS_FILE,
        &products_text,
        &Overlay::default(),
        &mut errors,
    );
    let (Some((pdoc, praw)), Some((rdoc, rraw))) = (pipeline, products) else {
        return Err(ConfigErrors(errors));
    };

    let mut v = Validator {
        dir,
        errors,
        templates: &templates,
        template_files: &files,
        checked_templates: HashSet::new(),
    };
    let accounts = v.accounts(&pdoc, &praw.accounts);
    let status = v.status(&pdoc, &praw.status);
    let channels = v.channels(&pdoc, &praw.channels);
    let stages = v.stages(&pdoc, &praw.pipeline, &channels);
    let pools = v.pools(&rdoc, &rraw.pools);
    let mut chat_texts = chat::chat_texts(&files);
    let chat_stages = v.chat(&pdoc, &praw.chat, &mut chat_texts);
    let mut raw_products = rraw.products;
    let product_chats: Vec<chat::RawProductChat> = raw_products
        .iter_mut()
        .enumerate()
        .map(|(i, p)| chat::RawProductChat::take(i, p))
        .collect();
    let mut products = v.products(&rdoc, raw_products, &accounts, &pools, &stages);
    for raw in &product_chats {
        let parts = v.product_chat(&rdoc, raw, &mut chat_texts);
        if let Some(p) = products.get_mut(&raw.item_id) {
            p.chat = parts;
        }
    }
    let marketplace = v.marketplace(&pdoc, &praw.marketplace);
    let blacklist = v.blacklist(&pdoc, &praw.blacklist);
    let aftersale = v.aftersale(&pdoc, &praw.aftersale);
    let stats = v.stats(&pdoc, &praw.stats, &praw.report, &channels);
    if !v.errors.is_empty() {
        return Err(ConfigErrors(v.errors));
    }
    let version = config_version(&pipeline_text, &products_text, &files);
    let sources = source_files(&pipeline_text, &products_text, &files);
    Ok(Config {
        version,
        files: sources,
        dir: dir.to_path_buf(),
        accounts,
        status,
        stages,
        channels,
        pools,
        products,
        templates: Arc::new(templates),
        marketplace,
        chat: ChatConfig {
            stages: chat_stages,
            texts: chat_texts,
        },
        blacklist,
        aftersale,
        stats,
    })
}

/// The version [`load_dir`] would give the files on disk now, without validating them.
pub(super) fn disk_version(dir: &Path) -> String {
    let mut errors = Vec::new();
    let pipeline = read_file(dir, PIPELINE_FILE, true, &mut errors).unwrap_or_default();
    let products = read_file(dir, PRODUCTS_FILE, false, &mut errors).unwrap_or_default();
    let (files, _) = TemplateFiles::read(dir);
    config_version(&pipeline, &products, &files)
}

/// The files a config was built from that are not empty, named relative to `dir`.
fn source_files(pipeline: &str, products: &str, templates: &TemplateFiles) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in [(PIPELINE_FILE, pipeline), (PRODUCTS_FILE, products)] {
        if !text.is_empty() {
            out.push(name.to_string());
        }
    }
    out.extend(
        templates
            .files
            .iter()
            .filter(|(_, text)| !text.is_empty())
            .map(|(n, _)| format!("{TEMPLATES_DIR}/{n}")),
    );
    out
}

/// The text of `dir/name` (empty when an optional file does not exist), `None` when it cannot
/// be read (reported).
fn read_file(
    dir: &Path,
    name: &str,
    required: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match crate::files::read_text(&dir.join(name), crate::files::MAX_CONFIG_FILE) {
        Ok(t) => Some(t),
        Err(crate::files::ReadError::NotFound) if !required => Some(String::new()),
        Err(e) => {
            errors.push(ConfigError::at(
                name,
                Pos { line: 1, col: 1 },
                format!("{} {e}", dir.join(name).display()),
            ));
            None
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    overlay: &Overlay,
    errors: &mut Vec<ConfigError>,
) -> Option<(YamlDoc, T)> {
    let doc = match YamlDoc::parse(file, text) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut doc = normalize_empty_stages(doc);
    overlay.apply(&mut doc.value);
    let (value, errs) = doc.deserialize::<T>();
    errors.extend(errs);
    value.map(|v| (doc, v))
}

/// `- ingest:` with nothing after it means "defaults", like `- ingest: {}`.
fn normalize_empty_stages(mut doc: YamlDoc) -> YamlDoc {
    for list in ["pipeline", "chat"] {
        if let Some(serde_yaml::Value::Sequence(items)) = doc.value.get_mut(list) {
            for item in items {
                if let serde_yaml::Value::Mapping(m) = item {
                    for (_, v) in m.iter_mut() {
                        if v.is_null() {
                            *v = serde_yaml::Value::Mapping(Default::default());
                        }
                    }
                }
            }
        }
    }
    doc
}

fn template_file_error(e: TemplateError) -> ConfigError {
    let (name, line, message) = match e {
        TemplateError::Syntax {
            name,
            line,
            message,
        } => (name, line, message),
        TemplateError::Unreadable { name, message } => (name, 1, message),
    };
    let file = if name.is_empty() {
        TEMPLATES_DIR.to_string()
    } else {
        format!("{TEMPLATES_DIR}/{name}")
    };
    ConfigError::at(&file, Pos { line, col: 1 }, message)
}

/// The version of exactly the bytes this config was built from (nothing is read again).
fn config_version(pipeline: &str, products: &str, templates: &TemplateFiles) -> String {
    let names: Vec<String> = templates
        .files
        .iter()
        .map(|(n, _)| format!("{TEMPLATES_DIR}/{n}"))
        .collect();
    let mut parts: Vec<(&str, &[u8])> = vec![
        (PIPELINE_FILE, pipeline.as_bytes()),
        (PRODUCTS_FILE, products.as_bytes()),
    ];
    parts.extend(
        names
            .iter()
            .zip(&templates.files)
            .map(|(n, (_, text))| (n.as_str(), text.as_bytes())),
    );
    version_of(&parts)
}

/// The longest a duration may be, as the limit and its name in an error.
type DurationLimit = (Duration, &'static str, &'static str);
/// A timer: at most [`MAX_TIMER`] (one year).
const TIMER_LIMIT: DurationLimit = (MAX_TIMER, "1 year", "a timer");
/// A delay before a delivery attempt: at most [`MAX_DELAY`] (30 days).
const DELAY_LIMIT: DurationLimit = (MAX_DELAY, "30 days", "a delay");

struct Validator<'a> {
    dir: &'a Path,
    errors: Vec<ConfigError>,
    templates: &'a Templates,
    template_files: &'a TemplateFiles,
    /// Delivery templates already checked (several products may share one).
    checked_templates: HashSet<String>,
}

impl Validator<'_> {
    fn err(&mut self, doc: &YamlDoc, path: &str, msg: impl Into<String>) {
        self.errors.push(doc.error(path, msg));
    }

    /// A stage list names each stage once: `list[at]` repeats the one at `list[first]`.
    fn listed_twice(
        &mut self,
        doc: &YamlDoc,
        (list, at): (&str, usize),
        stage: &str,
        first: Option<usize>,
    ) {
        if let Some(first) = first {
            let path = format!("{list}[{at}]");
            let msg = format!("{path}: stage `{stage}` appears twice (first at {list}[{first}])");
            self.err(doc, &path, msg);
        }
    }

    /// An error at `{path}.{field}`, reported as `{path}.{field}: {msg}`.
    fn field_err(&mut self, doc: &YamlDoc, path: &str, field: &str, msg: impl std::fmt::Display) {
        let at = format!("{path}.{field}");
        self.err(doc, &at, format!("{at}: {msg}"));
    }

    fn key_err(&mut self, doc: &YamlDoc, path: &str, msg: impl Into<String>) {
        self.errors.push(doc.key_error(path, msg));
    }

    /// A timer: at most [`MAX_TIMER`] (one year).
    fn duration(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
        self.bounded_duration(doc, path, text, default, TIMER_LIMIT)
    }

    /// A timer that must not be zero: a zero is reported and the default stands in for it.
    fn positive_duration(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
        let value = self.duration(doc, path, text, default);
        if value.is_zero() {
            self.err(doc, path, format!("{path}: must be longer than 0s"));
            return default;
        }
        value
    }

    fn bounded_duration(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        text: Option<&str>,
        default: Duration,
        (max, max_text, what): DurationLimit,
    ) -> Duration {
        let Some(text) = text else { return default };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d <= max => d,
            Ok(_) => {
                self.err(
                    doc,
                    path,
                    format!(
                        "{path}: `{}` is longer than {max_text}, the limit for {what}",
                        text.trim()
                    ),
                );
                default.min(max)
            }
            Err(_) => {
                self.err(
                    doc,
                    path,
                    format!(
                        "{path}: `{text}` is not a duration; write it like 30s, 5m, 2h or 1h30m"
                    ),
                );
                default
            }
        }
    }

    /// A count written by the seller: at most `max`.
    fn count(&mut self, doc: &YamlDoc, path: &str, value: Option<u32>, max: u32) -> Option<u32> {
        match value {
            Some(n) if n > max => {
                self.err(
                    doc,
                    path,
                    format!("{path}: must be at most {max} (got {n})"),
                );
                Some(max)
            }
            other => other,
        }
    }

    fn window(&mut self, doc: &YamlDoc, path: &str, w: &raw::Window) -> Window {
        let (min, max) = (Some(w.min.as_str()), Some(w.max.as_str()));
        let min = self.bounded_duration(
            doc,
            &format!("{path}.min"),
            min,
            Duration::ZERO,
            DELAY_LIMIT,
        );
        let max = self.bounded_duration(doc, &format!("{path}.max"), max, min, DELAY_LIMIT);
        if min > max {
            self.err(
                doc,
                &format!("{path}.min"),
                format!(
                    "{path}: min ({}) is greater than max ({})",
                    w.min.trim(),
                    w.max.trim()
                ),
            );
        }
        Window {
            min,
            max: max.max(min),
        }
    }

    /// A secret written as `<what>_env` / `<what>_file`, checked by the one rule in `secret`.
    fn secret(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        what: &str,
        keys: &SecretKeys,
    ) -> Option<SecretRef> {
        let (secret, finding) = keys.check(self.dir, path, what);
        if let Some(f) = finding {
            if f.at_key {
                self.key_err(doc, &f.path, f.message);
            } else {
                self.err(doc, &f.path, f.message);
            }
        }
        secret
    }

    fn accounts(&mut self, doc: &YamlDoc, raw: &[Written<raw::Account>]) -> Vec<Account> {
        if raw.is_empty() {
            self.key_err(
                doc,
                "accounts",
                "accounts: at least one account is required (id plus cookies_env or cookies_file)",
            );
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            let path = format!("accounts[{i}]");
            if a.id.trim().is_empty() {
                self.err(
                    doc,
                    &format!("{path}.id"),
                    format!("{path}.id: must not be empty"),
                );
            } else if !seen.insert(a.id.clone()) {
                self.err(
                    doc,
                    &format!("{path}.id"),
                    format!("{path}.id: duplicate account id `{}`", a.id),
                );
            }
            if let Some(cookies) = self.secret(doc, &path, "cookies", &a.cookies) {
                out.push(Account {
                    id: a.id.clone(),
                    name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                    cookies,
                });
            }
        }
        out
    }

    fn status(&mut self, doc: &YamlDoc, raw: &raw::Status) -> StatusConfig {
        let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
            self.err(
                doc,
                "status.listen",
                format!("status.listen: `{text}` is not an address like 127.0.0.1:8080"),
            );
            DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses")
        });
        let token = if raw.token.is_empty() {
            None
        } else {
            self.secret(doc, "status", "token", &raw.token)
        };
        if !listen.ip().is_loopback() && token.is_none() {
            self.err(
                doc,
                "status.listen",
                format!("status.listen: {listen} is reachable from other machines; set status.token_env or status.token_file so the page requires a token"),
            );
        }
        StatusConfig { listen, token }
    }
}

mod aftersale;
mod channels;
mod chat;
mod delivery;
mod marketplace;
mod pipeline;
mod products;
mod stats;
mod supplier;
