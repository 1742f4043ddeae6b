//! The seller's minijinja templates (`templates/`), loaded once per config version.
//!
//! Every file is read into the environment when the config is built, so a config snapshot never
//! changes under a running order, and a template that does not compile or that uses an
//! undefined variable rejects the whole config at `check`/reload time instead of at send time.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Files that exist but do not compile (already reported as `templates/NAME:LINE`).
    broken: std::collections::HashSet<String>,
}

/// What a delivery template sees.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub order: OrderView,
    pub product: ProductView,
    /// The reserved card keys, one per unit (with `delivery.shape: per_key`, the one key of
    /// this message).
    pub cards: Vec<String>,
    /// With `per_key`: which key this message carries, from 1; 0 in a merged message.
    pub unit: u32,
    /// How many keys the order has in all.
    pub units: u32,
    pub account: AccountView,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub item_id: String,
    pub item_title: String,
    pub buyer_id: String,
    pub buyer_nick: String,
    pub sku: String,
    pub quantity: u32,
    pub amount: String,
    pub paid_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductView {
    pub item_id: String,
    pub title: String,
    pub category: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub id: String,
    pub name: String,
}

impl DeliveryView {
    /// Representative data used to prove a template renders before the config is accepted.
    pub fn sample() -> Self {
        Self {
            order: OrderView {
                order_id: "3000000000000000001".into(),
                item_id: "900000000001".into(),
                item_title: "示例商品".into(),
                buyer_id: "2200000000001".into(),
                buyer_nick: "买家昵称".into(),
                sku: "默认".into(),
                quantity: 2,
                amount: "9.90".into(),
                paid_at: "2026-01-01T00:00:00Z".into(),
            },
            product: ProductView {
                item_id: "900000000001".into(),
                title: "示例商品".into(),
                category: "virtual".into(),
            },
            cards: vec!["SAMPLE-KEY-1".into(), "SAMPLE-KEY-2".into()],
            unit: 0,
            units: 2,
            account: AccountView {
                id: "main".into(),
                name: "主账号".into(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read templates directory {0}: {1}")]
    Read(String, String),
    #[error("{name}:{line}: {message}")]
    Syntax {
        name: String,
        line: usize,
        message: String,
    },
    #[error("template `{0}` does not exist in templates/")]
    Missing(String),
    #[error("{0}")]
    Render(String),
}

impl Templates {
    /// Load every file under `dir` (recursively); names are paths relative to `dir`.
    /// Returns the templates plus one error per file that does not compile.
    pub fn load(dir: &Path) -> (Self, Vec<TemplateError>) {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut errors = Vec::new();
        let mut broken = std::collections::HashSet::new();
        let mut files = Vec::new();
        if dir.exists() {
            if let Err(e) = collect_files(dir, dir, &mut files) {
                errors.push(TemplateError::Read(
                    dir.display().to_string(),
                    e.to_string(),
                ));
            }
        }
        files.sort();
        for (name, source) in files {
            if let Err(e) = env.add_template_owned(name.clone(), source) {
                broken.insert(name.clone());
                errors.push(TemplateError::Syntax {
                    name,
                    line: e.line().unwrap_or(1),
                    message: e.detail().unwrap_or("syntax error").to_string(),
                });
            }
        }
        (Self { env, broken }, errors)
    }

    /// True when `name` exists but failed to compile.
    pub fn is_broken(&self, name: &str) -> bool {
        self.broken.contains(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|_| TemplateError::Missing(name.to_string()))?;
        tmpl.render(minijinja::value::Serde(ctx))
            .map_err(|e| TemplateError::Render(render_error(&e)))
    }
}

fn render_error(e: &minijinja::Error) -> String {
    match (e.name(), e.line()) {
        (Some(n), Some(l)) => format!("{n}:{l}: {}", e.detail().unwrap_or("render error")),
        _ => e.to_string(),
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue; // editors' swap files
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}
