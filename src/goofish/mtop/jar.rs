//! The account's cookie jar, and its copy in the store. The server rotates cookies
//! (`_m_h5_tk` above all) through `Set-Cookie`; keeping the rotated jar across restarts means a
//! restart does not begin with a stale token and a refused call. The copy is tied to the paste
//! it grew from (by a SHA-256 of the pasted string), so fresh cookies from the seller always
//! win over it. Like every cookie, it never reaches a log.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::ImToken;
use crate::goofish::sign::Cookies;
use crate::store::{Store, StoreError};

/// Store key of the saved jar.
const SAVED_JAR_KEY: &str = "cookie_jar";

/// What one account's client holds.
#[derive(Default)]
pub(super) struct Jar {
    pub(super) cookies: Option<Cookies>,
    pub(super) device_id: Option<String>,
    pub(super) token: Option<ImToken>,
    /// Fingerprint of the paste the cookies grew from.
    pub(super) source: Option<String>,
    /// The `Cookie` header last saved, to skip writes that change nothing.
    pub(super) saved: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SavedJar {
    source: String,
    cookies: String,
}

/// Which paste a jar grew from: the SHA-256 of the pasted string, never the string itself.
pub(super) fn source_of(raw: &str) -> String {
    Sha256::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The saved jar of `account` when it grew from the paste `source`.
pub(super) fn load(store: &Store, account: &str, source: &str) -> Option<String> {
    let bytes = crate::store::blocking(|| store.account_value(account, SAVED_JAR_KEY))
        .ok()
        .flatten()?;
    let saved: SavedJar = serde_json::from_slice(&bytes).ok()?;
    (saved.source == source).then_some(saved.cookies)
}

/// Keep `cookies` (a `Cookie` header) as the jar of `account` grown from `source`.
pub(super) fn save(
    store: &Store,
    account: &str,
    source: &str,
    cookies: &str,
) -> Result<(), StoreError> {
    let saved = SavedJar {
        source: source.to_string(),
        cookies: cookies.to_string(),
    };
    let bytes = serde_json::to_vec(&saved).unwrap_or_default();
    crate::store::blocking(|| store.set_account_value(account, SAVED_JAR_KEY, &bytes))
}
