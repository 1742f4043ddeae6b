//! The mtop client of one account: its cookie jar, device id and login state, and the call
//! machinery every API goes through (sign, send, merge `Set-Cookie`, interpret, retry a token
//! error once, fail fast while blocked).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::TokenBudget;
use super::interpret::{check_redirect, form_encode, interpret};
use super::jar::{self, Jar};
use super::{DEFAULT_USER_AGENT, LoginState, MtopError};
use crate::clock::now_ms;
use crate::config::MarketplaceConfig;
use crate::goofish::sign::{self, Cookies, MTOP_APP_KEY};
use crate::health;
use crate::store::Store;

const SEC_CH_UA: &str = r#""Chromium";v="146", "Not-A.Brand";v="24", "Google Chrome";v="146""#;
/// Store key of the per-account device id (suffixed by the user id it was made for).
const DEVICE_ID_KEY: &str = "device_id";
/// Risk-control backoff stops doubling here.
const MAX_RISK_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Which page a browser would call an API from; decides query extras and headers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Page<'a> {
    Im,
    Item(&'a str),
    Order(&'a str),
    SellerCentre,
    Home,
}

/// One signed call.
pub(super) struct Call<'a> {
    pub(super) api: &'a str,
    pub(super) version: &'a str,
    pub(super) data: String,
    pub(super) page: Page<'a>,
}

impl<'a> Call<'a> {
    /// Version 1.0 of `api`: every API the daemon calls is at 1.0.
    pub(super) fn v1(api: &'a str, data: String, page: Page<'a>) -> Self {
        Self {
            api,
            version: "1.0",
            data,
            page,
        }
    }
}

/// What the server answered, before interpretation.
pub(super) struct Answer {
    pub(super) data: Value,
}

/// The mtop client of one account.
pub struct MtopClient {
    pub(super) account: String,
    pub(super) http: reqwest::Client,
    base: String,
    /// The image upload endpoint (`marketplace.upload_url`).
    pub(super) upload_url: String,
    /// How long an upload may take (`marketplace.send_timeout`).
    pub(super) upload_timeout: Duration,
    user_agent: String,
    /// `sec-ch-ua` to send: the built-in one with the built-in user agent, the configured one
    /// with a custom agent, none for a custom agent without one (hints must match the agent).
    sec_ch_ua: Option<String>,
    pub(super) token_refresh: Duration,
    risk_backoff: Duration,
    pub(super) store: Store,
    jar: Mutex<Jar>,
    login: watch::Sender<LoginState>,
    /// Bumped whenever cookies are replaced, so a socket using an old token reconnects.
    generation: watch::Sender<u64>,
    /// IM token calls of the last hour (see [`super::budget`]).
    pub(super) token_budget: Mutex<TokenBudget>,
    /// `Some(until)` while token fetching is paused; cleared by a fetched token or new cookies.
    pub(super) token_pause: watch::Sender<Option<Instant>>,
    /// The status page's view of this account (token refreshes).
    pub(super) registry: health::Health,
}

