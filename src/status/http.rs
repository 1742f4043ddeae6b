//! Small HTTP helpers: query strings, path segments, links, and responses with the page's
//! security headers.
//!
//! Decoding and encoding are the `form_urlencoded` and `percent-encoding` crates' (the WHATWG
//! URL rules: `+` is a space in a query, a bad escape is kept as written, invalid UTF-8 becomes
//! U+FFFD); every byte of input here comes from the network.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// A whole answer, or a stream of chunks (the CSV export).
pub type Body = UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// No scripts, no frames, no third-party anything; inline styles only (the page has no JS).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What links escape: everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Decoded `key=value` pairs of a query string.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The first non-empty value of `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// One path segment, decoded (`%20` is a space; `+` is itself).
pub fn decode_segment(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Percent-encode everything but unreserved characters, for a path segment or a query value.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A token given as ?token= must not leak to other sites through the Referer header.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

pub fn html(status: StatusCode, body: String) -> Response<Body> {
    response(status, "text/html; charset=utf-8", body)
}

pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => response(status, "application/json; charset=utf-8", body),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    response(status, "application/json; charset=utf-8", body)
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip() {
        let pairs = query_pairs(Some("status=%E7%AD%89&item=9+1&bad=%zz&page=2"));
        assert_eq!(query_get(&pairs, "status"), Some("等"));
        assert_eq!(query_get(&pairs, "item"), Some("9 1"));
        assert_eq!(query_get(&pairs, "bad"), Some("%zz"));
        assert_eq!(decode_segment(&encode("主店 a&b=c+d")), "主店 a&b=c+d");
        assert_eq!(encode("a b/c~"), "a%20b%2Fc~");
        assert_eq!(decode_segment("%"), "%");
        assert_eq!(decode_segment("%4"), "%4");
        assert_eq!(decode_segment("%FF"), "\u{FFFD}");
    }
}
