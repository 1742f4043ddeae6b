//! The platform as the after-sale tasks see it: rate a buyer, list the orders waiting for the
//! seller's rating, list the on-shelf items, polish one.
//!
//! Outcomes keep the platform's raw result code, so "already polished today" is recorded as
//! such and never as a fresh success (a rival bot counts it as one while the app still shows
//! the listing un-polished). A risk-control answer is its own outcome: it trips the account's
//! circuit breaker.

/// How a rating or a polish call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Done now; `code` is the raw `ret` (`SUCCESS::调用成功`).
    Done { code: String },
    /// The platform says it was done before (rated already; polished today already).
    AlreadyDone { code: String },
    /// The platform refused: provably not done.
    Refused { code: String, reason: String },
    /// Risk control (slider, `FAIL_SYS_USER_VALIDATE`, `RGV587`): stop this account's tasks.
    RiskControl { code: String },
    /// The login is gone (no cookies, session expired): nothing was done.
    NoLogin { reason: String },
    /// Never left, or a gateway error before the API ran: provably not done, may retry.
    NotSent { reason: String },
    /// The request may have been acted on (a timeout after sending).
    Unknown { reason: String },
}

/// A listing of the seller's or a pending rating, as far as the platform said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListOutcome {
    Listed(Vec<String>),
    RiskControl { code: String },
    Failed { reason: String },
}

#[async_trait::async_trait]
pub trait AftersalePort: Send + Sync {
    /// `mtop.taobao.idle.rate.create` 4.0: a good rating with `text`.
    async fn rate_buyer(&self, account: &str, order_id: &str, text: &str) -> ActionOutcome;
    /// Order ids still waiting for the seller's rating (`merchant.rate.list`).
    async fn pending_ratings(&self, account: &str) -> ListOutcome;
    /// Item ids of the account's on-shelf listings (`xyh.item.list`).
    async fn on_shelf_items(&self, account: &str) -> ListOutcome;
    /// `mtop.taobao.idle.item.polish` 2.0.
    async fn polish(&self, account: &str, item_id: &str) -> ActionOutcome;
    /// A fingerprint of the cookies the account uses now (never the cookies); a tripped
    /// breaker resumes when it changes. `None` while no cookies are loaded.
    fn cookie_epoch(&self, account: &str) -> Option<String>;
}
