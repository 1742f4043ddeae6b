//! `pipeline:` — the stage list (each stage's parameters with their defaults, the fixed stage
//! order) and the notify stage's events, routes, cooldowns and templates.

use super::*;

const SEED_VIRTUAL_KEYWORDS: [&str; 5] = ["激活码", "软件", "充值", "会员", "代充"];
const SEED_PHYSICAL_KEYWORDS: [&str; 4] = ["手机", "电脑", "包包", "衣服"];

impl Validator<'_> {
    pub(super) fn stages(
        &mut self,
        doc: &YamlDoc,
        raw: &[raw::Stage],
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> Vec<Stage> {
        if raw.is_empty() {
            self.key_err(
                doc,
                "pipeline",
                "pipeline: the stage list is empty; start with `- ingest: {}`",
            );
        }
        let mut out: Vec<Stage> = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let path = format!("pipeline[{i}]");
            let stage = self.stage(doc, &path, s, channels);
            let first = out.iter().position(|p| p.kind() == stage.kind());
            self.listed_twice(doc, ("pipeline", i), stage.name(), first);
            out.push(stage);
        }
        self.stage_order(doc, &out);
        out
    }

    fn stage_order(&mut self, doc: &YamlDoc, stages: &[Stage]) {
        if let Some(first) = stages.first() {
            if first.kind() != StageKind::Ingest {
                self.err(doc, "pipeline[0]", "pipeline[0]: the first stage must be `ingest` (it de-duplicates events and applies the order state machine)");
            }
        }
        let placed: Vec<(usize, StageKind)> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.kind()))
            .filter(|(_, k)| k.has_fixed_place())
            .collect();
        for pair in placed.windows(2) {
            let ((_, ka), (ib, kb)) = (pair[0], pair[1]);
            if kb < ka {
                let order: Vec<&str> = StageKind::ALL
                    .iter()
                    .filter(|k| k.has_fixed_place())
                    .map(|k| k.name())
                    .collect();
                self.err(
                    doc,
                    &format!("pipeline[{ib}]"),
                    format!(
                        "pipeline[{ib}]: `{}` must come before `{}` (order: {})",
                        kb.name(),
                        ka.name(),
                        order.join(" → ")
                    ),
                );
            }
        }
        let has = |k: StageKind| stages.iter().any(|s| s.kind() == k);
        if (has(StageKind::StockCheck) || has(StageKind::Ship)) && !has(StageKind::Classify) {
            self.err(doc, "pipeline", "pipeline: `stock-check` and `ship` need a `classify` stage before them to find the product");
        }
    }

    fn stage(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        s: &raw::Stage,
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> Stage {
        match s {
            raw::Stage::Ingest(p) => Stage::Ingest(IngestParams {
                dedupe_window: self.duration(
                    doc,
                    &format!("{path}.ingest.dedupe_window"),
                    p.dedupe_window.as_deref(),
                    Duration::from_secs(24 * 3600),
                ),
            }),
            raw::Stage::Classify(p) => Stage::Classify(ClassifyParams {
                virtual_keywords: keywords(&p.virtual_keywords, &SEED_VIRTUAL_KEYWORDS),
                physical_keywords: keywords(&p.physical_keywords, &SEED_PHYSICAL_KEYWORDS),
                default: p.default.unwrap_or(Category::Physical),
            }),
            raw::Stage::StockCheck(p) => Stage::StockCheck(StockParams {
                low_stock_alert: self
                    .count(
                        doc,
                        &format!("{path}.stock-check.low_stock_alert"),
                        p.low_stock_alert,
                        MAX_LOW_STOCK_ALERT,
                    )
                    .unwrap_or(DEFAULT_LOW_STOCK_ALERT),
            }),
            raw::Stage::Delay(p) => {
                let zero = Window {
                    min: Duration::ZERO,
                    max: Duration::ZERO,
                };
                let virtual_ = p.virtual_.as_ref().map_or(zero, |w| {
                    self.window(doc, &format!("{path}.delay.virtual"), w)
                });
                Stage::Delay(DelayParams { virtual_ })
            }
            raw::Stage::Ship(p) => Stage::Ship(ShipParams {
                enabled: p.enabled.unwrap_or(true),
                mode: p.mode.unwrap_or(ShipMode::SendThenConfirm),
                max_retries: self
                    .count(
                        doc,
                        &format!("{path}.ship.max_retries"),
                        p.max_retries,
                        MAX_RETRIES,
                    )
                    .unwrap_or(3),
                retry_delay: self.bounded_duration(
                    doc,
                    &format!("{path}.ship.retry_delay"),
                    p.retry_delay.as_deref(),
                    Duration::from_secs(300),
                    DELAY_LIMIT,
                ),
                readback_after: self.duration(
                    doc,
                    &format!("{path}.ship.readback_after"),
                    p.readback_after.as_deref(),
                    Duration::from_secs(10),
                ),
                logistics_company: p
                    .logistics_company
                    .clone()
                    .unwrap_or_else(|| "顺丰快递".to_string()),
            }),
            raw::Stage::Notify(p) => {
                Stage::Notify(self.notify(doc, &format!("{path}.notify"), p, channels))
            }
        }
    }

    fn notify(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &raw::NotifyParams,
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> NotifyParams {
        let events = if p.events.is_empty() {
            EventKind::default_alerts()
        } else {
            p.events
                .iter()
                .enumerate()
                .filter_map(|(i, e)| self.event_kind(doc, &format!("{path}.events[{i}]"), e))
                .collect()
        };
        let list = |field: &str, names: &[String], v: &mut Self| {
            for (i, n) in names.iter().enumerate() {
                v.channel_ref(doc, &format!("{path}.{field}[{i}]"), n, channels);
            }
        };
        list("channels", &p.channels, self);
        list("fallback", &p.fallback, self);
        let mut routes = BTreeMap::new();
        for (event, chs) in &p.routes {
            let rpath = format!("{path}.routes.{event}");
            if let Some(kind) = self.event_kind(doc, &rpath, event) {
                for (i, n) in chs.iter().enumerate() {
                    self.channel_ref(doc, &format!("{rpath}[{i}]"), n, channels);
                }
                routes.insert(kind, chs.clone());
            }
        }
        let channels_used = if p.channels.is_empty() {
            vec!["log".to_string()]
        } else {
            p.channels.clone()
        };
        let dedupe_window = self.duration(
            doc,
            &format!("{path}.dedupe_window"),
            p.dedupe_window.as_deref(),
            alert::DEFAULT_DEDUPE_WINDOW,
        );
        let mut cooldown = alert::default_cooldowns();
        for (event, period) in &p.cooldown {
            let cpath = format!("{path}.cooldown.{event}");
            let d = self.duration(doc, &cpath, Some(period), Duration::ZERO);
            if let Some(kind) = self.event_kind(doc, &cpath, event) {
                cooldown.insert(kind, d);
            }
        }
        NotifyParams {
            events,
            channels: channels_used,
            fallback: p.fallback.clone(),
            routes,
            dedupe_window,
            cooldown,
            recovery: p.recovery.unwrap_or(true),
            templates: self.notify_templates(),
        }
    }

    /// `templates/notify/*.txt.j2` over the built-in defaults, every one rendered with sample
    /// data; syntax errors the delivery loader already reported are not repeated.
    fn notify_templates(&mut self) -> Arc<NotifyTemplates> {
        let (set, issues) = NotifyTemplates::load(self.template_files);
        for issue in issues {
            let name = issue.file.trim_start_matches(&format!("{TEMPLATES_DIR}/"));
            if self.templates.is_broken(name) {
                continue;
            }
            self.errors.push(ConfigError::at(
                &issue.file,
                Pos {
                    line: issue.line,
                    col: 1,
                },
                issue.message,
            ));
        }
        Arc::new(set)
    }

    fn event_kind(&mut self, doc: &YamlDoc, path: &str, name: &str) -> Option<EventKind> {
        let kind = EventKind::parse(name);
        if kind.is_none() {
            let names: Vec<String> = EventKind::ALL
                .iter()
                .map(|k| k.as_str().to_string())
                .collect();
            let hint = did_you_mean_or(name, &names, || {
                format!("known events: {}", names.join(", "))
            });
            self.err(doc, path, format!("{path}: unknown event `{name}`, {hint}"));
        }
        kind
    }

    fn channel_ref(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        name: &str,
        channels: &BTreeMap<String, ChannelConfig>,
    ) {
        if channels.contains_key(name) {
            return;
        }
        let names: Vec<String> = channels.keys().cloned().collect();
        let hint = did_you_mean_or(name, &names, || {
            format!("defined channels: {}", names.join(", "))
        });
        self.err(
            doc,
            path,
            format!("{path}: unknown channel `{name}` (not defined under `channels:`), {hint}"),
        );
    }
}

fn keywords(given: &[String], seed: &[&str]) -> Vec<String> {
    if given.is_empty() {
        seed.iter().map(|s| s.to_string()).collect()
    } else {
        given.to_vec()
    }
}
