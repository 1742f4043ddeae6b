//! One supervisor per account: the IM connection, the event handler, reconciliation and the
//! login watch, all independent of every other account.
//!
//! * Socket pushes become [`OrderEvent`]s for `runner.ingest` — only seller-side order
//!   events; buyer-side copies and session cards never trigger anything. Chat messages (own
//!   echoes included), typing and read receipts go to the chat pipeline, which decides. A paid event is completed from the order detail (quantity,
//!   SKU, amount, title, buyer) before ingest, because those decide what is delivered.
//! * Every (re)connect, fresh cookies and paid hints without an order id ask reconciliation
//!   for a pass.
//! * When mtop reports the login dead (`LoginExpired`, `RiskControl`, no cookies), exactly one
//!   alert goes through the notify router and the outbox; then the cookie file or variable is
//!   re-read every `cookies_poll` (and at once when the config watcher sees it change) until
//!   it changes. Nothing is retried in between; when the login works again, one recovery
//!   notice follows and reconciliation catches up.
//! * Connection and login state go to the status page's [`health`] registry.

use std::sync::Arc;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::decode::{DecodedEvent, Role};
use super::market::AccountLink;
use super::mtop::{LoginState, MtopClient};
use super::paid::{complete_paid, is_known_paid};
use super::reconcile::Reconciler;
use super::ws::{IM_EVENTS_CAPACITY, ImClient, ImEvent, ImSettings};
use crate::alert::{Alert, EventKind};
use crate::chat::{ChatInput, ChatRunner, InputKind};
use crate::clock::now_ms;
use crate::config::reload::ConfigChange;
use crate::config::{Account, MarketplaceConfig};
use crate::event::{EventStatus, OrderEvent};
use crate::health;
use crate::notify::Router;
use crate::pipeline::Runner;
use crate::secret::SecretRef;
use crate::store::Store;

/// The `source` label of events from the socket.
pub const SOURCE: &str = "goofish";

/// One account's clients, built before the shop (the marketplace needs them) and supervised
/// after it (the supervisor needs the runner).
pub struct AccountClient {
    account: Account,
    settings: MarketplaceConfig,
    mtop: Arc<MtopClient>,
    im: ImClient,
    cookies: CookieSource,
    registry: health::Health,
}

impl AccountClient {
    /// Build the clients and load the cookies once (a missing cookie source is not an error
    /// here: the supervisor alerts and waits for it).
    pub fn new(
        account: &Account,
        settings: &MarketplaceConfig,
        store: Store,
        http: reqwest::Client,
        registry: health::Health,
    ) -> Self {
        let mtop = Arc::new(MtopClient::new(
            &account.id,
            http,
            settings,
            store,
            registry.clone(),
        ));
        let im = ImClient::new(
            mtop.clone(),
            ImSettings::from_config(settings),
            registry.clone(),
        );
        let mut cookies = CookieSource::new(account.cookies.clone());
        cookies.apply(&mtop);
        Self {
            account: account.clone(),
            settings: settings.clone(),
            mtop,
            im,
            cookies,
            registry,
        }
    }

    pub fn id(&self) -> &str {
        &self.account.id
    }

    pub fn mtop(&self) -> &Arc<MtopClient> {
        &self.mtop
    }

    /// What the marketplace needs to send and confirm for this account.
    pub fn link(&self) -> AccountLink {
        AccountLink {
            mtop: self.mtop.clone(),
            im: self.im.handle(),
        }
    }

