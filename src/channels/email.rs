//! E-mail over SMTP with lettre: implicit TLS (465), STARTTLS (587), or plain for a loopback
//! server. One pooled transport per channel build; the subject is the title (RFC 2047-encoded
//! by lettre), the body the UTF-8 text.
//!
//! Verdicts by SMTP reply: final 2xx accepted; 4xx (transient) and connection, TLS or timeout
//! failures retryable; 5xx (535 bad authorization code, 501 From ≠ login, 550) permanent.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use serde::Deserialize;

use super::{BuildError, Channel, Check, Limits, Notification, SendResult, Vendor, http};
use crate::secret::{SecretKeys, SecretRef};

/// `type: email`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `implicit` (465), `starttls` (587) or `none` (loopback only).
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: SecretKeys,
    pub from: Option<String>,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain connect, then STARTTLS (port 587).
    Starttls,
    /// No TLS: only for a loopback server.
    None,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub host: String,
    pub port: u16,
    pub tls: EmailTls,
    /// The login; defaults to `from` when a password is given.
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    pub from: String,
    pub to: Vec<String>,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = EmailChannel;
    const SECRETS: &'static [&'static str] = &["password"];
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let path = c.path().to_string();
        let host = c.required("host", raw.host.clone());
        let from = c.required("from", raw.from.clone());
        if raw.to.is_empty() {
            c.err(&path, format!("{path}: missing `to` (a list of addresses)"));
        }
        for addr in raw.to.iter().chain(from.iter()) {
            if addr.parse::<Mailbox>().is_err() {
                c.err(&path, format!("{path}: `{addr}` is not an e-mail address (write `name@example.com` or `名字 <name@example.com>`)"));
            }
        }
        let tls = tls(raw, c);
        let host = host?;
        if tls == EmailTls::None && !http::is_loopback(&host) {
            c.err(&c.key("tls"), format!("{path}.tls: `none` would send mail and password unencrypted; it is only allowed for a loopback server"));
        }
        let port = raw.port.unwrap_or(match tls {
            EmailTls::Implicit => 465,
            EmailTls::Starttls => 587,
            EmailTls::None => 25,
        });
        let password = c.opt_secret("password", &raw.password);
        let from = from?;
        let username = raw
            .username
            .clone()
            .or_else(|| password.as_ref().map(|_| from.clone()));
        Some(Spec {
            host,
            port,
            tls,
            username,
            password,
            from,
            to: raw.to.clone(),
        })
    }

    /// SMTP: the shared HTTP client is not used.
    fn sender(&self, _: reqwest::Client, timeout: Duration) -> Result<EmailChannel, BuildError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            BuildError::Invalid(format!("e-mail {what}: {e}"))
        };
        let builder = match self.tls {
            EmailTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)
                .map_err(|e| invalid("TLS setup", &e))?,
            EmailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
                .map_err(|e| invalid("TLS setup", &e))?,
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
        };
        let mut builder = builder.port(self.port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.resolve()?));
        }
        let from = self.from.parse().map_err(|e| invalid("from", &e))?;
        let to = self
            .to
            .iter()
            .map(|a| a.parse::<Mailbox>())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("to", &e))?;
        Ok(EmailChannel {
            mailer: builder.build(),
            from,
            to,
        })
    }
}

/// `tls:`, or what the port implies (465 implicit, 587 STARTTLS; implicit when neither is given).
fn tls(raw: &Raw, c: &mut Check<'_>) -> EmailTls {
    let path = c.path().to_string();
    match (raw.tls.as_deref(), raw.port) {
        (Some("implicit"), _) | (None, Some(465) | None) => EmailTls::Implicit,
        (Some("starttls"), _) | (None, Some(587)) => EmailTls::Starttls,
        (Some("none"), _) => EmailTls::None,
        (None, Some(p)) => {
            c.err(
                &c.key("port"),
                format!("{path}: port {p} needs `tls: implicit`, `starttls` or `none`"),
            );
            EmailTls::Implicit
        }
        (Some(other), _) => {
            c.err(&c.key("tls"), format!("{path}.tls: `{other}` is not one of implicit (465), starttls (587), none (loopback only)"));
            EmailTls::Implicit
        }
    }
}

pub struct EmailChannel {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailChannel {
    pub fn message(&self, n: &Notification) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.title.clone());
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.header(ContentType::TEXT_PLAIN)
            .body(n.text.clone())
            .map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl Channel for EmailChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let msg = match self.message(n) {
            Ok(m) => m,
            Err(e) => return SendResult::permanent(format!("cannot build the mail: {e}")),
        };
        match self.mailer.send(msg).await {
            Ok(_) => SendResult::Accepted,
            Err(e) => classify(&e),
        }
    }
}

pub fn classify(e: &lettre::transport::smtp::Error) -> SendResult {
    let error = format!("SMTP: {e}");
    if e.is_permanent() {
        SendResult::permanent(error)
    } else {
        // Transient 4xx replies, disconnects, TLS and timeouts: the next try may well work.
        SendResult::retryable(error, None)
    }
}
