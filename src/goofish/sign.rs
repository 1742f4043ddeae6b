//! Identity and request signing for the Goofish (Xianyu) web APIs.
//!
//! Everything here is pure: no clock, no network, no global RNG. Callers pass the
//! current time and an RNG so the same code serves the live client, the fake
//! server and deterministic tests.
//!
//! * [`Cookies`] — the browser cookie string the seller pastes, kept in order,
//!   updated from `Set-Cookie` answers (token rotation) and rendered back.
//! * [`mtop_sign`] — the `sign` query parameter of every mtop HTTP call
//!   (reference §2.2).
//! * [`generate_device_id`], [`generate_mid`], [`generate_uuid`] — the ids the IM
//!   WebSocket needs (reference §1.1).

use std::fmt;

use md5::{Digest, Md5};
use rand::{Rng, RngExt};

/// The mtop/H5 app key: the `appKey` query parameter and the third part of the
/// signed string.
pub const MTOP_APP_KEY: &str = "34839810";

/// The IM app key: sent in the token call's `data` and in the WebSocket `/reg`
/// headers. Distinct from [`MTOP_APP_KEY`].
pub const IM_APP_KEY: &str = "444e9908a51d1cb236a27862abc769c9";

/// Cookie holding the user id.
pub const USER_ID_COOKIE: &str = "unb";

/// Cookie holding the mtop signing token (`<token>_<expiry ms>`).
pub const TOKEN_COOKIE: &str = "_m_h5_tk";

/// An ordered cookie jar built from a `Cookie:` header string.
///
/// Order is preserved because the rendered header should look like the one the
/// browser sent. A name appears once; a later value replaces an earlier one in
/// place (the server's newest `Set-Cookie` wins).
///
/// `Debug` prints cookie names only: values are credentials and must never reach
/// a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Cookies {
    pairs: Vec<(String, String)>,
}

impl Cookies {
    /// Parses `a=b; c=d`. Separators may be `;` with or without spaces; pieces
    /// without a name are skipped; a piece without `=` is kept with an empty
    /// value so nothing the user pasted is silently dropped.
    pub fn parse(header: &str) -> Self {
        let mut jar = Self::default();
        for piece in header.split(';') {
            if let Some((name, value)) = split_pair(piece) {
                jar.set(name, value);
            }
        }
        jar
    }

    /// The value of cookie `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, keeping its position if it already exists.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_owned(),
            None => self.pairs.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Removes `name`; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.pairs.len();
        self.pairs.retain(|(n, _)| n != name);
        self.pairs.len() != before
    }

    /// Merges one `Set-Cookie` header value (`name=value; Path=/; Max-Age=…`).
    ///
    /// Only the leading `name=value` is stored: a `Cookie:` header carries no
    /// attributes. `Max-Age=0` (or negative) deletes the cookie, which is how
    /// servers clear cookies. `Expires` is not evaluated (it would need a clock
    /// and an HTTP-date parser); servers that delete by date alone are rare.
    pub fn merge_set_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(split_pair) else {
            return;
        };
        if parts.any(is_expiring_max_age) {
            self.remove(name);
        } else {
            self.set(name, value);
        }
    }

    /// Merges several `Set-Cookie` header values in order (newest last).
    pub fn merge_set_cookies<'a>(&mut self, headers: impl IntoIterator<Item = &'a str>) {
        for header in headers {
            self.merge_set_cookie(header);
        }
    }

    /// Renders the jar as a `Cookie:` header value (`a=b; c=d`).
    pub fn to_header(&self) -> String {
        let pieces: Vec<String> = self.pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pieces.join("; ")
    }

    /// The account's user id (cookie `unb`), if present and non-empty.
    pub fn user_id(&self) -> Option<&str> {
        self.get(USER_ID_COOKIE).filter(|v| !v.is_empty())
    }

    /// The mtop signing token: `_m_h5_tk` up to its first `_`.
    pub fn mtop_token(&self) -> Option<&str> {
        self.get(TOKEN_COOKIE).map(token_part)
    }

    /// Cookie names in order (safe to log).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }

    /// Number of cookies.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the jar is empty.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values are session credentials.
        f.debug_struct("Cookies")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// Splits `name=value` at the first `=`, trimming whitespace around both.
fn split_pair(piece: &str) -> Option<(&str, &str)> {
    let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
    let name = name.trim();
    (!name.is_empty()).then(|| (name, value.trim()))
}

fn is_expiring_max_age(attr: &str) -> bool {
    split_pair(attr).is_some_and(|(name, value)| {
        name.eq_ignore_ascii_case("max-age") && value.parse::<i64>().is_ok_and(|secs| secs <= 0)
    })
}

/// The signing token inside an `_m_h5_tk` value: everything before the first `_`
/// (the rest is the expiry in ms).
pub fn token_part(m_h5_tk: &str) -> &str {
    m_h5_tk.split('_').next().unwrap_or_default()
}

