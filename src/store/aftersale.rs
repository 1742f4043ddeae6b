//! After-sale actions (rate a buyer, thank them, polish a listing): one row per action, claimed
//! before the platform is called, like the delivery ledger's `begin_step`.
//!
//! [`Store::begin_action`] commits `calling` before the call; [`Store::finish_action`] records
//! the platform's raw result code. Finding `calling` again means the process stopped mid-call:
//! the outcome is unknown and the action is never repeated blindly (a rating is settled by
//! reading the pending-ratings list back, [`Store::settle_unknown_action`]). Rows are keyed by
//! (kind, subject): an order id for ratings and thank-yous, `item@day` for polishing, so each
//! order is rated and thanked at most once and each item polished at most once a day.
//!
//! Beside the rows: one guard per account (the time of its last after-sale call, and the
//! circuit breaker tripped by a risk-control answer, which stays open until the account's
//! cookies change), the day's polish plan per account, and the durable task jobs
//! ([`TaskKey`]) that run these actions through the ordinary scheduler.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::records::{Job, OutboxDraft};
use super::write_tx::WriteTx;
use super::{Result, Store, decode, encode, jobs, next_id, outbox};

pub(super) const ACTIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("aftersale_actions");
pub(super) const GUARDS: TableDefinition<&str, &[u8]> = TableDefinition::new("aftersale_guards");
pub(super) const PLANS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("aftersale_polish_plans");

pub(super) fn create_tables(tx: &WriteTx) -> Result<()> {
    tx.aftersale_actions()?;
    tx.aftersale_guards()?;
    tx.polish_plans()?;
    Ok(())
}

pub(super) fn tables_exist(tx: &redb::ReadTransaction) -> Result<bool> {
    match tx.open_table(ACTIONS) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What an after-sale action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Rate,
    Thanks,
    Polish,
}

impl ActionKind {
    pub const ALL: [ActionKind; 3] = [Self::Rate, Self::Thanks, Self::Polish];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Thanks => "thanks",
            Self::Polish => "polish",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Rate => "评价买家",
            Self::Thanks => "感谢消息",
            Self::Polish => "擦亮",
        }
    }
}

/// Where one action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Claimed; the call may be on its way. Found again after a crash: unknown.
    Calling,
    /// The platform said it was done now.
    Done,
    /// The platform said it had been done before (rated already, polished today already):
    /// not counted as a fresh success.
    AlreadyDone,
    /// Provably not done; may be tried again while attempts remain.
    Failed,
    /// Might have been done: never repeated blindly.
    Unknown,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calling => "calling",
            Self::Done => "done",
            Self::AlreadyDone => "already_done",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// The seller's word for it.
    pub fn label(self, kind: ActionKind) -> &'static str {
        match (self, kind) {
            (Self::Calling, _) => "进行中",
            (Self::Done, ActionKind::Rate) => "已评价",
            (Self::Done, ActionKind::Thanks) => "已发送",
            (Self::Done, ActionKind::Polish) => "擦亮成功",
            (Self::AlreadyDone, ActionKind::Rate) => "平台显示此前已评价（不算本次成功）",
            (Self::AlreadyDone, ActionKind::Thanks) => "此前已发送",
            (Self::AlreadyDone, ActionKind::Polish) => "今天已擦亮过（平台返回，不算本次成功）",
            (Self::Failed, _) => "失败",
            (Self::Unknown, _) => "结果未知（不会自动重复）",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::AlreadyDone)
    }
}

/// One after-sale action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub kind: ActionKind,
    /// The order id (rate, thanks) or `item@YYYY-MM-DD` (polish).
    pub subject: String,
    pub account: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub item_id: Option<String>,
    pub state: ActionState,
    /// The platform's raw result code (`SUCCESS`, `FAIL_BIZ_IDLEITEM_POLISH_AGAIN`, …).
    #[serde(default)]
    pub code: Option<String>,
    /// Why it failed or is unknown, in Chinese for the seller.
    #[serde(default)]
    pub note: Option<String>,
    /// Length of the text sent (rating, thank-you); the text itself is not kept.
    #[serde(default)]
    pub text_chars: Option<usize>,
    pub attempts: u32,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Who and what an action is about, for its first claim.
#[derive(Debug, Clone)]
pub struct ActionTarget {
    pub kind: ActionKind,
    pub subject: String,
    pub account: String,
    pub order_id: Option<String>,
    pub item_id: Option<String>,
}

