//! HTML: the templates compiled into the binary (`templates/`: the shared frame and partials
//! here, each page's own template from its
//! [`PageSpec`](super::page::PageSpec)), the nav built from the page table,
//! and the filters templates use.
//!
//! Templates end in `.html`, so minijinja escapes every value; a page never builds HTML by
//! string concatenation. Pages need no JavaScript: filters are GET forms, refresh is a
//! `<meta http-equiv="refresh">`.

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use crate::clock::format_beijing;

use super::page::Nav;

use super::pages::PAGES;

/// The frame every page extends, its partials, and the not-found / error page.
const SHARED: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    (
        "_orders_table.html",
        include_str!("templates/_orders_table.html"),
    ),
    (
        "_notifications.html",
        include_str!("templates/_notifications.html"),
    ),
    ("message.html", include_str!("templates/message.html")),
];

/// What every page needs besides its own data.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Template name.
    pub template: &'static str,
    /// The path of the nav entry that is lit.
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
    env.add_filter("steps", steps);
    // The header's nav: the listed pages, in table order.
    let nav: Vec<Value> = PAGES
        .iter()
        .filter(|p| matches!(p.nav, Nav::Listed))
        // Paths from the table, not input: no escaping needed (`/` would become `&#x2f;`).
        .map(|p| context! { href => Value::from_safe_string(p.path.into()), label => p.title })
        .collect();
    env.add_global("nav_entries", Value::from(nav));
    for (name, source) in SHARED {
        env.add_template(name, source)?;
    }
    for page in PAGES {
        env.add_template(page.template.name, page.template.source)?;
    }
    Ok(env)
}

pub fn render<T: Serialize + ?Sized>(
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

/// A next step (`crate::why`) as HTML: escaped, with the commands in backticks as `<code>`.
fn steps(text: Option<String>) -> Value {
    let Some(text) = text else {
        return Value::from_safe_string(String::new());
    };
    let mut html = String::with_capacity(text.len() + 32);
    for (i, piece) in text.split('`').enumerate() {
        let escaped = minijinja::HtmlEscape(piece).to_string();
        if i % 2 == 1 {
            html.push_str("<code>");
            html.push_str(&escaped);
            html.push_str("</code>");
        } else {
            html.push_str(&escaped);
        }
    }
    Value::from_safe_string(html)
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
    fn the_nav_lists_the_listed_pages_in_table_order() {
        let env = environment().unwrap();
        let html = env
            .get_template("message.html")
            .unwrap()
            .render(context! {
                page => context! { title => "t", message => "m" },
                nav => "/orders", title => "t", refresh => 0, api => "/api/orders",
                now => 0, version => "v",
            })
            .unwrap();
        let labels: Vec<_> = ["首页", "待人工发货", "订单", "商品", "异常", "日志"]
            .iter()
            .map(|l| html.find(&format!(">{l}</a>")).expect(l))
            .collect();
        assert!(labels.windows(2).all(|w| w[0] < w[1]), "{html}");
        assert!(
            html.contains(r#"<a href="/orders" class="on">订单</a>"#),
            "{html}"
        );
        assert!(
            !html.contains("订单详情</a>"),
            "a detail page is not in the nav"
        );
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
