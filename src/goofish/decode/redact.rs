//! Debug output of decoded pushes without what people wrote (issue 10 D11).
//!
//! A decoded push is logged at TRACE when it needs no action; a chat message's text (a buyer's
//! question, or the echo of our own delivery with its card keys) and the raw payload it came
//! from must not reach a log, so they show as their length only.

use std::fmt;

use super::{Decoded, DecodedEvent};

/// `<N chars>` in place of a text.
struct Length(usize);

impl fmt::Debug for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} chars>", self.0)
    }
}

impl fmt::Debug for DecodedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Order {
                order_id,
                item_id,
                buyer_id,
                cid,
                status,
                role,
                source_msg_id,
                created_at_ms,
            } => f
                .debug_struct("Order")
                .field("order_id", order_id)
                .field("item_id", item_id)
                .field("buyer_id", buyer_id)
                .field("cid", cid)
                .field("status", status)
                .field("role", role)
                .field("source_msg_id", source_msg_id)
                .field("created_at_ms", created_at_ms)
                .finish(),
            Self::Chat {
                cid,
                sender_id,
                message_id,
                text,
                item_id,
                own,
                sender_nick,
                sent_at_ms,
            } => f
                .debug_struct("Chat")
                .field("cid", cid)
                .field("sender_id", sender_id)
                .field("message_id", message_id)
                .field("text", &Length(text.chars().count()))
                .field("item_id", item_id)
                .field("own", own)
                .field("sender_nick", sender_nick)
                .field("sent_at_ms", sent_at_ms)
                .finish(),
            Self::Typing { cid, user_id } => f
                .debug_struct("Typing")
                .field("cid", cid)
                .field("user_id", user_id)
                .finish(),
            Self::ReadReceipt {
                cid,
                message_id,
                read_at_ms,
            } => f
                .debug_struct("ReadReceipt")
                .field("cid", cid)
                .field("message_id", message_id)
                .field("read_at_ms", read_at_ms)
                .finish(),
            Self::Session {
                cid,
                item_id,
                seller_id,
                buyer_id,
            } => f
                .debug_struct("Session")
                .field("cid", cid)
                .field("item_id", item_id)
                .field("seller_id", seller_id)
                .field("buyer_id", buyer_id)
                .finish(),
            Self::PaidHint { cid } => f.debug_struct("PaidHint").field("cid", cid).finish(),
            Self::Ignored { reason } => f.debug_struct("Ignored").field("reason", reason).finish(),
        }
    }
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoded")
            .field("event", &self.event)
            .field("raw", &Length(self.raw.to_string().chars().count()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_and_raw_payloads_show_as_their_length() {
        let event = DecodedEvent::Chat {
            cid: "c1".into(),
            sender_id: "2200000000001".into(),
            message_id: "1.PNM".into(),
            text: "卡密：KEY-0001-SECRET".into(),
            item_id: None,
            own: true,
            sender_nick: None,
            sent_at_ms: None,
        };
        let decoded = Decoded {
            event: event.clone(),
            raw: serde_json::json!({ "text": "卡密：KEY-0001-SECRET" }),
        };
        for shown in [format!("{event:?}"), format!("{decoded:#?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("<18 chars>"), "{shown}");
        }
    }
}
