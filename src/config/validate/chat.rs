//! The `chat:` stages and the chat parts of products: raw → model, every problem with its
//! `file:line:col` (unknown keys come from serde; here: stage order, bad regexes, missing or
//! broken templates, a floor above the list price, an LLM key variable that is not set, …).
//!
//! Every reply text is compiled into the config's [`ChatTexts`] and rendered once with sample
//! data (with and without an order), so a reply that would fail at run time fails `check`.

use super::super::template_files::TemplateFiles;

use super::super::chat::*;
use super::super::chat_view::ChatView;
use super::super::raw;
use super::super::raw_chat::{self as rc, ReplyText};
use super::super::yaml::YamlDoc;
use super::Validator;
use crate::money::Cents;

/// The chat parts of one product, taken out of the raw product before it is validated.
pub(super) struct RawProductChat {
    pub index: usize,
    pub item_id: String,
    pub price: Option<rc::Amount>,
    pub replies: Vec<rc::KeywordRule>,
    pub facts: Option<String>,
    pub greeting: Option<rc::Greeting>,
    pub bargain: Option<rc::Bargain>,
}

impl RawProductChat {
    pub fn take(index: usize, p: &mut raw::Product) -> Self {
        Self {
            index,
            item_id: p.item_id.clone().into_string().trim().to_string(),
            price: p.price.take(),
            replies: std::mem::take(&mut p.replies),
            facts: p.facts.take(),
            greeting: p.greeting.take(),
            bargain: p.bargain.take(),
        }
    }
}

/// Seller files under `templates/chat/`, loaded into the chat texts (replacing built-ins).
/// They were read with every other template; their read and syntax errors are already
/// reported by the shared template loader.
pub(super) fn chat_texts(files: &TemplateFiles) -> ChatTexts {
    let mut texts = ChatTexts::default();
    for (name, source) in &files.files {
        if name.starts_with("chat/") {
            let _ = texts.add_file(name, source);
        }
    }
    texts
}