/// May the action be called now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginAction {
    /// Claimed (`calling` is committed): call the platform.
    Go { attempt: u32 },
    /// Done or already done: nothing to call.
    Finished(Box<ActionRecord>),
    /// A call whose outcome is unknown (found now, or earlier): never repeated blindly.
    Unknown(Box<ActionRecord>),
    /// Failed `max_attempts` times: given up.
    GaveUp(Box<ActionRecord>),
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    Done {
        code: String,
    },
    AlreadyDone {
        code: String,
    },
    /// Provably not done. `counts: false` when the call never reached the API (no login,
    /// a gateway error, risk control): it does not use up an attempt.
    Failed {
        code: Option<String>,
        note: String,
        counts: bool,
    },
    /// The request may have been acted on.
    Unknown {
        note: String,
    },
}

/// A circuit breaker tripped by a risk-control answer: the account's after-sale tasks stop
/// until its cookies change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerTrip {
    pub at: u64,
    pub code: String,
    /// A fingerprint of the cookies in use when it tripped (never the cookies).
    pub cookie_epoch: String,
}

/// One account's rate guard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountGuard {
    /// When the last after-sale call of this account was let through (unix ms).
    pub last_call_ms: u64,
    #[serde(default)]
    pub tripped: Option<BreakerTrip>,
}

/// The items one account polishes on `day`, as listed when the day's run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolishPlan {
    pub day: String,
    pub items: Vec<String>,
}

/// The durable work a task job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Rate one order's buyer (subject: the order id).
    Rate,
    /// Thank one order's buyer (subject: the order id).
    Thanks,
    /// The daily sweep over one account's pending-ratings list (subject: the account).
    Sweep,
    /// The daily polish of one account's items (subject: the account).
    Polish,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Thanks => "thanks",
            Self::Sweep => "sweep",
            Self::Polish => "polish",
        }
    }
}

/// A task job's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskKey {
    pub kind: TaskKind,
    pub subject: String,
    pub account: String,
}

impl TaskKey {
    /// The job's key in the one-job-per-key index. It starts with a control character, which
    /// no order id can contain (`OrderEvent::sanitize` refuses them), so a task can never
    /// replace or cancel an order's job, nor the other way round.
    pub fn job_key(&self) -> String {
        format!("\u{1}aftersale:{}:{}", self.kind.as_str(), self.subject)
    }
}

impl Store {
    /// Claim an action before calling the platform. `max_attempts` bounds failed retries.
    pub fn begin_action(&self, target: &ActionTarget, max_attempts: u32) -> Result<BeginAction> {
        let now = self.now();
        self.write(|tx| begin(tx, target, max_attempts, now))
    }

    /// Record how a claimed call ended; `text_chars` is the length of the text sent.
    pub fn finish_action(
        &self,
        kind: ActionKind,
        subject: &str,
        result: &ActionResult,
        text_chars: Option<usize>,
    ) -> Result<Option<ActionRecord>> {
        let now = self.now();
        self.write(|tx| finish(tx, kind, subject, result, text_chars, now))
    }

    /// Settle an unknown action from a read-back: `done` (the platform no longer lists it as
    /// pending) or provably not done (still pending: it may be called again).
    pub fn settle_unknown_action(
        &self,
        kind: ActionKind,
        subject: &str,
        done: bool,
    ) -> Result<Option<ActionRecord>> {
        let now = self.now();
        self.write(|tx| {
            let Some(mut rec) = load(tx, kind, subject)? else {
                return Ok(None);
            };
            if rec.state != ActionState::Unknown {
                return Ok(Some(rec));
            }
            if done {
                rec.state = ActionState::Done;
                rec.code = Some("READ_BACK".into());
                rec.note = Some("结果未知后查询待评价列表：该订单已不在列表中，视为已评价".into());
            } else {
                rec.state = ActionState::Failed;
                rec.note = Some("结果未知后查询待评价列表：该订单仍待评价，可以重新评价".into());
            }
            rec.updated_at = now;
            save(tx, &rec)?;
            Ok(Some(rec))
        })
    }

    pub fn action(&self, kind: ActionKind, subject: &str) -> Result<Option<ActionRecord>> {
        self.read(
            |tx| match tx.open_table(ACTIONS)?.get((kind.as_str(), subject))? {
                Some(v) => decode("aftersale_actions", v.value()).map(Some),
                None => Ok(None),
            },
        )
    }

