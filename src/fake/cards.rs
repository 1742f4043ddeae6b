//! Trade-card payloads for every order state: shape A with a dxCard (reference §5.5.3,
//! reproduced byte-for-byte for the "created" card), shape D (simplified red reminder) and
//! shape E (card update). Content and extension JSON are assembled as text because the
//! service's key order is not alphabetical and the fake must match captures exactly.

use serde_json::{Value, json};

use super::wire::{handle, quote};

/// Which side of the order the receiving account is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Seller,
    Buyer,
}

impl Side {
    /// `role=` value and updateKey suffix.
    fn en(self) -> &'static str {
        match self {
            Self::Seller => "seller",
            Self::Buyer => "buyer",
        }
    }
}

/// The trade events the fake announces with a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CardKind {
    /// 我已拍下，待付款 (real capture A1).
    Created,
    /// 我已付款，等待你发货 (yd fixture).
    Paid,
    /// 记得及时发货: the buyer's "remind to ship" nudge.
    Nudge,
    /// 未付款，买家关闭了订单.
    ClosedUnpaid,
    /// 你关闭了订单，钱款已原路退返.
    ClosedPaid,
    /// 我发起了退款申请 (yd fixture).
    RefundRequested,
    /// Refund agreed: a card update (custom type 32) whose button reads 已同意 (zn-old).
    RefundAgreed,
    /// 买家确认收货，交易成功.
    Completed,
}

impl CardKind {
    /// The card's summary text (`[我已付款，等待你发货]`), as a history lists it.
    pub(crate) fn summary(self) -> &'static str {
        wording(self).summary
    }
}

/// Everything one card copy needs, from the order book plus fresh ids.
pub(crate) struct CardFacts {
    pub side: Side,
    /// The account that receives this copy (`receiver`).
    pub receiver: String,
    pub buyer: String,
    /// The buyer's nick as URLs mask it.
    pub buyer_masked: String,
    pub cid: String,
    pub item_id: String,
    pub order_id: String,
    pub task_id: String,
    /// Server message id, `<digits>.PNM`.
    pub message_id: String,
    /// The card's 32-hex `messageId` / `msg_id`.
    pub card_id: String,
    /// `correlationGroupId`.
    pub correlation: String,
    pub created_ms: u64,
}

/// The texts and links that differ between card kinds, as the real cards carry them.
struct Wording {
    /// `1.6.3.2`, `reminderContent`, `detailNotice`.
    summary: &'static str,
    /// `reminderNotice`, `reminderTitle`.
    notice: &'static str,
    red: &'static str,
    /// `task` per side: (seller copy, buyer copy).
    task: (&'static str, &'static str),
    /// Status part of `updateKey` (`<cid>:<orderId>:<this>`) per side, when the kind has one.
    key: (Option<&'static str>, Option<&'static str>),
    title: &'static str,
    desc: &'static str,
    /// (text, `fleamarket://` page) of the card button; seller copies only.
    button: Option<(&'static str, &'static str)>,
    content_type: u8,
}

impl Wording {
    fn task(&self, side: Side) -> &'static str {
        match side {
            Side::Seller => self.task.0,
            Side::Buyer => self.task.1,
        }
    }

    fn key(&self, side: Side) -> Option<&'static str> {
        match side {
            Side::Seller => self.key.0,
            Side::Buyer => self.key.1,
        }
    }

    /// The button with its link for this order; buyers' copies have none.
    fn button(&self, side: Side, order_id: &str) -> Option<(&'static str, String)> {
        let (text, page) = self.button.filter(|_| side == Side::Seller)?;
        Some((
            text,
            format!("fleamarket://{page}?flutter=true&bizOrderId={order_id}"),
        ))
    }
}

const CREATED: Wording = Wording {
    summary: "[我已拍下，待付款]",
    notice: "买家已拍下，待付款",
    red: "等待买家付款",
    task: ("已拍下_未付款_卖家", "已拍下_未付款_买家"),
    key: (Some("1_not_pay_seller"), Some("1_not_pay_buyer")),
    title: "我已拍下，待付款",
    desc: "请双方沟通及时确认价格",
    button: Some(("修改价格", "adjust_price")),
    content_type: 26,
};

