//! What the daemon knows about its own condition, for the status page: per-account connection
//! and login state, and the result of the last config reload.
//!
//! The Goofish client and the reload code write here; the status page only reads. Nothing
//! here is durable: after a restart every account starts as "not started" until its client
//! reports. [`Health`] is a cheap clone over one shared registry; [`global`] is the process-wide
//! instance the daemon wires, tests build their own with [`Health::new`].
//!
//! Updates also keep the matching counters in [`crate::metrics`] (reconnects, token refreshes,
//! reloads), so callers make one call per fact.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, LazyLock, RwLock};

use serde::Serialize;

use crate::metrics;
use crate::why::Failure;

/// Failed connection attempts in a row (since the last good connection) from which a
/// disconnected account counts under 需要关注 on the status page.
pub const ATTENTION_FAILED_RECONNECTS: u32 = 3;

/// How long an account may stay without a connection (disconnected or still connecting after
/// a loss) before it counts under 需要关注, whatever the attempt count: 5 minutes. A short
/// drop that reconnects within a few backoff rounds is normal and not worth the seller's time.
pub const ATTENTION_DISCONNECTED_MS: u64 = 5 * 60 * 1000;

/// How many login/risk events are remembered for the 异常 page.
pub const EVENT_HISTORY: usize = 200;

/// The IM connection of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// The client has not reported yet.
    #[default]
    NotStarted,
    Connecting,
    Connected,
    /// Lost; the client is waiting to reconnect.
    Disconnected,
    /// Stopped on purpose until fresh cookies arrive (login expired, risk control).
    Paused,
}

impl Connection {
    pub fn label(self) -> &'static str {
        match self {
            Self::NotStarted => "未启动",
            Self::Connecting => "连接中",
            Self::Connected => "已连接",
            Self::Disconnected => "已断开，等待重连",
            Self::Paused => "已暂停，等待新 Cookie",
        }
    }
}

/// Whether the account's login is usable, as the marketplace client last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Login {
    #[default]
    Unknown,
    Ok,
    /// Cookies loaded, not yet proven by an IM registration.
    Unverified,
    /// Cookies missing or unreadable.
    NoCookies,
    /// The session expired; only fresh cookies help.
    Expired,
    /// Risk control: calls are held back until `retry_at` (unix ms), if known.
    RiskControl {
        retry_at: Option<u64>,
    },
}

impl Login {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unknown => "未知",
            Self::Ok => "正常",
            Self::Unverified => "验证中",
            Self::NoCookies => "缺少 Cookie",
            Self::Expired => "登录已失效",
            Self::RiskControl { .. } => "触发风控",
        }
    }

    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Self::NoCookies | Self::Expired | Self::RiskControl { .. }
        )
    }
}

/// One account as the status page shows it. Times are unix ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountHealth {
    pub connection: Connection,
    /// When `connection` last changed.
    pub connection_since: Option<u64>,
    /// Last order or chat message (not heartbeats): a silent socket is a zombie.
    pub last_business_message: Option<u64>,
    /// When the IM access token was last refreshed.
    pub token_refreshed_at: Option<u64>,
    pub login: Login,
    /// When `login` last changed.
    pub login_since: Option<u64>,
    /// Short human-readable note from the client (never a cookie or token).
    pub detail: Option<String>,
    pub reconnects: u64,
    /// Connection attempts that failed since the last good connection.
    pub failed_reconnects: u32,
    /// Why the last attempt failed; cleared by a good connection.
    pub last_failure: Option<Failure>,
    /// When the account last lost (or first failed to get) its connection; cleared by a good
    /// connection.
    pub down_since: Option<u64>,
}

impl AccountHealth {
    /// Disconnected with failures piling up: at least [`ATTENTION_FAILED_RECONNECTS`] failed
    /// attempts since the last good connection, or down for [`ATTENTION_DISCONNECTED_MS`].
    /// A paused account (waiting for cookies) is a login problem, counted as such.
    pub fn needs_attention(&self, now: u64) -> bool {
        let down = matches!(
            self.connection,
            Connection::Disconnected | Connection::Connecting
        ) && self.last_failure.is_some();
        down && (self.failed_reconnects >= ATTENTION_FAILED_RECONNECTS
            || self
                .down_since
                .is_some_and(|t| now.saturating_sub(t) >= ATTENTION_DISCONNECTED_MS))
    }
}

/// A login or risk-control change worth showing on the 异常 page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginEvent {
    pub at: u64,
    pub account: String,
    pub login: Login,
    pub detail: Option<String>,
}

/// An account that went down for long (it crossed [`AccountHealth::needs_attention`]) or
/// came back after that, for the 日志 page's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountEvent {
    pub at: u64,
    pub account: String,
    /// Why it is down; `None` when it connected again.
    pub failure: Option<Failure>,
}

/// The outcome of the last config (re)load, as the reloader reports it after each attempt.
pub use crate::config::reload::ReloadReport as ReloadStatus;

