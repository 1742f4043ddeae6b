//! The read-only status page: a small hyper 1.x HTTP/1 server with Chinese HTML pages, a JSON
//! twin of each page under `/api/…`, `/healthz` and Prometheus `/metrics`.
//!
//! Routes (GET and HEAD only; anything else is 405): every page in the table of [`pages`] (one file
//! each: 首页, 待人工发货, 订单, 订单详情, 商品, 异常, 日志) at its own path and at its JSON
//! twin under `/api/…` (`/api/status` for 首页), plus `/healthz` (always open; `ok` while the
//! store can be read, else 503) and `/metrics`.
//!
//! Security: the caller binds the listener (127.0.0.1 by default in the config). [`serve`]
//! refuses a non-loopback listener without a token of at least [`MIN_TOKEN_CHARS`] characters.
//! Connection caps, timeouts and request budgets are in `conn.rs`. With a token configured, every route but
//! `/healthz` needs it, as `Authorization: Bearer …`, `?token=…` (which also sets an HttpOnly
//! cookie so links keep working without putting the token in the page) or that cookie.
//! Pages show no secrets: card keys arrive masked from the store, accounts by id and name.

pub mod logs;
pub mod proof;
pub mod snapshot;

mod conn;
mod export;
mod http;
mod page;
mod pages;
mod parts;
mod prom;
mod render;
mod route;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use minijinja::Environment;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigHandle;
use crate::health::{self, Health};
use crate::secret::SecretError;
use crate::store::Store;

use self::conn::{Admission, Lane, MAX_REQUESTS, WRITE_TIMEOUT, WriteDeadline};
use self::http::Body;
use self::logs::LogBuffer;
use self::page::Form;
use self::route::{Route, route};
use self::snapshot::Snapshots;

/// A client that has not sent its request headers by then is dropped (slow-loris); also the
/// idle timeout of a keep-alive connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The same for the reserved `/healthz` lane, which expects one short request.
const HEALTH_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// hyper's read buffer per connection (its minimum is 8 KiB).
const MAX_READ_BUFFER: usize = 16 * 1024;
/// Off loopback the token is all that stands between the internet and the shop's orders.
pub const MIN_TOKEN_CHARS: usize = 16;
/// How long shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN_COOKIE: &str = "shopd_token";

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "the status page listens on {0}, which other machines can reach; set status.token_env or status.token_file so it requires a token"
    )]
    TokenRequired(SocketAddr),
    #[error("cannot read the status page token: {0}")]
    Token(#[from] SecretError),
    #[error("the status page token is empty")]
    EmptyToken,
    #[error(
        "状态页监听在 {addr}，其他机器可以访问，访问令牌至少要 {MIN_TOKEN_CHARS} 个字符（现在只有 {chars} 个）；请换一个更长的随机令牌，例如 `openssl rand -hex 16` 的输出 (the status page listens on {addr}, reachable from other machines: its token must have at least {MIN_TOKEN_CHARS} characters, it has {chars})"
    )]
    WeakToken { addr: SocketAddr, chars: usize },
    #[error("status page listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("status page templates: {0}")]
    Template(#[from] minijinja::Error),
}

/// What the status page reads from. Cheap to clone.
#[derive(Clone)]
pub struct StatusContext {
    pub store: Store,
    pub config: ConfigHandle,
    pub health: Health,
    pub logs: LogBuffer,
}

impl StatusContext {
    /// A context over the process-wide health registry and log buffer.
    pub fn new(store: Store, config: ConfigHandle) -> Self {
        Self {
            store,
            config,
            health: health::global().clone(),
            logs: logs::global().clone(),
        }
    }

    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    pub fn with_logs(mut self, logs: LogBuffer) -> Self {
        self.logs = logs;
        self
    }
}

/// Everything a request handler needs, built once per [`serve`].
pub(crate) struct Server {
    ctx: StatusContext,
    token: Option<String>,
    snapshots: Arc<Snapshots>,
    env: Environment<'static>,
}

/// Serve the status page on `listener` until `shutdown` fires, then drain open connections
/// (at most [`DRAIN_TIMEOUT`]). The token is read from the config once, here.
pub async fn serve(
    listener: TcpListener,
    ctx: StatusContext,
    shutdown: CancellationToken,
) -> Result<(), StatusError> {
    let addr = listener.local_addr()?;
    let token = resolve_token(&ctx, addr)?;
    let server = Arc::new(Server {
        snapshots: Snapshots::new(ctx.store.clone()),
        env: render::environment()?,
        token,
        ctx,
    });
    tracing::info!(%addr, token = server.token.is_some(), "Status page listening.");
    accept_loop(listener, server, shutdown).await;
    Ok(())
}

