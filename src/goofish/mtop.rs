//! The mtop HTTP API (`h5api.m.goofish.com`): signed requests, the `ret` envelope, cookie
//! rotation and the account's login state.
//!
//! One [`MtopClient`] per account owns that account's cookie jar. Every call is signed with
//! [`sign::mtop_sign`] over the exact `data` string it posts (reference §2.1–2.4); every
//! `Set-Cookie` answer is merged into the jar. A token error (`FAIL_SYS_TOKEN_EMPTY` /
//! `EXOIRED`) is retried exactly once with the rotated token. The two answers that no retry can
//! fix put the client into a blocked [`LoginState`] that makes further calls fail fast without
//! touching the network: `FAIL_SYS_SESSION_EXPIRED` (fresh cookies needed) and risk control
//! (`FAIL_SYS_USER_VALIDATE` / `RGV587_ERROR`: a slider must be solved in a browser; one probe
//! after a long, doubling backoff). That is what keeps a dead account from becoming a retry
//! storm (reference §8). Cookie values and tokens never reach a log or an error message.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::sign::{self, Cookies, IM_APP_KEY, MTOP_APP_KEY};
use crate::clock::Clock;
use crate::config::MarketplaceConfig;
use crate::event::EventStatus;
use crate::health;
use crate::store::Store;

/// Desktop Chrome, as the bots send it (reference §2.4); overridable by `marketplace.user_agent`.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";
const SEC_CH_UA: &str = r#""Chromium";v="146", "Not-A.Brand";v="24", "Google Chrome";v="146""#;

/// Store key of the per-account device id (suffixed by the user id it was made for).
const DEVICE_ID_KEY: &str = "device_id";
/// Risk-control backoff stops doubling here.
const MAX_RISK_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// A token is refreshed this long before the server says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Sold-order pages read per reconciliation (30 rows each).
const MAX_SOLD_PAGES: u32 = 10;

/// Why an mtop call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MtopError {
    #[error("no usable cookies: {0}")]
    NoCookies(String),
    #[error("login expired (FAIL_SYS_SESSION_EXPIRED): fresh cookies are needed")]
    LoginExpired,
    #[error("risk control ({code}): solve the slider in a browser and paste fresh cookies")]
    RiskControl { code: String },
    #[error("token still rejected after one refresh ({0})")]
    Token(String),
    #[error("rate limited ({0})")]
    RateLimited(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("HTTP status {0}")]
    Http(u16),
    #[error("unexpected response: {0}")]
    BadResponse(String),
    #[error("{api} failed: {ret}")]
    Business { api: String, ret: String },
}

impl MtopError {
    /// Whether the same call may succeed later without a human (network, 5xx, tokens).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::Token(_) | Self::RateLimited(_) => true,
            Self::Http(code) => *code >= 500 || *code == 429,
            _ => false,
        }
    }

    /// Whether this error blocks the account until a human acts.
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Self::NoCookies(_) | Self::LoginExpired | Self::RiskControl { .. }
        )
    }
}

/// The account's login state as far as the mtop API can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginState {
    Ok,
    /// Cookies missing, unreadable or without `unb`.
    NoCookies(String),
    /// `FAIL_SYS_SESSION_EXPIRED`: only fresh cookies help.
    LoginExpired,
    /// Risk control: calls fail fast until `retry_at`, then one probe is let through.
    RiskControl {
        retry_at: Instant,
        strikes: u32,
    },
}

impl LoginState {
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }

    /// Whether a call may go to the network now.
    pub fn usable_at(&self, now: Instant) -> bool {
        match self {
            Self::Ok => true,
            Self::RiskControl { retry_at, .. } => now >= *retry_at,
            _ => false,
        }
    }
}

/// The IM access token (`/reg` `token` header). `Debug` hides the value.
#[derive(Clone)]
pub struct ImToken {
    pub access_token: String,
    /// When this token should be replaced (and the socket reconnected).
    pub refresh_at: Instant,
}

impl fmt::Debug for ImToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImToken")
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// `mtop.taobao.idle.pc.detail`: what the pipeline may want to know about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemDetail {
    pub item_id: String,
    pub title: Option<String>,
    pub price_cents: Option<u64>,
    pub quantity: Option<u32>,
    pub skus: Vec<Sku>,
    pub seller_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sku {
    pub sku_id: Option<String>,
    /// The spec values, e.g. `红色` or `红色;L` for two dimensions.
    pub name: String,
    pub price_cents: Option<u64>,
    pub quantity: Option<u32>,
}

/// `mtop.idle.web.trade.order.detail`, parsed defensively (reference §3.3, §8a).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderDetail {
    pub order_id: String,
    /// Only set when the platform's answer is unambiguous.
    pub status: Option<EventStatus>,
    pub item_id: Option<String>,
    pub title: Option<String>,
    pub quantity: Option<u32>,
    /// The spec value (`skuInfo` `颜色:红色` → `红色`, or `specValue`).
    pub sku: Option<String>,
    /// Paid amount in yuan, as shown.
    pub amount: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_nick: Option<String>,
}

