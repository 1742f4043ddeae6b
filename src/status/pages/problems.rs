//! 异常 (`/problems`): deliveries that need a human, failed deliveries, failing
//! notifications, accounts whose login is in trouble, and AI reply problems.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::health::{ChatProblem, Health, Login, LoginEvent};
use crate::store::DeliveryState;
use crate::store::views::ShopView;

use crate::status::page::{Built, Input, ready};
use crate::status::parts::{AccountView, LIST_LIMIT, NotificationView, OrderItem, accounts};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    ready(problems(
        input.view,
        input.config,
        &input.ctx.health,
        input.now,
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginEventView {
    pub at: u64,
    pub account: String,
    pub login: Login,
    pub login_label: &'static str,
    pub detail: Option<String>,
}

impl From<LoginEvent> for LoginEventView {
    fn from(e: LoginEvent) -> Self {
        Self {
            at: e.at,
            account: e.account,
            login_label: e.login.label(),
            login: e.login,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemsPage {
    pub needs_human: Vec<OrderItem>,
    pub failed_deliveries: Vec<OrderItem>,
    pub failing_notifications: Vec<NotificationView>,
    pub accounts: Vec<AccountView>,
    pub login_events: Vec<LoginEventView>,
    /// AI reply problems (model errors, blocked answers), repeats counted, newest first.
    pub chat_problems: Vec<ChatProblem>,
    /// Accounts whose model calls are failing now.
    pub chat_failing: Vec<String>,
}

pub fn problems(view: &ShopView, config: &Config, health: &Health, now: u64) -> ProblemsPage {
    let list = |s: DeliveryState| -> Vec<OrderItem> {
        view.deliveries_in(s)
            .into_iter()
            .take(LIST_LIMIT)
            .map(|o| OrderItem::titled(o, config))
            .collect()
    };
    ProblemsPage {
        needs_human: list(DeliveryState::NeedsHuman),
        failed_deliveries: list(DeliveryState::FailedSafe),
        failing_notifications: view
            .outbox_problems
            .iter()
            .map(NotificationView::from)
            .collect(),
        accounts: accounts(config, health, now)
            .into_iter()
            .filter(|a| a.login_problem || a.connection_attention)
            .collect(),
        login_events: health
            .login_events()
            .into_iter()
            .filter(|e| e.login.is_problem())
            .map(LoginEventView::from)
            .collect(),
        chat_problems: health.chat_problems(),
        chat_failing: health.chat_failing().into_keys().collect(),
    }
}
