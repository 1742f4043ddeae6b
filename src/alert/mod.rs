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

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ManualShip,
    ShipFailed,
    NeedsHuman,
    OutOfStock,
    LowStock,
    LoginExpired,
    RiskControl,
    Delivered,
    /// A problem announced earlier (login expired, risk control) has cleared.
    Recovered,
    /// AI chat replies are failing (the model is down, limited, slow, or its answers are
    /// blocked); buyers get the fallback reply meanwhile.
    ChatFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        Self::ManualShip,
        Self::ShipFailed,
        Self::NeedsHuman,
        Self::OutOfStock,
        Self::LowStock,
        Self::LoginExpired,
        Self::RiskControl,
        Self::Delivered,
        Self::Recovered,
        Self::ChatFailed,
    ];

    /// What a seller hears about when `events:` is not given: everything that needs a human.
    pub const DEFAULT_ALERTS: [EventKind; 8] = [
        Self::ManualShip,
        Self::ShipFailed,
        Self::NeedsHuman,
        Self::OutOfStock,
        Self::LowStock,
        Self::LoginExpired,
        Self::RiskControl,
        Self::ChatFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManualShip => "manual_ship",
            Self::ShipFailed => "ship_failed",
            Self::NeedsHuman => "needs_human",
            Self::OutOfStock => "out_of_stock",
            Self::LowStock => "low_stock",
            Self::LoginExpired => "login_expired",
            Self::RiskControl => "risk_control",
            Self::Delivered => "delivered",
            Self::Recovered => "recovered",
            Self::ChatFailed => "chat_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Short Chinese name (SMS parameters, recovery messages).
    pub fn name(self) -> &'static str {
        match self {
            Self::ManualShip => "待人工发货",
            Self::ShipFailed => "自动发货失败",
            Self::NeedsHuman => "发货结果未知",
            Self::OutOfStock => "库存不足",
            Self::LowStock => "库存预警",
            Self::LoginExpired => "登录失效",
            Self::RiskControl => "触发风控",
            Self::Delivered => "已自动发货",
            Self::Recovered => "已恢复",
            Self::ChatFailed => "AI 客服出错",
        }
    }

    /// Chinese title shown in the notification.
    pub fn title(self) -> &'static str {
        match self {
            Self::ManualShip => "【待人工发货】",
            Self::ShipFailed => "【自动发货失败】",
            Self::NeedsHuman => "【发货结果未知，请人工核实】",
            Self::OutOfStock => "【库存不足】",
            Self::LowStock => "【库存预警】",
            Self::LoginExpired => "【登录失效】",
            Self::RiskControl => "【触发风控】",
            Self::Delivered => "【已自动发货】",
            Self::Recovered => "【已恢复】",
            Self::ChatFailed => "【AI 客服出错】",
        }
    }

    /// Events that a seller must act on at once: louder on channels that have levels.
    pub fn urgent(self) -> bool {
        matches!(
            self,
            Self::ManualShip
                | Self::ShipFailed
                | Self::NeedsHuman
                | Self::LoginExpired
                | Self::RiskControl
        )
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
        Alert::new(EventKind::LoginExpired)
            .fact("账号", account_label(account_id, account_name))
            .fact("原因", detail)
            .action("请在浏览器重新登录闲鱼，导出 Cookie 更新到配置的 cookies_env / cookies_file；更新后会自动恢复")
            .problem(problem_key(EventKind::LoginExpired, account_id))
    }

    /// The platform asked for a verification; cools down like a login expiry.
    pub fn risk_control(account_id: &str, account_name: &str, detail: &str) -> Self {
        Alert::new(EventKind::RiskControl)
            .fact("账号", account_label(account_id, account_name))
            .fact("原因", detail)
            .action("请在闲鱼App或网页完成验证；期间自动处理暂停，验证通过后会自动恢复")
            .problem(problem_key(EventKind::RiskControl, account_id))
    }

    /// AI chat replies on this account are failing; repeats cool down until
    /// [`Alert::recovered`] (one alert per outage, not one per buyer).
    pub fn chat_failed(account_id: &str, account_name: &str, detail: &str) -> Self {
        Alert::new(EventKind::ChatFailed)
            .fact("账号", account_label(account_id, account_name))
            .fact("原因", detail)
            .action("买家暂时收到兜底回复。请检查 chat: 里 llm 的 base_url、model 和密钥，或模型服务的额度；状态页“异常”里有每次出错的原因和次数。恢复后会自动通知")
            .problem(problem_key(EventKind::ChatFailed, account_id))
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
