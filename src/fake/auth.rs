//! Who may call: mtop signing tokens (`_m_h5_tk`, reference §1.2/§2.2), login sessions
//! (`cookie2`, §1.2) and IM access tokens bound to a device id (§3.1, §4.3). Also renders
//! the cookie string a logged-in browser would hold and the `Set-Cookie` answers of §9.

use std::collections::HashMap;

use super::ids::{alnum, hex};
use super::wire::percent_encode;

/// Lifetime of an issued `_m_h5_tk`. The real one is rotated by the server well before;
/// a day keeps long tests clear of accidental expiry.
const MTOP_TOKEN_LIFETIME_MS: u64 = 86_400_000;

/// `accessTokenExpiredTime` of the IM token (gc: 86400000 ms).
pub(crate) const IM_TOKEN_LIFETIME_MS: u64 = 86_400_000;

/// What the fake knows about one `_m_h5_tk` token.
struct MtopToken {
    expires_ms: u64,
    /// The account it was issued to (from `unb`), so a scoped fault can expire it.
    owner: Option<String>,
    revoked: bool,
}

/// How a request's signing token looks to the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// No `_m_h5_tk` or an empty one → `FAIL_SYS_TOKEN_EMPTY`.
    Missing,
    /// Never issued, expired or revoked → `FAIL_SYS_TOKEN_EXOIRED`.
    Stale,
    Valid,
}

/// A freshly issued token pair, as the `_m_h5_tk` / `_m_h5_tk_enc` cookie values.
pub(crate) struct Issued {
    pub tk: String,
    pub enc: String,
}

impl Issued {
    /// The two `Set-Cookie` header values the server sends with a token error.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        const ATTRS: &str = "Path=/; Domain=goofish.com; Max-Age=86400; Secure; SameSite=None";
        vec![
            format!("_m_h5_tk={}; {ATTRS}", self.tk),
            format!("_m_h5_tk_enc={}; {ATTRS}", self.enc),
        ]
    }
}

/// A login session (`cookie2`). `seq` orders sessions so a "session expired" fault can
/// kill every session issued before it while renewed ones work.
pub(crate) struct Session {
    pub user: String,
    pub seq: u64,
}

/// An IM access token from `pc.login.token`, bound to the device id it was asked for.
struct ImToken {
    user: String,
    device_id: String,
    expires_ms: u64,
}

/// Why `/reg` refuses a token; the texts are the reasons yd classifies (§4.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegError {
    InvalidToken,
    DeviceMismatch,
}

impl RegError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid token",
            Self::DeviceMismatch => "device id or appkey is not equal",
        }
    }
}

/// All credentials the fake has handed out.
#[derive(Default)]
pub(crate) struct Auth {
    mtop: HashMap<String, MtopToken>,
    sessions: HashMap<String, Session>,
    session_seq: u64,
    im: HashMap<String, ImToken>,
}

impl Auth {
    /// Issues a new `_m_h5_tk` (`<32 hex>_<expiry ms>`) and its `_enc` companion.
    pub(crate) fn issue_mtop(&mut self, owner: Option<&str>, now_ms: u64) -> Issued {
        let token = hex(32);
        let expires_ms = now_ms + MTOP_TOKEN_LIFETIME_MS;
        self.mtop.insert(
            token.clone(),
            MtopToken {
                expires_ms,
                owner: owner.map(str::to_owned),
                revoked: false,
            },
        );
        Issued {
            tk: format!("{token}_{expires_ms}"),
            enc: hex(32),
        }
    }

    /// Makes the fake accept a specific signing token (e.g. the reference's test vector).
    pub(crate) fn install_mtop(&mut self, token: &str, expires_ms: u64) {
        let entry = MtopToken {
            expires_ms,
            owner: None,
            revoked: false,
        };
        self.mtop.insert(token.to_owned(), entry);
    }

    /// Classifies the token part of a request's `_m_h5_tk`.
    pub(crate) fn mtop_state(&self, token: Option<&str>, now_ms: u64) -> TokenState {
        match token.filter(|t| !t.is_empty()) {
            None => TokenState::Missing,
            Some(t) => match self.mtop.get(t) {
                Some(tok) if !tok.revoked && tok.expires_ms > now_ms => TokenState::Valid,
                _ => TokenState::Stale,
            },
        }
    }

    /// Expires every issued token (`owner` None) or those issued to one account; tokens
    /// of unknown owner go too, since a browser jar is not tied to one account.
    pub(crate) fn revoke_mtop(&mut self, owner: Option<&str>) {
        for tok in self.mtop.values_mut() {
            let hit = match (owner, tok.owner.as_deref()) {
                (None, _) | (_, None) => true,
                (Some(o), Some(t)) => o == t,
            };
            tok.revoked |= hit;
        }
    }

    /// Starts a new login session for `user`; returns its `cookie2` value.
    pub(crate) fn new_session(&mut self, user: &str) -> String {
        self.session_seq += 1;
        let cookie2 = hex(32);
        let session = Session {
            user: user.to_owned(),
            seq: self.session_seq,
        };
        self.sessions.insert(cookie2.clone(), session);
        cookie2
    }

