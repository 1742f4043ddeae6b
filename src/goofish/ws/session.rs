//! The connection loop of one account: a session is token → dial → `/reg` → sync → serve
//! (ACK and decode pushes, heartbeat, watch token and cookies) → end; the next session starts
//! after a jittered backoff, or waits while the login is dead.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use super::conn::{AbortOnDrop, Conn, INBOUND_FRAMES, Inbound, Ws, read_loop};
use super::frames::{ack_for, needs_resync, reason_of, reg_user_agent, strip_handle};
use super::send::ImHandle;
use super::{ImEvent, ImSettings, SessionEnd, Shared, WsError};
use crate::clock::now_ms;
use crate::goofish::decode::PushDecoder;
use crate::goofish::mtop::{MtopClient, MtopError};
use crate::goofish::sign::IM_APP_KEY;
use crate::health::{self, Connection};

/// Answer time for `/reg` and sync requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// yd's read limit (reference §4.1).
const MAX_FRAME: usize = 8 << 20;

/// The connection loop of one account.
pub struct ImClient {
    mtop: Arc<MtopClient>,
    settings: ImSettings,
    shared: Arc<Shared>,
    /// The status page's view of this connection.
    registry: health::Health,
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
        ImHandle::new(self.shared.clone(), self.settings.send_timeout)
    }

    /// Keep a connection alive until `shutdown`, reporting to `events`.
    pub async fn run(&self, events: mpsc::Sender<ImEvent>, shutdown: CancellationToken) {
        let account = self.shared.account.clone();
        let mut failures = 0u32;
        let mut first = true;
        // The token the last session registered with, to notice a token change.
        let mut registered_with: Option<String> = None;
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
                r = self.session(&events, &shutdown, &mut registered_with) => r,
                _ = shutdown.cancelled() => Ok(SessionEnd::Shutdown),
            };
            if !matches!(result, Ok(SessionEnd::Shutdown)) {
                self.report(Connection::Disconnected);
            }
            if let Err(e) = &result {
                self.registry
                    .record_connection_failure(&account, e.failure(), now_ms());
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
                Err(WsError::Mtop(MtopError::TokenPaused { until })) => {
                    if !self.wait_out_token_pause(until, &shutdown).await {
                        break;
                    }
                }
                Err(WsError::Mtop(e)) if e.is_blocking() => {
                    if !self.wait_for_login(&e, &shutdown).await {
                        break;
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

    /// Too many token fetches this hour: the supervisor alerts once; nothing is fetched until
    /// the pause ends or the seller pastes fresh cookies. `false` when shutdown came first.
    async fn wait_out_token_pause(&self, until: Instant, shutdown: &CancellationToken) -> bool {
        tracing::warn!(account = %self.shared.account, "IM token fetches paused for hours; the connection waits.");
        self.report(Connection::Paused);
        let mut generation = self.mtop.watch_generation();
        generation.borrow_and_update();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep_until(until) => true,
            _ = generation.changed() => true,
        }
    }

    /// No cached token and the login is dead: the supervisor alerts; wait for fresh cookies
    /// (or a risk-control probe) instead of retrying. `false` when shutdown came first.
    async fn wait_for_login(&self, error: &MtopError, shutdown: &CancellationToken) -> bool {
        tracing::warn!(account = %self.shared.account, error = %error, "IM connection waits for the login to be fixed.");
        self.report(Connection::Paused);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = self.mtop.wait_usable() => true,
        }
    }

    fn report(&self, state: Connection) {
        self.registry
            .set_connection(&self.shared.account, state, now_ms());
    }

    /// One connection from dial to end. `registered_with` is the token of the previous
    /// registration; a different one is a token change, which the silence watchdog watches.
    async fn session(
        &self,
        events: &mpsc::Sender<ImEvent>,
        shutdown: &CancellationToken,
        registered_with: &mut Option<String>,
    ) -> Result<SessionEnd, WsError> {
        let mut generation = self.mtop.watch_generation();
        generation.borrow_and_update();
        let token = self.mtop.im_token().await?;
        let token_changed = registered_with
            .replace(token.access_token.clone())
            .is_some_and(|before| before != token.access_token);
        let (user_id, device_id) = match (self.mtop.user_id(), self.mtop.device_id()) {
            (Some(u), Some(d)) => (u, d),
            _ => return Err(MtopError::NoCookies("cookies not loaded".into()).into()),
        };
        let ws = self.dial().await?;
        let (sink, stream) = ws.split();
        let conn = Arc::new(Conn::new(sink, user_id));
        let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_FRAMES);
        let reader = AbortOnDrop(tokio::spawn(read_loop(stream, conn.clone(), inbound_tx)));
        let result = async {
            self.register(&conn, &token.access_token, &device_id)
                .await?;
            sync_state(&conn).await;
            self.mtop.confirm_login();
            self.shared.live.send_replace(Some(conn.clone()));
            tracing::info!(account = %self.shared.account, "IM connected.");
            self.report(Connection::Connected);
            let _ = events.send(ImEvent::Connected).await;
            let ctx = Serving {
                conn: &conn,
                events,
                settings: &self.settings,
                account: &self.shared.account,
                registry: &self.registry,
                token_changed,
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
    events: &'a mpsc::Sender<ImEvent>,
    settings: &'a ImSettings,
    account: &'a str,
    registry: &'a health::Health,
    /// This session registered with a different token than the one before.
    token_changed: bool,
}

impl Serving<'_> {
    async fn serve(
        &self,
        inbound: &mut mpsc::Receiver<Inbound>,
        refresh_at: Instant,
        generation: &mut watch::Receiver<u64>,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, WsError> {
        let mut heartbeat = tokio::time::interval_at(
            crate::clock::instant_after(self.settings.heartbeat),
            self.settings.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting: Option<(oneshot::Receiver<Value>, Instant)> = None;
        let patience = heartbeat_patience(self.settings.heartbeat);
        let mut last_business = Instant::now();
        let mut silence = self.silence_limit(false);
        let mut watching_cookies = true;
        let mut decoder = PushDecoder::new();
        loop {
            let zombie_at = last_business + silence;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
                _ = tokio::time::sleep_until(refresh_at) => return Ok(SessionEnd::TokenRefresh),
                changed = generation.changed(), if watching_cookies => {
                    if changed.is_ok() {
                        return Ok(SessionEnd::CookiesChanged);
                    }
                    watching_cookies = false;
                }
                _ = tokio::time::sleep_until(zombie_at) => return Err(WsError::Zombie(silence)),
                _ = heartbeat.tick() => {
                    awaiting = check_heartbeat(awaiting, patience)?;
                    if awaiting.is_none() {
                        awaiting = Some((self.conn.send_heartbeat().await?, Instant::now()));
                    }
                }
                msg = inbound.recv() => match msg {
                    Some(Inbound::Push(frame)) => {
                        if self.handle_push(&mut decoder, &frame).await? {
                            last_business = Instant::now();
                            silence = self.silence_limit(true);
                            self.registry.record_business_message(self.account, now_ms());
                        }
                    }
                    Some(Inbound::End(reason)) => return Err(WsError::Closed(reason)),
                    None => return Err(WsError::Closed("reader stopped".into())),
                },
            }
        }
    }

    /// How long business silence may last before the session is called a zombie. Answered
    /// heartbeats prove the socket alive, and a quiet shop is quiet: no real client reconnects
    /// it every few minutes. The zombie that does happen (zn PR #290: heartbeats answered, no
    /// pushes) follows a token change, so only then is `watchdog` short; once a push proves
    /// the session, or without a token change, only `idle_reconnect` (hours) applies.
    fn silence_limit(&self, proven: bool) -> Duration {
        if self.token_changed && !proven {
            self.settings.watchdog
        } else {
            self.settings.idle_reconnect
        }
    }

    /// ACK, then act. Returns whether this was a business push (for the zombie watchdog).
    async fn handle_push(&self, decoder: &mut PushDecoder, frame: &Value) -> Result<bool, WsError> {
        let lwp = frame.get("lwp").and_then(Value::as_str).unwrap_or_default();
        // ACK everything the server pushes; zn reports disconnects without (reference §4.6).
        let acked = self.conn.write(&ack_for(frame)).await;
        // The server closes right after these, so the ACK may fail; the reason still counts.
        match lwp {
            "/push/kickout" => return Err(WsError::Kickout),
            "/s/session/remove" => return Err(WsError::SessionRemoved),
            _ => {}
        }
        if let Err(e) = acked {
            return Err(WsError::Closed(format!("ACK failed: {}", e.reason())));
        }
        match lwp {
            l if l.starts_with("/s/") => {}
            other => {
                tracing::debug!(lwp = %other, "Unhandled server frame acknowledged.");
                return Ok(false);
            }
        }
        if needs_resync(frame) {
            let conn = self.conn.clone();
            tokio::spawn(async move { sync_state(&conn).await });
        }
        match decoder.decode_frame(frame, Some(&self.conn.user_id)) {
            Ok(events) => {
                for event in events {
                    let _ = self.events.send(ImEvent::Push(event)).await;
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
/// server does not answer `getState`, the bots' blind `ackDiff` with `pts = now` (§4.4). The
/// `ackDiff` answer is not waited for: the Go client that follows the official web client
/// sends no `ackDiff` after `/reg` at all, and shaxiu/cvcat never read its answer, so a missing
/// or late one must not end a working session. A write that fails shows as a closed socket.
async fn sync_state(conn: &Arc<Conn>) {
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
    let conn = conn.clone();
    tokio::spawn(async move {
        let ack = conn.request(
            "/r/SyncStatus/ackDiff",
            json!({}),
            Some(json!([body])),
            REQUEST_TIMEOUT,
        );
        if let Err(e) = ack.await {
            tracing::debug!(error = ?e, "ackDiff not answered; the session goes on.");
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let max = Duration::from_secs(90);
        for n in 1..40 {
            let b = backoff(n, max);
            let base = FIRST_BACKOFF.saturating_mul(1 << (n - 1).min(16)).min(max);
            assert!(b >= base && b <= base.mul_f64(1.3), "{n}: {b:?}");
        }
    }
}