impl OrderDetail {
    /// Fill what an event does not know yet from this detail (the event's own values win,
    /// except quantity, which only the detail knows reliably).
    pub fn fill(&self, ev: &mut crate::event::OrderEvent) {
        fn fill(slot: &mut Option<String>, v: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(v);
            }
        }
        fill(&mut ev.item_id, &self.item_id);
        fill(&mut ev.item_title, &self.title);
        fill(&mut ev.buyer_id, &self.buyer_id);
        fill(&mut ev.buyer_nick, &self.buyer_nick);
        fill(&mut ev.sku, &self.sku);
        fill(&mut ev.amount, &self.amount);
        if let Some(q) = self.quantity {
            ev.quantity = q;
        }
    }

    /// The platform says the order is already past "paid" (shipped elsewhere, closed,
    /// refunded): that status, so a stale paid signal cannot start a delivery.
    pub fn later_status(&self) -> Option<EventStatus> {
        self.status
            .filter(|s| !matches!(s, EventStatus::PendingPayment | EventStatus::Paid))
    }
}

/// One row of `merchant.sold.get` (reference §3.6).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoldOrder {
    pub order_id: String,
    pub item_id: Option<String>,
    pub title: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_nick: Option<String>,
    pub amount: Option<String>,
    pub quantity: Option<u32>,
    pub status_text: String,
    pub in_refund: bool,
}