    /// Ends every older session of `user` (a renewed login replaces the old cookies).
    pub(crate) fn end_sessions_except(&mut self, user: &str, keep: &str) {
        self.sessions
            .retain(|cookie2, s| s.user != user || cookie2 == keep);
    }

    pub(crate) fn session(&self, cookie2: &str) -> Option<&Session> {
        self.sessions.get(cookie2)
    }

    /// The sequence number of the newest session (a fault's cut-off).
    pub(crate) fn session_seq(&self) -> u64 {
        self.session_seq
    }

    /// Issues an IM access token for (user, device id).
    pub(crate) fn issue_im(&mut self, user: &str, device_id: &str, now_ms: u64) -> String {
        // Base64-like, punctuation included (the token API answers it escaped).
        let token = format!("{}/{}+{}==", alnum(40), alnum(12), alnum(8));
        let entry = ImToken {
            user: user.to_owned(),
            device_id: device_id.to_owned(),
            expires_ms: now_ms + IM_TOKEN_LIFETIME_MS,
        };
        self.im.insert(token.clone(), entry);
        token
    }

    /// The account an IM token belongs to, if it is valid for this device id.
    pub(crate) fn check_im(&self, token: &str, did: &str, now_ms: u64) -> Result<&str, RegError> {
        let tok = self
            .im
            .get(token)
            .filter(|t| t.expires_ms > now_ms)
            .ok_or(RegError::InvalidToken)?;
        if tok.device_id == did {
            Ok(&tok.user)
        } else {
            Err(RegError::DeviceMismatch)
        }
    }

    /// The account an IM token was issued to, valid or not (to attribute failed `/reg`s).
    pub(crate) fn im_owner(&self, token: &str) -> Option<&str> {
        self.im.get(token).map(|t| t.user.as_str())
    }
}

/// The cookie string a browser logged in as `user` holds: the names bots check for
/// (`unb`, `_m_h5_tk`, `_m_h5_tk_enc`, `cookie2`, `t`, `sgcookie`, `cna`, …, §1.2).
pub(crate) fn cookie_header(user: &str, nick: &str, cookie2: &str, issued: &Issued) -> String {
    [
        ("cna", alnum(24)),
        ("t", hex(32)),
        ("tracknick", percent_encode(nick)),
        ("_tb_token_", alnum(13)),
        ("cookie2", cookie2.to_owned()),
        ("_m_h5_tk", issued.tk.clone()),
        ("_m_h5_tk_enc", issued.enc.clone()),
        ("unb", user.to_owned()),
        ("sgcookie", format!("E100{}", alnum(40))),
        ("csg", hex(8)),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goofish::sign::Cookies;

    #[test]
    fn mtop_tokens_issue_check_revoke() {
        let mut auth = Auth::default();
        let a = auth.issue_mtop(Some("1"), 1000);
        let b = auth.issue_mtop(Some("2"), 1000);
        let tok = |i: &Issued| i.tk.split('_').next().unwrap_or_default().to_owned();
        assert_eq!(auth.mtop_state(None, 0), TokenState::Missing);
        assert_eq!(auth.mtop_state(Some(""), 0), TokenState::Missing);
        assert_eq!(auth.mtop_state(Some("nope"), 0), TokenState::Stale);
        assert_eq!(auth.mtop_state(Some(&tok(&a)), 2000), TokenState::Valid);
        assert_eq!(
            auth.mtop_state(Some(&tok(&a)), 1000 + MTOP_TOKEN_LIFETIME_MS),
            TokenState::Stale
        );
        auth.revoke_mtop(Some("1"));
        assert_eq!(auth.mtop_state(Some(&tok(&a)), 2000), TokenState::Stale);
        assert_eq!(auth.mtop_state(Some(&tok(&b)), 2000), TokenState::Valid);
        assert!(a.set_cookies()[0].starts_with(&format!("_m_h5_tk={}; ", a.tk)));
    }

    #[test]
    fn im_tokens_are_bound_to_the_device() {
        let mut auth = Auth::default();
        let token = auth.issue_im("7", "did-7", 0);
        assert_eq!(auth.check_im(&token, "did-7", 1), Ok("7"));
        assert_eq!(
            auth.check_im(&token, "other", 1),
            Err(RegError::DeviceMismatch)
        );
        assert_eq!(
            auth.check_im("bogus", "did-7", 1),
            Err(RegError::InvalidToken)
        );
        assert_eq!(
            auth.check_im(&token, "did-7", IM_TOKEN_LIFETIME_MS),
            Err(RegError::InvalidToken)
        );
    }

    #[test]
    fn cookie_header_parses_back() {
        let mut auth = Auth::default();
        let issued = auth.issue_mtop(Some("42"), 0);
        let cookie2 = auth.new_session("42");
        let jar = Cookies::parse(&cookie_header("42", "小店 A", &cookie2, &issued));
        assert_eq!(jar.user_id(), Some("42"));
        assert_eq!(jar.get("cookie2"), Some(cookie2.as_str()));
        assert_eq!(jar.get("tracknick"), Some("%E5%B0%8F%E5%BA%97%20A"));
        assert!(issued.tk.starts_with(jar.mtop_token().unwrap_or("x")));
    }
}
