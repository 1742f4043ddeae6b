//! The order state machine: the seed's six states plus `Refunded`, and the rules that make
//! disorderly, repeated marketplace events safe.
//!
//! Pure functions only: ingest asks [`decide`] what an observation means and the store applies
//! the answer in one transaction. Events arrive out of order (a paid card before the created
//! card, our own confirm before the platform's "shipped" echo) and many times over, so a status
//! never moves backwards and a repeat is a no-op.

use serde::{Deserialize, Serialize};

use crate::event::EventStatus;

/// Xianyu expects a paid order to be shipped within this long (48 h for most items).
pub const SHIP_DEADLINE_MS: u64 = 48 * 3600 * 1000;

/// When an order paid at `payment_time` (unix ms) must be shipped by. The manual queue counts
/// down to it and every hand-over alert names it.
pub fn ship_deadline(payment_time: u64) -> u64 {
    payment_time.saturating_add(SHIP_DEADLINE_MS)
}

/// Where the seller opens the order's conversation with the buyer in the Goofish web IM.
///
/// `https://www.goofish.com/im?itemId=<item>&peerUserId=<buyer>` is the conversation link the
/// public Xianyu web clients build (a TypeScript browser adapter's `buildChatUrl`, a Python
/// Playwright shipper's `auto_deliver_on_page`); without both ids it is the IM inbox. Ids that
/// are not plain digits/letters are left out rather than escaped, so the link is never a way
/// to inject anything into a page or a message.
pub fn chat_link(item_id: Option<&str>, buyer_id: Option<&str>) -> String {
    const INBOX: &str = "https://www.goofish.com/im";
    let plain = |s: &&str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match (item_id.filter(plain), buyer_id.filter(plain)) {
        (Some(item), Some(buyer)) => format!("{INBOX}?itemId={item}&peerUserId={buyer}"),
        _ => INBOX.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// 等待买家付款
    PendingPayment,
    /// 等待卖家发货: paid; this is what starts delivery.
    PendingShip,
    /// 已发货
    Shipped,
    /// 交易成功
    Completed,
    /// 交易关闭
    Closed,
    /// 退款中
    Refunding,
    /// 退款成功 (the refund completed; terminal)
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        Self::PendingPayment,
        Self::PendingShip,
        Self::Shipped,
        Self::Completed,
        Self::Closed,
        Self::Refunding,
        Self::Refunded,
    ];

    /// The label sellers see on the platform and on the status page.
    pub fn label(self) -> &'static str {
        match self {
            Self::PendingPayment => "等待买家付款",
            Self::PendingShip => "等待卖家发货",
            Self::Shipped => "已发货",
            Self::Completed => "交易成功",
            Self::Closed => "交易关闭",
            Self::Refunding => "退款中",
            Self::Refunded => "退款成功",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::PendingShip => "pending_ship",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }

    /// Accepts the machine name, the event vocabulary (`paid`) or the Chinese label.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "paid" {
            return Some(Self::PendingShip);
        }
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s || st.label() == s)
    }

    pub fn from_event(s: EventStatus) -> Self {
        match s {
            EventStatus::PendingPayment => Self::PendingPayment,
            EventStatus::Paid => Self::PendingShip,
            EventStatus::Shipped => Self::Shipped,
            EventStatus::Completed => Self::Completed,
            EventStatus::Closed => Self::Closed,
            EventStatus::Refunding => Self::Refunding,
            EventStatus::Refunded => Self::Refunded,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Closed | Self::Refunded)
    }

    /// Position on the happy path; a status never moves to a lower rank.
    fn rank(self) -> u8 {
        match self {
            Self::PendingPayment => 0,
            Self::PendingShip => 1,
            Self::Shipped => 2,
            Self::Completed => 3,
            Self::Refunding => 4,
            Self::Closed | Self::Refunded => 5,
        }
    }
}

/// What the delivery side must do because of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    None,
    /// The order became payable-and-paid: plan a delivery (or re-arm a cancelled one).
    StartDelivery,
    /// Stop any delivery that has not reached the buyer; release its unsent keys.
    /// With `revoke_delivered`, keys the buyer already received are marked revoked.
    StopDelivery {
        revoke_delivered: bool,
    },
    /// The platform says the order left the seller (已发货 / 交易成功) without our confirm
    /// (ours never goes through ingest): close the delivery. An uncertain send counts as
    /// received; a delivery that sent nothing gives its keys back.
    SettleShipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Transition {
        from: Option<OrderStatus>,
        to: OrderStatus,
        work: Work,
    },
    /// The order is already in this status: a repeat.
    Duplicate,
    /// The observation is older than what we know (e.g. "created" after "paid").
    Stale { current: OrderStatus },
}

