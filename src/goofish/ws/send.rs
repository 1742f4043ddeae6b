//! The sending side of an account's connection, used by the marketplace: text and image
//! messages and opening a conversation, each judged by the server's answer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::conn::{Conn, RequestError};
use super::frames::{
    conversation_cid, image_body, message_uuid, reason_of, send_body, send_outcome,
};
use super::{HANDLE, Shared};
use crate::clock::now_ms;
use crate::marketplace::SendOutcome;

/// The sending side of an account's connection; cheap to clone.
#[derive(Clone)]
pub struct ImHandle {
    shared: Arc<Shared>,
    send_timeout: Duration,
}

impl ImHandle {
    pub(super) fn new(shared: Arc<Shared>, send_timeout: Duration) -> Self {
        Self {
            shared,
            send_timeout,
        }
    }

    /// Whether a registered connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.live.borrow().is_some()
    }

    /// How long a request waits for a connection and then for its answer.
    pub(super) fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Wait (up to the send timeout) for a registered connection.
    pub(super) async fn connection(&self) -> Option<Arc<Conn>> {
        let mut rx = self.shared.live.subscribe();
        let wait = rx.wait_for(Option::is_some);
        match tokio::time::timeout(self.send_timeout, wait).await {
            Ok(Ok(conn)) => conn.clone(),
            _ => None,
        }
    }

    /// Send a text message to `cid`, addressed to `peer` and ourselves (reference §6.1).
    pub async fn send_text(&self, cid: &str, peer: &str, text: &str) -> SendOutcome {
        self.send_scoped(|me, uuid| send_body(cid, peer, me, text, uuid))
            .await
    }

    /// Send an image already on the CDN to `cid` (reference §6.2), judged like a text.
    pub async fn send_image(&self, cid: &str, peer: &str, image: (&str, u32, u32)) -> SendOutcome {
        self.send_scoped(|me, uuid| image_body(cid, peer, me, image, uuid))
            .await
    }

    async fn send_scoped(&self, body: impl FnOnce(&str, &str) -> Value) -> SendOutcome {
        let Some(conn) = self.connection().await else {
            return SendOutcome::NotDelivered {
                reason: format!("IM not connected within {:?}", self.send_timeout),
            };
        };
        let uuid = message_uuid(now_ms());
        let body = body(&conn.user_id, &uuid);
        let answer = conn
            .request(
                "/r/MessageSend/sendByReceiverScope",
                json!({}),
                Some(body),
                self.send_timeout,
            )
            .await;
        match answer {
            Ok(frame) => send_outcome(&frame),
            Err(RequestError::NotSent(reason)) => SendOutcome::NotDelivered {
                reason: format!("not sent: {reason}"),
            },
            Err(RequestError::NoAnswer(reason)) => SendOutcome::Unknown {
                reason: format!("sent, but {reason}"),
            },
        }
    }

    /// Open (or find) the single chat with `peer` about `item_id`; returns the bare cid.
    pub async fn create_conversation(
        &self,
        peer: &str,
        item_id: Option<&str>,
    ) -> Result<String, String> {
        let conn = self
            .connection()
            .await
            .ok_or_else(|| "IM not connected".to_string())?;
        let mut spec = json!({
            "pairFirst": format!("{peer}{HANDLE}"),
            "pairSecond": format!("{}{HANDLE}", conn.user_id),
            "bizType": "1",
            "ctx": {"appVersion": "1.0", "platform": "web"},
        });
        if let Some(item) = item_id {
            spec["extension"] = json!({"itemId": item});
        }
        let answer = conn
            .request(
                "/r/SingleChatConversation/create",
                json!({}),
                Some(json!([spec])),
                self.send_timeout,
            )
            .await
            .map_err(|e| match e {
                RequestError::NotSent(r) | RequestError::NoAnswer(r) => {
                    format!("conversation not created: {r}")
                }
            })?;
        conversation_cid(&answer).ok_or_else(|| {
            let code = answer.get("code").and_then(Value::as_i64).unwrap_or(0);
            let why = reason_of(&answer).unwrap_or_default();
            format!("conversation not created (code {code}) {why}")
                .trim_end()
                .to_string()
        })
    }
}
