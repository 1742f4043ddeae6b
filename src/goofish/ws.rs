//! The IM WebSocket ("LWP" over DingTalk IMPaaS): register, sync, heartbeat, ACK, decode,
//! reconnect — and sending chat messages over the live connection.
//!
//! [`ImClient::run`] keeps one connection per account alive until shutdown. A connection is
//! a session: fetch (or reuse) the IM token through mtop, dial with browser headers, `/reg`,
//! `getState` + `ackDiff`, then serve pushes (ACK every push, decode **every** item of
//! `syncPushPackage.data`) while a heartbeat is sent every `heartbeat` and its reply checked.
//! A session ends on a lost heartbeat, a closed socket, `/push/kickout`,
//! `/s/session/remove`, a zombie connection (heartbeats answered but no business push for
//! `watchdog`), a due token refresh or new cookies; the next one starts after an exponential,
//! jittered backoff. While mtop says the login is dead, no connection is attempted at all.
//!
//! [`ImHandle`] is the sending side used by the marketplace: a send that never left is
//! [`SendOutcome::NotDelivered`], one whose answer never came is [`SendOutcome::Unknown`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::decode::{self, Decoded};
use super::mtop::{MtopClient, MtopError};
use super::sign::{self, IM_APP_KEY};
use crate::clock::Clock;
use crate::config::MarketplaceConfig;
use crate::health::{self, Connection};
use crate::marketplace::SendOutcome;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Suffix of IM user and conversation handles.
const HANDLE: &str = "@goofish";
/// Answer time for `/reg`, sync and conversation requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Poll step while a planned reconnect waits for answers in flight.
const DRAIN_STEP: Duration = Duration::from_millis(50);
/// yd's read limit (reference §4.1).
const MAX_FRAME: usize = 8 << 20;

/// What a connection reports to its account supervisor.
#[derive(Debug, Clone)]
pub enum ImEvent {
    /// Registered and synced: a good moment to reconcile (pushes may have been missed).
    Connected,
    /// One decoded push item.
    Push(Decoded),
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error(transparent)]
    Mtop(#[from] MtopError),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("/reg refused (code {code}): {reason}")]
    RegRefused { code: i64, reason: String },
    #[error("no answer to {0}")]
    NoAnswer(&'static str),
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("heartbeat not answered within {0:?}")]
    HeartbeatLost(Duration),
    #[error("zombie connection: heartbeats answered but no push for {0:?}")]
    Zombie(Duration),
    #[error("kicked out by the server (/push/kickout)")]
    Kickout,
    #[error("session removed by the server (/s/session/remove)")]
    SessionRemoved,
}

impl WsError {
    /// The token may be the problem: fetch a new one before the next attempt.
    fn distrusts_token(&self) -> bool {
        match self {
            Self::RegRefused { code, .. } => (400..500).contains(code),
            Self::Kickout => true,
            _ => false,
        }
    }
}

/// A session that ended without an error.
enum SessionEnd {
    Shutdown,
    TokenRefresh,
    CookiesChanged,
}

/// Why a request got no usable answer.
#[derive(Debug)]
enum RequestError {
    /// Provably never written to the socket.
    NotSent(String),
    /// Written (or possibly written); the answer did not come.
    NoAnswer(String),
}

/// Timings of the IM connection, from `marketplace:`.
#[derive(Debug, Clone)]
pub struct ImSettings {
    pub ws_url: String,
    pub heartbeat: Duration,
    pub watchdog: Duration,
    pub send_timeout: Duration,
    pub reconnect_max: Duration,
}

impl ImSettings {
    pub fn from_config(m: &MarketplaceConfig) -> Self {
        Self {
            ws_url: m.ws_url.clone(),
            heartbeat: m.heartbeat,
            watchdog: m.watchdog,
            send_timeout: m.send_timeout,
            reconnect_max: m.reconnect_max,
        }
    }
}

/// State shared between the connection loop and senders.
struct Shared {
    account: String,
    live: watch::Sender<Option<Arc<Conn>>>,
}

/// The connection loop of one account.
pub struct ImClient {
    mtop: Arc<MtopClient>,
    settings: ImSettings,
    shared: Arc<Shared>,
    /// The status page's view of this connection.
    registry: health::Health,
}