    /// Run everything for this account until `shutdown`. `reloads` (from the config
    /// reloader) makes a changed cookie file or variable take effect at once instead of at
    /// the next `cookies_poll`.
    pub async fn supervise(
        self,
        runner: Arc<Runner>,
        chat: Option<ChatRunner>,
        reloads: Option<broadcast::Receiver<ConfigChange>>,
        shutdown: CancellationToken,
    ) {
        let Self {
            account,
            settings,
            mtop,
            im,
            cookies,
            registry,
        } = self;
        let reconciler = Reconciler::new(
            &account.id,
            mtop.clone(),
            runner.clone(),
            settings.reconcile_interval,
        );
        let (events_tx, events_rx) = mpsc::channel(IM_EVENTS_CAPACITY);
        let handler = Handler {
            account: account.id.clone(),
            mtop: mtop.clone(),
            runner: runner.clone(),
            chat,
            reconcile: reconciler.trigger(),
        };
        let login = LoginWatch {
            account,
            settings,
            mtop,
            runner,
            cookies,
            reconcile: reconciler.trigger(),
            registry,
            reloads,
        };
        tokio::join!(
            im.run(events_tx, shutdown.clone()),
            handler.run(events_rx, shutdown.clone()),
            reconciler.run(shutdown.clone()),
            login.run(shutdown),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------------------

/// The configured cookie source and the value last applied from it.
struct CookieSource {
    secret: SecretRef,
    last: Option<String>,
}

impl CookieSource {
    fn new(secret: SecretRef) -> Self {
        Self { secret, last: None }
    }

    /// Where to put fresh cookies and what happens then, for the alert (Chinese).
    fn describe(&self) -> String {
        match &self.secret {
            // A running process never sees a changed environment.
            SecretRef::Env(name) => {
                format!("环境变量 {name}，然后重启守护进程（改用 cookies_file 可免重启）")
            }
            SecretRef::File(path) => {
                format!("文件 {}。守护进程会自动读取，无需重启", path.display())
            }
        }
    }

    /// Re-read the source; hand a changed, non-empty value to mtop. Returns whether it did.
    /// A source that vanished while a session works is left alone (the jar still works).
    fn apply(&mut self, mtop: &MtopClient) -> bool {
        match self.secret.resolve() {
            Ok(raw) if raw.is_empty() => {
                if self.last.is_none() {
                    mtop.set_no_cookies("the cookie source is empty");
                }
                false
            }
            Ok(raw) if self.last.as_deref() == Some(raw.as_str()) => false,
            Ok(raw) => {
                let applied = mtop.set_cookies(&raw);
                self.last = Some(raw);
                if let Err(e) = &applied {
                    tracing::warn!(account = %mtop.account(), error = %e, "Cookies rejected.");
                }
                applied.is_ok()
            }
            Err(e) => {
                if self.last.is_none() {
                    mtop.set_no_cookies(&e.to_string());
                }
                false
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login watch: one alert, then wait for fresh cookies; keep-alive while healthy
// ---------------------------------------------------------------------------------------------

struct LoginWatch {
    account: Account,
    settings: MarketplaceConfig,
    mtop: Arc<MtopClient>,
    runner: Arc<Runner>,
    cookies: CookieSource,
    reconcile: Arc<Notify>,
    registry: health::Health,
    reloads: Option<broadcast::Receiver<ConfigChange>>,
}

impl LoginWatch {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut login = self.mtop.watch_login();
        // The alert kind told to the seller for the current problem, if any.
        let mut announced: Option<EventKind> = None;
        let mut poll = tokio::time::interval(self.settings.cookies_poll);
        let start = crate::clock::instant_after(self.settings.keepalive);
        let mut keepalive = tokio::time::interval_at(start, self.settings.keepalive);
        let mut reported: Option<LoginState> = None;
        let mut token_pause = self.mtop.watch_token_pause();
        let mut pause_announced = false;
        loop {
            let now = login.borrow_and_update().clone();
            if reported.as_ref() != Some(&now) {
                self.report(&now);
                reported = Some(now.clone());
            }
            let problem = login_alert(&self.account, &now, &self.cookies.describe());
            match (problem, announced) {
                // Fresh cookies alone are not a recovery: wait until they are proven.
                (None, Some(kind)) if now.is_ok() => {
                    tracing::info!(account = %self.account.id, "Login works again.");
                    self.enqueue(Alert::recovered(kind, &self.account.id, &self.account.name))
                        .await;
                    announced = None;
                    self.reconcile.notify_one();
                }
                (Some(alert), _) if announced != Some(alert.kind) => {
                    tracing::warn!(account = %self.account.id, state = ?now, "Account needs the seller: {}", alert.kind.title());
                    announced = Some(alert.kind);
                    self.enqueue(alert).await;
                }
                _ => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = login.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                changed = token_pause.changed() => {
                    if changed.is_ok() {
                        let paused = token_pause.borrow_and_update().is_some();
                        self.on_token_pause(paused, &mut pause_announced).await;
                    }
                }
                _ = poll.tick() => self.reread_cookies(),
                change = next_reload(&mut self.reloads) => self.on_reload(change),
                _ = keepalive.tick(), if now.is_ok() => {
                    if let Err(e) = self.mtop.keep_alive().await {
                        tracing::warn!(account = %self.account.id, error = %e, "Keep-alive failed.");
                    }
                }
            }
        }
    }

    /// The hourly cap on IM token fetches was reached (one alert per pause), or a token came
    /// through again (one recovery notice).
    async fn on_token_pause(&self, paused: bool, announced: &mut bool) {
        if paused == *announced {
            return;
        }
        *announced = paused;
        let (id, name) = (self.account.id.as_str(), self.account.name.as_str());
        let key = format!("im_token_pause:{id}");
        let alert = if paused {
            tracing::warn!(account = %id, "IM token fetches paused by the hourly cap.");
            token_pause_alert(&self.account).problem(key)
        } else {
            tracing::info!(account = %id, "IM token fetched again; the pause is over.");
            Alert::recovered(EventKind::RiskControl, id, name).problem(key)
        };
        self.enqueue(alert).await;
    }

    fn reread_cookies(&mut self) {
        if self.cookies.apply(&self.mtop) {
            tracing::info!(account = %self.account.id, "Fresh cookies loaded.");
        }
    }

    /// A reload that names this account: its cookie source's content changed, read it now.
    /// (Where the cookies come from cannot change: reload refuses that, it needs a restart.)
    fn on_reload(&mut self, change: Result<ConfigChange, broadcast::error::RecvError>) {
        match change {
            Ok(c) if !c.accounts_with_new_cookies.contains(&self.account.id) => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                self.reloads = None;
                return;
            }
        }
        self.reread_cookies();
    }

    /// Tell the status page what mtop says about the login (never a cookie).
    fn report(&self, state: &LoginState) {
        let (login, detail) = match state {
            LoginState::Ok => (health::Login::Ok, None),
            LoginState::Unverified => (
                health::Login::Unverified,
                Some("已读取 Cookie，正在连接闲鱼验证；连接成功后才算恢复".to_string()),
            ),
            LoginState::NoCookies(why) => (
                health::Login::NoCookies,
                Some(format!(
                    "{}：请把 Cookie 写入{}",
                    cookie_problem(why),
                    self.cookies.describe()
                )),
            ),
            LoginState::LoginExpired => (
                health::Login::Expired,
                Some(format!("等待新的 Cookie：写入{}", self.cookies.describe())),
            ),
            LoginState::RiskControl { retry_at, .. } => {
                let wait = retry_at.saturating_duration_since(tokio::time::Instant::now());
                let at = now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                (
                    health::Login::RiskControl { retry_at: Some(at) },
                    Some("需要在浏览器中完成滑块验证，然后更新 Cookie".into()),
                )
            }
        };
        self.registry
            .set_login(&self.account.id, login, detail, now_ms());
    }

    /// One alert through the notify router into the outbox.
    async fn enqueue(&self, alert: Alert) {
        let config = self.runner.config();
        let drafts = Router::new(config.notify()).drafts(&alert);
        let stored = self
            .runner
            .store()
            .call(move |s| s.enqueue_notifications(&drafts))
            .await;
        match stored {
            Ok(_) => self.runner.wake_outbox.notify_one(),
            Err(e) => {
                tracing::error!(account = %self.account.id, error = %e, "Could not queue the login alert.")
            }
        }
    }
}

/// The next reload notification, or never when there is no reloader.
async fn next_reload(
    reloads: &mut Option<broadcast::Receiver<ConfigChange>>,
) -> Result<ConfigChange, broadcast::error::RecvError> {
    match reloads {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Why the cookies are unusable, in a seller's words. `why` is our own English (`mtop`,
/// `secret`) or the OS's (reading the file); it is developer text and only classified here.
fn cookie_problem(why: &str) -> &'static str {
    let w = why.to_ascii_lowercase();
    if w.contains("empty") {
        "Cookie 文件或变量是空的"
    } else if w.contains("no such file") || w.contains("not found") || w.contains("not set") {
        "找不到 Cookie 文件或环境变量"
    } else if w.contains("permission") {
        "没有权限读取 Cookie 文件"
    } else if w.contains("unb") {
        "Cookie 不完整（缺少 unb，可能没有登录）"
    } else if w.contains("not loaded") {
        "还没有读取到 Cookie"
    } else {
        "Cookie 无法读取或格式不对"
    }
}

/// The alert when IM token fetches hit their hourly cap (see `mtop::budget`).
fn token_pause_alert(account: &Account) -> Alert {
    use super::mtop::budget::{FETCHES_PER_HOUR, PAUSE};
    let hours = PAUSE.as_secs() / 3600;
    Alert::risk_control(
        &account.id,
        &account.name,
        &format!(
            "闲鱼消息连接的访问令牌 1 小时内已请求 {FETCHES_PER_HOUR} 次仍无法使用（令牌接口是风控重点），已暂停请求 {hours} 小时"
        ),
    )
    .action(
        "暂停期间消息连接断开，无法在聊天中自动发货，新订单会按重试规则转为人工处理。若反复出现，请在浏览器重新登录闲鱼并更新 Cookie，更新后立即恢复",
    )
}

/// The alert for a dead login: the notify module's constructor (problem key, cool-down,
/// recovery pairing) with the precise reason and where to put fresh cookies.
fn login_alert(account: &Account, state: &LoginState, source: &str) -> Option<Alert> {
    let refresh = format!(
        "登录闲鱼网页版 (www.goofish.com)，打开开发者工具 → 网络，复制任一 h5api 请求的完整 Cookie，写入{source}"
    );
    let (id, name) = (account.id.as_str(), account.name.as_str());
    Some(match state {
        LoginState::Ok | LoginState::Unverified => return None,
        LoginState::RiskControl { .. } => Alert::risk_control(
            id,
            name,
            "闲鱼要求滑块验证（FAIL_SYS_USER_VALIDATE / RGV587），自动请求已暂停",
        )
        .action(format!(
            "在浏览器中打开闲鱼网页版的消息页，完成滑块验证后{refresh}。在此之前只会间隔很久试探一次，不会反复请求"
        )),
        LoginState::LoginExpired => Alert::login_expired(
            id,
            name,
            "登录已失效（FAIL_SYS_SESSION_EXPIRED），无法读取订单详情、确认发货",
        )
        .action(refresh),
        LoginState::NoCookies(why) => {
            Alert::login_expired(id, name, &format!("没有可用的 Cookie（{}）", cookie_problem(why)))
                .action(refresh)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Socket events → pipeline
// ---------------------------------------------------------------------------------------------

struct Handler {
    account: String,
    mtop: Arc<MtopClient>,
    runner: Arc<Runner>,
    /// The chat pipeline, when the seller has one.
    chat: Option<ChatRunner>,
    reconcile: Arc<Notify>,
}

impl Handler {
    async fn run(&self, mut events: mpsc::Receiver<ImEvent>, shutdown: CancellationToken) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => match e {
                    Some(e) => e,
                    None => return,
                },
            };
            self.handle(event).await;
        }
    }

    async fn handle(&self, event: ImEvent) {
        let decoded = match event {
            ImEvent::Connected => {
                // Anything paid while we were away is only in the sold-order list.
                self.reconcile.notify_one();
                return;
            }
            ImEvent::Push(event) => event,
        };
        match decoded {
            DecodedEvent::Order {
                role: Role::Seller,
                order_id,
                item_id,
                buyer_id,
                cid,
                status,
                source_msg_id,
                created_at_ms,
            } => {
                let mut ev = OrderEvent::new(&self.account, &order_id, status);
                ev.item_id = item_id;
                ev.buyer_id = buyer_id;
                ev.cid = cid;
                ev.source_msg_id = source_msg_id;
                ev.seen_at = created_at_ms.unwrap_or(0);
                ev.source = SOURCE.to_string();
                self.on_order(ev).await;
            }
            DecodedEvent::Order {
                role: Role::Buyer,
                order_id,
                ..
            } => {
                tracing::debug!(account = %self.account, order_id = %order_id, "Buyer-side order card ignored (this account bought it).");
            }
            chat @ (DecodedEvent::Chat { .. }
            | DecodedEvent::Typing { .. }
            | DecodedEvent::ReadReceipt { .. }) => {
                if let (Some(runner), Some(input)) = (&self.chat, chat_input(&self.account, chat)) {
                    runner.handle(input).await;
                }
            }
            DecodedEvent::PaidHint { cid } => {
                // Only the sold-order list can say which order it is.
                tracing::info!(account = %self.account, cid = cid.as_deref().unwrap_or("?"), "Paid hint without an order id; reconciling.");
                self.reconcile.notify_one();
            }
            other => {
                tracing::trace!(account = %self.account, event = ?other, "Push needs no action.")
            }
        }
    }

    async fn on_order(&self, mut ev: OrderEvent) {
        if ev.status == EventStatus::Paid && !self.known_as_paid(&ev.order_id).await {
            if let Err(e) = complete_paid(&self.mtop, &mut ev).await {
                // See `complete_paid`: never deliver on a guess; the sold-order pass retries.
                tracing::warn!(account = %self.account, order_id = %ev.order_id, error = %e, "Order detail unavailable; leaving the paid order to reconciliation.");
                self.reconcile.notify_one();
                return;
            }
        }
        let (order_id, status) = (ev.order_id.clone(), ev.status);
        match self.runner.ingest(ev).await {
            Ok(outcome) => {
                tracing::debug!(account = %self.account, order_id = %order_id, status = status.as_str(), decision = ?outcome.decision, "Order event ingested.");
            }
            // A full disk was reported once by the store; reconciliation brings the event back.
            Err(e) if e.is_unavailable() => {}
            Err(e) => {
                tracing::error!(account = %self.account, order_id = %order_id, error = %e, "Order event could not be ingested.");
            }
        }
    }

    /// A store error reads as "not known": the detail is read and ingest decides (and
    /// reports the store error if it persists).
    async fn known_as_paid(&self, order_id: &str) -> bool {
        is_known_paid(self.runner.store(), order_id)
            .await
            .unwrap_or(false)
    }
}

/// A chat-related push as the chat pipeline sees it.
fn chat_input(account: &str, event: DecodedEvent) -> Option<ChatInput> {
    let input = |cid: String, sender: String, id: String, kind| ChatInput {
        account: account.to_string(),
        cid,
        message_id: id,
        sender_id: sender,
        sender_nick: None,
        item_id: None,
        text: String::new(),
        sent_at: None,
        kind,
    };
    Some(match event {
        DecodedEvent::Chat {
            cid,
            sender_id,
            message_id,
            text,
            item_id,
            own,
            sender_nick,
            sent_at_ms,
        } => ChatInput {
            item_id,
            text,
            sender_nick,
            sent_at: sent_at_ms,
            ..input(
                cid,
                sender_id,
                message_id,
                if own {
                    InputKind::Own
                } else {
                    InputKind::Buyer
                },
            )
        },
        DecodedEvent::Typing { cid, user_id } => {
            input(cid, user_id, String::new(), InputKind::Typing)
        }
        DecodedEvent::ReadReceipt {
            cid, message_id, ..
        } => input(cid, String::new(), message_id, InputKind::ReadReceipt),
        _ => return None,
    })
}
