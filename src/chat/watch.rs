//! [`HealthWatch`]: model trouble as the seller sees it — grouped on the status page's 异常
//! page (repeats counted, not listed), and one `chat_failed` alert through the notify router and
//! the outbox when a failing streak starts, one `recovered` when it ends (cooled down per
//! account like a login problem), instead of a line per buyer.

use std::sync::Arc;

use tokio::sync::Notify;

use super::runner::ChatWatch;
use super::stages::ModelProblem;
use crate::alert::{Alert, EventKind};
use crate::clock::now_ms;
use crate::config::ConfigHandle;
use crate::health::Health;
use crate::notify::Router;
use crate::store::Store;

pub struct HealthWatch {
    pub health: Health,
    pub store: Store,
    pub config: ConfigHandle,
    /// Woken after an alert is queued, so the dispatcher sends it at once.
    pub wake_outbox: Arc<Notify>,
}

impl HealthWatch {
    fn enqueue(&self, alert: Alert) {
        let config = self.config.load();
        let drafts = Router::new(config.notify()).drafts(&alert);
        // Rare (a streak starting or ending), so a short blocking write is fine here.
        match crate::store::blocking(|| self.store.enqueue_notifications(&drafts)) {
            Ok(_) => self.wake_outbox.notify_one(),
            Err(e) => tracing::error!(error = %e, "Could not queue the AI reply alert."),
        }
    }

    fn account_name(&self, account: &str) -> String {
        let config = self.config.load();
        config
            .account(account)
            .map_or_else(|| account.to_string(), |a| a.name.clone())
    }
}

impl ChatWatch for HealthWatch {
    fn model_problem(&self, account: &str, problem: &ModelProblem) {
        let label = problem.label();
        if self.health.record_chat_problem(account, &label, now_ms()) {
            tracing::warn!(account, problem = %label, "AI replies are failing; buyers get the fallback reply until the model works again.");
            let name = self.account_name(account);
            self.enqueue(Alert::chat_failed(account, &name, &label));
        }
    }

    fn model_ok(&self, account: &str) {
        if self.health.record_chat_ok(account) {
            tracing::info!(account, "AI replies work again.");
            let name = self.account_name(account);
            self.enqueue(Alert::recovered(EventKind::ChatFailed, account, &name));
        }
    }
}
