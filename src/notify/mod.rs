//! Telling the seller: events → outbox rows → channels.
//!
//! Stages describe what happened as an [`Alert`]; the [`Router`] (built from the `notify` stage
//! of the running config) renders it with the event's template (`config::NotifyTemplates`), decides which
//! channels hear about it, and how it is de-duplicated, cooled down and linked to an ongoing
//! problem. The result is one outbox draft per channel, which the store commits in the same
//! transaction as the state change. The [`dispatcher`] drains the outbox with local rate
//! limits, retries and the fallback chain. One file per channel kind, all behind [`Channel`].

pub mod bark;
pub mod dingtalk;
pub mod dispatcher;
pub mod email;
pub mod feishu;
pub mod http;
mod log;
pub mod pushplus;
pub mod rate;
pub mod serverchan;
pub mod sign;
pub mod sms_aliyun;
pub mod sms_tencent;
pub mod telegram;
pub mod text;
pub mod webhook;
pub mod wecom;

use std::fmt;

use serde::Serialize;

use crate::alert::{Alert, AlertView, DEFAULT_DEDUPE_WINDOW, EventKind, default_cooldowns};
use crate::config::{ChannelConfig, ChannelSpec, NotifyParams, NotifyTemplates, SecretError};
use crate::store::{OutboxDraft, ProblemMark, Quiet, problem_quiet_key};

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

    /// Primary channels and fallback chain, or `None` when the seller did not ask for it.
    fn route(&self, alert: &Alert) -> Option<(Vec<String>, Vec<String>)> {
        let Some(p) = self.params else {
            // Without a notify stage the seller still sees alerts in the log.
            let wanted = EventKind::DEFAULT_ALERTS.contains(&alert.kind)
                || alert.kind == EventKind::Recovered;
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
            window_ms: window.as_millis() as u64,
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

/// A notification as a channel sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// The outbox row id: the idempotency key for channels that take one.
    pub id: u64,
    pub event: EventKind,
    pub title: String,
    pub text: String,
    pub order_id: Option<String>,
    pub vars: std::collections::BTreeMap<String, String>,
    /// Unix ms when the alert was raised.
    pub created_at: u64,
}

impl Notification {
    pub fn from_row(row: &crate::store::OutboxRow) -> Self {
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

    /// Title and text as one message (IM bots have no title field).
    pub fn body(&self) -> String {
        text::headed(&self.title, &self.text)
    }
}

/// How a channel answered, classified by its body code (not just the HTTP status) so the
/// dispatcher knows whether to retry, wait, or move on to the fallback chain.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    Accepted,
    /// Worth trying again (timeouts, 5xx, rate-limit answers), after `retry_after_ms` if the
    /// channel said how long.
    Retryable {
        error: String,
        retry_after_ms: Option<u64>,
    },
    /// Will fail the same way every time (bad key, bad signature, bad recipient).
    Permanent {
        error: String,
    },
    /// A quota or penalty: hammering is useless, so fall back now; retried later only when
    /// no fallback is left.
    Quota {
        error: String,
        retry_after_ms: Option<u64>,
    },
}

impl SendResult {
    pub fn class(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Retryable { .. } => "retryable",
            Self::Permanent { .. } => "permanent",
            Self::Quota { .. } => "quota",
        }
    }

    pub fn retryable(error: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self::Retryable {
            error: error.into(),
            retry_after_ms,
        }
    }

    pub fn permanent(error: impl Into<String>) -> Self {
        Self::Permanent {
            error: error.into(),
        }
    }

    pub fn quota(error: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Self::Quota {
            error: error.into(),
            retry_after_ms,
        }
    }
}

impl fmt::Display for SendResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::Permanent { error } => write!(f, "permanent: {error}"),
            Self::Retryable {
                error,
                retry_after_ms,
            }
            | Self::Quota {
                error,
                retry_after_ms,
            } => {
                write!(f, "{}: {error}", self.class())?;
                if let Some(ms) = retry_after_ms {
                    write!(f, " (retry after {}s)", ms.div_ceil(1000))?;
                }
                Ok(())
            }
        }
    }
}

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, n: &Notification) -> SendResult;
}

/// Why a configured channel cannot be built (always a configuration problem: permanent).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Invalid(String),
}

/// Build the channel implementation for a configured channel. Secrets are resolved here, when
/// the dispatcher (re)builds its channels for a config version, never stored in the config.
pub fn build_channel(
    cfg: &ChannelConfig,
    http: &reqwest::Client,
) -> Result<Box<dyn Channel>, BuildError> {
    let (http, t) = (http.clone(), cfg.timeout);
    Ok(match &cfg.spec {
        ChannelSpec::Log => Box::new(log::LogChannel),
        ChannelSpec::Webhook { url, secret } => Box::new(webhook::WebhookChannel::new(
            http,
            url.resolve()?,
            secret.as_ref().map(|s| s.resolve()).transpose()?,
            t,
        )?),
        ChannelSpec::Wecom(spec) => Box::new(wecom::WecomChannel::new(http, spec, t)?),
        ChannelSpec::Dingtalk(spec) => Box::new(dingtalk::DingtalkChannel::new(http, spec, t)?),
        ChannelSpec::Feishu(spec) => Box::new(feishu::FeishuChannel::new(http, spec, t)?),
        ChannelSpec::Bark(spec) => Box::new(bark::BarkChannel::new(http, spec, t)?),
        ChannelSpec::Telegram(spec) => Box::new(telegram::TelegramChannel::new(http, spec, t)?),
        ChannelSpec::Serverchan(spec) => {
            Box::new(serverchan::ServerchanChannel::new(http, spec, t)?)
        }
        ChannelSpec::Pushplus(spec) => Box::new(pushplus::PushplusChannel::new(http, spec, t)?),
        ChannelSpec::Email(spec) => Box::new(email::EmailChannel::new(spec, t)?),
        ChannelSpec::AliyunSms(spec) => Box::new(sms_aliyun::AliyunSmsChannel::new(http, spec, t)?),
        ChannelSpec::TencentSms(spec) => {
            Box::new(sms_tencent::TencentSmsChannel::new(http, spec, t)?)
        }
    })
}