impl Validator<'_> {
    pub(super) fn chat(
        &mut self,
        doc: &YamlDoc,
        raw: &[rc::ChatStage],
        texts: &mut ChatTexts,
    ) -> Vec<ChatStage> {
        let mut out: Vec<ChatStage> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let path = format!("chat[{i}]");
            let stage = self.chat_stage(doc, &path, s, texts);
            let first = out.iter().position(|p| p.rank() == stage.rank());
            self.listed_twice(doc, ("chat", i), stage.name(), first);
            if let Some(last) = out.last().filter(|l| l.rank() > stage.rank()) {
                self.err(
                    doc,
                    &path,
                    format!(
                        "{path}: `{}` must come before `{}` (order: {})",
                        stage.name(),
                        last.name(),
                        CHAT_STAGE_NAMES.join(" → ")
                    ),
                );
            }
            out.push(stage);
        }
        self.chat_rules(doc, &out);
        out
    }

    fn chat_rules(&mut self, doc: &YamlDoc, stages: &[ChatStage]) {
        let answers = stages.iter().any(ChatStage::answers);
        let sends = stages.iter().any(|s| matches!(s, ChatStage::Send(_)));
        if answers && !sends {
            self.key_err(
                doc,
                "chat",
                "chat: replies are prepared but never sent; end the list with `- send: {}`",
            );
        }
        let has_llm = stages.iter().any(|s| matches!(s, ChatStage::Llm(_)));
        for (i, s) in stages.iter().enumerate() {
            if let ChatStage::Bargain(b) = s {
                if b.use_model && !has_llm {
                    self.err(doc, &format!("chat[{i}].bargain.use_model"), format!("chat[{i}].bargain.use_model: needs an `llm` stage to phrase offers; add one or set use_model: false"));
                }
            }
        }
    }

    fn chat_stage(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        s: &rc::ChatStage,
        texts: &mut ChatTexts,
    ) -> ChatStage {
        match s {
            rc::ChatStage::Filter(p) => {
                ChatStage::Filter(self.chat_filter(doc, &format!("{path}.filter"), p))
            }
            rc::ChatStage::Takeover(p) => {
                ChatStage::Takeover(self.chat_takeover(doc, &format!("{path}.takeover"), p))
            }
            rc::ChatStage::Debounce(p) => {
                let path = format!("{path}.debounce.window");
                let window = self.duration(
                    doc,
                    &path,
                    p.window.as_deref(),
                    DebounceParams::default().window,
                );
                ChatStage::Debounce(DebounceParams { window })
            }
            rc::ChatStage::Keywords(p) => ChatStage::Keywords(self.chat_keywords(
                doc,
                &format!("{path}.keywords.rules"),
                p,
                texts,
            )),
            rc::ChatStage::OrderStatus(p) => ChatStage::OrderStatus(self.chat_order_status(
                doc,
                &format!("{path}.order-status"),
                p,
                texts,
            )),
            rc::ChatStage::Bargain(p) => {
                ChatStage::Bargain(self.chat_bargain(doc, &format!("{path}.bargain"), p, texts))
            }
            rc::ChatStage::Llm(p) => {
                ChatStage::Llm(self.chat_llm(doc, &format!("{path}.llm"), p, texts))
            }
            rc::ChatStage::Default(p) => {
                ChatStage::Default(self.chat_default(doc, &format!("{path}.default"), p, texts))
            }
            rc::ChatStage::Send(p) => {
                ChatStage::Send(self.chat_send(doc, &format!("{path}.send"), p))
            }
        }
    }

    fn chat_takeover(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::TakeoverParams,
    ) -> TakeoverParams {
        let d = TakeoverParams::default();
        TakeoverParams {
            pause: self.duration(doc, &format!("{path}.pause"), p.pause.as_deref(), d.pause),
            toggle: p.toggle.clone().map_or(d.toggle, |t| t.trim().to_string()),
        }
    }

    /// `path` is the rules list's (`chat[i].keywords.rules`).
    fn chat_keywords(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::KeywordsParams,
        texts: &mut ChatTexts,
    ) -> KeywordsParams {
        let rules = p
            .rules
            .iter()
            .enumerate()
            .filter_map(|(j, r)| {
                self.keyword_rule(doc, &format!("{path}[{j}]"), "global", r, texts)
            })
            .collect();
        KeywordsParams { rules }
    }

    fn chat_order_status(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::OrderStatusParams,
        texts: &mut ChatTexts,
    ) -> OrderStatusParams {
        OrderStatusParams {
            keywords: words(p.keywords.as_ref(), DEFAULT_ORDER_STATUS_WORDS),
            template: self.chat_template(
                doc,
                &format!("{path}.template"),
                p.template.as_deref(),
                "chat/order_status.txt.j2",
                texts,
            ),
        }
    }

    fn chat_default(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::DefaultParams,
        texts: &mut ChatTexts,
    ) -> DefaultParams {
        let reply = self
            .reply(doc, path, p.reply.as_ref(), p.template.as_deref(), texts)
            .unwrap_or(Reply::Swallow);
        let cooldown = self.duration(
            doc,
            &format!("{path}.cooldown"),
            p.cooldown.as_deref(),
            std::time::Duration::from_secs(3600),
        );
        let images = self.images(doc, &format!("{path}.images"), &p.images);
        DefaultParams {
            reply,
            cooldown,
            images,
        }
    }

    fn chat_filter(&mut self, doc: &YamlDoc, path: &str, p: &rc::FilterParams) -> FilterParams {
        let d = FilterParams::default();
        let quiet_hours = p.quiet_hours.as_ref().and_then(|q| {
            let from = self.clock_time(doc, &format!("{path}.quiet_hours.from"), &q.from);
            let to = self.clock_time(doc, &format!("{path}.quiet_hours.to"), &q.to);
            Some(QuietHours {
                from_min: from?,
                to_min: to?,
            })
        });
        FilterParams {
            max_age: self.duration(
                doc,
                &format!("{path}.max_age"),
                p.max_age.as_deref(),
                d.max_age,
            ),
            blacklist: p
                .blacklist
                .iter()
                .map(|b| b.clone().into_string().trim().to_string())
                .collect(),
            quiet_hours,
            ignore_texts: p.ignore_texts.clone(),
        }
    }

    /// `HH:MM` (Beijing time) → minutes after midnight.
    fn clock_time(&mut self, doc: &YamlDoc, path: &str, text: &str) -> Option<u32> {
        let parsed = text.trim().split_once(':').and_then(|(h, m)| {
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        });
        if parsed.is_none() {
            self.err(
                doc,
                path,
                format!("{path}: `{text}` is not a time like 23:00 (Beijing time)"),
            );
        }
        parsed
    }

    fn chat_bargain(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &rc::BargainParams,
        texts: &mut ChatTexts,
    ) -> BargainParams {
        BargainParams {
            keywords: words(p.keywords.as_ref(), DEFAULT_BARGAIN_WORDS),
            use_model: p.use_model.unwrap_or(false),
            reset_after: self.duration(
                doc,
                &format!("{path}.reset_after"),
                p.reset_after.as_deref(),
                std::time::Duration::from_secs(24 * 3600),
            ),
            offer_template: self.chat_template(
                doc,
                &format!("{path}.offer_template"),
                p.offer_template.as_deref(),
                "chat/bargain_offer.txt.j2",
                texts,
            ),
            final_template: self.chat_template(
                doc,
                &format!("{path}.final_template"),
                p.final_template.as_deref(),
                "chat/bargain_final.txt.j2",
                texts,
            ),
        }
    }

    fn chat_send(&mut self, doc: &YamlDoc, path: &str, p: &rc::SendParams) -> SendParams {
        let d = SendParams::default();
        let delay = p
            .delay
            .as_ref()
            .map_or(d.delay, |w| self.window(doc, &format!("{path}.delay"), w));
        let mut limit = |key: &str, v: Option<u32>, default: u32| {
            let v = v.unwrap_or(default);
            if v == 0 {
                self.err(
                    doc,
                    &format!("{path}.{key}"),
                    format!("{path}.{key}: must be at least 1"),
                );
            }
            v.max(1)
        };
        SendParams {
            delay,
            per_conversation_per_minute: limit(
                "per_conversation_per_minute",
                p.per_conversation_per_minute,
                d.per_conversation_per_minute,
            ),
            per_account_per_minute: limit(
                "per_account_per_minute",
                p.per_account_per_minute,
                d.per_account_per_minute,
            ),
        }
    }

    pub(super) fn keyword_rule(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        scope: &str,
        r: &rc::KeywordRule,
        texts: &mut ChatTexts,
    ) -> Option<KeywordRule> {
        let matcher = self.matcher(doc, path, r);
        let reply = self.reply(doc, path, r.reply.as_ref(), r.template.as_deref(), texts);
        let images = self.images(doc, &format!("{path}.images"), &r.images);
        let (matcher, reply) = (matcher?, reply?);
        let key = rule_key(scope, &matcher);
        Some(KeywordRule {
            key,
            matcher,
            reply,
            once: r.once,
            images,
        })
    }

    fn matcher(&mut self, doc: &YamlDoc, path: &str, r: &rc::KeywordRule) -> Option<Matcher> {
        let given = [r.any.is_some(), r.all.is_some(), r.regex.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            self.err(
                doc,
                path,
                format!("{path}: give exactly one of any: [words], all: [words] or regex: \"…\""),
            );
            return None;
        }
        let list = |ws: &Vec<String>| -> Vec<String> {
            ws.iter()
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect()
        };
        if let Some(words) = &r.any {
            return self
                .non_empty(doc, &format!("{path}.any"), list(words))
                .map(Matcher::Any);
        }
        if let Some(words) = &r.all {
            return self
                .non_empty(doc, &format!("{path}.all"), list(words))
                .map(Matcher::All);
        }
        let text = r.regex.as_deref().unwrap_or_default();
        match regex::Regex::new(text) {
            Ok(re) => Some(Matcher::Regex(re)),
            Err(e) => {
                let detail = e.to_string();
                let last = detail
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                self.field_err(
                    doc,
                    path,
                    "regex",
                    format!("`{text}` is not a valid regular expression: {last}"),
                );
                None
            }
        }
    }

    fn non_empty(&mut self, doc: &YamlDoc, path: &str, words: Vec<String>) -> Option<Vec<String>> {
        if words.is_empty() {
            self.err(doc, path, format!("{path}: needs at least one keyword"));
            return None;
        }
        Some(words)
    }

    /// `reply:` (text, list, or empty = swallow) or `template:` (a file under templates/chat/).
    pub(super) fn reply(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        reply: Option<&ReplyText>,
        template: Option<&str>,
        texts: &mut ChatTexts,
    ) -> Option<Reply> {
        match (reply, template) {
            (Some(_), Some(_)) => {
                self.key_err(
                    doc,
                    &format!("{path}.template"),
                    format!("{path}: give either reply or template, not both"),
                );
                None
            }
            (None, None) => {
                self.err(doc, path, format!("{path}: missing reply: (text, or \"\" to stay silent) or template: (a file under templates/chat/)"));
                None
            }
            (None, Some(name)) => {
                let name =
                    self.chat_template(doc, &format!("{path}.template"), Some(name), "", texts);
                Some(Reply::Messages(vec![TextSource::File(name)]))
            }
            (Some(text), None) => {
                let items: Vec<&String> = match text {
                    ReplyText::One(t) => vec![t],
                    ReplyText::Many(ts) => ts.iter().collect(),
                };
                let items: Vec<&String> =
                    items.into_iter().filter(|t| !t.trim().is_empty()).collect();
                if items.is_empty() {
                    return Some(Reply::Swallow);
                }
                let mut sources = Vec::new();
                for t in items {
                    match texts.add_inline(t.trim()) {
                        Ok(src) => {
                            self.sample_render(doc, &format!("{path}.reply"), &src, texts);
                            sources.push(src);
                        }
                        Err(e) => self.err(
                            doc,
                            &format!("{path}.reply"),
                            format!("{path}.reply: template error: {e}"),
                        ),
                    }
                }
                Some(Reply::Messages(sources))
            }
        }
    }

    /// A template name that must exist under `templates/chat/` (or be built in) and render.
    pub(super) fn chat_template(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        given: Option<&str>,
        default: &str,
        texts: &ChatTexts,
    ) -> String {
        let name = given.map(str::trim).unwrap_or(default).to_string();
        if !name.starts_with("chat/") {
            self.err(
                doc,
                path,
                format!(
                    "{path}: chat templates live under templates/chat/; write it as chat/{name}"
                ),
            );
            return name;
        }
        if !texts.has(&name) {
            self.err(
                doc,
                path,
                format!(
                    "{path}: template `{name}` does not exist in templates/ (nor is it built in)"
                ),
            );
            return name;
        }
        self.sample_render(doc, path, &TextSource::File(name.clone()), texts);
        name
    }

    fn sample_render(&mut self, doc: &YamlDoc, path: &str, source: &TextSource, texts: &ChatTexts) {
        let fullest = serde_json::to_value(ChatView::sample()).unwrap_or_default();
        if let Some(p) = texts.static_problems(source, &fullest).into_iter().next() {
            let msg = if p.file.starts_with("inline:") {
                format!("{path}: {}", p.message)
            } else {
                format!("{path}: {}:{}: {}", p.file, p.line, p.message)
            };
            self.err(doc, path, msg);
            return;
        }
        for (view, when) in [
            (ChatView::sample(), ""),
            (
                ChatView::sample_without_order(),
                " (for a buyer without an order)",
            ),
        ] {
            if let Err(e) = texts.render(source, &view) {
                self.err(
                    doc,
                    path,
                    format!("{path}: template fails to render{when}: {e}"),
                );
                return;
            }
        }
    }
}

