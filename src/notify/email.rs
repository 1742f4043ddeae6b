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

use super::{BuildError, Channel, Notification, SendResult};
use crate::config::{EmailSpec, EmailTls};

pub struct EmailChannel {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailChannel {
    pub fn new(spec: &EmailSpec, timeout: Duration) -> Result<Self, BuildError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            BuildError::Invalid(format!("e-mail {what}: {e}"))
        };
        let builder = match spec.tls {
            EmailTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&spec.host)
                .map_err(|e| invalid("TLS setup", &e))?,
            EmailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&spec.host)
                .map_err(|e| invalid("TLS setup", &e))?,
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&spec.host),
        };
        let mut builder = builder.port(spec.port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&spec.username, &spec.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.resolve()?));
        }
        let from = spec.from.parse().map_err(|e| invalid("from", &e))?;
        let to = spec
            .to
            .iter()
            .map(|a| a.parse::<Mailbox>())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("to", &e))?;
        Ok(Self {
            mailer: builder.build(),
            from,
            to,
        })
    }

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