impl SoldOrder {
    /// Paid and waiting for the seller: what reconciliation delivers.
    pub fn awaits_shipment(&self) -> bool {
        !self.in_refund
            && (self.status_text.contains("待发货") || self.status_text.contains("等待卖家发货"))
    }
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consigned {
    Confirmed,
    /// `ORDER_ALREADY_DELIVERY` / `已发货成功`: as good as confirmed.
    AlreadyShipped,
}

/// Which page a browser would call an API from; decides query extras and headers.
#[derive(Debug, Clone, Copy)]
enum Page<'a> {
    Im,
    Item(&'a str),
    Order(&'a str),
    SellerCentre,
    Home,
}

/// One signed call.
struct Call<'a> {
    api: &'a str,
    version: &'a str,
    data: String,
    page: Page<'a>,
}

/// What the server answered, before interpretation.
struct Answer {
    data: Value,
}

struct Jar {
    cookies: Option<Cookies>,
    device_id: Option<String>,
    token: Option<ImToken>,
}

/// The mtop client of one account.
pub struct MtopClient {
    account: String,
    http: reqwest::Client,
    base: String,
    user_agent: String,
    custom_agent: bool,
    token_refresh: Duration,
    risk_backoff: Duration,
    store: Store,
    jar: Mutex<Jar>,
    login: watch::Sender<LoginState>,
    /// Bumped whenever cookies are replaced, so a socket using an old token reconnects.
    generation: watch::Sender<u64>,
    /// The status page's view of this account (token refreshes).
    registry: health::Health,
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
            user_agent: settings
                .user_agent
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string()),
            custom_agent: settings.user_agent.is_some(),
            token_refresh: settings.token_refresh,
            risk_backoff: settings.risk_backoff,
            store,
            jar: Mutex::new(Jar {
                cookies: None,
                device_id: None,
                token: None,
            }),
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
        let cookies = Cookies::parse(raw);
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
        }
        self.generation.send_modify(|g| *g += 1);
        self.login.send_replace(LoginState::Ok);
        Ok(())
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

    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Wait until calls may go to the network (healthy, or a risk-control probe is due).
    pub async fn wait_usable(&self) {
        let mut rx = self.login.subscribe();
        loop {
            let health = rx.borrow_and_update().clone();
            match health {
                LoginState::Ok => return,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Jar> {
        self.jar.lock().unwrap_or_else(|p| p.into_inner())
    }

    // -----------------------------------------------------------------------------------------
    // APIs
    // -----------------------------------------------------------------------------------------

    /// The IM access token, cached until its refresh time (the token API is the risk-control
    /// hot spot, so it is not called per connection).
    pub async fn im_token(&self) -> Result<ImToken, MtopError> {
        if let Some(t) = self
            .lock()
            .token
            .clone()
            .filter(|t| Instant::now() < t.refresh_at)
        {
            return Ok(t);
        }
        let device_id = self
            .device_id()
            .ok_or_else(|| MtopError::NoCookies("cookies not loaded".into()))?;
        let data = format!(
            r#"{{"appKey":"{IM_APP_KEY}","deviceId":{}}}"#,
            json_str(&device_id)
        );
        self.check_usable()?;
        let fetched = self
            .call(Call {
                api: "mtop.taobao.idlemessage.pc.login.token",
                version: "1.0",
                data,
                page: Page::Im,
            })
            .await
            .and_then(|answer| parse_im_token(&answer, self.token_refresh));
        self.registry
            .record_token_refresh(&self.account, fetched.is_ok(), now_ms());
        let token = fetched?;
        self.lock().token = Some(token.clone());
        Ok(token)
    }

    /// Forget the cached IM token (the server refused it at `/reg`).
    pub fn invalidate_im_token(&self) {
        self.lock().token = None;
    }

    pub async fn item_detail(&self, item_id: &str) -> Result<ItemDetail, MtopError> {
        let data = format!(r#"{{"itemId":{}}}"#, json_str(item_id));
        let answer = self
            .call(Call {
                api: "mtop.taobao.idle.pc.detail",
                version: "1.0",
                data,
                page: Page::Item(item_id),
            })
            .await?;
        Ok(parse_item_detail(item_id, &answer))
    }

    pub async fn order_detail(&self, order_id: &str) -> Result<OrderDetail, MtopError> {
        let data = format!(r#"{{"tid":{}}}"#, json_str(order_id));
        let answer = self
            .call(Call {
                api: "mtop.idle.web.trade.order.detail",
                version: "1.0",
                data,
                page: Page::Order(order_id),
            })
            .await?;
        Ok(parse_order_detail(order_id, &answer))
    }

    /// Confirm shipment without logistics (虚拟发货).
    pub async fn consign(&self, order_id: &str) -> Result<Consigned, MtopError> {
        // Byte-for-byte the bots' body, space included (reference §3.4).
        let data = format!(
            r#"{{"orderId":{}, "tradeText":"","picList":[],"newUnconsign":true}}"#,
            json_str(order_id)
        );
        let result = self
            .call(Call {
                api: "mtop.taobao.idle.logistic.consign.dummy",
                version: "1.0",
                data,
                page: Page::Home,
            })
            .await;
        match result {
            Ok(_) => Ok(Consigned::Confirmed),
            Err(MtopError::Business { ret, .. }) if is_already_shipped(&ret) => {
                Ok(Consigned::AlreadyShipped)
            }
            Err(e) => Err(e),
        }
    }

    /// Every sold order waiting for shipment (all pages, bounded).
    pub async fn pending_shipments(&self) -> Result<Vec<SoldOrder>, MtopError> {
        let mut out = Vec::new();
        for page in 1..=MAX_SOLD_PAGES {
            let data = format!(
                r#"{{"pageNumber":{page},"rowsPerPage":30,"orderIds":"","queryCode":"NOT_SHIP","orderSearchParam":"{{}}"}}"#
            );
            let answer = self
                .call(Call {
                    api: "mtop.taobao.idle.trade.merchant.sold.get",
                    version: "1.0",
                    data,
                    page: Page::SellerCentre,
                })
                .await?;
            let (rows, more) = parse_sold_page(&answer);
            out.extend(rows.into_iter().filter(SoldOrder::awaits_shipment));
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// `loginuser.get`: keeps the session warm and notices an expired login early.
    pub async fn keep_alive(&self) -> Result<(), MtopError> {
        self.call(Call {
            api: "mtop.taobao.idlemessage.pc.loginuser.get",
            version: "1.0",
            data: "{}".into(),
            page: Page::Im,
        })
        .await
        .map(drop)
    }

    // -----------------------------------------------------------------------------------------
    // The call machinery
    // -----------------------------------------------------------------------------------------

    /// Sign, send, interpret; one retry on a token error; blocked states fail fast.
    async fn call(&self, call: Call<'_>) -> Result<Answer, MtopError> {
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

    fn check_usable(&self) -> Result<(), MtopError> {
        match &*self.login.borrow() {
            LoginState::Ok => Ok(()),
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
        let body = response.bytes().await.map_err(network_error)?;
        interpret(call.api, status.as_u16(), &body)
    }

    fn merge_set_cookies(&self, headers: &reqwest::header::HeaderMap) {
        let values: Vec<&str> = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return;
        }
        if let Some(jar) = self.lock().cookies.as_mut() {
            jar.merge_set_cookies(values);
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
        if !self.custom_agent {
            // Client hints must describe the same browser as the user agent.
            pairs.push(("sec-ch-ua", SEC_CH_UA.into()));
            pairs.push(("sec-ch-ua-mobile", "?0".into()));
            pairs.push(("sec-ch-ua-platform", "\"Windows\"".into()));
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
fn network_error(e: reqwest::Error) -> MtopError {
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

/// Wall-clock epoch milliseconds (signatures and token expiry are wall-clock facts).
fn now_ms() -> u64 {
    crate::clock::SystemClock.now_ms()
}

// ---------------------------------------------------------------------------------------------
// Pure interpretation (unit-tested)
// ---------------------------------------------------------------------------------------------

/// A JSON string literal for `s` (ids are digits, but nothing from outside is trusted).
fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Turns an HTTP answer into the `ret`/`data` envelope or the error it means.
fn interpret(api: &str, status: u16, body: &[u8]) -> Result<Answer, MtopError> {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(envelope) = parsed.filter(Value::is_object) else {
        // Risk-control pages may come as HTML with any status (reference §2.5).
        if looks_like_punish(&text) {
            return Err(MtopError::RiskControl {
                code: "punish page".into(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(MtopError::Http(status));
        }
        return Err(MtopError::BadResponse(format!(
            "{api}: body is not a JSON object ({} bytes)",
            body.len()
        )));
    };
    let ret: Vec<String> = envelope
        .get("ret")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let data = envelope.get("data").cloned().unwrap_or(Value::Null);
    classify_ret(api, &ret, &data)?;
    if !(200..300).contains(&status) {
        return Err(MtopError::Http(status));
    }
    Ok(Answer { data })
}

/// Success, or which failure the `ret` strings announce (reference §2.5–2.6).
fn classify_ret(api: &str, ret: &[String], data: &Value) -> Result<(), MtopError> {
    let has = |needles: &[&str]| ret.iter().any(|r| needles.iter().any(|n| r.contains(n)));
    if has(&["SUCCESS"]) {
        return Ok(());
    }
    let first = || ret.first().cloned().unwrap_or_else(|| "(empty ret)".into());
    if has(&[
        "FAIL_SYS_TOKEN_EMPTY",
        "FAIL_SYS_TOKEN_EXOIRED",
        "FAIL_SYS_TOKEN_EXPIRED",
        "FAIL_SYS_TOKEN_ILLEGAL",
        "令牌为空",
        "令牌过期",
    ]) {
        return Err(MtopError::Token(code_of(&first())));
    }
    if has(&["FAIL_SYS_SESSION_EXPIRED", "Session过期"]) {
        return Err(MtopError::LoginExpired);
    }
    let punish_url = data
        .get("url")
        .and_then(Value::as_str)
        .is_some_and(looks_like_punish);
    if punish_url
        || has(&[
            "FAIL_SYS_USER_VALIDATE",
            "RGV587_ERROR",
            "RRXVv_ERROR",
            "FAIL_SYS_ILLEGAL_ACCESS",
            "FAIL_BIZ_WUA_IS_MACHINE",
            "被挤爆",
        ])
    {
        let code = ret.iter().map(|r| code_of(r)).collect::<Vec<_>>().join(",");
        return Err(MtopError::RiskControl { code });
    }
    if has(&["FAIL_SYS_TRAFFIC_LIMIT", "FAIL_SYS_USER_LIMIT"]) {
        return Err(MtopError::RateLimited(code_of(&first())));
    }
    Err(MtopError::Business {
        api: api.to_string(),
        ret: ret.join(" | "),
    })
}

/// The machine part of `CODE::message`.
fn code_of(ret: &str) -> String {
    ret.split("::").next().unwrap_or(ret).to_string()
}

fn looks_like_punish(text: &str) -> bool {
    ["punish", "x5secdata", "captcha", "_____tmd_____"]
        .iter()
        .any(|n| text.contains(n))
}

fn is_already_shipped(ret: &str) -> bool {
    ret.contains("ORDER_ALREADY_DELIVERY") || ret.contains("已发货成功")
}

fn parse_im_token(answer: &Answer, refresh: Duration) -> Result<ImToken, MtopError> {
    let token = answer
        .data
        .get("accessToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| MtopError::BadResponse("login.token: no data.accessToken".into()))?;
    let lifetime = answer
        .data
        .get("accessTokenExpiredTime")
        .and_then(lifetime_of)
        .map(|l| l.saturating_sub(TOKEN_MARGIN))
        .filter(|l| !l.is_zero());
    let wait = lifetime.map_or(refresh, |l| l.min(refresh));
    Ok(ImToken {
        access_token: token.to_string(),
        refresh_at: Instant::now() + wait,
    })
}

/// `accessTokenExpiredTime` as a remaining lifetime: a duration in ms (gc: `86400000`), or an
/// absolute epoch time in s or ms (yd accepts all three).
fn lifetime_of(v: &Value) -> Option<Duration> {
    let n = as_u64(v)?;
    let now_ms = now_ms();
    Some(match n {
        n if n >= 1_000_000_000_000 => Duration::from_millis(n.saturating_sub(now_ms)),
        n if n >= 1_000_000_000 => Duration::from_millis((n * 1000).saturating_sub(now_ms)),
        n => Duration::from_millis(n),
    })
}

/// A string or number field as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn field(v: &Value, path: &str) -> Option<String> {
    v.pointer(path).and_then(text_of)
}

/// Yuan text (`"12.50"`, `"12"`) → cents.
fn yuan_to_cents(s: &str) -> Option<u64> {
    let s = s.trim().trim_start_matches(['¥', '￥']);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole: u64 = whole.parse().ok()?;
    let frac = format!("{frac:0<2}");
    let cents: u64 = frac.get(..2)?.parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

fn parse_item_detail(item_id: &str, answer: &Answer) -> ItemDetail {
    let item = answer.data.get("itemDO").cloned().unwrap_or(Value::Null);
    let price_cents = field(&item, "/soldPrice")
        .or_else(|| field(&item, "/minPrice"))
        .as_deref()
        .and_then(yuan_to_cents);
    let skus = item
        .get("skuList")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(parse_sku).collect())
        .unwrap_or_default();
    ItemDetail {
        item_id: field(&item, "/itemId").unwrap_or_else(|| item_id.to_string()),
        title: field(&item, "/title"),
        price_cents,
        quantity: item
            .get("quantity")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok()),
        skus,
        seller_id: field(&answer.data, "/sellerDO/sellerId"),
    }
}

fn parse_sku(sku: &Value) -> Sku {
    let values: Vec<String> = sku
        .get("propertyList")
        .and_then(Value::as_array)
        .map(|props| {
            props
                .iter()
                .filter_map(|p| field(p, "/valueText"))
                .collect()
        })
        .unwrap_or_default();
    Sku {
        sku_id: field(sku, "/skuId"),
        name: values.join(";"),
        // `priceInCent` (Go fixture) or `price` in cents (shaxiu) — reference §8a.
        price_cents: sku
            .get("priceInCent")
            .or_else(|| sku.get("price"))
            .and_then(as_u64),
        quantity: sku
            .get("quantity")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok()),
    }
}

fn parse_order_detail(order_id: &str, answer: &Answer) -> OrderDetail {
    let data = &answer.data;
    let component = |render: &str| -> Option<&Value> {
        data.get("components")?
            .as_array()?
            .iter()
            .find(|c| c.get("render").and_then(Value::as_str) == Some(render))?
            .get("data")
    };
    let info = component("orderInfoVO").cloned().unwrap_or(Value::Null);
    let item = info.get("itemInfo").cloned().unwrap_or(Value::Null);
    OrderDetail {
        order_id: order_id.to_string(),
        status: order_status(data, component("orderStatusVO")),
        item_id: field(&item, "/itemId").or_else(|| field(data, "/itemId")),
        title: field(&item, "/title"),
        quantity: item
            .get("buyAmount")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok())
            .filter(|q| *q > 0),
        sku: spec_of(&item),
        amount: field(&info, "/priceInfo/amount/value").or_else(|| field(&item, "/price")),
        buyer_id: field(&info, "/buyerUserId")
            .or_else(|| field(&info, "/buyerId"))
            .or_else(|| field(data, "/peerUserId")),
        buyer_nick: field(&info, "/buyerNick"),
    }
}

/// The SKU spec value from either format (reference §8a): `skuInfo` `颜色:红色` (several
/// pairs joined by `;`) or `specName`/`specValue`.
fn spec_of(item: &Value) -> Option<String> {
    if let Some(v) = field(item, "/specValue") {
        return Some(v);
    }
    let info = field(item, "/skuInfo")?;
    let values: Vec<&str> = info
        .split([';', '；'])
        .map(|pair| pair.split_once([':', '：']).map_or(pair, |(_, v)| v).trim())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(";"))
}

/// Order status from the detail, only where the sources agree (reference §3.3): status text
/// first, then numeric codes 1–4 (the only ones 9r and yd read the same way).
fn order_status(data: &Value, status_vo: Option<&Value>) -> Option<EventStatus> {
    let texts = [
        field(data, "/utArgs/orderStatusName"),
        status_vo.and_then(|s| field(s, "/orderStatusInfo/title")),
        status_vo.and_then(current_node),
    ];
    if let Some(s) = texts.iter().flatten().find_map(|t| status_from_text(t)) {
        return Some(s);
    }
    let code = data
        .get("status")
        .and_then(as_u64)
        .or_else(|| data.pointer("/utArgs/orderStatus").and_then(as_u64))?;
    match code {
        1 => Some(EventStatus::PendingPayment),
        2 => Some(EventStatus::Paid),
        3 => Some(EventStatus::Shipped),
        4 => Some(EventStatus::Completed),
        _ => None,
    }
}

/// The first not-yet-completed node of `orderStatusNodeList` names the current state
/// (`待发货` after a completed `已付款`).
fn current_node(status_vo: &Value) -> Option<String> {
    let nodes = status_vo.get("orderStatusNodeList")?.as_array()?;
    let done = |n: &Value| n.get("completed").and_then(Value::as_bool) == Some(true);
    let pending = nodes.iter().find(|n| !done(n))?;
    field(pending, "/title")
}

fn status_from_text(text: &str) -> Option<EventStatus> {
    const RULES: &[(&str, EventStatus)] = &[
        ("退款成功", EventStatus::Refunded),
        ("已退款", EventStatus::Refunded),
        ("退款中", EventStatus::Refunding),
        ("退款", EventStatus::Refunding),
        ("交易关闭", EventStatus::Closed),
        ("交易成功", EventStatus::Completed),
        ("待收货", EventStatus::Shipped),
        ("已发货", EventStatus::Shipped),
        ("等待买家确认收货", EventStatus::Shipped),
        ("待发货", EventStatus::Paid),
        ("等待卖家发货", EventStatus::Paid),
        ("待付款", EventStatus::PendingPayment),
        ("等待买家付款", EventStatus::PendingPayment),
    ];
    RULES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, s)| *s)
}

/// Rows of one `merchant.sold.get` page and whether another page follows.
fn parse_sold_page(answer: &Answer) -> (Vec<SoldOrder>, bool) {
    let module = answer.data.get("module").unwrap_or(&answer.data);
    let rows = module
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(parse_sold_row).collect())
        .unwrap_or_default();
    let more = module
        .get("nextPage")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    (rows, more)
}

fn parse_sold_row(row: &Value) -> Option<SoldOrder> {
    let common = row.get("commonData")?;
    Some(SoldOrder {
        order_id: field(common, "/orderId")?,
        item_id: field(common, "/itemId"),
        title: field(row, "/itemVO/title"),
        buyer_id: field(row, "/buyerInfoVO/buyerId"),
        buyer_nick: field(row, "/buyerInfoVO/userNick"),
        amount: field(row, "/priceVO/totalPrice"),
        quantity: row
            .pointer("/priceVO/buyNum")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok())
            .filter(|q| *q > 0),
        status_text: field(common, "/orderStatus").unwrap_or_default(),
        in_refund: field(common, "/inRefund").as_deref() == Some("true"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn answer(v: Value) -> Answer {
        Answer {
            data: v.get("data").cloned().unwrap_or(Value::Null),
        }
    }

    fn rets(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ret_classification() {
        let empty = Value::Null;
        assert!(classify_ret("a", &rets(&["SUCCESS::调用成功"]), &empty).is_ok());
        assert_eq!(
            classify_ret("a", &rets(&["FAIL_SYS_TOKEN_EXOIRED::令牌过期"]), &empty),
            Err(MtopError::Token("FAIL_SYS_TOKEN_EXOIRED".into()))
        );
        assert!(matches!(
            classify_ret("a", &rets(&["FAIL_SYS_TOKEN_EMPTY::令牌为空"]), &empty),
            Err(MtopError::Token(_))
        ));
        assert_eq!(
            classify_ret(
                "a",
                &rets(&["FAIL_SYS_SESSION_EXPIRED::Session过期"]),
                &empty
            ),
            Err(MtopError::LoginExpired)
        );
        let risk = classify_ret(
            "a",
            &rets(&[
                "FAIL_SYS_USER_VALIDATE",
                "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试",
            ]),
            &serde_json::json!({"url": "https://h5api.m.goofish.com:443//h5/x/1.0/_____tmd_____/punish?x5secdata=abc"}),
        );
        assert_eq!(
            risk,
            Err(MtopError::RiskControl {
                code: "FAIL_SYS_USER_VALIDATE,RGV587_ERROR".into()
            })
        );
        assert!(matches!(
            classify_ret("a", &rets(&["FAIL_SYS_TRAFFIC_LIMIT::x"]), &empty),
            Err(MtopError::RateLimited(_))
        ));
        let biz = classify_ret(
            "consign",
            &rets(&["FAIL_BIZ_ORDER_STATUS_ERROR::订单状态错误"]),
            &empty,
        );
        assert!(
            matches!(&biz, Err(MtopError::Business { ret, .. }) if ret.contains("ORDER_STATUS"))
        );
        assert!(!biz.unwrap_err().is_transient());
        assert!(is_already_shipped(
            "FAIL_BIZ_ORDER_ALREADY_DELIVERY::已发货"
        ));
    }

    #[test]
    fn interpret_handles_html_and_status() {
        assert_eq!(
            interpret("a", 502, b"<html>bad gateway</html>").err(),
            Some(MtopError::Http(502))
        );
        assert!(MtopError::Http(502).is_transient());
        assert!(matches!(
            interpret("a", 200, b"<html>..punish?x5secdata=..</html>"),
            Err(MtopError::RiskControl { .. })
        ));
        assert!(matches!(
            interpret("a", 200, b"[1]"),
            Err(MtopError::BadResponse(_))
        ));
        let ok = interpret(
            "a",
            200,
            r#"{"api":"a","data":{"x":1},"ret":["SUCCESS::调用成功"],"v":"1.0"}"#.as_bytes(),
        );
        assert_eq!(ok.ok().map(|a| a.data), Some(serde_json::json!({"x": 1})));
    }

    #[test]
    fn form_encoding_and_money() {
        assert_eq!(form_encode(r#"{"a":"b c"}"#), "%7B%22a%22%3A%22b+c%22%7D");
        assert_eq!(form_encode("你"), "%E4%BD%A0");
        assert_eq!(yuan_to_cents("12.50"), Some(1250));
        assert_eq!(yuan_to_cents("12"), Some(1200));
        assert_eq!(yuan_to_cents("¥0.5"), Some(50));
        assert_eq!(yuan_to_cents("abc"), None);
    }

    #[test]
    fn order_detail_both_spec_formats() {
        let zn = answer(serde_json::json!({"data": {
        "status": 2,
        "peerUserId": "3149637063",
        "components": [
            {"render": "orderInfoVO", "data": {
                "itemInfo": {"itemId": "900052644277", "title": "Office", "buyAmount": "3",
                             "price": "9.90", "skuInfo": "版本:专业版"},
                "priceInfo": {"amount": {"value": "29.70"}}}},
            {"render": "orderStatusVO", "data": {"orderStatusNodeList": [
                {"title": "已付款", "completed": true}, {"title": "待发货", "completed": false}]}}
        ]}}));
        let d = parse_order_detail("1", &zn);
        assert_eq!(d.status, Some(EventStatus::Paid));
        assert_eq!(d.quantity, Some(3));
        assert_eq!(d.sku.as_deref(), Some("专业版"));
        assert_eq!(d.amount.as_deref(), Some("29.70"));
        assert_eq!(d.buyer_id.as_deref(), Some("3149637063"));
        assert_eq!(d.item_id.as_deref(), Some("900052644277"));

        let yd = answer(serde_json::json!({"data": {
            "utArgs": {"orderStatus": "3"},
            "components": [{"render": "orderInfoVO", "data": {
                "buyerUserId": 42,
                "itemInfo": {"buyAmount": 1, "specName": "颜色", "specValue": "红色"}}}]}}));
        let d = parse_order_detail("2", &yd);
        assert_eq!(d.status, Some(EventStatus::Shipped));
        assert_eq!(d.sku.as_deref(), Some("红色"));
        assert_eq!(d.buyer_id.as_deref(), Some("42"));
        assert_eq!(d.later_status(), Some(EventStatus::Shipped));

        // Nothing usable: defaults, no panic.
        let d = parse_order_detail(
            "3",
            &answer(serde_json::json!({"data": {"components": "x"}})),
        );
        assert_eq!(d.status, None);
        assert_eq!(d.quantity, None);
        assert_eq!(
            spec_of(&serde_json::json!({"skuInfo": "颜色:红色;尺码:L"})).as_deref(),
            Some("红色;L")
        );
    }

    #[test]
    fn sold_list_and_item_detail() {
        let page = answer(serde_json::json!({"data": {"module": {"items": [
            {"commonData": {"orderId": "3300351279401008157", "itemId": "907625879418", "orderStatus": "待发货"},
             "buyerInfoVO": {"buyerId": "1728685717", "userNick": "n"}, "itemVO": {"title": "T"},
             "priceVO": {"totalPrice": "39.00", "buyNum": "2"}},
            {"commonData": {"orderId": "2", "orderStatus": "待发货", "inRefund": "true"}},
            {"commonData": {"orderId": "3", "orderStatus": "已发货"}},
            {"noCommonData": true}
        ], "nextPage": "true"}}}));
        let (rows, more) = parse_sold_page(&page);
        assert!(more);
        assert_eq!(rows.len(), 3);
        let pending: Vec<_> = rows.iter().filter(|r| r.awaits_shipment()).collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].quantity, Some(2));
        assert_eq!(pending[0].buyer_id.as_deref(), Some("1728685717"));

        let item = answer(
            serde_json::json!({"data": {"itemDO": {"title": "会员", "soldPrice": "12.50", "quantity": 5,
            "skuList": [{"skuId": 1, "priceInCent": 990, "quantity": 2, "propertyList": [{"propertyText": "规格", "valueText": "月卡"}]},
                        {"skuId": 2, "price": "2990", "propertyList": [{"valueText": "年卡"}]}]},
            "sellerDO": {"sellerId": "99"}}}),
        );
        let d = parse_item_detail("5", &item);
        assert_eq!(d.price_cents, Some(1250));
        assert_eq!(d.skus[0].name, "月卡");
        assert_eq!(d.skus[0].price_cents, Some(990));
        assert_eq!(d.skus[1].price_cents, Some(2990));
        assert_eq!(d.seller_id.as_deref(), Some("99"));
    }

    #[test]
    fn token_lifetime_forms() {
        assert_eq!(
            lifetime_of(&serde_json::json!("86400000")),
            Some(Duration::from_secs(86400))
        );
        let soon_ms = now_ms() + 3_600_000;
        let l = lifetime_of(&serde_json::json!(soon_ms)).unwrap();
        assert!(l <= Duration::from_secs(3600) && l > Duration::from_secs(3500));
        let l = lifetime_of(&serde_json::json!(soon_ms / 1000)).unwrap();
        assert!(l <= Duration::from_secs(3600) && l > Duration::from_secs(3500));
        let t = parse_im_token(
            &answer(serde_json::json!({"data": {"accessToken": "secret-token", "accessTokenExpiredTime": "86400000"}})),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert!(t.refresh_at <= Instant::now() + Duration::from_secs(3600));
        assert!(!format!("{t:?}").contains("secret-token"));
        assert!(
            parse_im_token(
                &answer(serde_json::json!({"data": {}})),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }

    /// A one-connection-per-request HTTP server answering with canned responses in turn
    /// (the last one repeats); counts requests and keeps their raw text.
    async fn canned(
        responses: Vec<(u16, Vec<String>, String)>,
    ) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (count.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let n = c.fetch_add(1, Ordering::SeqCst);
                let (status, cookies, body) = responses[n.min(responses.len() - 1)].clone();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(r) = sock.read(&mut chunk).await {
                    if r == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..r]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                s.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for c in cookies {
                    head.push_str(&format!("set-cookie: {c}\r\n"));
                }
                let _ = sock.write_all(format!("{head}\r\n{body}").as_bytes()).await;
            }
        });
        (format!("http://{addr}/h5/"), count, seen)
    }

    fn client(base: &str) -> MtopClient {
        let settings = MarketplaceConfig {
            mtop_url: base.to_string(),
            risk_backoff: Duration::from_secs(600),
            ..MarketplaceConfig::default()
        };
        let store = Store::in_memory(crate::clock::system()).unwrap();
        let c = MtopClient::new(
            "main",
            reqwest::Client::new(),
            &settings,
            store,
            health::Health::new(),
        );
        c.set_cookies("unb=2202640918079; cookie2=sessionsecret; _m_h5_tk=old_1")
            .unwrap();
        c
    }

    const OK: &str = r#"{"api":"x","data":{},"ret":["SUCCESS::调用成功"],"v":"1.0"}"#;

    #[tokio::test]
    async fn token_error_is_retried_exactly_once_with_the_rotated_token() {
        let expired =
            r#"{"api":"x","data":{},"ret":["FAIL_SYS_TOKEN_EXOIRED::令牌过期"],"v":"1.0"}"#;
        let rotate = vec!["_m_h5_tk=fresh_99; Path=/".to_string()];
        let (base, count, seen) = canned(vec![
            (200, rotate.clone(), expired.into()),
            (200, vec![], OK.into()),
        ])
        .await;
        let c = client(&base);
        c.keep_alive().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        let second = seen.lock().unwrap()[1].clone();
        assert!(
            second.contains("_m_h5_tk=fresh_99"),
            "retry carries the rotated token"
        );
        let sign = second
            .split("sign=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        let t = second
            .split("&t=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(sign, sign::mtop_sign("fresh", &t, MTOP_APP_KEY, "{}"));
        assert!(second.contains("\r\n\r\ndata=%7B%7D"));

        // A server that keeps refusing gets exactly two requests, then a Token error.
        let (base, count, _) = canned(vec![(200, rotate, expired.into())]).await;
        let c = client(&base);
        assert!(matches!(c.keep_alive().await, Err(MtopError::Token(_))));
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert!(c.login_state().is_ok());
    }

    #[tokio::test]
    async fn session_expired_blocks_without_further_requests() {
        let dead =
            r#"{"api":"x","data":{},"ret":["FAIL_SYS_SESSION_EXPIRED::Session过期"],"v":"1.0"}"#;
        let (base, count, _) = canned(vec![(200, vec![], dead.into())]).await;
        let c = client(&base);
        assert_eq!(c.keep_alive().await, Err(MtopError::LoginExpired));
        assert_eq!(c.login_state(), LoginState::LoginExpired);
        for _ in 0..5 {
            assert_eq!(c.consign("123").await, Err(MtopError::LoginExpired));
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "blocked calls never reach the network"
        );
        c.set_cookies("unb=2202640918079; cookie2=fresh").unwrap();
        assert!(c.login_state().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn risk_control_backs_off_then_probes_once() {
        let risk = r#"{"api":"x","data":{"url":"https://h/_____tmd_____/punish?x5secdata=1"},"ret":["FAIL_SYS_USER_VALIDATE","RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"],"v":"1.0"}"#;
        let (base, count, _) = canned(vec![
            (200, vec![], risk.into()),
            (200, vec![], risk.into()),
            (200, vec![], OK.into()),
        ])
        .await;
        let c = client(&base);
        assert!(matches!(
            c.keep_alive().await,
            Err(MtopError::RiskControl { .. })
        ));
        let LoginState::RiskControl { retry_at, strikes } = c.login_state() else {
            panic!("not blocked")
        };
        assert_eq!(strikes, 1);
        for _ in 0..10 {
            assert!(matches!(
                c.keep_alive().await,
                Err(MtopError::RiskControl { .. })
            ));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(Instant::now() >= retry_at);
        assert!(matches!(
            c.keep_alive().await,
            Err(MtopError::RiskControl { .. })
        ));
        let LoginState::RiskControl {
            retry_at: second,
            strikes,
        } = c.login_state()
        else {
            panic!()
        };
        assert_eq!(strikes, 2);
        assert!(
            second >= Instant::now() + Duration::from_secs(1199),
            "backoff doubles"
        );
        tokio::time::advance(Duration::from_secs(1201)).await;
        c.keep_alive().await.unwrap();
        assert!(c.login_state().is_ok());
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn consign_already_shipped_and_device_id_is_stable() {
        let shipped = r#"{"api":"x","data":{},"ret":["FAIL_BIZ_ORDER_ALREADY_DELIVERY::订单已发货"],"v":"1.0"}"#;
        let (base, _, seen) = canned(vec![
            (200, vec![], OK.into()),
            (200, vec![], shipped.into()),
        ])
        .await;
        let c = client(&base);
        assert_eq!(
            c.consign("2503688126356636370").await,
            Ok(Consigned::Confirmed)
        );
        assert_eq!(
            c.consign("2503688126356636370").await,
            Ok(Consigned::AlreadyShipped)
        );
        let first = seen.lock().unwrap()[0].clone();
        assert!(first.contains(&format!("data={}", form_encode(r#"{"orderId":"2503688126356636370", "tradeText":"","picList":[],"newUnconsign":true}"#))));
        let did = c.device_id().unwrap();
        assert!(sign::is_device_id(&did, "2202640918079"));
        c.set_cookies("unb=2202640918079; cookie2=other").unwrap();
        assert_eq!(
            c.device_id().unwrap(),
            did,
            "the device id is generated once per user"
        );
    }
}