const PAID: Wording = Wording {
    summary: "[我已付款，等待你发货]",
    notice: "买家已付款，待发货",
    red: "等待卖家发货",
    task: ("付款完成待发货_卖家-正向升级", "付款完成待发货_买家"),
    key: (Some("10:TRADE_PAID:26"), Some("10:TRADE_PAID:26")),
    title: "我已付款，等待你发货",
    desc: "请包装好商品，并按我在闲鱼上提供的地址发货",
    button: Some(("去发货", "send_goods")),
    content_type: 26,
};

const NUDGE: Wording = Wording {
    summary: "[记得及时发货]",
    notice: "买家提醒你发货",
    red: "等待卖家发货",
    task: ("提醒发货_卖家", "提醒发货_买家"),
    key: (None, None),
    title: "记得及时发货",
    desc: "买家提醒你尽快发货",
    button: Some(("去发货", "send_goods")),
    content_type: 26,
};

const CLOSED_UNPAID: Wording = Wording {
    summary: "[未付款，买家关闭了订单]",
    notice: "交易关闭",
    red: "交易关闭",
    task: ("未付款关闭订单_卖家", "未付款关闭订单_买家"),
    key: (None, None),
    title: "未付款，买家关闭了订单",
    desc: "",
    button: None,
    content_type: 26,
};

const CLOSED_PAID: Wording = Wording {
    summary: "[你关闭了订单，钱款已原路退返]",
    notice: "交易关闭",
    red: "交易关闭",
    task: ("卖家关闭订单_卖家", "卖家关闭订单_买家"),
    key: (None, None),
    title: "你关闭了订单，钱款已原路退返",
    desc: "",
    button: None,
    content_type: 26,
};

const REFUND_REQUESTED: Wording = Wording {
    summary: "[我发起了退款申请]",
    notice: "买家申请退款",
    red: "买家申请退款",
    task: ("发起退款申请_卖家-新逆向url", "发起退款申请_买家-新逆向url"),
    key: (None, None),
    title: "我发起了退款申请",
    desc: "请及时处理退款申请",
    button: Some(("去处理", "refund_detail")),
    content_type: 26,
};

const REFUND_AGREED: Wording = Wording {
    summary: "[退款成功，钱款已原路退返]",
    notice: "退款成功",
    red: "交易关闭",
    task: ("退款申请已同意_卖家", "退款申请已同意_买家"),
    key: (None, None),
    title: "我发起了退款申请",
    desc: "",
    button: Some(("已同意", "refund_detail")),
    content_type: 32,
};

const COMPLETED: Wording = Wording {
    summary: "[买家确认收货，交易成功]",
    notice: "买家已确认收货，交易成功",
    red: "交易成功",
    task: ("交易成功_卖家", "交易成功_买家"),
    key: (None, None),
    title: "买家确认收货，交易成功",
    desc: "快给ta一个评价吧~",
    button: Some(("去评价", "rate")),
    content_type: 26,
};

fn wording(kind: CardKind) -> &'static Wording {
    match kind {
        CardKind::Created => &CREATED,
        CardKind::Paid => &PAID,
        CardKind::Nudge => &NUDGE,
        CardKind::ClosedUnpaid => &CLOSED_UNPAID,
        CardKind::ClosedPaid => &CLOSED_PAID,
        CardKind::RefundRequested => &REFUND_REQUESTED,
        CardKind::RefundAgreed => &REFUND_AGREED,
        CardKind::Completed => &COMPLETED,
    }
}

/// A trade card (shape A): the buyer is the sender, `1.7` is 1 (system card).
pub(crate) fn trade_card(kind: CardKind, f: &CardFacts) -> Value {
    let w = wording(kind);
    json!({
        "1": {
            "1": {"1": handle(&f.buyer)},
            "2": handle(&f.cid),
            "3": f.message_id,
            "4": 0,
            "5": f.created_ms,
            "6": {"1": 101, "3": {"1": "", "2": w.summary, "3": "", "4": w.content_type,
                                  "5": card_content(w, f)}},
            "7": 1, "8": 1, "9": 0,
            "10": card_ext(w, f),
            "12": 1
        },
        "3": {"needPush": "true"}
    })
}

/// Shape D, the simplified red reminder: conversation-level status, no order id.
pub(crate) fn red_reminder(cid: &str, buyer: &str, red: &str) -> Value {
    json!({"1": handle(cid), "2": 1,
           "3": {"redReminder": red, "redReminderStyle": "1", "userId": buyer}})
}