    /// The most recently updated actions, newest first.
    pub fn recent_actions(&self, limit: usize) -> Result<Vec<ActionRecord>> {
        let mut all: Vec<ActionRecord> = self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(ACTIONS)?.iter()? {
                out.push(decode("aftersale_actions", row?.1.value())?);
            }
            Ok(out)
        })?;
        all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        all.truncate(limit);
        Ok(all)
    }

    /// Every account's guard.
    pub fn aftersale_guards(&self) -> Result<Vec<(String, AccountGuard)>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(GUARDS)?.iter()? {
                let (k, v) = row?;
                out.push((
                    k.value().to_string(),
                    decode("aftersale_guards", v.value())?,
                ));
            }
            Ok(out)
        })
    }

    pub fn aftersale_guard(&self, account: &str) -> Result<AccountGuard> {
        self.read(|tx| load_guard(&tx.open_table(GUARDS)?, account))
    }

    /// Let one call of `account` through now if `min_gap_ms` has passed since its last one
    /// (`Ok(None)`, recorded), else `Ok(Some(when))` it may go. A tripped breaker lets nothing
    /// through (`Err` is not used for that: the caller checks [`Self::aftersale_guard`]).
    pub fn take_call_slot(&self, account: &str, min_gap_ms: u64) -> Result<Option<u64>> {
        let now = self.now();
        self.write(|tx| {
            let mut t = tx.aftersale_guards()?;
            let mut guard = load_guard(&*t, account)?;
            let next = guard.last_call_ms.saturating_add(min_gap_ms);
            if guard.last_call_ms != 0 && next > now {
                return Ok(Some(next));
            }
            guard.last_call_ms = now;
            t.insert(account, encode(&guard).as_slice())?;
            Ok(None)
        })
    }

    /// Trip the account's breaker; the alert goes out only when it was not tripped already
    /// (one alert per trip, not one per refused call). Returns whether it tripped now.
    pub fn trip_breaker(
        &self,
        account: &str,
        code: &str,
        cookie_epoch: &str,
        alert: &[OutboxDraft],
    ) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            let mut guard = {
                let t = tx.aftersale_guards()?;
                load_guard(&*t, account)?
            };
            if guard.tripped.is_some() {
                return Ok(false);
            }
            guard.tripped = Some(BreakerTrip {
                at: now,
                code: code.to_string(),
                cookie_epoch: cookie_epoch.to_string(),
            });
            tx.aftersale_guards()?
                .insert(account, encode(&guard).as_slice())?;
            outbox::enqueue(tx, alert, now)?;
            Ok(true)
        })
    }

    /// Close the breaker (the account has fresh cookies).
    pub fn reset_breaker(&self, account: &str) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.aftersale_guards()?;
            let mut guard = load_guard(&*t, account)?;
            if guard.tripped.take().is_some() {
                t.insert(account, encode(&guard).as_slice())?;
            }
            Ok(())
        })
    }

    pub fn polish_plan(&self, account: &str) -> Result<Option<PolishPlan>> {
        self.read(|tx| match tx.open_table(PLANS)?.get(account)? {
            Some(v) => decode("aftersale_polish_plans", v.value()).map(Some),
            None => Ok(None),
        })
    }

    pub fn set_polish_plan(&self, account: &str, plan: &PolishPlan) -> Result<()> {
        self.write(|tx| {
            tx.polish_plans()?
                .insert(account, encode(plan).as_slice())?;
            Ok(())
        })
    }

    /// Schedule `task` at `due_ms` unless it already has a job (a restart or a repeated
    /// trigger keeps the first due time). Returns whether a job was created.
    pub fn ensure_task(&self, task: &TaskKey, due_ms: u64, config_version: &str) -> Result<bool> {
        let now = self.now();
        self.write(|tx| {
            if tx.order_jobs()?.get(task.job_key().as_str())?.is_some() {
                return Ok(false);
            }
            schedule_task(tx, task, due_ms, config_version, now)?;
            Ok(true)
        })
    }

    /// Replace task job `id` by a run of the same task at `due_ms`.
    pub fn reschedule_task(
        &self,
        id: u64,
        task: &TaskKey,
        due_ms: u64,
        config_version: &str,
    ) -> Result<u64> {
        let now = self.now();
        self.write(|tx| {
            jobs::remove(tx, id)?;
            schedule_task(tx, task, due_ms, config_version, now)
        })
    }
}

