//! The typed events every source produces.
//!
//! The Goofish WebSocket, the sold-order poll, a replay file and the demo all reduce what they see
//! to an [`OrderEvent`]; nothing downstream knows where an event came from except for the
//! `source` label kept for the audit log.

use serde::{Deserialize, Serialize};

/// Order status as a marketplace event reports it (the vocabulary of `decode` and replay files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    PendingPayment,
    Paid,
    Shipped,
    Completed,
    Closed,
    Refunding,
    Refunded,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }
}

/// One observation of an order's state, from any source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderEvent {
    /// The configured account (`accounts[].id`) that sold the order.
    pub account: String,
    pub order_id: String,
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_nick: Option<String>,
    /// The chat conversation id; delivery content goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default = "one")]
    pub quantity: u32,
    /// Amount paid in yuan, as the platform shows it ("12.50").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// When the source saw the event (unix ms); 0 means "now".
    #[serde(default)]
    pub seen_at: u64,
    /// The source's own message id, when it has one; part of the dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_msg_id: Option<String>,
    #[serde(default = "default_source")]
    pub source: String,
}

/// The largest quantity one order may carry. Xianyu caps a purchase far below this; anything
/// larger is a broken or hostile event and is rejected at ingest (it could otherwise ask the
/// stock check for billions of keys).
pub const MAX_QUANTITY: u32 = 10_000;

/// Why an event was refused before it reached the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event refused: `{field}` is empty")]
    Empty { field: &'static str },
    #[error(
        "event refused: `{field}` contains the invisible or control character U+{code:04X}; ids must be plain text"
    )]
    Unprintable { field: &'static str, code: u32 },
}

/// Characters that must never reach an id or a terminal: C0/C1 controls (a newline forges a
/// line of output), bidirectional overrides and isolates (they reorder what a terminal shows),
/// zero-width characters and the Unicode line separators.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Text as a terminal may show it: each unprintable character becomes `\u{…}`, so an id can
/// neither forge a line of output nor hide or reorder what is printed around it.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_unprintable) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unprintable(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// An order fact learnt later never overwrites one already known: `slot` takes `learnt` only
/// while it is empty (the order row from a later event, an event from the order detail).
pub fn fill_missing(slot: &mut Option<String>, learnt: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(learnt);
    }
}

fn one() -> u32 {
    1
}

fn default_source() -> String {
    "replay".to_string()
}

impl OrderEvent {
    /// Make an event safe to store and show, or say why it cannot be.
    ///
    /// Ids (`account`, `order_id`, and each optional id that is present) must be plain text: an
    /// id with a control character is refused, because it would forge lines in `replay` and
    /// `orders list` and could name a different order than the one it looks like. The two
    /// required ids must not be empty; an empty optional id is the same as none. Free text
    /// written by people (`item_title`, `buyer_nick`) is kept with each unprintable character
    /// replaced by U+FFFD: a buyer's odd nickname must not lose an order.
    pub fn sanitize(&mut self) -> Result<(), EventError> {
        for (field, value) in [("account", &self.account), ("order_id", &self.order_id)] {
            if value.trim().is_empty() {
                return Err(EventError::Empty { field });
            }
        }
        for opt in [
            &mut self.item_id,
            &mut self.buyer_id,
            &mut self.cid,
            &mut self.sku,
            &mut self.amount,
            &mut self.source_msg_id,
        ] {
            if opt.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *opt = None;
            }
        }
        let ids = [
            ("account", Some(&self.account)),
            ("order_id", Some(&self.order_id)),
            ("item_id", self.item_id.as_ref()),
            ("buyer_id", self.buyer_id.as_ref()),
            ("cid", self.cid.as_ref()),
            ("sku", self.sku.as_ref()),
            ("amount", self.amount.as_ref()),
            ("source_msg_id", self.source_msg_id.as_ref()),
            ("source", Some(&self.source)),
        ];
        for (field, value) in ids {
            if let Some(c) = value.and_then(|v| v.chars().find(|c| is_unprintable(*c))) {
                return Err(EventError::Unprintable {
                    field,
                    code: u32::from(c),
                });
            }
        }
        for text in [&mut self.item_title, &mut self.buyer_nick]
            .into_iter()
            .flatten()
        {
            if text.chars().any(is_unprintable) {
                *text = text
                    .chars()
                    .map(|c| if is_unprintable(c) { '\u{FFFD}' } else { c })
                    .collect();
            }
        }
        Ok(())
    }

    /// A minimal event; sources fill in what they know.
    pub fn new(account: &str, order_id: &str, status: EventStatus) -> Self {
        Self {
            account: account.to_string(),
            order_id: order_id.to_string(),
            status,
            item_id: None,
            item_title: None,
            buyer_id: None,
            buyer_nick: None,
            cid: None,
            sku: None,
            quantity: 1,
            amount: None,
            seen_at: 0,
            source_msg_id: None,
            source: default_source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(order_id: &str) -> OrderEvent {
        OrderEvent::new("main", order_id, EventStatus::Paid)
    }

    #[test]
    fn ids_with_control_characters_and_empty_ids_are_refused() {
        for (id, code) in [
            ("1\nsend order=2", 0x0A),
            ("1\0", 0),
            ("\u{202E}123", 0x202E),
            ("12\u{200B}3", 0x200B),
            ("1\u{2028}2", 0x2028),
            ("1\u{1b}[2J", 0x1B),
        ] {
            let err = event(id).sanitize().unwrap_err();
            assert_eq!(
                err,
                EventError::Unprintable {
                    field: "order_id",
                    code
                },
                "{id:?}"
            );
        }
        assert_eq!(
            event(" ").sanitize(),
            Err(EventError::Empty { field: "order_id" })
        );
        let mut ev = event("1");
        ev.cid = Some("c\r1".into());
        assert!(ev.sanitize().unwrap_err().to_string().contains("`cid`"));
    }

    #[test]
    fn shown_escapes_what_a_terminal_would_obey() {
        assert_eq!(shown("3000 订单"), "3000 订单");
        assert_eq!(shown("1\nsend order=2"), "1\\u{000a}send order=2");
        assert_eq!(shown("\u{202E}abc\0"), "\\u{202e}abc\\u{0000}");
    }

    #[test]
    fn free_text_is_cleaned_and_plain_ids_pass() {
        let mut ev = event("3000000000000000001");
        ev.buyer_nick = Some("小\u{202E}明\n".into());
        ev.item_title = Some("激活码 (月卡)".into());
        ev.sku = Some("颜色:红色 大号".into());
        ev.item_id = Some(String::new());
        ev.sanitize().unwrap();
        assert_eq!(ev.buyer_nick.as_deref(), Some("小\u{FFFD}明\u{FFFD}"));
        assert_eq!(ev.item_title.as_deref(), Some("激活码 (月卡)"));
        assert_eq!(ev.item_id, None, "an empty optional id is none");
    }
}