/// Shape E for a payment: an update of the *created* card (`original` is its message id)
/// whose `reminderContent` is new while `redReminder`, `taskName` and `updateKey` are
/// still the created card's — the stale mix reported in yd issue #38.
pub(crate) fn paid_update(f: &CardFacts, original: &str, now_ms: u64) -> Value {
    let mut ext = card_ext(wording(CardKind::Created), f);
    for (key, value) in [
        ("reminderContent", "[已付款，待发货]"),
        ("detailNotice", "[已付款，待发货]"),
        ("reminderNotice", "买家已付款"),
    ] {
        ext[key] = json!(value);
    }
    json!({"1": original, "2": handle(&f.cid), "3": 1, "4": ext, "5": now_ms})
}

/// The extension map (`1.10`): 16 string entries, as in the capture.
fn card_ext(w: &Wording, f: &CardFacts) -> Value {
    let biz_tag = format!(
        r#"{{"sourceId":{},"taskName":{},"materialId":{},"taskId":{}}}"#,
        quote(&format!("C2C:{}", f.task_id)),
        quote(w.task(f.side)),
        quote(&f.task_id),
        quote(&f.task_id)
    );
    let reminder_url = format!(
        "fleamarket://message_chat?itemId={}&peerUserId={}&peerUserNick={}&sid={}&messageId={}&adv=no",
        f.item_id, f.buyer, f.buyer_masked, f.cid, f.card_id
    );
    json!({
        "bizTag": biz_tag,
        "closePushReceiver": "false",
        "closeUnreadNumber": "false",
        "detailNotice": w.summary,
        "extJson": card_ext_json(w, f),
        "receiver": f.receiver,
        "redReminder": w.red,
        "redReminderStyle": "1",
        "reminderContent": w.summary,
        "reminderNotice": w.notice,
        "reminderTitle": w.notice,
        "reminderUrl": reminder_url,
        "senderUserId": f.buyer,
        "senderUserType": "0",
        "sessionType": "1",
        "updateHead": "true"
    })
}

/// `extJson`, keys in the capture's order.
fn card_ext_json(w: &Wording, f: &CardFacts) -> String {
    let update_key = w.key(f.side).map_or(String::new(), |k| {
        format!(
            r#""updateKey":{},"#,
            quote(&format!("{}:{}:{k}", f.cid, f.order_id))
        )
    });
    format!(
        concat!(
            r#"{{"msgArgs":{},"quickReply":"1","msgArg1":"MsgCard",{}"messageId":{},"#,
            r#""multiChannel":{{"huawei":"EXPRESS","xiaomi":"108000","oppo":"EXPRESS","honor":"NORMAL","agoo":"product","vivo":"ORDER"}},"#,
            r#""contentType":"{}","correlationGroupId":{}}}"#
        ),
        click_args(f),
        update_key,
        quote(&f.card_id),
        w.content_type,
        quote(&f.correlation)
    )
}

/// `{"task_id":…,"source":"im","msg_id":…}` in extJson, `{"source":…,…}` in clickParam:
/// the capture uses both orders.
fn click_args(f: &CardFacts) -> String {
    format!(
        r#"{{"task_id":{},"source":"im","msg_id":{}}}"#,
        quote(&f.task_id),
        quote(&f.card_id)
    )
}

