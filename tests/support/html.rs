//! What minijinja's HTML auto-escaping makes of page text, and back: for tests that look for
//! a value on a rendered page.
#![allow(dead_code)]

/// The escapes of the characters page values contain; `&` first, so escaping never touches an
/// entity it wrote (and unescaping, in reverse, never makes one).
const HTML_ESCAPES: [(&str, &str); 6] = [
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("\"", "&quot;"),
    ("'", "&#x27;"),
    ("/", "&#x2f;"),
];

pub fn html_escape(s: &str) -> String {
    let escape = |s: String, (plain, entity): &(&str, &str)| s.replace(plain, entity);
    HTML_ESCAPES.iter().fold(s.to_string(), escape)
}

pub fn html_unescape(s: &str) -> String {
    let undo = |s: String, (plain, entity): &(&str, &str)| s.replace(entity, plain);
    HTML_ESCAPES.iter().rev().fold(s.to_string(), undo)
}
