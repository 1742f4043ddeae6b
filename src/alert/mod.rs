//! What happened that a seller may need to hear about, in the words a seller reads.
//!
//! A leaf: stages, the Goofish client and the reconciler describe a problem as an [`Alert`]
//! (an [`EventKind`] plus labelled Chinese facts); `notify` routes it, `config` renders it with
//! the seller's template (through [`AlertView`], what a template sees), and `store` keeps the
//! kind on outbox rows. Nothing here knows about channels, the store or the config, so every one
//! of them can depend on it without a cycle.

mod view;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use view::{AccountFacts, AlertView, Fact, OrderFacts, ProductFacts, StockFacts};

/// Declares [`EventKind`] and everything said about each kind from one table, so a new kind
/// is one row: its config/template name, its short Chinese name, its notification title,
/// whether sellers hear about it when `events:` is not given, and whether it is urgent.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $kind:ident = $code:literal, $name:literal, $title:literal,
        by_default: $by_default:literal, urgent: $urgent:literal;)*) => {
        /// What a notification is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind {
            $($(#[$doc])* $kind,)*
        }

        impl EventKind {
            pub const ALL: [EventKind; [$($code),*].len()] = [$(Self::$kind,)*];

            /// The name in `events:`, `notify-test --event` and `templates/notify/<name>.txt.j2`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => $code,)*
                }
            }

            /// Short Chinese name (SMS parameters, recovery messages).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }

            /// Chinese title shown in the notification.
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$kind => $title,)*
                }
            }

            /// Whether a seller hears about it when `events:` is not given: everything that
            /// needs a human.
            pub fn alerts_by_default(self) -> bool {
                match self {
                    $(Self::$kind => $by_default,)*
                }
            }

            /// Events that a seller must act on at once: louder on channels that have levels.
            pub fn urgent(self) -> bool {
                match self {
                    $(Self::$kind => $urgent,)*
                }
            }
        }
    };
}

event_kinds! {
    ManualShip = "manual_ship", "待人工发货", "【待人工发货】", by_default: true, urgent: true;
    ShipFailed = "ship_failed", "自动发货失败", "【自动发货失败】", by_default: true, urgent: true;
    NeedsHuman = "needs_human", "发货结果未知", "【发货结果未知，请人工核实】", by_default: true, urgent: true;
    OutOfStock = "out_of_stock", "库存不足", "【库存不足】", by_default: true, urgent: false;
    LowStock = "low_stock", "库存预警", "【库存预警】", by_default: true, urgent: false;
    LoginExpired = "login_expired", "登录失效", "【登录失效】", by_default: true, urgent: true;
    RiskControl = "risk_control", "触发风控", "【触发风控】", by_default: true, urgent: true;
    Delivered = "delivered", "已自动发货", "【已自动发货】", by_default: false, urgent: false;
    /// A problem announced earlier (login expired, risk control) has cleared.
    Recovered = "recovered", "已恢复", "【已恢复】", by_default: false, urgent: false;
    /// AI chat replies are failing (the model is down, limited, slow, or its answers are
    /// blocked); buyers get the fallback reply meanwhile.
    ChatFailed = "chat_failed", "AI 客服出错", "【AI 客服出错】", by_default: true, urgent: false;
    /// Yesterday's numbers, once a day at `report.at` (sent only with `report:`).
    DailyReport = "daily_report", "每日报告", "【每日报告】", by_default: false, urgent: false;
}

impl EventKind {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kinds a seller hears about when `events:` is not given.
    pub fn default_alerts() -> Vec<EventKind> {
        Self::ALL
            .into_iter()
            .filter(|k| k.alerts_by_default())
            .collect()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// De-duplication window when the config does not set `notify.dedupe_window`.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Cool-downs when the config does not set `notify.cooldown`: a login that stays expired is
/// repeated every 3 hours, not every heartbeat (the top complaint about other bots).
pub fn default_cooldowns() -> std::collections::BTreeMap<EventKind, Duration> {
    [
        (EventKind::LoginExpired, Duration::from_secs(3 * 3600)),
        (EventKind::RiskControl, Duration::from_secs(3 * 3600)),
        (EventKind::ChatFailed, Duration::from_secs(3 * 3600)),
    ]
    .into_iter()
    .collect()
}

/// Something the seller may need to hear about, with the facts to tell.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: EventKind,
    pub order_id: Option<String>,
    /// `(label, value)` lines in Chinese, in display order (see `view.rs` for the labels that
    /// templates see as named fields).
    pub facts: Vec<(&'static str, String)>,
    /// What the seller should do, in Chinese.
    pub action: String,
    /// The ongoing problem this alert reports (`login_expired:main`): repeats are cooled down
    /// while it lasts, and a [`Alert::recovered`] for the same key answers it once.
    pub problem: Option<String>,
    /// For `recovered`: which kind of problem cleared.
    pub recovers: Option<EventKind>,
}

impl Alert {
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            order_id: None,
            facts: Vec::new(),
            action: String::new(),
            problem: None,
            recovers: None,
        }
    }

