//! [`HealthWatch`]: model trouble as the seller sees it — grouped on the status page's 异常
//! page (repeats counted, not listed), and one warning when a failing streak starts and one
//! line when it ends, instead of a line per buyer.

use super::runner::ChatWatch;
use super::stages::ModelProblem;
use crate::clock::now_ms;
use crate::health::Health;

pub struct HealthWatch {
    pub health: Health,
}

impl ChatWatch for HealthWatch {
    fn model_problem(&self, account: &str, problem: &ModelProblem) {
        let label = problem.label();
        if self.health.record_chat_problem(account, &label, now_ms()) {
            tracing::warn!(account, problem = %label, "AI replies are failing; buyers get the fallback reply until the model works again.");
        }
    }

    fn model_ok(&self, account: &str) {
        if self.health.record_chat_ok(account) {
            tracing::info!(account, "AI replies work again.");
        }
    }
}
