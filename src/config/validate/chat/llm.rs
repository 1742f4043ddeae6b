//! The `llm:` stage: where the model is, how it is reached, and whether its key is there.

use std::time::Duration;

use super::super::super::chat::{ChatTexts, LlmParams, OnModelError};
use super::super::super::raw_chat as rc;
use super::super::super::yaml::YamlDoc;
use super::super::Validator;
use crate::secret::SecretRef;

impl Validator<'_> {
    pub(in super::super) fn chat_llm(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::LlmParams,
        texts: &mut ChatTexts,
    ) -> LlmParams {
        let api_key = self.llm_key(doc, path, p);
        let base_url = self.llm_base_url(doc, path, p.base_url.as_deref(), api_key.is_some());
        let model = self.llm_model(doc, path, p);
        let timeout = self.positive_duration(
            doc,
            &format!("{path}.timeout"),
            p.timeout.as_deref(),
            Duration::from_secs(20),
        );
        let temperature = p.temperature.unwrap_or(0.7);
        if !(0.0..=2.0).contains(&temperature) {
            self.field_err(
                doc,
                path,
                "temperature",
                format!("{temperature} is outside 0 to 2"),
            );
        }
        let max_tokens = p.max_tokens.unwrap_or(300);
        if max_tokens == 0 {
            self.field_err(doc, path, "max_tokens", "must be at least 1");
        }
        let max_chars = p.max_chars.unwrap_or(120);
        if max_chars < 10 {
            self.field_err(
                doc,
                path,
                "max_chars",
                "at least 10 characters, or no reply would ever pass",
            );
        }
        let extra = p
            .extra
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
            .collect();
        LlmParams {
            base_url,
            model,
            api_key,
            timeout,
            max_tokens: max_tokens.max(1),
            temperature,
            history_turns: p.history_turns.unwrap_or(10),
            max_chars,
            system_template: self.chat_template(
                doc,
                &format!("{path}.system_template"),
                p.system_template.as_deref(),
                "chat/system.txt.j2",
                texts,
            ),
            on_error: match p.on_error {
                Some(rc::OnError::Silence) => OnModelError::Silence,
                _ => OnModelError::Fallthrough,
            },
            extra,
        }
    }

    fn llm_model(&mut self, doc: &YamlDoc, path: &str, p: &rc::LlmParams) -> String {
        let model = p.model.as_deref().map(str::trim).unwrap_or_default();
        if model.is_empty() {
            self.err(
                doc,
                path,
                format!(
                    "{path}: missing model (e.g. qwen-plus, deepseek-chat, gpt-4o-mini, qwen2.5:7b)"
                ),
            );
        }
        model.to_string()
    }

    /// The key is optional (a local server needs none). A key variable that is not set is an
    /// error now rather than a model answering 401 to every buyer later.
    fn llm_key(&mut self, doc: &YamlDoc, path: &str, p: &rc::LlmParams) -> Option<SecretRef> {
        if p.api_key.is_empty() {
            return None;
        }
        let key = self.secret(doc, path, "api_key", &p.api_key)?;
        if let SecretRef::Env(name) = &key {
            if std::env::var(name).map_or(true, |v| v.trim().is_empty()) {
                self.field_err(doc, path, "api_key_env", format!("the environment variable {name} is not set (export it where the daemon runs, or drop api_key_env for a local model that needs no key)"));
            }
        }
        Some(key)
    }

    /// `http(s)://…/v1`. Plain http would send buyers' words (and a key) unencrypted, so it
    /// is accepted for a loopback server, or for a keyless server on the seller's own network.
    fn llm_base_url(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        given: Option<&str>,
        has_key: bool,
    ) -> String {
        let key = format!("{path}.base_url");
        let Some(text) = given.map(str::trim) else {
            self.err(doc, path, format!("{path}: missing base_url (e.g. https://dashscope.aliyuncs.com/compatible-mode/v1, https://api.deepseek.com/v1, http://127.0.0.1:11434/v1)"));
            return String::new();
        };
        let url = match reqwest::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            _ => {
                self.err(
                    doc,
                    &key,
                    format!("{key}: `{text}` is not an http(s):// URL"),
                );
                return text.to_string();
            }
        };
        let loopback = url
            .host_str()
            .is_some_and(crate::channels::http::is_loopback);
        if url.scheme() == "http" && has_key && !loopback {
            self.err(doc, &key, format!("{key}: http:// would send the API key and buyers' messages unencrypted; use https:// (plain http is only allowed for a loopback server or one without a key)"));
        }
        if text.ends_with("/chat/completions") {
            self.err(
                doc,
                &key,
                format!("{key}: give the base URL only; /chat/completions is appended"),
            );
        }
        text.trim_end_matches('/').to_string()
    }
}