/// A chat problem worth showing on the 异常 page: a model error or a blocked model answer.
/// Repeats of the same problem in a row are one entry with a count (no storm of lines).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatProblem {
    pub first_at: u64,
    pub last_at: u64,
    pub account: String,
    /// What the seller reads (Chinese).
    pub label: String,
    pub count: u64,
}

/// Chat problems kept for the 异常 page.
const CHAT_PROBLEM_HISTORY: usize = 50;

#[derive(Debug, Default)]
struct ChatState {
    problems: VecDeque<ChatProblem>,
    /// Accounts whose model calls are failing, since when.
    failing: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: RwLock<BTreeMap<String, AccountHealth>>,
    events: RwLock<VecDeque<LoginEvent>>,
    account_events: RwLock<VecDeque<AccountEvent>>,
    reload: RwLock<Option<ReloadStatus>>,
    chat: RwLock<ChatState>,
}

/// Handle on one health registry.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Inner>);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, account: &str, f: impl FnOnce(&mut AccountHealth)) {
        let mut map = write(&self.0.accounts);
        f(map.entry(account.to_string()).or_default());
    }

    pub fn set_connection(&self, account: &str, state: Connection, at: u64) {
        let mut back = false;
        self.update(account, |a| {
            if a.connection != state {
                a.connection = state;
                a.connection_since = Some(at);
            }
            if state == Connection::Connected {
                if a.failed_reconnects >= ATTENTION_FAILED_RECONNECTS {
                    back = true;
                }
                a.failed_reconnects = 0;
                a.last_failure = None;
                a.down_since = None;
            }
        });
        if back {
            self.push_account_event(account, None, at);
        }
    }

    /// A connection attempt failed (or a session ended with an error) because of `failure`.
    /// The attempt that makes it [`ATTENTION_FAILED_RECONNECTS`] in a row is remembered as an
    /// [`AccountEvent`].
    pub fn record_connection_failure(&self, account: &str, failure: Failure, at: u64) {
        let mut crossed = false;
        self.update(account, |a| {
            a.failed_reconnects = a.failed_reconnects.saturating_add(1);
            crossed = a.failed_reconnects == ATTENTION_FAILED_RECONNECTS;
            a.last_failure = Some(failure);
            a.down_since.get_or_insert(at);
        });
        if crossed {
            self.push_account_event(account, Some(failure), at);
        }
    }

    fn push_account_event(&self, account: &str, failure: Option<Failure>, at: u64) {
        let mut events = write(&self.0.account_events);
        if events.len() == EVENT_HISTORY {
            events.pop_front();
        }
        events.push_back(AccountEvent {
            at,
            account: account.to_string(),
            failure,
        });
    }

    /// Long disconnections and the reconnects after them, newest first.
    pub fn account_events(&self) -> Vec<AccountEvent> {
        read(&self.0.account_events).iter().rev().cloned().collect()
    }

    /// A reconnect attempt began: counts `reconnects_total{account}`.
    pub fn record_reconnect(&self, account: &str, at: u64) {
        metrics::inc(metrics::RECONNECTS, &[("account", account)]);
        self.update(account, |a| a.reconnects += 1);
        self.set_connection(account, Connection::Connecting, at);
    }

    pub fn record_business_message(&self, account: &str, at: u64) {
        self.update(account, |a| a.last_business_message = Some(at));
    }

    /// A token refresh finished; counts `token_refreshes_total{account,result}`.
    pub fn record_token_refresh(&self, account: &str, ok: bool, at: u64) {
        let result = if ok { "ok" } else { "error" };
        metrics::inc(
            metrics::TOKEN_REFRESHES,
            &[("account", account), ("result", result)],
        );
        if ok {
            self.update(account, |a| a.token_refreshed_at = Some(at));
        }
    }

    /// The login state changed. A change is also remembered as a [`LoginEvent`].
    pub fn set_login(&self, account: &str, login: Login, detail: Option<String>, at: u64) {
        let mut changed = false;
        self.update(account, |a| {
            changed = a.login != login;
            if changed {
                a.login = login.clone();
                a.login_since = Some(at);
            }
            a.detail.clone_from(&detail);
        });
        if changed {
            self.push_event(LoginEvent {
                at,
                account: account.to_string(),
                login,
                detail,
            });
        }
    }

    fn push_event(&self, ev: LoginEvent) {
        let mut events = write(&self.0.events);
        if events.len() == EVENT_HISTORY {
            events.pop_front();
        }
        events.push_back(ev);
    }

    /// All accounts that reported anything, by id.
    pub fn accounts(&self) -> BTreeMap<String, AccountHealth> {
        read(&self.0.accounts).clone()
    }

    pub fn account(&self, id: &str) -> Option<AccountHealth> {
        read(&self.0.accounts).get(id).cloned()
    }

    /// Login/risk changes, newest first.
    pub fn login_events(&self) -> Vec<LoginEvent> {
        read(&self.0.events).iter().rev().cloned().collect()
    }

    /// Record a reload attempt and count `reloads_total{result}`.
    pub fn record_reload(&self, status: ReloadStatus) {
        let result = if status.ok { "ok" } else { "error" };
        metrics::inc(metrics::RELOADS, &[("result", result)]);
        self.set_reload(status);
    }

    /// Set the last reload result without counting (the initial load at start).
    pub fn set_reload(&self, status: ReloadStatus) {
        *write(&self.0.reload) = Some(status);
    }

    pub fn reload(&self) -> Option<ReloadStatus> {
        read(&self.0.reload).clone()
    }

    /// A chat problem. Returns true when it starts a failing streak for the account (the
    /// moment to alert the seller once).
    pub fn record_chat_problem(&self, account: &str, label: &str, at: u64) -> bool {
        let mut chat = write(&self.0.chat);
        match chat.problems.back_mut() {
            Some(last) if last.account == account && last.label == label => {
                last.count += 1;
                last.last_at = at;
            }
            _ => {
                if chat.problems.len() == CHAT_PROBLEM_HISTORY {
                    chat.problems.pop_front();
                }
                chat.problems.push_back(ChatProblem {
                    first_at: at,
                    last_at: at,
                    account: account.to_string(),
                    label: label.to_string(),
                    count: 1,
                });
            }
        }
        chat.failing.insert(account.to_string(), at).is_none()
    }

    /// A model answer was used. Returns true when that ends a failing streak.
    pub fn record_chat_ok(&self, account: &str) -> bool {
        write(&self.0.chat).failing.remove(account).is_some()
    }

    /// Chat problems, newest first.
    pub fn chat_problems(&self) -> Vec<ChatProblem> {
        read(&self.0.chat).problems.iter().rev().cloned().collect()
    }

    /// Accounts whose model is failing now, with the time it started.
    pub fn chat_failing(&self) -> BTreeMap<String, u64> {
        read(&self.0.chat).failing.clone()
    }
}

