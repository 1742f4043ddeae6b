//! HTML pages: the templates under `src/status/templates/`, compiled into the binary, and the
//! filters they use.
//!
//! Templates end in `.html`, so minijinja escapes every value; a page never builds HTML by
//! string concatenation. Pages need no JavaScript: filters are GET forms, refresh is a
//! `<meta http-equiv="refresh">`.

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

use crate::clock::format_beijing;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    (
        "_orders_table.html",
        include_str!("templates/_orders_table.html"),
    ),
    (
        "_notifications.html",
        include_str!("templates/_notifications.html"),
    ),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("manual.html", include_str!("templates/manual.html")),
    ("orders.html", include_str!("templates/orders.html")),
    ("order.html", include_str!("templates/order.html")),
    ("products.html", include_str!("templates/products.html")),
    ("problems.html", include_str!("templates/problems.html")),
    ("logs.html", include_str!("templates/logs.html")),
    ("message.html", include_str!("templates/message.html")),
];

/// What every page needs besides its own data.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Template name.
    pub template: &'static str,
    /// Which nav entry is highlighted.
    pub nav: &'static str,
    pub title: &'a str,
    /// Seconds between automatic reloads; 0 for none.
    pub refresh: u32,
    /// The JSON twin of this page.
    pub api: &'a str,
    pub now: u64,
    pub version: &'a str,
}

pub fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // Printing an undefined value is a bug in a template, not something to render as empty.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_filter("bj", bj);
    env.add_filter("ago", ago);
    env.add_filter("dur", dur);
    env.add_filter("pct", pct);
    env.add_filter("urlenc", |s: String| super::http::encode(&s));
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

pub fn render<T: Serialize>(
    env: &Environment<'static>,
    frame: Frame<'_>,
    page: &T,
) -> Result<String, minijinja::Error> {
    env.get_template(frame.template)?.render(context! {
        page => Serde(page),
        nav => frame.nav,
        title => frame.title,
        refresh => frame.refresh,
        api => frame.api,
        now => frame.now,
        version => frame.version,
    })
}

/// Unix ms → `2026-11-24 21:09:58` (Beijing); none → `—`.
fn bj(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".to_string(), format_beijing)
}

/// Unix ms → `3 分钟前`, relative to `now`.
fn ago(ms: Option<u64>, now: u64) -> String {
    match ms {
        Some(t) if t <= now => format!("{}前", human(now - t)),
        Some(_) => "刚刚".to_string(),
        None => "—".to_string(),
    }
}

/// A duration in ms → `2 小时 5 分`.
fn dur(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_string(), |ms| human(ms.max(0) as u64))
}

fn human(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} 秒"),
        (0, 0, m) => format!("{m} 分钟"),
        (0, h, m) => format!("{h} 小时 {m} 分"),
        (d, h, _) => format!("{d} 天 {h} 小时"),
    }
}

/// 0..=1 → `97.5%`; none → `—`.
fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        environment().unwrap();
    }

    #[test]
    fn filters_read_like_a_person_writes() {
        assert_eq!(human(59_000), "59 秒");
        assert_eq!(human(3_600_000 * 2 + 60_000 * 5), "2 小时 5 分");
        assert_eq!(human(86_400_000 * 3), "3 天 0 小时");
        assert_eq!(pct(Some(0.975)), "97.5%");
        assert_eq!(ago(Some(1_000), 61_000), "1 分钟前");
    }
}