/// A configured token is always enforced; a reachable address without one is refused.
/// The token the page will require, checked the way `serve` checks it; `run` calls this before
/// starting anything so a missing or empty token file fails the start instead of one task.
pub fn resolve_token(ctx: &StatusContext, addr: SocketAddr) -> Result<Option<String>, StatusError> {
    let token = match &ctx.config.load().status.token {
        Some(secret) => Some(secret.resolve()?),
        None => None,
    };
    if token.as_deref().is_some_and(str::is_empty) {
        return Err(StatusError::EmptyToken);
    }
    if !addr.ip().is_loopback() {
        match &token {
            None => return Err(StatusError::TokenRequired(addr)),
            Some(t) if t.chars().count() < MIN_TOKEN_CHARS => {
                return Err(StatusError::WeakToken {
                    addr,
                    chars: t.chars().count(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(token)
}

async fn accept_loop(listener: TcpListener, server: Arc<Server>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let admission = Admission::new();
    let ordinary = http1_builder(HEADER_TIMEOUT);
    let health_only = http1_builder(HEALTH_HEADER_TIMEOUT);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays.
                    tracing::warn!(error = %e, "Status page accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Over every cap: closed now, so it never waits in a queue in front of anyone else.
        let Some(slot) = admission.admit(peer.ip()) else {
            continue;
        };
        let http = match slot.lane {
            Lane::Ordinary => &ordinary,
            Lane::HealthOnly => &health_only,
        };
        let conn = Arc::new(ConnBudget {
            lane: slot.lane,
            served: AtomicU32::new(0),
        });
        let server = server.clone();
        let service = service_fn(move |req| {
            let (server, conn) = (server.clone(), conn.clone());
            async move { Ok::<_, Infallible>(handle(&server, &conn, req).await) }
        });
        let io = TokioIo::new(WriteDeadline::new(tcp, WRITE_TIMEOUT));
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("Status page connections still open after shutdown; dropping them.");
        }
    }
}

fn http1_builder(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header timeout is also the idle timeout between keep-alive requests (hyper starts it
    // whenever it waits for a request head). Requests are GETs without bodies, so a small read
    // buffer bounds what pipelined requests can queue in memory.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_READ_BUFFER);
    http
}

/// What one connection may still ask.
struct ConnBudget {
    lane: Lane,
    served: AtomicU32,
}

async fn handle(server: &Server, conn: &ConnBudget, req: Request<Incoming>) -> Response<Body> {
    let served = conn.served.fetch_add(1, Ordering::Relaxed) + 1;
    let mut resp = answer(server, conn.lane, req).await;
    let last = match conn.lane {
        Lane::HealthOnly => true,
        // An unauthenticated client gets the smallest budget: one answer, then the door.
        Lane::Ordinary => served >= MAX_REQUESTS || resp.status() == StatusCode::UNAUTHORIZED,
    };
    if last {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn answer(server: &Server, lane: Lane, req: Request<Incoming>) -> Response<Body> {
    // HEAD is a GET without the body; hyper leaves the body out.
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = http::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "只读页面：只接受 GET 请求\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let route = route(req.uri().path());
    if route == Route::Healthz {
        return healthz(server);
    }
    if lane == Lane::HealthOnly {
        return http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "状态页连接已满，请稍后再试\n",
        );
    }
    let auth = authorize(server.token.as_deref(), &req);
    if auth == Auth::Denied {
        return denied(&route);
    }
    let query = http::query_pairs(req.uri().query());
    let mut resp = match route {
        Route::Metrics => prom::metrics(server).await,
        Route::ExportOrders => export::orders_csv(server, &query).await,
        Route::Page { page, id, form } => page::answer(server, page, &id, &query, form).await,
        Route::NotFound | Route::Healthz => not_found(req.uri().path().starts_with("/api/")),
    };
    if auth == Auth::SetCookie
        && let Some(token) = &server.token
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        ))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `ok` while the store answers a read (a few counters: microseconds); 503 otherwise.
/// Open without a token, so it says nothing else.
fn healthz(server: &Server) -> Response<Body> {
    match server.ctx.store.change_mark() {
        Ok(_) => http::text(StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "Health check cannot read the store.");
            http::text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Open,
    Ok,
    /// Accepted from `?token=`: remember it in a cookie so in-page links keep working.
    SetCookie,
    Denied,
}

fn authorize<B>(token: Option<&str>, req: &Request<B>) -> Auth {
    let Some(token) = token else {
        return Auth::Open;
    };
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    if bearer.is_some_and(|b| same(b, token)) {
        return Auth::Ok;
    }
    let cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .any(|c| same(c, token));
    if cookie {
        return Auth::Ok;
    }
    let pairs = http::query_pairs(req.uri().query());
    match http::query_get(&pairs, "token") {
        Some(q) if same(q, token) => Auth::SetCookie,
        _ => Auth::Denied,
    }
}

/// The credentials of an `Authorization: Bearer …` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work too.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|c| !c.is_empty())
}

/// Constant-time comparison, so response timing says nothing about how much of a guess matched.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

fn denied(route: &Route) -> Response<Body> {
    let mut r = match route {
        Route::Page {
            form: Form::Html, ..
        } => http::html(
            StatusCode::UNAUTHORIZED,
            "<!doctype html><meta charset=utf-8><title>需要令牌</title><p>此页面需要访问令牌：在地址后加 <code>?token=…</code>，或使用 <code>Authorization: Bearer …</code>。</p>".to_string(),
        ),
        _ => http::json_error(StatusCode::UNAUTHORIZED, "a token is required"),
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"xianyu-shopd\""),
    );
    r
}

fn not_found(api: bool) -> Response<Body> {
    if api {
        http::json_error(StatusCode::NOT_FOUND, "no such endpoint")
    } else {
        http::html(
            StatusCode::NOT_FOUND,
            "<!doctype html><meta charset=utf-8><title>未找到</title><p>没有这个页面。<a href=\"/\">返回首页</a></p>".to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "abc"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", "BeArEr\tabc"] {
            assert_eq!(bearer_credentials(v), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""] {
            assert_eq!(bearer_credentials(v), None, "{v:?}");
        }
    }
}