/// Decide what observing `incoming` means for an order currently in `current`.
pub fn decide(current: Option<OrderStatus>, incoming: OrderStatus) -> Decision {
    use OrderStatus::*;
    let Some(cur) = current else {
        return transition(None, incoming);
    };
    if cur == incoming {
        return Decision::Duplicate;
    }
    let allowed = match cur {
        Closed | Refunded => false,
        // A refund that is withdrawn returns the order to where it was; one that completes ends it.
        Refunding => incoming != PendingPayment,
        Completed => matches!(incoming, Refunding | Refunded),
        _ => incoming.rank() > cur.rank(),
    };
    if allowed {
        transition(Some(cur), incoming)
    } else {
        Decision::Stale { current: cur }
    }
}

fn transition(from: Option<OrderStatus>, to: OrderStatus) -> Decision {
    use OrderStatus::*;
    let work = match to {
        PendingShip => Work::StartDelivery,
        Refunding => Work::StopDelivery {
            revoke_delivered: false,
        },
        Closed | Refunded => Work::StopDelivery {
            revoke_delivered: true,
        },
        Shipped | Completed => Work::SettleShipped,
        PendingPayment => Work::None,
    };
    Decision::Transition { from, to, work }
}

/// Which marketplace steps delivering an order takes, and in what order: send the goods in
/// chat, confirm the shipment on the platform, or both (per product or per `ship` stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipMode {
    SendThenConfirm,
    ConfirmThenSend,
    SendOnly,
    ConfirmOnly,
}

impl ShipMode {
    pub fn sends(self) -> bool {
        self != Self::ConfirmOnly
    }

    /// The mode confirms the shipment on the platform (every mode but `send_only`).
    pub fn confirms(self) -> bool {
        self != Self::SendOnly
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendThenConfirm => "send_then_confirm",
            Self::ConfirmThenSend => "confirm_then_send",
            Self::SendOnly => "send_only",
            Self::ConfirmOnly => "confirm_only",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn paid_before_created_keeps_paid() {
        let d = decide(None, PendingShip);
        assert!(matches!(
            d,
            Decision::Transition {
                work: Work::StartDelivery,
                ..
            }
        ));
        assert_eq!(
            decide(Some(PendingShip), PendingPayment),
            Decision::Stale {
                current: PendingShip
            }
        );
    }

    #[test]
    fn a_platform_shipment_settles_the_delivery() {
        for to in [Shipped, Completed] {
            assert!(matches!(
                decide(Some(PendingShip), to),
                Decision::Transition {
                    work: Work::SettleShipped,
                    ..
                }
            ));
        }
    }

    #[test]
    fn chat_links_carry_only_plain_ids() {
        assert_eq!(
            chat_link(Some("9001"), Some("2203")),
            "https://www.goofish.com/im?itemId=9001&peerUserId=2203"
        );
        assert_eq!(chat_link(None, Some("2203")), "https://www.goofish.com/im");
        assert_eq!(
            chat_link(Some("9001"), Some("x\"><script>")),
            "https://www.goofish.com/im"
        );
    }

    #[test]
    fn repeats_are_duplicates() {
        for s in OrderStatus::ALL {
            assert_eq!(decide(Some(s), s), Decision::Duplicate);
        }
    }

    #[test]
    fn shipped_echo_after_our_confirm_is_a_duplicate() {
        assert_eq!(decide(Some(Shipped), Shipped), Decision::Duplicate);
        assert!(matches!(
            decide(Some(Shipped), PendingShip),
            Decision::Stale { .. }
        ));
    }

    #[test]
    fn refund_paths() {
        assert!(matches!(
            decide(Some(PendingShip), Refunding),
            Decision::Transition {
                work: Work::StopDelivery {
                    revoke_delivered: false
                },
                ..
            }
        ));
        assert!(matches!(
            decide(Some(Refunding), Refunded),
            Decision::Transition {
                work: Work::StopDelivery {
                    revoke_delivered: true
                },
                ..
            }
        ));
        // withdrawn before shipping: delivery is re-armed
        assert!(matches!(
            decide(Some(Refunding), PendingShip),
            Decision::Transition {
                work: Work::StartDelivery,
                ..
            }
        ));
        assert!(matches!(
            decide(Some(Refunded), PendingShip),
            Decision::Stale { .. }
        ));
        assert!(matches!(
            decide(Some(Closed), PendingShip),
            Decision::Stale { .. }
        ));
    }

    #[test]
    fn labels_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.label()), Some(s));
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("paid"), Some(PendingShip));
    }
}
