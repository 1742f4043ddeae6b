//! Telling the seller: events → outbox rows → channels.
//!
//! Stages describe what happened as an [`Alert`]; the [`Router`] (built from the `notify` stage
//! of the running config) renders it with the event's template (`config::NotifyTemplates`), decides which
//! channels hear about it, and how it is de-duplicated, cooled down and linked to an ongoing
//! problem. The result is one outbox draft per channel, which the store commits in the same
//! transaction as the state change. The [`dispatcher`] drains the outbox with local rate
//! limits, retries and the fallback chain into the vendors of [`crate::channels`].

pub mod dispatcher;
pub mod rate;

use crate::alert::{Alert, AlertView, DEFAULT_DEDUPE_WINDOW, EventKind, default_cooldowns};
use crate::channels::Notification;
use crate::config::{NotifyParams, NotifyTemplates};
use crate::store::{OutboxDraft, OutboxRow, ProblemMark, Quiet, problem_quiet_key};

/// Turns alerts into outbox drafts according to the running config's `notify` stage.
#[derive(Debug, Clone, Copy)]
pub struct Router<'a> {
    params: Option<&'a NotifyParams>,
}

impl<'a> Router<'a> {
    pub fn new(params: Option<&'a NotifyParams>) -> Self {
        Self { params }
    }

    pub fn drafts(&self, alert: &Alert) -> Vec<OutboxDraft> {
        let Some((channels, fallback)) = self.route(alert) else {
            return Vec::new();
        };
        self.drafts_for(alert, &channels, &fallback)
    }

    fn drafts_for(
        &self,
        alert: &Alert,
        channels: &[String],
        fallback: &[String],
    ) -> Vec<OutboxDraft> {
        let notification = self.render(alert);
        let quiet = self.quiet(alert, &notification);
        let problem = alert.problem.clone().map(|p| match alert.kind {
            EventKind::Recovered => ProblemMark::Clears(p),
            _ => ProblemMark::Opens(p),
        });
        let group = group_id();
        channels
            .iter()
            .map(|ch| OutboxDraft {
                event: alert.kind,
                channel: ch.clone(),
                fallback: fallback.iter().filter(|f| *f != ch).cloned().collect(),
                title: notification.title.clone(),
                text: notification.text.clone(),
                order_id: alert.order_id.clone(),
                group,
                vars: notification.vars.clone(),
                quiet: quiet.clone(),
                problem: problem.clone(),
            })
            .collect()
    }

    /// Drafts of `alert` for exactly `channels` (the daily report names its own), rendered,
    /// de-duplicated and with the fallback chain like any other alert.
    pub fn drafts_to(&self, alert: &Alert, channels: &[String]) -> Vec<OutboxDraft> {
        let fallback = self.params.map(|p| p.fallback.clone()).unwrap_or_default();
        self.drafts_for(alert, channels, &fallback)
    }

    /// Primary channels and fallback chain, or `None` when the seller did not ask for it.
    fn route(&self, alert: &Alert) -> Option<(Vec<String>, Vec<String>)> {
        let Some(p) = self.params else {
            // Without a notify stage the seller still sees alerts in the log.
            let wanted = alert.kind.alerts_by_default() || alert.kind == EventKind::Recovered;
            return wanted.then(|| (vec!["log".to_string()], Vec::new()));
        };
        let channels = match alert.kind {
            EventKind::Recovered if !p.recovery => return None,
            // Recovery goes where the problem went, unless `routes.recovered` says otherwise.
            EventKind::Recovered => p
                .routes
                .get(&EventKind::Recovered)
                .map(Vec::as_slice)
                .or_else(|| alert.recovers.and_then(|k| p.route(k)))?,
            kind => p.route(kind)?,
        };
        Some((channels.to_vec(), p.fallback.clone()))
    }

    fn render(&self, alert: &Alert) -> Notification {
        let templates = self
            .params
            .map(|p| p.templates.clone())
            .unwrap_or_else(NotifyTemplates::builtin);
        let text = templates.render(alert).unwrap_or_else(|e| {
            tracing::error!(event = %alert.kind, error = %e, "Notification template failed; sending the plain facts.");
            alert.text()
        });
        let view = AlertView::of(alert);
        Notification {
            id: 0,
            event: alert.kind,
            title: alert.title(),
            text,
            order_id: alert.order_id.clone(),
            vars: view.vars(),
            created_at: 0,
        }
    }

    fn quiet(&self, alert: &Alert, n: &Notification) -> Option<Quiet> {
        let dedupe = self
            .params
            .map_or(DEFAULT_DEDUPE_WINDOW, |p| p.dedupe_window);
        let cooldown = match self.params {
            Some(p) => p.cooldown.get(&alert.kind).copied(),
            None => default_cooldowns().get(&alert.kind).copied(),
        };
        let (key, window) = match (&alert.problem, alert.kind) {
            // A recovery is sent once by construction (it closes the problem).
            (_, EventKind::Recovered) => return None,
            (Some(problem), _) => (problem_quiet_key(problem), cooldown.unwrap_or(dedupe)),
            (None, kind) if cooldown.is_some() => (
                format!("cooldown:{kind}:{}", alert.subject()),
                cooldown.unwrap_or_default(),
            ),
            (None, kind) => (
                format!("same:{kind}:{}", content_hash(&n.title, &n.text)),
                dedupe,
            ),
        };
        (!window.is_zero()).then_some(Quiet {
            key,
            window_ms: crate::clock::millis(window),
        })
    }
}

fn content_hash(title: &str, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(title.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..12])
}

/// Rows of one alert share this id; random so that drafts built in different transactions
/// (and processes) never collide in practice.
fn group_id() -> u64 {
    use rand::RngExt;
    rand::rng().random_range(1..u64::MAX)
}

/// Constructors that need the outbox and the routing; the type itself is the channels'.
impl Notification {
    pub fn from_row(row: &OutboxRow) -> Self {
        Self {
            id: row.id,
            event: row.event,
            title: row.title.clone(),
            text: row.text.clone(),
            order_id: row.order_id.clone(),
            vars: row.vars.clone(),
            created_at: row.created_at,
        }
    }

    /// The sample alert of `kind`, rendered as the config's `notify` stage would (`notify-test`).
    pub fn sample(kind: EventKind, params: Option<&NotifyParams>, id: u64, now: u64) -> Self {
        let mut n = Router::new(params).render(&Alert::sample(kind));
        n.id = id;
        n.created_at = now;
        n.title = format!("【测试】{}", n.title);
        n
    }
}