    pub fn order(mut self, order_id: &str) -> Self {
        self.order_id = Some(order_id.to_string());
        self.fact("订单号", order_id)
    }

    pub fn fact(mut self, label: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.facts.push((label, value));
        }
        self
    }

    pub fn action(mut self, text: impl Into<String>) -> Self {
        self.action = text.into();
        self
    }

    /// Mark this alert as reporting the ongoing problem `key`.
    pub fn problem(mut self, key: impl Into<String>) -> Self {
        self.problem = Some(key.into());
        self
    }

    /// The account's login expired; repeats cool down per account until [`Alert::recovered`].
    pub fn login_expired(account_id: &str, account_name: &str, detail: &str) -> Self {
        Self::account_problem(EventKind::LoginExpired, account_id, account_name, detail)
            .action("请在浏览器重新登录闲鱼，导出 Cookie 更新到配置的 cookies_env / cookies_file；更新后会自动恢复")
    }

    /// The platform asked for a verification; cools down like a login expiry.
    pub fn risk_control(account_id: &str, account_name: &str, detail: &str) -> Self {
        Self::account_problem(EventKind::RiskControl, account_id, account_name, detail)
            .action("请在闲鱼App或网页完成验证；期间自动处理暂停，验证通过后会自动恢复")
    }

    /// AI chat replies on this account are failing; repeats cool down until
    /// [`Alert::recovered`] (one alert per outage, not one per buyer).
    pub fn chat_failed(account_id: &str, account_name: &str, detail: &str) -> Self {
        Self::account_problem(EventKind::ChatFailed, account_id, account_name, detail)
            .action("买家暂时收到兜底回复。请检查 chat: 里 llm 的 base_url、model 和密钥，或模型服务的额度；状态页“异常”里有每次出错的原因和次数。恢复后会自动通知")
    }

    /// An ongoing problem of `kind` on one account: who and why, keyed so repeats cool down.
    fn account_problem(
        kind: EventKind,
        account_id: &str,
        account_name: &str,
        detail: &str,
    ) -> Self {
        Alert::new(kind)
            .fact("账号", account_label(account_id, account_name))
            .fact("原因", detail)
            .problem(problem_key(kind, account_id))
    }

    /// The problem of `kind` on this account cleared. Goes out once, and only to channels that
    /// were told about the problem; without an open problem it sends nothing.
    pub fn recovered(kind: EventKind, account_id: &str, account_name: &str) -> Self {
        let mut a = Alert::new(EventKind::Recovered)
            .fact("账号", account_label(account_id, account_name))
            .problem(problem_key(kind, account_id));
        a.recovers = Some(kind);
        a
    }

    pub fn title(&self) -> String {
        self.kind.title().to_string()
    }

    /// Plain fact list: the text used if a template fails at run time (never expected, since
    /// templates are checked at load, but an alert must not be lost to a template).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (label, value) in &self.facts {
            out.push_str(&format!("{label}：{value}\n"));
        }
        if !self.action.is_empty() {
            out.push_str(&format!("处理建议：{}\n", self.action));
        }
        out
    }

    /// What repeats of this alert have in common (for cool-downs): the problem, the order, or
    /// the first fact.
    pub fn subject(&self) -> String {
        self.problem
            .clone()
            .or_else(|| self.order_id.clone())
            .or_else(|| self.facts.first().map(|f| f.1.clone()))
            .unwrap_or_default()
    }
}

/// `login_expired:main`
pub fn problem_key(kind: EventKind, account_id: &str) -> String {
    format!("{}:{account_id}", kind.as_str())
}

fn account_label(id: &str, name: &str) -> String {
    if name.is_empty() || name == id {
        id.to_string()
    } else {
        format!("{name} ({id})")
    }
}
