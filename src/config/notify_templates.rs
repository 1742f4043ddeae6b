//! The notification templates: one minijinja template per event,
//! `templates/notify/<event>.txt.j2`, in Chinese, loaded with the rest of the config.
//!
//! The daemon ships a default for every event (the files in this repository's
//! `templates/notify/`, compiled in); a file of the same name in the seller's config directory
//! replaces it. Templates render an [`AlertView`] with strict undefined behaviour and with
//! `trim_blocks`/`lstrip_blocks`, so `{% if %}` lines leave no blank lines behind, within the
//! render budget ([`render`](super::render)). Every template is checked statically (variables,
//! filters, tests in every branch) and rendered with sample data when the config loads, so a
//! broken one rejects the config (`check`, reload) instead of failing when the seller most
//! needs the message.

use std::sync::{Arc, LazyLock};

use minijinja::Environment;

use super::TEMPLATES_DIR;
use super::render;
use super::template_files::TemplateFiles;
use super::yaml::did_you_mean_or;
use crate::alert::{Alert, AlertView, EventKind};

/// The directory under the config's `templates/` that holds notification templates.
pub const DIR: &str = "notify";

const BUILTIN: [(EventKind, &str); 11] = [
    (
        EventKind::ManualShip,
        include_str!("../../templates/notify/manual_ship.txt.j2"),
    ),
    (
        EventKind::ShipFailed,
        include_str!("../../templates/notify/ship_failed.txt.j2"),
    ),
    (
        EventKind::NeedsHuman,
        include_str!("../../templates/notify/needs_human.txt.j2"),
    ),
    (
        EventKind::OutOfStock,
        include_str!("../../templates/notify/out_of_stock.txt.j2"),
    ),
    (
        EventKind::LowStock,
        include_str!("../../templates/notify/low_stock.txt.j2"),
    ),
    (
        EventKind::LoginExpired,
        include_str!("../../templates/notify/login_expired.txt.j2"),
    ),
    (
        EventKind::RiskControl,
        include_str!("../../templates/notify/risk_control.txt.j2"),
    ),
    (
        EventKind::Delivered,
        include_str!("../../templates/notify/delivered.txt.j2"),
    ),
    (
        EventKind::Recovered,
        include_str!("../../templates/notify/recovered.txt.j2"),
    ),
    (
        EventKind::ChatFailed,
        include_str!("../../templates/notify/chat_failed.txt.j2"),
    ),
    (
        EventKind::DailyReport,
        include_str!("../../templates/notify/daily_report.txt.j2"),
    ),
];

static BUILTIN_SET: LazyLock<Arc<NotifyTemplates>> =
    LazyLock::new(|| Arc::new(NotifyTemplates::with_overrides(Vec::new()).0));

#[derive(Debug)]
pub struct NotifyTemplates {
    env: Environment<'static>,
}

/// A problem with a seller's template, located relative to the config directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateIssue {
    /// `templates/notify/manual_ship.txt.j2`
    pub file: String,
    pub line: usize,
    pub message: String,
}

pub fn file_name(kind: EventKind) -> String {
    format!("{}.txt.j2", kind.as_str())
}

impl NotifyTemplates {
    /// The compiled-in defaults.
    pub fn builtin() -> Arc<NotifyTemplates> {
        BUILTIN_SET.clone()
    }

    /// Defaults overridden by the files in `templates/notify/`. Returns the set plus every
    /// problem: names that are no event, syntax errors, unknown variables, filters or tests,
    /// and templates that fail to render the sample alert. (Files that could not be read at
    /// all are reported by the loader that read them.)
    pub fn load(files: &TemplateFiles) -> (Self, Vec<TemplateIssue>) {
        let (files, mut issues) = overrides(files);
        let (set, more) = Self::with_overrides(files);
        issues.extend(more);
        issues.extend(set.check());
        (set, issues)
    }

    fn with_overrides(files: Vec<(String, String)>) -> (Self, Vec<TemplateIssue>) {
        let mut env = render::text_environment();
        for (kind, source) in BUILTIN {
            env.add_template(leak(file_name(kind)), source)
                .expect("built-in notification templates compile (unit-tested)");
        }
        let mut issues = Vec::new();
        for (name, source) in files {
            if let Err(e) = env.add_template_owned(name.clone(), source) {
                issues.push(TemplateIssue {
                    file: location(&name),
                    line: e.line().unwrap_or(1),
                    message: e.detail().unwrap_or("syntax error").to_string(),
                });
            }
        }
        (Self { env }, issues)
    }

    /// The alert's text, rendered by its event's template.
    pub fn render(&self, alert: &Alert) -> Result<String, String> {
        self.render_view(alert.kind, &AlertView::of(alert))
    }