/// The content JSON (`1.6.3.5`): a dxCard, or for type 32 a dynamicOperation wrapping one.
fn card_content(w: &Wording, f: &CardFacts) -> String {
    let args = format!(
        r##"{{"source":"im","task_id":{},"msg_id":{}}}"##,
        quote(&f.task_id),
        quote(&f.card_id)
    );
    let button = w.button(f.side, &f.order_id).map_or(String::new(), |(text, url)| {
        format!(
            concat!(
                r##""button":{{"bgColor":"#FFE60F","borderColor":"#FFE60F","clickParam":{{"arg1":"MsgCardAction","args":{}}},"##,
                r##""fontColor":"#333333","targetUrl":{},"text":{}}},"##
            ),
            args,
            quote(&url),
            quote(text)
        )
    });
    let main = format!(
        concat!(
            r##"{{"clickParam":{{"arg1":"MsgCard","args":{}}},"exContent":{{"bgColor":"#FFFFFF",{}"##,
            r##""desc":{},"descColor":"#A3A3A3","title":{},"upgrade":{{"targetUrl":"https://h5.m.goofish.com/app/idleFish-F2e/fm-downlaod/home.html?noRedriect=true&canBack=true&checkVersion=true","version":"7.7.90"}}}},"##,
            r##""targetUrl":{}}}"##
        ),
        args,
        button,
        quote(w.desc),
        quote(w.title),
        quote(&format!(
            "fleamarket://order_detail?id={}&role={}",
            f.order_id,
            f.side.en()
        ))
    );
    let card = format!(
        concat!(
            r##"{{"item":{{"main":{}}},"template":{{"name":"idlefish_message_trade_chat_card","##,
            r##""url":"https://dinamicx.alibabausercontent.com/pub/idlefish_message_trade_chat_card/1667222052767/idlefish_message_trade_chat_card.zip","version":"1667222052767"}}}}"##
        ),
        main
    );
    if w.content_type == 32 {
        format!(
            r##"{{"contentType":32,"dynamicOperation":{{"changeContent":{{"dxCard":{card}}}}}}}"##
        )
    } else {
        format!(r##"{{"contentType":26,"dxCard":{card}}}"##)
    }
}

/// The red-reminder text a kind leaves on the conversation (for shape D pushes).
pub(crate) fn red_text(kind: CardKind) -> &'static str {
    wording(kind).red
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goofish::captures;
    use crate::goofish::decode::{self, DecodedEvent, OrderStatus, Role};

    fn a1_facts() -> CardFacts {
        CardFacts {
            side: Side::Seller,
            receiver: "2202640918079".into(),
            buyer: "3149637063".into(),
            buyer_masked: "男***y".into(),
            cid: "47983389096".into(),
            item_id: "900052644277".into(),
            order_id: "2503688126356636370".into(),
            task_id: "3exQJHOTmPU1".into(),
            message_id: "3416565274542.PNM".into(),
            card_id: "cc8bc2df7c934df086e0567cb69f1573".into(),
            correlation: "3exQJHOTmPU1_FFr4GOSn8OQo".into(),
            created_ms: 1_742_458_817_389,
        }
    }

    fn order_event(payload: &Value, account: &str) -> (String, OrderStatus, Role) {
        let raw = decode::payload_to_value(&decode::encode_payload(payload)).expect("decodes");
        match decode::classify(&raw, Some(account)) {
            DecodedEvent::Order {
                order_id,
                status,
                role,
                ..
            } => (order_id, status, role),
            other => panic!("not an order event: {other:?}"),
        }
    }

    #[test]
    fn created_card_is_byte_identical_to_capture_a1() {
        let payload = trade_card(CardKind::Created, &a1_facts());
        assert_eq!(decode::encode_payload(&payload), captures::a1());
    }

    #[test]
    fn every_card_kind_decodes_to_its_status_with_the_order_id() {
        let cases = [
            (CardKind::Created, OrderStatus::PendingPayment),
            (CardKind::Paid, OrderStatus::Paid),
            (CardKind::Nudge, OrderStatus::Paid),
            (CardKind::ClosedUnpaid, OrderStatus::Closed),
            (CardKind::ClosedPaid, OrderStatus::Closed),
            (CardKind::RefundRequested, OrderStatus::Refunding),
            (CardKind::RefundAgreed, OrderStatus::Refunded),
            (CardKind::Completed, OrderStatus::Completed),
        ];
        for (kind, status) in cases {
            let got = order_event(&trade_card(kind, &a1_facts()), "2202640918079");
            assert_eq!(
                got,
                ("2503688126356636370".into(), status, Role::Seller),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn buyer_copy_has_buyer_role() {
        let mut facts = a1_facts();
        facts.side = Side::Buyer;
        facts.receiver = facts.buyer.clone();
        let (_, status, role) = order_event(&trade_card(CardKind::Paid, &facts), "3149637063");
        assert_eq!((status, role), (OrderStatus::Paid, Role::Buyer));
    }

    #[test]
    fn shape_e_paid_update_names_the_order_and_shape_d_does_not() {
        let facts = a1_facts();
        let update = paid_update(&facts, "3416565274542.PNM", 1);
        let got = order_event(&update, "2202640918079");
        assert_eq!(got.1, OrderStatus::Paid);
        assert_eq!(got.0, facts.order_id);
        let d = red_reminder(&facts.cid, &facts.buyer, red_text(CardKind::Paid));
        assert_eq!(d["3"]["redReminder"], "等待卖家发货");
        let raw = decode::payload_to_value(&decode::encode_payload(&d)).expect("decodes");
        assert_eq!(
            decode::classify(&raw, Some("2202640918079")),
            DecodedEvent::PaidHint {
                cid: Some(facts.cid.clone())
            }
        );
    }
}