/// The sending side of an account's connection; cheap to clone.
#[derive(Clone)]
pub struct ImHandle {
    shared: Arc<Shared>,
    send_timeout: Duration,
}

impl ImClient {
    pub fn new(mtop: Arc<MtopClient>, settings: ImSettings, registry: health::Health) -> Self {
        let (live, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            account: mtop.account().to_string(),
            live,
        });
        Self {
            mtop,
            settings,
            shared,
            registry,
        }
    }

    pub fn handle(&self) -> ImHandle {
        ImHandle {
            shared: self.shared.clone(),
            send_timeout: self.settings.send_timeout,
        }
    }

    /// Keep a connection alive until `shutdown`, reporting to `events`.
    pub async fn run(&self, events: mpsc::UnboundedSender<ImEvent>, shutdown: CancellationToken) {
        let account = self.shared.account.clone();
        let mut failures = 0u32;
        let mut first = true;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if std::mem::take(&mut first) {
                self.report(Connection::Connecting);
            } else {
                self.registry.record_reconnect(&account, now_ms());
            }
            let started = Instant::now();
            // Shutdown also interrupts a session that is still dialling or registering.
            let result = tokio::select! {
                r = self.session(&events, &shutdown) => r,
                _ = shutdown.cancelled() => Ok(SessionEnd::Shutdown),
            };
            if !matches!(result, Ok(SessionEnd::Shutdown)) {
                self.report(Connection::Disconnected);
            }
            match result {
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::TokenRefresh) => {
                    tracing::info!(account = %account, "IM token due for refresh; reconnecting.");
                    self.mtop.invalidate_im_token();
                    failures = 0;
                    continue;
                }
                Ok(SessionEnd::CookiesChanged) => {
                    tracing::info!(account = %account, "New cookies; reconnecting with a fresh token.");
                    failures = 0;
                    continue;
                }
                Err(WsError::Mtop(e)) if e.is_blocking() => {
                    // No cached token and the login is dead: the supervisor alerts; wait for
                    // fresh cookies (or a risk-control probe) instead of retrying.
                    tracing::warn!(account = %account, error = %e, "IM connection waits for the login to be fixed.");
                    self.report(Connection::Paused);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.mtop.wait_usable() => {}
                    }
                }
                Err(e) => {
                    if e.distrusts_token() {
                        self.mtop.invalidate_im_token();
                    }
                    if started.elapsed() >= STABLE_SESSION {
                        failures = 0;
                    }
                    failures += 1;
                    let wait = backoff(failures, self.settings.reconnect_max);
                    tracing::warn!(account = %account, error = %e, retry_in = ?wait, "IM connection down; reconnecting.");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        self.report(Connection::Disconnected);
    }

    fn report(&self, state: Connection) {
        self.registry
            .set_connection(&self.shared.account, state, now_ms());
    }

    /// One connection from dial to end.
    async fn session(
        &self,
        events: &mpsc::UnboundedSender<ImEvent>,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, WsError> {
        let mut generation = self.mtop.watch_generation();
        generation.borrow_and_update();
        let token = self.mtop.im_token().await?;
        let (user_id, device_id) = match (self.mtop.user_id(), self.mtop.device_id()) {
            (Some(u), Some(d)) => (u, d),
            _ => return Err(MtopError::NoCookies("cookies not loaded".into()).into()),
        };
        let ws = self.dial().await?;
        let (sink, stream) = ws.split();
        let conn = Arc::new(Conn::new(sink, user_id));
        let (inbound_tx, mut inbound) = mpsc::unbounded_channel();
        let reader = AbortOnDrop(tokio::spawn(read_loop(stream, conn.clone(), inbound_tx)));
        let result = async {
            self.register(&conn, &token.access_token, &device_id)
                .await?;
            sync_state(&conn).await?;
            self.shared.live.send_replace(Some(conn.clone()));
            tracing::info!(account = %self.shared.account, "IM connected.");
            self.report(Connection::Connected);
            let _ = events.send(ImEvent::Connected);
            let ctx = Serving {
                conn: &conn,
                events,
                settings: &self.settings,
                account: &self.shared.account,
                registry: &self.registry,
            };
            ctx.serve(&mut inbound, token.refresh_at, &mut generation, shutdown)
                .await
        }
        .await;
        self.shared.live.send_replace(None);
        if result.is_ok() {
            // A planned end (token refresh, new cookies, shutdown): the socket still works,
            // so let sends in flight get their answer instead of becoming "unknown".
            conn.drain(self.settings.send_timeout).await;
        }
        conn.fail_pending();
        drop(reader);
        conn.close().await;
        result
    }

    async fn dial(&self) -> Result<Ws, WsError> {
        let mut request = self
            .settings
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| WsError::Connect(e.to_string()))?;
        let headers = request.headers_mut();
        let mut put = |name: &'static str, value: &str, secret: bool| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(secret);
                headers.insert(name, v);
            }
        };
        put("Origin", "https://www.goofish.com", false);
        put("User-Agent", self.mtop.user_agent(), false);
        put("Pragma", "no-cache", false);
        put("Cache-Control", "no-cache", false);
        put("Accept-Language", "zh-CN,zh;q=0.9", false);
        if let Some(cookie) = self.mtop.cookie_header() {
            put("Cookie", &cookie, true);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        // TCP_NODELAY: an ACK followed at once by a delivery frame must not wait for Nagle
        // (measured: ~40 ms per delivery otherwise).
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(WsError::Connect(e.to_string())),
            Err(_) => Err(WsError::Connect(format!(
                "no handshake within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// `/reg` (reference §4.3); waits for the answer.
    async fn register(&self, conn: &Conn, token: &str, device_id: &str) -> Result<(), WsError> {
        let headers = json!({
            "cache-header": "app-key token ua wv",
            "app-key": IM_APP_KEY,
            "token": token,
            "ua": reg_user_agent(self.mtop.user_agent()),
            "dt": "j",
            "wv": "im:3,au:3,sy:6",
            "sync": "0,0;0;0;",
            "did": device_id,
        });
        let answer = conn
            .request("/reg", headers, None, REQUEST_TIMEOUT)
            .await
            .map_err(|_| WsError::NoAnswer("/reg"))?;
        let code = answer.get("code").and_then(Value::as_i64).unwrap_or(0);
        if code != 200 {
            return Err(WsError::RegRefused {
                code,
                reason: reason_of(&answer).unwrap_or_else(|| "no reason given".into()),
            });
        }
        let uid = answer.pointer("/headers/reg-uid").and_then(Value::as_str);
        if let Some(uid) = uid.filter(|u| strip_handle(u) != conn.user_id) {
            tracing::warn!(account = %self.shared.account, reg_uid = %uid, "The IM server registered a different user than the cookies name.");
        }
        Ok(())
    }
}

/// The serving phase of a session.
struct Serving<'a> {
    conn: &'a Arc<Conn>,
    events: &'a mpsc::UnboundedSender<ImEvent>,
    settings: &'a ImSettings,
    account: &'a str,
    registry: &'a health::Health,
}

impl Serving<'_> {
    async fn serve(
        &self,
        inbound: &mut mpsc::UnboundedReceiver<Inbound>,
        refresh_at: Instant,
        generation: &mut watch::Receiver<u64>,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, WsError> {
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + self.settings.heartbeat,
            self.settings.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting: Option<(oneshot::Receiver<Value>, Instant)> = None;
        let patience = heartbeat_patience(self.settings.heartbeat);
        let mut last_business = Instant::now();
        let mut watching_cookies = true;
        loop {
            let zombie_at = last_business + self.settings.watchdog;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
                _ = tokio::time::sleep_until(refresh_at) => return Ok(SessionEnd::TokenRefresh),
                changed = generation.changed(), if watching_cookies => {
                    if changed.is_ok() {
                        return Ok(SessionEnd::CookiesChanged);
                    }
                    watching_cookies = false;
                }
                _ = tokio::time::sleep_until(zombie_at) => {
                    return Err(WsError::Zombie(self.settings.watchdog));
                }
                _ = heartbeat.tick() => {
                    awaiting = check_heartbeat(awaiting, patience)?;
                    if awaiting.is_none() {
                        awaiting = Some((self.conn.send_heartbeat().await?, Instant::now()));
                    }
                }
                msg = inbound.recv() => match msg {
                    Some(Inbound::Push { text, frame }) => {
                        if self.handle_push(&text, &frame).await? {
                            last_business = Instant::now();
                            self.registry.record_business_message(self.account, now_ms());
                        }
                    }
                    Some(Inbound::End(reason)) => return Err(WsError::Closed(reason)),
                    None => return Err(WsError::Closed("reader stopped".into())),
                },
            }
        }
    }

    /// ACK, then act. Returns whether this was a business push (for the zombie watchdog).
    async fn handle_push(&self, text: &str, frame: &Value) -> Result<bool, WsError> {
        let lwp = frame.get("lwp").and_then(Value::as_str).unwrap_or_default();
        // ACK everything the server pushes; zn reports disconnects without (reference §4.6).
        if let Err(e) = self.conn.write(&ack_for(frame)).await {
            return Err(WsError::Closed(format!("ACK failed: {}", e.reason())));
        }
        match lwp {
            "/push/kickout" => return Err(WsError::Kickout),
            "/s/session/remove" => return Err(WsError::SessionRemoved),
            l if l.starts_with("/s/") => {}
            other => {
                tracing::debug!(lwp = %other, "Unhandled server frame acknowledged.");
                return Ok(false);
            }
        }
        if needs_resync(frame) {
            let conn = self.conn.clone();
            tokio::spawn(async move {
                if let Err(e) = sync_state(&conn).await {
                    tracing::debug!(error = %e, "Background re-sync failed.");
                }
            });
        }
        match decode::decode_frame(text, Some(&self.conn.user_id)) {
            Ok(items) => {
                for item in items {
                    let _ = self.events.send(ImEvent::Push(item));
                }
            }
            Err(e) => tracing::debug!(lwp = %lwp, error = %e, "Push without decodable items."),
        }
        Ok(true)
    }
}

/// How long a heartbeat may stay unanswered: the interval plus five seconds (shaxiu's
/// default, reference §4.5), so a slow but live server is not mistaken for a dead one.
fn heartbeat_patience(interval: Duration) -> Duration {
    interval + Duration::from_secs(5)
}

/// The outstanding heartbeat: answered (→ `None`, send the next), still within `patience`
/// (→ keep waiting), or lost.
fn check_heartbeat(
    awaiting: Option<(oneshot::Receiver<Value>, Instant)>,
    patience: Duration,
) -> Result<Option<(oneshot::Receiver<Value>, Instant)>, WsError> {
    let Some((mut rx, sent)) = awaiting else {
        return Ok(None);
    };
    match rx.try_recv() {
        Ok(_) => Ok(None),
        Err(oneshot::error::TryRecvError::Empty) if sent.elapsed() < patience => {
            Ok(Some((rx, sent)))
        }
        Err(oneshot::error::TryRecvError::Empty) => Err(WsError::HeartbeatLost(patience)),
        Err(oneshot::error::TryRecvError::Closed) => Err(WsError::Closed("connection lost".into())),
    }
}

/// `getState` then `ackDiff` with what it returned (gc: mandatory to receive pushes); if the
/// server does not answer `getState`, the bots' blind `ackDiff` with `pts = now` (§4.4).
async fn sync_state(conn: &Conn) -> Result<(), WsError> {
    let state = conn
        .request(
            "/r/SyncStatus/getState",
            json!({}),
            Some(json!([{"topic": "sync"}])),
            REQUEST_TIMEOUT,
        )
        .await
        .ok()
        .filter(|a| a.get("code").and_then(Value::as_i64) == Some(200))
        .and_then(|a| a.get("body").cloned())
        .filter(Value::is_object);
    let body = state.unwrap_or_else(|| {
        let now = now_ms();
        json!({"pipeline": "sync", "tooLong2Tag": "PNM,1", "channel": "sync", "topic": "sync",
               "highPts": 0, "pts": now * 1000, "seq": 0, "timestamp": now})
    });
    conn.request(
        "/r/SyncStatus/ackDiff",
        json!({}),
        Some(json!([body])),
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|_| WsError::NoAnswer("/r/SyncStatus/ackDiff"))?;
    Ok(())
}

/// yd re-syncs when a push carries `syncExtraType.type` 1 or 2.
fn needs_resync(frame: &Value) -> bool {
    matches!(
        frame
            .pointer("/body/syncExtraType/type")
            .and_then(Value::as_i64),
        Some(1 | 2)
    )
}

/// `{code:200, headers:{mid, sid, app-key?, ua?, dt?}}` (reference §4.6).
fn ack_for(frame: &Value) -> Value {
    let headers = frame.get("headers");
    let get = |k: &str| headers.and_then(|h| h.get(k)).cloned();
    let mut out = serde_json::Map::new();
    out.insert("mid".into(), get("mid").unwrap_or_else(|| json!("")));
    out.insert("sid".into(), get("sid").unwrap_or_else(|| json!("")));
    for key in ["app-key", "ua", "dt"] {
        if let Some(v) = get(key) {
            out.insert(key.into(), v);
        }
    }
    json!({"code": 200, "headers": out})
}

/// Stops the reader task however the session ends (also when its future is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Frames the reader hands to the session.
enum Inbound {
    Push { text: String, frame: Value },
    End(String),
}

/// Reads frames: answers go to their waiting request, pushes to the session.
async fn read_loop(
    mut stream: SplitStream<Ws>,
    conn: Arc<Conn>,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let end = loop {
        let text = match stream.next().await {
            None => break "server closed the connection".to_string(),
            Some(Err(e)) => break e.to_string(),
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            Some(Ok(Message::Close(frame))) => {
                break frame.map_or("close frame".into(), |f| {
                    format!("close frame: {}", f.reason)
                });
            }
            Some(Ok(_)) => continue,
        };
        let frame: Value = match serde_json::from_str(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                tracing::warn!(
                    bytes = text.len(),
                    "IM frame is not a JSON object; ignored."
                );
                continue;
            }
        };
        let is_push = frame
            .get("lwp")
            .and_then(Value::as_str)
            .is_some_and(|l| !l.is_empty());
        if is_push {
            if inbound.send(Inbound::Push { text, frame }).is_err() {
                return;
            }
        } else {
            conn.resolve(frame);
        }
    };
    let _ = inbound.send(Inbound::End(end));
}