// Writers hold these locks for a map insert; a panic there leaves consistent data, so a
// poisoned lock is used as is rather than taking the status page down with it.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

static GLOBAL: LazyLock<Health> = LazyLock::new(Health::new);

/// The process-wide registry the daemon's components share.
pub fn global() -> &'static Health {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_changes_are_remembered_once() {
        let h = Health::new();
        h.set_login("main", Login::Ok, None, 1);
        h.set_login("main", Login::Ok, None, 2);
        h.set_login(
            "main",
            Login::Expired,
            Some("FAIL_SYS_SESSION_EXPIRED".into()),
            3,
        );
        let events = h.login_events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].login, Login::Expired);
        assert_eq!(h.account("main").unwrap().login_since, Some(3));
    }

    #[test]
    fn chat_problems_group_and_streaks_start_once() {
        let h = Health::new();
        assert!(h.record_chat_problem("main", "模型 20 秒内没有回答", 1));
        assert!(!h.record_chat_problem("main", "模型 20 秒内没有回答", 2));
        assert!(!h.record_chat_problem("main", "模型限流（429）", 3));
        let p = h.chat_problems();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].count, p[1].first_at, p[1].last_at), (2, 1, 2));
        assert!(h.record_chat_ok("main"));
        assert!(!h.record_chat_ok("main"));
        assert!(h.record_chat_problem("main", "模型限流（429）", 4));
    }

    #[test]
    fn a_good_connection_clears_the_failures() {
        let h = Health::new();
        h.set_connection("a", Connection::Connected, 1);
        for at in 2..2 + u64::from(ATTENTION_FAILED_RECONNECTS) - 1 {
            h.record_reconnect("a", at);
            h.record_connection_failure("a", Failure::Refused, at);
            h.set_connection("a", Connection::Disconnected, at);
        }
        let a = h.account("a").unwrap();
        assert!(!a.needs_attention(10), "two failures are a blip");
        assert!(
            a.needs_attention(2 + ATTENTION_DISCONNECTED_MS),
            "but not for long"
        );
        h.record_connection_failure("a", Failure::Refused, 9);
        assert!(h.account("a").unwrap().needs_attention(10));
        h.set_connection("a", Connection::Connected, 11);
        let a = h.account("a").unwrap();
        assert_eq!(
            (a.failed_reconnects, a.last_failure, a.down_since),
            (0, None, None)
        );
        assert!(!a.needs_attention(11 + ATTENTION_DISCONNECTED_MS));
    }

    #[test]
    fn connection_since_moves_only_on_change() {
        let h = Health::new();
        h.set_connection("a", Connection::Connected, 10);
        h.set_connection("a", Connection::Connected, 20);
        assert_eq!(h.account("a").unwrap().connection_since, Some(10));
        h.record_reconnect("a", 30);
        let a = h.account("a").unwrap();
        assert_eq!((a.connection, a.reconnects), (Connection::Connecting, 1));
    }
}