fn words(given: Option<&Vec<String>>, default: &[&str]) -> Vec<String> {
    match given {
        Some(ws) => ws
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect(),
        None => default.iter().map(|w| w.to_string()).collect(),
    }
}

/// Stable identity of a rule for reply-once markers: where it is declared and what it
/// matches (reordering rules keeps the markers; changing the keywords makes a new rule).
fn rule_key(scope: &str, m: &Matcher) -> String {
    use sha2::{Digest, Sha256};
    let what = match m {
        Matcher::Any(w) => format!("any:{}", w.join("\u{1f}")),
        Matcher::All(w) => format!("all:{}", w.join("\u{1f}")),
        Matcher::Regex(r) => format!("re:{}", r.as_str()),
    };
    let digest = Sha256::digest(format!("{scope}\u{1e}{what}").as_bytes());
    format!("{scope}:{}", hex::encode(&digest[..6]))
}

/// Money a seller wrote, in yuan.
pub(super) fn amount(
    v: &mut Validator<'_>,
    doc: &YamlDoc,
    path: &str,
    a: &rc::Amount,
) -> Option<Cents> {
    match Cents::parse(&a.text()) {
        Ok(c) => Some(c),
        Err(e) => {
            v.err(doc, path, format!("{path}: {e}"));
            None
        }
    }
}

mod llm;
mod product;
