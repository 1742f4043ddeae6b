//! 售后 (`/aftersale`): what the after-sale tasks did — ratings, thank-you messages and
//! polish results with the platform's raw result code, each account's rate guard and circuit
//! breaker, and which tasks the config has on. "Already polished today" is shown as such,
//! never as a fresh success.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::status::page::{Built, Input};
use crate::store::{AccountGuard, ActionKind, ActionRecord, ActionState};

/// Actions listed.
const LIMIT: usize = 300;

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    Box::pin(async move {
        let actions = input.ctx.store.call(|s| s.recent_actions(LIMIT)).await;
        let guards = input.ctx.store.call(|s| s.aftersale_guards()).await;
        match (actions, guards) {
            (Ok(actions), Ok(guards)) => {
                let a = &input.config.aftersale;
                let tasks = vec![
                    Task::new("评价买家", a.rate.as_ref().map(|r| format!("买家确认收货后评价；每天 {} 扫一遍待评价列表", r.sweep_window.label()))),
                    Task::new("感谢消息", a.thanks.as_ref().map(|_| "买家确认收货后发一次".to_string())),
                    Task::new("擦亮", a.polish.as_ref().map(|p| {
                        let what = if p.items.is_empty() { "所有在售商品".to_string() } else { format!("{} 个商品", p.items.len()) };
                        format!("每天 {} 擦亮{what}", p.window.label())
                    })),
                ];
                Built::Page(Box::new(AftersalePage {
                    tasks,
                    counts: ActionKind::ALL.iter().map(|k| Count::of(*k, &actions)).collect(),
                    accounts: guards.iter().map(|(a, g)| GuardRow::new(a, g)).collect(),
                    actions: actions.iter().map(ActionRow::new).collect(),
                }))
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "Status page cannot read the after-sale actions.");
                Built::Failed
            }
        }
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct AftersalePage {
    pub tasks: Vec<Task>,
    pub counts: Vec<Count>,
    pub accounts: Vec<GuardRow>,
    pub actions: Vec<ActionRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub name: &'static str,
    pub enabled: bool,
    pub detail: String,
}

impl Task {
    fn new(name: &'static str, detail: Option<String>) -> Self {
        Self {
            name,
            enabled: detail.is_some(),
            detail: detail.unwrap_or_else(|| "关闭（默认）".into()),
        }
    }
}

/// Outcomes of one kind among the actions listed.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub kind: &'static str,
    pub label: &'static str,
    pub done: usize,
    pub already_done: usize,
    pub failed: usize,
    pub unknown: usize,
}

impl Count {
    fn of(kind: ActionKind, actions: &[ActionRecord]) -> Self {
        let n = |s: ActionState| actions.iter().filter(|a| a.kind == kind && a.state == s).count();
        Self {
            kind: kind.as_str(),
            label: kind.label(),
            done: n(ActionState::Done),
            already_done: n(ActionState::AlreadyDone),
            failed: n(ActionState::Failed),
            unknown: n(ActionState::Unknown) + n(ActionState::Calling),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GuardRow {
    pub account: String,
    pub last_call_at: Option<u64>,
    pub paused: bool,
    pub paused_at: Option<u64>,
    pub paused_code: Option<String>,
}

impl GuardRow {
    fn new(account: &str, g: &AccountGuard) -> Self {
        Self {
            account: account.to_string(),
            last_call_at: (g.last_call_ms != 0).then_some(g.last_call_ms),
            paused: g.tripped.is_some(),
            paused_at: g.tripped.as_ref().map(|t| t.at),
            paused_code: g.tripped.as_ref().map(|t| t.code.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRow {
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub account: String,
    pub order_id: Option<String>,
    pub item_id: Option<String>,
    pub state: &'static str,
    pub state_label: &'static str,
    /// The platform's raw result code, as it answered.
    pub code: Option<String>,
    pub note: Option<String>,
    pub attempts: u32,
    pub updated_at: u64,
}

impl ActionRow {
    pub fn new(a: &ActionRecord) -> Self {
        Self {
            kind: a.kind.as_str(),
            kind_label: a.kind.label(),
            account: a.account.clone(),
            order_id: a.order_id.clone(),
            item_id: a.item_id.clone(),
            state: a.state.as_str(),
            state_label: a.state.label(a.kind),
            code: a.code.clone(),
            note: a.note.clone(),
            attempts: a.attempts,
            updated_at: a.updated_at,
        }
    }
}
