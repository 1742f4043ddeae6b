//! The seller's minijinja templates (`templates/`), loaded once per config version.
//!
//! Every file is read ([`TemplateFiles`]) into the environment when the config is built, so a
//! config snapshot never changes under a running order, and a delivery template that does not
//! compile, uses a variable, filter or test that does not exist (in any branch), exceeds the
//! render budget or renders nothing rejects the whole config at `check`/reload time instead of
//! at send time. Rendering goes through [`render`](super::render), the one budgeted path.

use minijinja::Environment;
use serde::Serialize;

use super::render::{self, Problem, RenderError};
use super::template_files::{TemplateFiles, Unreadable};

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
    /// A file under `templates/` that was not read (`name` relative to `templates/`).
    #[error("{name}: {message}")]
    Unreadable { name: String, message: String },
    #[error("{name}:{line}: {message}")]
    Syntax {
        name: String,
        line: usize,
        message: String,
    },
}

/// How files of this environment are named to the seller.
const DIR: &str = "templates/";

impl Templates {
    /// Compile every file read from `templates/`; names are paths relative to it. Returns the
    /// templates plus one error per file that was not read or does not compile.
    pub fn load(files: &TemplateFiles, unreadable: Vec<Unreadable>) -> (Self, Vec<TemplateError>) {
        let mut env = render::environment();
        let mut errors: Vec<TemplateError> = unreadable
            .into_iter()
            .map(|u| TemplateError::Unreadable {
                name: u.name,
                message: u.message,
            })
            .collect();
        let mut broken = std::collections::HashSet::new();
        for (name, source) in &files.files {
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                broken.insert(name.clone());
                errors.push(TemplateError::Syntax {
                    name: name.clone(),
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

    /// Render a delivery template within the render budget.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, RenderError> {
        render::render(&self.env, DIR, name, ctx)
    }

    /// Everything wrong with `name` as a delivery template, each message naming its file and
    /// line: variables, filters and tests that do not exist (in any branch), a sample render
    /// that fails or exceeds the budget, and a sample render that is empty (every order would
    /// then fail at send time).
    pub fn delivery_problems(&self, name: &str) -> Vec<Problem> {
        let sample = DeliveryView::sample();
        let value = serde_json::to_value(&sample).unwrap_or_default();
        let mut problems = render::static_issues(&self.env, DIR, name, &value);
        if !problems.is_empty() {
            return problems;
        }
        match self.render(name, &sample) {
            Ok(text) if text.trim().is_empty() => problems.push(Problem {
                file: format!("{DIR}{name}"),
                line: 1,
                message:
                    "renders an empty message for the sample order, so every delivery would fail"
                        .into(),
            }),
            Ok(_) => {}
            Err(e) => problems.push(e.located()),
        }
        problems
    }
}