    fn render_view(&self, kind: EventKind, view: &AlertView) -> Result<String, String> {
        let text = render::render(&self.env, &location(""), &file_name(kind), view)
            .map_err(|e| e.to_string())?;
        Ok(text.trim_end().to_string())
    }

    /// Check every event's template statically, then render its sample; the issues of each
    /// template that uses something that does not exist, fails, or renders nothing.
    pub fn check(&self) -> Vec<TemplateIssue> {
        let mut issues = Vec::new();
        for kind in EventKind::ALL {
            let name = file_name(kind);
            let alert = Alert::sample(kind);
            let sample = serde_json::to_value(AlertView::of(&alert)).unwrap_or_default();
            let found = render::static_issues(&self.env, &location(""), &name, &sample);
            if !found.is_empty() {
                issues.extend(found.into_iter().map(|p| TemplateIssue {
                    file: p.file,
                    line: p.line,
                    message: p.message,
                }));
                continue;
            }
            let problem = match self.render(&alert) {
                Ok(t) if t.trim().is_empty() => Some("renders an empty message".to_string()),
                Ok(_) => None,
                Err(e) => Some(format!("does not render: {e}")),
            };
            if let Some(message) = problem {
                issues.push(TemplateIssue {
                    file: location(&name),
                    line: 1,
                    message,
                });
            }
        }
        issues
    }
}

fn location(name: &str) -> String {
    format!("{TEMPLATES_DIR}/{DIR}/{name}")
}

/// Built-in names live for the whole process anyway; leaking them keeps `Environment<'static>`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `(file name, source)` of each override under `templates/notify/`.
fn overrides(files: &TemplateFiles) -> (Vec<(String, String)>, Vec<TemplateIssue>) {
    let mut found = Vec::new();
    let mut issues = Vec::new();
    let known: Vec<String> = EventKind::ALL.iter().map(|k| file_name(*k)).collect();
    let prefix = format!("{DIR}/");
    for (path, source) in &files.files {
        let Some(name) = path.strip_prefix(&prefix) else {
            continue;
        };
        if name.contains('/') {
            continue; // a subdirectory of notify/ is not read
        }
        if !known.iter().any(|k| k == name) {
            let hint = did_you_mean_or(name, &known, || {
                format!("expected one of {}", known.join(", "))
            });
            issues.push(TemplateIssue {
                file: location(name),
                line: 1,
                message: format!("`{name}` is not a notification event template; {hint}"),
            });
            continue;
        }
        found.push((name.to_string(), source.clone()));
    }
    (found, issues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_render_every_sample() {
        let set = NotifyTemplates::builtin();
        assert!(set.check().is_empty(), "{:?}", set.check());
        let text = set.render(&Alert::sample(EventKind::ManualShip)).unwrap();
        for needle in [
            "主店",
            "3000000000000000001",
            "示例商品 Office 激活码",
            "专业版",
            "2",
            "¥19.80",
            "买家昵称",
            "2026-01-01 12:00:00",
            "2026-01-03 12:00:00",
            "orders ship",
        ] {
            assert!(text.contains(needle), "manual_ship lacks {needle}:\n{text}");
        }
        assert!(!text.contains("\n\n\n"), "no blank runs:\n{text}");
    }

    #[test]
    fn an_override_with_an_undefined_field_is_reported() {
        let files = TemplateFiles {
            files: vec![
                ("notify/low_stock.txt.j2".into(), "{{ stock.nope }}".into()),
                ("notify/lowstock.txt.j2".into(), "x".into()),
                (
                    "notify/ship_failed.txt.j2".into(),
                    "{% if order.sku == 'never' %}{{ order.skuu }}{% endif %}失败".into(),
                ),
            ],
        };
        let (_, issues) = NotifyTemplates::load(&files);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("did you mean `low_stock.txt.j2`"))
        );
        assert!(
            issues
                .iter()
                .any(|i| i.file == "templates/notify/low_stock.txt.j2"
                    && i.message.contains("`stock.nope` is not defined"))
        );
        // A branch the sample never takes is checked too.
        assert!(
            issues
                .iter()
                .any(|i| i.file == "templates/notify/ship_failed.txt.j2"
                    && i.message.contains("`order.skuu` is not defined"))
        );
    }

    #[test]
    fn a_looping_override_exceeds_the_budget_and_names_its_file() {
        let files = TemplateFiles {
            files: vec![(
                "notify/manual_ship.txt.j2".into(),
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
                    .into(),
            )],
        };
        let (_, issues) = NotifyTemplates::load(&files);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(
            issues[0]
                .message
                .contains("templates/notify/manual_ship.txt.j2: exceeds the render budget"),
            "{issues:?}"
        );
    }
}
