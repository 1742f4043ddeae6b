//! Which route a request path names: a page of the table (HTML or its JSON twin, with its
//! `{id}` parameter decoded), `/healthz`, `/metrics`, or nothing.

use super::http;
use super::page::{Form, PageSpec};
use super::pages::PAGES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Metrics,
    /// `/export/orders.csv`
    ExportOrders,
    Page {
        page: &'static PageSpec,
        /// The decoded `{id}` parameter; empty when the page has none.
        id: String,
        form: Form,
    },
    NotFound,
}

pub(crate) fn route(path: &str) -> Route {
    match path {
        "/healthz" => return Route::Healthz,
        "/metrics" => return Route::Metrics,
        "/export/orders.csv" => return Route::ExportOrders,
        _ => {}
    }
    // `/orders/` is `/orders`; `/` stays itself.
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    for page in PAGES {
        for (pattern, form) in [(page.path, Form::Html), (page.api, Form::Json)] {
            if let Some(id) = matches(pattern, trimmed) {
                return Route::Page { page, id, form };
            }
        }
    }
    Route::NotFound
}

/// `Some(id)` when `path` is `pattern` (`id` empty when the pattern has no `{id}`).
fn matches(pattern: &str, path: &str) -> Option<String> {
    match pattern.strip_suffix("{id}") {
        Some(prefix) => {
            let id = path.strip_prefix(prefix)?;
            (!id.is_empty() && !id.contains('/')).then(|| http::decode_segment(id))
        }
        None => (path == pattern).then(String::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &str) -> Option<(&'static str, String, Form)> {
        match route(path) {
            Route::Page { page, id, form } => Some((page.path, id, form)),
            _ => None,
        }
    }

    #[test]
    fn routes() {
        assert_eq!(page("/"), Some(("/", String::new(), Form::Html)));
        assert_eq!(page("/api/status"), Some(("/", String::new(), Form::Json)));
        assert_eq!(
            page("/orders/"),
            Some(("/orders", String::new(), Form::Html))
        );
        assert_eq!(
            page("/api/orders/A%201"),
            Some(("/orders/{id}", "A 1".into(), Form::Json))
        );
        assert_eq!(route("/orders/a/b"), Route::NotFound);
        assert_eq!(route("/api"), Route::NotFound);
        assert_eq!(route("/etc/passwd"), Route::NotFound);
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/metrics"), Route::Metrics);
    }

    #[test]
    fn every_page_has_its_own_routes_and_a_json_twin_under_api() {
        let mut seen = std::collections::HashSet::new();
        for p in PAGES {
            assert!(p.api.starts_with("/api/"), "{}", p.path);
            assert!(
                seen.insert(p.path) && seen.insert(p.api),
                "{} is routed twice",
                p.path
            );
            assert_eq!(
                p.path.ends_with("{id}"),
                p.api.ends_with("{id}"),
                "{}",
                p.path
            );
        }
    }
}