/// The mtop request signature: lowercase hex MD5 of `token&t&appKey&data`.
///
/// `token` is the `_m_h5_tk` prefix (`""` when the cookie is missing), `t_ms`
/// the exact string sent as query parameter `t`, and `data` the exact string
/// sent in the `data` form field — the server hashes bytes, not JSON values.
pub fn mtop_sign(token: &str, t_ms: &str, app_key: &str, data: &str) -> String {
    let mut hasher = Md5::new();
    for (i, part) in [token, t_ms, app_key, data].into_iter().enumerate() {
        if i > 0 {
            hasher.update(b"&");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

const DEVICE_ID_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A device id: a 36-character UUID-v4-like string, `-`, then `suffix`.
///
/// The bots pass the user id (`unb`) as suffix; one SDK passes epoch ms. The IM
/// access token is bound to the device id, so callers should persist the result
/// together with the token instead of generating a new one per connection.
pub fn generate_device_id<R: Rng + ?Sized>(rng: &mut R, suffix: &str) -> String {
    let mut id = String::with_capacity(37 + suffix.len());
    for pos in 0..36 {
        let ch = match pos {
            8 | 13 | 18 | 23 => '-',
            14 => '4',
            // The variant nibble: 8, 9, A or B, as in a real UUID v4.
            19 => char::from(DEVICE_ID_ALPHABET[(rng.random_range(0..16usize) & 3) | 8]),
            _ => char::from(DEVICE_ID_ALPHABET[rng.random_range(0..16usize)]),
        };
        id.push(ch);
    }
    id.push('-');
    id.push_str(suffix);
    id
}

/// Whether `did` has the shape [`generate_device_id`] produces for `suffix`.
/// Lets a fake server reject malformed device ids.
pub fn is_device_id(did: &str, suffix: &str) -> bool {
    let Some((uuid, rest)) = did.split_at_checked(36) else {
        return false;
    };
    rest.strip_prefix('-') == Some(suffix)
        && uuid.bytes().enumerate().all(|(pos, b)| match pos {
            8 | 13 | 18 | 23 => b == b'-',
            14 => b == b'4',
            19 => matches!(b, b'8' | b'9' | b'A' | b'B'),
            _ => matches!(b, b'0'..=b'9' | b'A'..=b'F'),
        })
}

/// A client message id for WebSocket request headers: a random number 0..999
/// immediately followed by epoch ms, then ` 0` (e.g. `1231741667630548 0`).
pub fn generate_mid<R: Rng + ?Sized>(rng: &mut R, now_ms: u64) -> String {
    format!("{}{now_ms} 0", rng.random_range(0..1000u32))
}

/// The part of a mid that responses are matched on: everything before the
/// first space (servers may vary the suffix).
pub fn mid_key(mid: &str) -> &str {
    mid.split(' ').next().unwrap_or_default()
}

/// The client-side `uuid` of a sent chat message: `-` + epoch ms + `seq` (the bots always use
/// `1`; a higher `seq` tells apart messages sent within the same millisecond).
pub fn generate_uuid(now_ms: u64, seq: u32) -> String {
    format!("-{now_ms}{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const T: &str = "1741667630548";
    const TOKEN: &str = "b7e897bf9767618a32b439c6103fe1cb";

    #[test]
    fn sign_vector_yd_golden_whole_token() {
        // yd's helper signs the whole string, so no splitting here.
        let sign = mtop_sign(
            "abc_token",
            "1700000000000",
            MTOP_APP_KEY,
            r#"{"appKey":"x"}"#,
        );
        assert_eq!(sign, "497ff18ef9c6d4792ba5aeef0e99929a");
    }

    #[test]
    fn sign_vector_token_call() {
        let data = r#"{"appKey":"444e9908a51d1cb236a27862abc769c9","deviceId":"ED4CBA2C-5DA0-4154-A902-BF5CB52409E2-3888777108"}"#;
        assert_eq!(
            mtop_sign(TOKEN, T, MTOP_APP_KEY, data),
            "43b5353a6178989d9513991889d89d43"
        );
    }

    #[test]
    fn sign_vector_consign_with_space() {
        let data =
            r#"{"orderId":"2503688126356636370", "tradeText":"","picList":[],"newUnconsign":true}"#;
        assert_eq!(
            mtop_sign(TOKEN, T, MTOP_APP_KEY, data),
            "70531d54482ef9ecc5654d46304f1ac1"
        );
    }

    #[test]
    fn sign_vector_empty_token() {
        assert_eq!(
            mtop_sign("", T, MTOP_APP_KEY, "{}"),
            "ed5252fd6f50834fc302922aa49716c8"
        );
    }

    #[test]
    fn sign_uses_token_from_cookie() {
        let jar = Cookies::parse(&format!("unb=3888777108; _m_h5_tk={TOKEN}_1741670000000"));
        let token = jar.mtop_token().unwrap_or_default();
        assert_eq!(
            mtop_sign(token, T, MTOP_APP_KEY, "{}"),
            mtop_sign(TOKEN, T, MTOP_APP_KEY, "{}")
        );
    }

    #[test]
    fn cookies_parse_get_render() {
        let jar =
            Cookies::parse("cna=abc; unb=2202640918079;_m_h5_tk=new_1778864650767 ; t=x=y; ;flag");
        assert_eq!(jar.user_id(), Some("2202640918079"));
        assert_eq!(jar.mtop_token(), Some("new"));
        assert_eq!(jar.get("t"), Some("x=y"));
        assert_eq!(jar.get("flag"), Some(""));
        assert_eq!(jar.get("missing"), None);
        assert_eq!(
            jar.to_header(),
            "cna=abc; unb=2202640918079; _m_h5_tk=new_1778864650767; t=x=y; flag="
        );
        assert_eq!(Cookies::parse(&jar.to_header()), jar);
    }

    #[test]
    fn cookies_duplicate_name_keeps_position_newest_value() {
        let jar = Cookies::parse("a=1; b=2; a=3");
        assert_eq!(jar.to_header(), "a=3; b=2");
    }

    #[test]
    fn cookies_missing_values() {
        let jar = Cookies::parse("");
        assert!(jar.is_empty());
        assert_eq!(jar.user_id(), None);
        assert_eq!(jar.mtop_token(), None);
        assert_eq!(Cookies::parse("unb=").user_id(), None);
    }

    #[test]
    fn cookies_merge_set_cookie_rotates_token() {
        let mut jar = Cookies::parse("unb=1; _m_h5_tk=old_1; _m_h5_tk_enc=e1; cookie2=c");
        jar.merge_set_cookies([
            "_m_h5_tk=fresh_1778864650767; Path=/; Domain=.goofish.com; Max-Age=86400; Secure; SameSite=None",
            "_m_h5_tk_enc=e2; Path=/; Domain=.goofish.com",
            "x5sec=abc; Path=/; HttpOnly",
            "cookie2=; Max-Age=0; Path=/",
        ]);
        assert_eq!(jar.mtop_token(), Some("fresh"));
        assert_eq!(
            jar.to_header(),
            "unb=1; _m_h5_tk=fresh_1778864650767; _m_h5_tk_enc=e2; x5sec=abc"
        );
        jar.merge_set_cookie("; Path=/");
        assert_eq!(jar.len(), 4);
    }

    #[test]
    fn cookies_debug_hides_values() {
        let jar = Cookies::parse("unb=secret1; cookie2=secret2");
        let shown = format!("{jar:?}");
        assert!(shown.contains("unb") && !shown.contains("secret"));
    }

    #[test]
    fn device_id_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let did = generate_device_id(&mut rng, "3888777108");
            assert_eq!(did.len(), 36 + 1 + 10);
            assert!(is_device_id(&did, "3888777108"), "{did}");
        }
        assert!(is_device_id(
            "ED4CBA2C-5DA0-4154-A902-BF5CB52409E2-3888777108",
            "3888777108"
        ));
        assert!(!is_device_id(
            "ED4CBA2C-5DA0-4154-A902-BF5CB52409E2-3888777108",
            "1"
        ));
        assert!(!is_device_id("ED4CBA2C-5DA0-3154-A902-BF5CB52409E2-1", "1"));
        assert!(!is_device_id("short", "1"));
        assert!(!is_device_id(
            "ED4CBA2C-5DA0-4154-A902-BF5CB52409E是-1",
            "1"
        ));
    }

    #[test]
    fn device_id_is_deterministic_per_seed_and_covers_variant_nibble() {
        let a = generate_device_id(&mut StdRng::seed_from_u64(1), "u");
        let b = generate_device_id(&mut StdRng::seed_from_u64(1), "u");
        assert_eq!(a, b);
        let mut rng = StdRng::seed_from_u64(2);
        let variants: std::collections::BTreeSet<u8> = (0..200)
            .map(|_| generate_device_id(&mut rng, "u").as_bytes()[19])
            .collect();
        assert_eq!(variants, [b'8', b'9', b'A', b'B'].into_iter().collect());
    }

    #[test]
    fn mid_and_uuid() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let mid = generate_mid(&mut rng, 1741667630548);
            let key = mid.strip_suffix(" 0").expect("suffix");
            let prefix = key.strip_suffix("1741667630548").expect("ms");
            assert!(prefix.parse::<u32>().is_ok_and(|n| n < 1000), "{mid}");
            assert_eq!(mid_key(&mid), key);
        }
        assert_eq!(mid_key("a3e20004 0"), "a3e20004");
        assert_eq!(generate_uuid(1741667630548, 1), "-17416676305481");
        assert_eq!(generate_uuid(1741667630548, 12), "-174166763054812");
    }
}
