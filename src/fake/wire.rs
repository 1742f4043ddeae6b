//! Small text codecs the fake's endpoints share: percent-encoding and query strings (mtop
//! requests are `application/x-www-form-urlencoded`), JSON string quoting for payloads that
//! must keep the service's key order, money and China-time formatting, and the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Suffix of IM user and conversation handles (`<id>@goofish`).
pub(crate) const HANDLE_SUFFIX: &str = "@goofish";

/// `<id>@goofish`.
pub(crate) fn handle(id: &str) -> String {
    format!("{id}{HANDLE_SUFFIX}")
}

/// The bare id of a handle (`123@goofish` → `123`); other strings unchanged.
pub(crate) fn strip_handle(s: &str) -> &str {
    s.strip_suffix(HANDLE_SUFFIX).unwrap_or(s)
}

/// Wall-clock epoch milliseconds. The real service stamps messages with wall time, and
/// tests compare against it, so no tokio (pausable) clock here.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Decodes `%XX` escapes (and `+` as space in form bodies). Malformed escapes are kept
/// literally and invalid UTF-8 is replaced, so hostile input never fails.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses `a=b&c=d` (query string or form body) into decoded pairs, in order.
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// The first value of `name` among parsed pairs.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A JSON string literal (quotes included). Used where payloads are assembled as text
/// because the service's key order is not alphabetical and must be reproduced.
pub(crate) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Cents as a yuan string with two decimals (`1250` → `"12.50"`), as the APIs show prices.
pub(crate) fn yuan(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Epoch ms as China Standard Time `YYYY-MM-DD HH:MM:SS` (the seller centre's format).
pub(crate) fn china_time(ms: u64) -> String {
    const CST_OFFSET_SECS: u64 = 8 * 3600;
    let secs = ms / 1000 + CST_OFFSET_SECS;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A nick as the service masks it in URLs: first char, `***`, last char (`男***y`).
pub(crate) fn mask_nick(nick: &str) -> String {
    let mut chars = nick.chars();
    match (chars.next(), chars.next_back()) {
        (Some(first), Some(last)) => format!("{first}***{last}"),
        (Some(first), None) => format!("{first}***"),
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip_and_hostile_input() {
        let s = r#"{"orderId":"1", "text":"你好&=+"}"#;
        assert_eq!(percent_decode(&percent_encode(s), true), s);
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(percent_decode("%zz%E4", false), "%zz\u{fffd}");
    }

    #[test]
    fn pairs_and_params() {
        let pairs = parse_pairs("a=1&data=%7B%7D&&flag&a=2");
        assert_eq!(param(&pairs, "a"), Some("1"));
        assert_eq!(param(&pairs, "data"), Some("{}"));
        assert_eq!(param(&pairs, "flag"), Some(""));
        assert_eq!(param(&pairs, "none"), None);
    }

    #[test]
    fn times_money_nicks() {
        // 2026-05-07 19:47:03 CST == 11:47:03 UTC.
        assert_eq!(china_time(1_778_154_423_000), "2026-05-07 19:47:03");
        assert_eq!(china_time(0), "1970-01-01 08:00:00");
        assert_eq!(yuan(1250), "12.50");
        assert_eq!(yuan(7), "0.07");
        assert_eq!(mask_nick("男生day"), "男***y");
        assert_eq!(mask_nick("x"), "x***");
        assert_eq!(mask_nick(""), "***");
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }
}