impl fmt::Debug for MtopClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtopClient")
            .field("account", &self.account)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl MtopClient {
    /// A client without cookies yet (`NoCookies` until [`Self::set_cookies`]).
    pub fn new(
        account: &str,
        http: reqwest::Client,
        settings: &MarketplaceConfig,
        store: Store,
        registry: health::Health,
    ) -> Self {
        let mut base = settings.mtop_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let (login, _) = watch::channel(LoginState::NoCookies("not loaded yet".into()));
        let (generation, _) = watch::channel(0);
        Self {
            account: account.to_string(),
            http,
            base,
            upload_url: settings.upload_url.clone(),
            upload_timeout: settings.send_timeout,
            user_agent: settings
                .user_agent
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string()),
            sec_ch_ua: match &settings.user_agent {
                None => Some(SEC_CH_UA.to_string()),
                Some(_) => settings.sec_ch_ua.clone(),
            },
            token_refresh: settings.token_refresh,
            risk_backoff: settings.risk_backoff,
            store,
            jar: Mutex::new(Jar::default()),
            token_budget: Mutex::new(TokenBudget::default()),
            token_pause: watch::channel(None).0,
            login,
            generation,
            registry,
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Replace the cookie jar with a freshly pasted cookie string. Clears any blocked state
    /// and the cached IM token (it belongs to the old session).
    pub fn set_cookies(&self, raw: &str) -> Result<(), MtopError> {
        // The jar as the server last rotated it, if it grew from this very paste.
        let source = jar::source_of(raw);
        let saved = jar::load(&self.store, &self.account, &source);
        let cookies = Cookies::parse(saved.as_deref().unwrap_or(raw));
        let Some(user_id) = cookies.user_id().map(str::to_owned) else {
            let why = "the cookie string has no `unb` (user id); copy the whole Cookie header"
                .to_string();
            self.login.send_replace(LoginState::NoCookies(why.clone()));
            return Err(MtopError::NoCookies(why));
        };
        let device_id = device_id_for(&self.store, &self.account, &user_id)
            .map_err(|e| MtopError::NoCookies(format!("cannot persist the device id: {e}")))?;
        {
            let mut jar = self.lock();
            jar.cookies = Some(cookies);
            jar.device_id = Some(device_id);
            jar.token = None;
            jar.source = Some(source);
            jar.saved = saved;
        }
        // The seller acted: token fetching may start over.
        self.token_budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
        self.token_pause.send_if_modified(|p| p.take().is_some());
        self.generation.send_modify(|g| *g += 1);
        self.login.send_replace(LoginState::Unverified);
        Ok(())
    }

    /// The IM connection registered and synced with the current cookies: they work. Only
    /// this turns freshly pasted cookies into `Ok` (and so into a "recovered" notice); a
    /// cookie string that merely contains `unb` proves nothing.
    pub fn confirm_login(&self) {
        self.login.send_if_modified(|state| {
            let unverified = *state == LoginState::Unverified;
            if unverified {
                *state = LoginState::Ok;
            }
            unverified
        });
    }

    /// Mark the cookies as unusable (missing file, unset variable).
    pub fn set_no_cookies(&self, why: &str) {
        self.lock().cookies = None;
        self.login
            .send_replace(LoginState::NoCookies(why.to_string()));
    }

    pub fn login_state(&self) -> LoginState {
        self.login.borrow().clone()
    }

    pub fn watch_login(&self) -> watch::Receiver<LoginState> {
        self.login.subscribe()
    }

    /// `Some(until)` while IM token fetching is paused by the hourly cap.
    pub fn watch_token_pause(&self) -> watch::Receiver<Option<Instant>> {
        self.token_pause.subscribe()
    }

    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Wait until calls may go to the network (healthy, or a risk-control probe is due).
    pub async fn wait_usable(&self) {
        let mut rx = self.login.subscribe();
        loop {
            let health = rx.borrow_and_update().clone();
            match health {
                LoginState::Ok | LoginState::Unverified => return,
                LoginState::RiskControl { retry_at, .. } => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(retry_at) => return,
                        _ = rx.changed() => {}
                    }
                }
                _ => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// The account's user id (`unb`), once cookies are loaded.
    pub fn user_id(&self) -> Option<String> {
        self.lock()
            .cookies
            .as_ref()
            .and_then(|c| c.user_id().map(str::to_owned))
    }

    pub fn device_id(&self) -> Option<String> {
        self.lock().device_id.clone()
    }

    /// The `Cookie` header for the WebSocket handshake. A secret: never log it.
    pub fn cookie_header(&self) -> Option<String> {
        self.lock().cookies.as_ref().map(Cookies::to_header)
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Jar> {
        self.jar.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sign, send, interpret; one retry on a token error; blocked states fail fast.
    pub(super) async fn call(&self, call: Call<'_>) -> Result<Answer, MtopError> {
        self.check_usable()?;
        let mut result = self.attempt(&call).await;
        if let Err(MtopError::Token(code)) = &result {
            // The answer carried a rotated `_m_h5_tk` (merged in `attempt`): re-sign once.
            tracing::debug!(account = %self.account, api = call.api, code = %code, "mtop token rotated; retrying once.");
            result = self.attempt(&call).await;
        }
        self.record_login(&result);
        if let Err(e) = &result {
            tracing::debug!(account = %self.account, api = call.api, error = %e, "mtop call failed.");
        }
        result
    }

    pub(super) fn check_usable(&self) -> Result<(), MtopError> {
        match &*self.login.borrow() {
            LoginState::Ok | LoginState::Unverified => Ok(()),
            LoginState::NoCookies(why) => Err(MtopError::NoCookies(why.clone())),
            LoginState::LoginExpired => Err(MtopError::LoginExpired),
            h @ LoginState::RiskControl { .. } if h.usable_at(Instant::now()) => Ok(()),
            LoginState::RiskControl { .. } => Err(MtopError::RiskControl {
                code: "backing off".into(),
            }),
        }
    }

    fn record_login(&self, result: &Result<Answer, MtopError>) {
        match result {
            Err(MtopError::LoginExpired) => {
                self.login.send_replace(LoginState::LoginExpired);
            }
            Err(MtopError::RiskControl { .. }) => {
                let strikes = match *self.login.borrow() {
                    LoginState::RiskControl { strikes, .. } => strikes + 1,
                    _ => 1,
                };
                let wait = self
                    .risk_backoff
                    .saturating_mul(1 << (strikes - 1).min(8))
                    .min(MAX_RISK_BACKOFF.max(self.risk_backoff));
                self.login.send_replace(LoginState::RiskControl {
                    retry_at: Instant::now() + wait,
                    strikes,
                });
            }
            // Any answer that is not a blocking one proves the session works again.
            Ok(_) | Err(MtopError::Business { .. }) => {
                self.login.send_if_modified(|h| {
                    let was_risk = matches!(h, LoginState::RiskControl { .. });
                    if was_risk {
                        *h = LoginState::Ok;
                    }
                    was_risk
                });
            }
            Err(_) => {}
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, MtopError> {
        let (cookie_header, token) = {
            let jar = self.lock();
            let cookies = jar
                .cookies
                .as_ref()
                .ok_or_else(|| MtopError::NoCookies("cookies not loaded".into()))?;
            (
                cookies.to_header(),
                cookies.mtop_token().unwrap_or_default().to_string(),
            )
        };
        // `t`: true epoch milliseconds (zn, yd, gc; reference §2.2).
        let t = now_ms().to_string();
        let sign = sign::mtop_sign(&token, &t, MTOP_APP_KEY, &call.data);
        let url = self.url(call, &t, &sign)?;
        let response = self
            .http
            .post(url)
            .headers(self.headers(call.page, &cookie_header))
            .body(format!("data={}", form_encode(&call.data)))
            .send()
            .await
            .map_err(network_error)?;
        let status = response.status();
        self.merge_set_cookies(response.headers());
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        check_redirect(status.as_u16(), location)?;
        let body = response.bytes().await.map_err(network_error)?;
        interpret(call.api, status.as_u16(), &body)
    }

    /// Merge the server's `Set-Cookie`s into the jar and save the jar when it changed.
    pub(super) fn merge_set_cookies(&self, headers: &reqwest::header::HeaderMap) {
        let values: Vec<&str> = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return;
        }
        let changed = {
            let mut guard = self.lock();
            let jar = &mut *guard;
            let (Some(cookies), Some(source)) = (jar.cookies.as_mut(), jar.source.clone()) else {
                return;
            };
            cookies.merge_set_cookies(values);
            let header = cookies.to_header();
            (jar.saved.as_deref() != Some(header.as_str())).then(|| {
                jar.saved = Some(header.clone());
                (source, header)
            })
        };
        if let Some((source, header)) = changed {
            if let Err(e) = jar::save(&self.store, &self.account, &source, &header) {
                tracing::warn!(account = %self.account, error = %e, "Could not save the rotated cookies; a restart starts from the pasted ones.");
            }
        }
    }

    fn url(&self, call: &Call<'_>, t: &str, sign: &str) -> Result<reqwest::Url, MtopError> {
        let mut url = reqwest::Url::parse(&format!("{}{}/{}/", self.base, call.api, call.version))
            .map_err(|e| MtopError::BadResponse(format!("bad mtop URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            let kind = if matches!(call.page, Page::SellerCentre) {
                "json"
            } else {
                "originaljson"
            };
            for (k, v) in [
                ("jsv", "2.7.2"),
                ("appKey", MTOP_APP_KEY),
                ("t", t),
                ("sign", sign),
                ("v", call.version),
                ("type", kind),
                ("accountSite", "xianyu"),
                ("dataType", "json"),
                ("timeout", "20000"),
                ("api", call.api),
                ("sessionOption", "AutoLoginOnly"),
            ] {
                q.append_pair(k, v);
            }
            for (k, v) in page_query(call.page) {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn headers(&self, page: Page<'_>, cookie: &str) -> reqwest::header::HeaderMap {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let (origin, referer) = page_origin(page);
        let mut pairs: Vec<(&str, String)> = vec![
            ("accept", "application/json".into()),
            ("accept-language", "zh-CN,zh;q=0.9,en;q=0.8".into()),
            ("cache-control", "no-cache".into()),
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("origin", origin.into()),
            ("pragma", "no-cache".into()),
            ("priority", "u=1, i".into()),
            ("referer", referer),
            ("sec-fetch-dest", "empty".into()),
            ("sec-fetch-mode", "cors".into()),
            ("sec-fetch-site", "same-site".into()),
            ("user-agent", self.user_agent.clone()),
            ("cookie", cookie.into()),
        ];
        if let Some(hint) = &self.sec_ch_ua {
            // Client hints must describe the same browser as the user agent.
            let platform = crate::goofish::agent::os(&self.user_agent).platform;
            pairs.push(("sec-ch-ua", hint.clone()));
            let mobile = crate::goofish::agent::mobile_hint(&self.user_agent);
            pairs.push(("sec-ch-ua-mobile", mobile.into()));
            pairs.push(("sec-ch-ua-platform", format!("\"{platform}\"")));
        }
        if matches!(page, Page::SellerCentre) {
            pairs.push(("idle_site_biz_code", "COMMONPRO".into()));
        }
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                v.set_sensitive(name == "cookie");
                map.insert(n, v);
            }
        }
        map
    }
}

fn page_query(page: Page<'_>) -> &'static [(&'static str, &'static str)] {
    match page {
        // shaxiu's token fix (reference §2.3): the extras a browser sends from the IM page.
        Page::Im => &[
            ("spm_cnt", "a21ybx.im.0.0"),
            ("spm_pre", "a21ybx.item.want.1.14ad3da6ALVq3n"),
            ("log_id", "14ad3da6ALVq3n"),
        ],
        Page::Item(_) => &[("spm_cnt", "a21ybx.item.0.0")],
        Page::Order(_) => &[("spm_cnt", "a21ybx.order-detail.0.0")],
        Page::SellerCentre => &[("valueType", "string"), ("spm_cnt", "a21107h.42831410.0.0")],
        Page::Home => &[],
    }
}

fn page_origin(page: Page<'_>) -> (&'static str, String) {
    const WWW: &str = "https://www.goofish.com";
    match page {
        Page::Im => (WWW, format!("{WWW}/im")),
        Page::Item(id) => (WWW, format!("{WWW}/item?id={}", form_encode(id))),
        Page::Order(id) => (
            WWW,
            format!("{WWW}/order-detail?orderId={}&role=seller", form_encode(id)),
        ),
        Page::SellerCentre => (
            "https://seller.goofish.com",
            "https://seller.goofish.com/?site=COMMONPRO".into(),
        ),
        Page::Home => (WWW, format!("{WWW}/")),
    }
}

/// The account's device id for user `user_id`: generated once (reference §1.1) and kept in
/// the store, because the IM token is bound to it.
pub fn device_id_for(
    store: &Store,
    account: &str,
    user_id: &str,
) -> Result<String, crate::store::StoreError> {
    let key = format!("{DEVICE_ID_KEY}:{user_id}");
    let bytes = crate::store::blocking(|| {
        store.account_value_or_insert(account, &key, || {
            sign::generate_device_id(&mut rand::rng(), user_id).into_bytes()
        })
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A transport error with its causes ("error sending request: … Connection refused"); the
/// URL is left out (it is long and says nothing the API name does not).
pub(super) fn network_error(e: reqwest::Error) -> MtopError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    MtopError::Network(text)
}
