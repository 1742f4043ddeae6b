//! The notification templates: one minijinja template per event,
//! `templates/notify/<event>.txt.j2`, in Chinese, loaded with the rest of the config.
//!
//! The daemon ships a default for every event (the files in this repository's
//! `templates/notify/`, compiled in); a file of the same name in the seller's config directory
//! replaces it. Templates render an [`AlertView`] with strict undefined behaviour and with
//! `trim_blocks`/`lstrip_blocks`, so `{% if %}` lines leave no blank lines behind. Every
//! template is rendered with sample data when the config loads, so a broken one rejects the
//! config (`check`, reload) instead of failing when the seller most needs the message.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use minijinja::{Environment, UndefinedBehavior};

use super::TEMPLATES_DIR;
use super::yaml::did_you_mean;
use crate::alert::{Alert, AlertView, EventKind};

/// The directory under the config's `templates/` that holds notification templates.
pub const DIR: &str = "notify";

const BUILTIN: [(EventKind, &str); 10] = [
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

    /// Defaults overridden by the files in `dir` (the config's `templates/notify`). Returns
    /// the set plus every problem: unreadable files, names that are no event, syntax errors,
    /// and templates that fail to render the sample alert.
    pub fn load(dir: &Path) -> (Self, Vec<TemplateIssue>) {
        let (files, mut issues) = read_overrides(dir);
        let (set, more) = Self::with_overrides(files);
        issues.extend(more);
        issues.extend(set.check());
        (set, issues)
    }

    fn with_overrides(files: Vec<(String, String)>) -> (Self, Vec<TemplateIssue>) {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters are valid"),
        );
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
        let name = file_name(kind);
        let tmpl = self.env.get_template(&name).map_err(|e| e.to_string())?;
        let text = tmpl
            .render(minijinja::value::Serde(view))
            .map_err(|e| match e.line() {
                Some(l) => format!("line {l}: {}", e.detail().unwrap_or("render error")),
                None => e.to_string(),
            })?;
        Ok(text.trim_end().to_string())
    }

    /// Render every event's sample; one issue per template that fails or renders nothing.
    pub fn check(&self) -> Vec<TemplateIssue> {
        let mut issues = Vec::new();
        for kind in EventKind::ALL {
            let name = file_name(kind);
            let problem = match self.render(&Alert::sample(kind)) {
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

/// `(file name, source)` of each override in `dir`; a missing directory means "no overrides".
fn read_overrides(dir: &Path) -> (Vec<(String, String)>, Vec<TemplateIssue>) {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (files, issues);
    };
    let known: Vec<String> = EventKind::ALL.iter().map(|k| file_name(*k)).collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || entry.path().is_dir() {
            continue;
        }
        if !known.contains(&name) {
            let hint = did_you_mean(&name, &known).map_or_else(
                || format!("expected one of {}", known.join(", ")),
                |b| format!("did you mean `{b}`?"),
            );
            issues.push(TemplateIssue {
                file: location(&name),
                line: 1,
                message: format!("`{name}` is not a notification event template; {hint}"),
            });
            continue;
        }
        match std::fs::read_to_string(entry.path()) {
            Ok(source) => files.push((name, source)),
            Err(e) => issues.push(TemplateIssue {
                file: location(&name),
                line: 1,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    files.sort();
    (files, issues)
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("low_stock.txt.j2"), "{{ stock.nope }}").unwrap();
        std::fs::write(dir.path().join("lowstock.txt.j2"), "x").unwrap();
        let (_, issues) = NotifyTemplates::load(dir.path());
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("did you mean `low_stock.txt.j2`"))
        );
        assert!(
            issues
                .iter()
                .any(|i| i.file.ends_with("low_stock.txt.j2")
                    && i.message.contains("does not render"))
        );
    }
}