/// One live connection: the write half and the requests waiting for answers.
struct Conn {
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    user_id: String,
}

/// Why a write failed, and whether the frame may have left anyway.
enum WriteError {
    Failed(String),
    TimedOut,
}

impl WriteError {
    fn reason(&self) -> String {
        match self {
            Self::Failed(e) => e.clone(),
            Self::TimedOut => format!("write not finished within {WRITE_TIMEOUT:?}"),
        }
    }
}

impl Conn {
    fn new(sink: SplitSink<Ws, Message>, user_id: String) -> Self {
        Self {
            sink: tokio::sync::Mutex::new(sink),
            pending: Mutex::new(HashMap::new()),
            user_id,
        }
    }

    async fn write(&self, frame: &Value) -> Result<(), WriteError> {
        let text = frame.to_string();
        let mut sink = self.sink.lock().await;
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Failed(e.to_string())),
            Err(_) => Err(WriteError::TimedOut),
        }
    }

    /// Register interest in the answer to `mid` before the request is written.
    fn expect(&self, mid: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(sign::mid_key(mid).to_string(), tx);
        rx
    }

    fn forget(&self, mid: &str) {
        self.lock().remove(sign::mid_key(mid));
    }

    /// Send a request and wait for the answer with the same mid.
    async fn request(
        &self,
        lwp: &str,
        mut headers: Value,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RequestError> {
        let mid = new_mid();
        if let Some(h) = headers.as_object_mut() {
            h.insert("mid".into(), json!(mid));
        }
        let mut frame = json!({"lwp": lwp, "headers": headers});
        if let Some(body) = body {
            frame["body"] = body;
        }
        let answer = self.expect(&mid);
        match self.write(&frame).await {
            Ok(()) => {}
            Err(WriteError::Failed(e)) => {
                self.forget(&mid);
                return Err(RequestError::NotSent(e));
            }
            Err(WriteError::TimedOut) => {
                self.forget(&mid);
                return Err(RequestError::NoAnswer("the write did not finish".into()));
            }
        }
        let result = tokio::time::timeout(timeout, answer).await;
        self.forget(&mid);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(RequestError::NoAnswer(
                "connection lost before the answer".into(),
            )),
            Err(_) => Err(RequestError::NoAnswer(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }

    /// Write a heartbeat; the returned receiver completes when it is answered.
    async fn send_heartbeat(&self) -> Result<oneshot::Receiver<Value>, WsError> {
        let mid = new_mid();
        let answer = self.expect(&mid);
        self.write(&json!({"lwp": "/!", "headers": {"mid": mid}}))
            .await
            .map_err(|e| WsError::Closed(format!("heartbeat write failed: {}", e.reason())))?;
        Ok(answer)
    }

    fn resolve(&self, frame: Value) {
        let Some(mid) = frame.pointer("/headers/mid").and_then(Value::as_str) else {
            return;
        };
        let waiter = self.lock().remove(sign::mid_key(mid));
        match waiter {
            Some(tx) => {
                let _ = tx.send(frame);
            }
            None => tracing::debug!("IM answer for an unknown or expired request."),
        }
    }

    /// Wait (bounded) until no request waits for an answer. New sends no longer find this
    /// connection; the short first pause covers one that picked it up just before.
    async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        tokio::time::sleep(DRAIN_STEP).await;
        while !self.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_STEP).await;
        }
    }

    /// Wake every waiter with "connection lost".
    fn fail_pending(&self) {
        self.lock().clear();
    }

    async fn close(&self) {
        let mut sink = self.sink.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ImHandle {
    /// Whether a registered connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.live.borrow().is_some()
    }

    /// Wait (up to the send timeout) for a registered connection.
    async fn connection(&self) -> Option<Arc<Conn>> {
        let mut rx = self.shared.live.subscribe();
        let wait = rx.wait_for(Option::is_some);
        match tokio::time::timeout(self.send_timeout, wait).await {
            Ok(Ok(conn)) => conn.clone(),
            _ => None,
        }
    }

    /// Send a text message to `cid`, addressed to `peer` and ourselves (reference §6.1).
    pub async fn send_text(&self, cid: &str, peer: &str, text: &str) -> SendOutcome {
        let Some(conn) = self.connection().await else {
            return SendOutcome::NotDelivered {
                reason: format!("IM not connected within {:?}", self.send_timeout),
            };
        };
        let body = send_body(cid, peer, &conn.user_id, text, now_ms());
        let answer = conn
            .request(
                "/r/MessageSend/sendByReceiverScope",
                json!({}),
                Some(body),
                self.send_timeout,
            )
            .await;
        match answer {
            Ok(frame) => send_outcome(&frame),
            Err(RequestError::NotSent(reason)) => SendOutcome::NotDelivered {
                reason: format!("not sent: {reason}"),
            },
            Err(RequestError::NoAnswer(reason)) => SendOutcome::Unknown {
                reason: format!("sent, but {reason}"),
            },
        }
    }

    /// Open (or find) the single chat with `peer` about `item_id`; returns the bare cid.
    pub async fn create_conversation(
        &self,
        peer: &str,
        item_id: Option<&str>,
    ) -> Result<String, String> {
        let conn = self
            .connection()
            .await
            .ok_or_else(|| "IM not connected".to_string())?;
        let mut spec = json!({
            "pairFirst": format!("{peer}{HANDLE}"),
            "pairSecond": format!("{}{HANDLE}", conn.user_id),
            "bizType": "1",
            "ctx": {"appVersion": "1.0", "platform": "web"},
        });
        if let Some(item) = item_id {
            spec["extension"] = json!({"itemId": item});
        }
        let answer = conn
            .request(
                "/r/SingleChatConversation/create",
                json!({}),
                Some(json!([spec])),
                self.send_timeout,
            )
            .await
            .map_err(|e| match e {
                RequestError::NotSent(r) | RequestError::NoAnswer(r) => {
                    format!("conversation not created: {r}")
                }
            })?;
        conversation_cid(&answer).ok_or_else(|| {
            let code = answer.get("code").and_then(Value::as_i64).unwrap_or(0);
            let why = reason_of(&answer).unwrap_or_default();
            format!("conversation not created (code {code}) {why}")
                .trim_end()
                .to_string()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested)
// ---------------------------------------------------------------------------------------------

fn now_ms() -> u64 {
    crate::clock::SystemClock.now_ms()
}

fn new_mid() -> String {
    sign::generate_mid(&mut rand::rng(), now_ms())
}

fn strip_handle(s: &str) -> &str {
    s.strip_suffix(HANDLE).unwrap_or(s)
}

/// Exponential from one second, capped, plus 0–30 % jitter so accounts do not reconnect in
/// step (zn's fix for reconnect storms, reference §8.5).
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(max);
    let jitter = rand::rng().random_range(0.0..0.3);
    base.mul_f64(1.0 + jitter)
}

/// The `/reg` `ua`: the browser UA plus the DingTalk web-client suffix (reference §4.3).
fn reg_user_agent(browser: &str) -> String {
    let chrome = browser
        .split_whitespace()
        .find(|p| p.starts_with("Chrome/"))
        .unwrap_or("Chrome/146.0.0.0");
    format!(
        "{browser} DingTalk(2.1.5) OS(Windows/10) Browser({chrome}) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5"
    )
}

/// The `sendByReceiverScope` body for a text message (reference §6.1).
fn send_body(cid: &str, peer: &str, me: &str, text: &str, now_ms: u64) -> Value {
    let inner = json!({"contentType": 1, "text": {"text": text}}).to_string();
    let data = base64::engine::general_purpose::STANDARD.encode(inner);
    let cid = strip_handle(cid);
    json!([
        {
            "uuid": sign::generate_uuid(now_ms),
            "cid": format!("{cid}{HANDLE}"),
            "conversationType": 1,
            "content": {"contentType": 101, "custom": {"type": 1, "data": data}},
            "redPointPolicy": 0,
            "extension": {"extJson": "{}"},
            "ctx": {"appVersion": "1.0", "platform": "web"},
            "mtags": {},
            "msgReadStatusSetting": 1
        },
        {"actualReceivers": [format!("{}{HANDLE}", strip_handle(peer)), format!("{me}{HANDLE}")]}
    ])
}

/// Accepted only on code 200 without a rejection reason (reference §6.3).
fn send_outcome(answer: &Value) -> SendOutcome {
    let code = answer.get("code").and_then(Value::as_i64).unwrap_or(0);
    let reason = reason_of(answer);
    if code == 200 && reason.is_none() {
        let body = answer.get("body");
        let id = ["messageId", "1", "server-timestamp"]
            .iter()
            .find_map(|k| body.and_then(|b| b.get(*k)).and_then(id_text));
        return SendOutcome::Accepted { message_id: id };
    }
    SendOutcome::NotDelivered {
        reason: match reason {
            Some(r) => format!("rejected (code {code}): {r}"),
            None => format!("rejected (code {code})"),
        },
    }
}

/// A rejection reason from `body.reason` / `body.moreInfo` (and the other places yd looks).
fn reason_of(answer: &Value) -> Option<String> {
    let body = answer.get("body");
    let pick = |v: Option<&Value>, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.and_then(|b| b.get(*k)).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let reason = pick(body, &["reason", "message", "msg"])
        .or_else(|| pick(Some(answer), &["reason", "message", "msg"]))
        .or_else(|| pick(answer.get("headers"), &["reason", "error-message", "error"]))?;
    Some(match pick(body, &["moreInfo"]) {
        Some(more) => format!("{reason} ({more})"),
        None => reason,
    })
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The cid in a `SingleChatConversation/create` answer, wherever the variants put it (§4.8).
fn conversation_cid(answer: &Value) -> Option<String> {
    if answer.get("code").and_then(Value::as_i64) != Some(200) {
        return None;
    }
    let body = answer.get("body")?;
    [
        "/singleChatConversation/cid",
        "/0/singleChatConversation/cid",
        "/singleChatUserConversation/singleChatConversation/cid",
        "/data/singleChatConversation/cid",
        "/cid",
    ]
    .iter()
    .find_map(|p| body.pointer(p).and_then(id_text))
    .map(|c| strip_handle(&c).to_string())
    .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_body_matches_the_reference() {
        let body = send_body(
            "47983389096",
            "3149637063",
            "2202640918079",
            "你好\n卡密：K-1",
            1741667630548,
        );
        assert_eq!(body[0]["uuid"], "-17416676305481");
        assert_eq!(body[0]["cid"], "47983389096@goofish");
        assert_eq!(body[0]["conversationType"], 1);
        assert_eq!(body[0]["content"]["contentType"], 101);
        assert_eq!(body[0]["content"]["custom"]["type"], 1);
        assert_eq!(body[0]["extension"]["extJson"], "{}");
        assert_eq!(
            body[1]["actualReceivers"],
            json!(["3149637063@goofish", "2202640918079@goofish"])
        );
        let data = body[0]["content"]["custom"]["data"].as_str().unwrap();
        let inner: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            inner,
            json!({"contentType": 1, "text": {"text": "你好\n卡密：K-1"}})
        );
        // A cid that already carries the suffix is not doubled.
        assert_eq!(
            send_body("1@goofish", "2", "3", "x", 0)[0]["cid"],
            "1@goofish"
        );
    }

    #[test]
    fn send_outcomes() {
        assert_eq!(
            send_outcome(
                &json!({"code": 200, "headers": {"mid": "1 0"}, "body": {"messageId": "m1"}})
            ),
            SendOutcome::Accepted {
                message_id: Some("m1".into())
            }
        );
        assert_eq!(
            send_outcome(&json!({"code": 200, "headers": {}})),
            SendOutcome::Accepted { message_id: None }
        );
        let rejected = send_outcome(
            &json!({"code": 200, "body": {"reason": "CSI_FORBID", "moreInfo": "CSI_FORBID||安全拦截"}}),
        );
        assert!(
            matches!(&rejected, SendOutcome::NotDelivered { reason } if reason.contains("CSI_FORBID||安全拦截"))
        );
        assert!(matches!(
            send_outcome(&json!({"code": 400})),
            SendOutcome::NotDelivered { .. }
        ));
    }

    #[test]
    fn conversation_cid_variants() {
        let ok = |body: Value| json!({"code": 200, "body": body});
        assert_eq!(
            conversation_cid(&ok(
                json!({"singleChatConversation": {"cid": "55@goofish"}})
            ))
            .as_deref(),
            Some("55")
        );
        assert_eq!(
            conversation_cid(&ok(json!([{"singleChatConversation": {"cid": "56"}}]))).as_deref(),
            Some("56")
        );
        assert_eq!(
            conversation_cid(&ok(json!({"singleChatUserConversation": {"singleChatConversation": {"cid": "57@goofish"}}}))).as_deref(),
            Some("57")
        );
        assert_eq!(
            conversation_cid(
                &json!({"code": 400, "body": {"singleChatConversation": {"cid": "1"}}})
            ),
            None
        );
        assert_eq!(conversation_cid(&ok(json!({}))), None);
    }

    #[test]
    fn acks_copy_the_push_headers() {
        let push = json!({"lwp": "/s/sync", "headers": {"mid": "84a4001c 0", "sid": "s1", "app-key": "k", "ua": "u", "extra": "x"}});
        assert_eq!(
            ack_for(&push),
            json!({"code": 200, "headers": {"mid": "84a4001c 0", "sid": "s1", "app-key": "k", "ua": "u"}})
        );
        assert_eq!(
            ack_for(&json!({"lwp": "/s/para"})),
            json!({"code": 200, "headers": {"mid": "", "sid": ""}})
        );
        assert!(needs_resync(
            &json!({"body": {"syncExtraType": {"type": 1}}})
        ));
        assert!(!needs_resync(
            &json!({"body": {"syncExtraType": {"type": 3}}})
        ));
    }

    #[test]
    fn reg_ua_and_backoff() {
        let ua = reg_user_agent(crate::goofish::mtop::DEFAULT_USER_AGENT);
        assert!(ua.ends_with("DingTalk(2.1.5) OS(Windows/10) Browser(Chrome/146.0.0.0) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5"));
        let max = Duration::from_secs(90);
        for n in 1..40 {
            let b = backoff(n, max);
            let base = FIRST_BACKOFF.saturating_mul(1 << (n - 1).min(16)).min(max);
            assert!(b >= base && b <= base.mul_f64(1.3), "{n}: {b:?}");
        }
        assert!(matches!(
            reason_of(&json!({"code": 401, "body": {"reason": "invalid token"}})).as_deref(),
            Some("invalid token")
        ));
    }
}