fn schedule_task(
    tx: &WriteTx,
    task: &TaskKey,
    due_ms: u64,
    config_version: &str,
    now: u64,
) -> Result<u64> {
    let key = task.job_key();
    jobs::cancel_for_order(tx, &key)?;
    let id = next_id(tx, "job")?;
    let job = Job {
        id,
        order_id: key.clone(),
        stage: 0,
        stage_name: "aftersale".into(),
        due_ms,
        config_version: config_version.to_string(),
        created_at: now,
        task: Some(task.clone()),
    };
    tx.jobs()?.insert(id, encode(&job).as_slice())?;
    tx.jobs_due()?.insert((due_ms, id), ())?;
    tx.order_jobs()?.insert(key.as_str(), id)?;
    Ok(id)
}

fn load(tx: &WriteTx, kind: ActionKind, subject: &str) -> Result<Option<ActionRecord>> {
    match tx.aftersale_actions()?.get((kind.as_str(), subject))? {
        Some(v) => decode("aftersale_actions", v.value()).map(Some),
        None => Ok(None),
    }
}

fn save(tx: &WriteTx, rec: &ActionRecord) -> Result<()> {
    tx.aftersale_actions()?.insert(
        (rec.kind.as_str(), rec.subject.as_str()),
        encode(rec).as_slice(),
    )?;
    Ok(())
}

fn load_guard(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    account: &str,
) -> Result<AccountGuard> {
    match t.get(account)? {
        Some(v) => decode("aftersale_guards", v.value()),
        None => Ok(AccountGuard::default()),
    }
}

fn begin(tx: &WriteTx, target: &ActionTarget, max_attempts: u32, now: u64) -> Result<BeginAction> {
    let mut rec = match load(tx, target.kind, &target.subject)? {
        Some(rec) => rec,
        None => ActionRecord {
            kind: target.kind,
            subject: target.subject.clone(),
            account: target.account.clone(),
            order_id: target.order_id.clone(),
            item_id: target.item_id.clone(),
            state: ActionState::Failed,
            code: None,
            note: None,
            text_chars: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
        },
    };
    match rec.state {
        s if s.is_final() => return Ok(BeginAction::Finished(Box::new(rec))),
        ActionState::Unknown => return Ok(BeginAction::Unknown(Box::new(rec))),
        ActionState::Calling => {
            rec.state = ActionState::Unknown;
            rec.note = Some("调用途中进程停止，无法确定平台是否已执行；不会自动重复".into());
            rec.updated_at = now;
            save(tx, &rec)?;
            return Ok(BeginAction::Unknown(Box::new(rec)));
        }
        _ => {}
    }
    if rec.attempts >= max_attempts {
        return Ok(BeginAction::GaveUp(Box::new(rec)));
    }
    rec.state = ActionState::Calling;
    rec.attempts += 1;
    rec.updated_at = now;
    save(tx, &rec)?;
    Ok(BeginAction::Go {
        attempt: rec.attempts,
    })
}

fn finish(
    tx: &WriteTx,
    kind: ActionKind,
    subject: &str,
    result: &ActionResult,
    text_chars: Option<usize>,
    now: u64,
) -> Result<Option<ActionRecord>> {
    let Some(mut rec) = load(tx, kind, subject)? else {
        return Ok(None);
    };
    if rec.state != ActionState::Calling {
        // Settled by someone else (a read-back); the claim decides, not a late answer.
        return Ok(Some(rec));
    }
    let (state, code, note) = match result {
        ActionResult::Done { code } => (ActionState::Done, Some(code.clone()), None),
        ActionResult::AlreadyDone { code } => (ActionState::AlreadyDone, Some(code.clone()), None),
        ActionResult::Failed { code, note, counts } => {
            if !counts {
                rec.attempts = rec.attempts.saturating_sub(1);
            }
            (ActionState::Failed, code.clone(), Some(note.clone()))
        }
        ActionResult::Unknown { note } => (ActionState::Unknown, None, Some(note.clone())),
    };
    rec.state = state;
    rec.code = code;
    rec.note = note;
    if text_chars.is_some() {
        rec.text_chars = text_chars;
    }
    rec.updated_at = now;
    save(tx, &rec)?;
    Ok(Some(rec))
}
