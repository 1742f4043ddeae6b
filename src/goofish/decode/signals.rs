//! What a system message says about an order: its status (card texts, task names, update
//! keys, in the order of trust of reference §5.6/§5.7), its order id, which side of the order
//! this account is on, and who the buyer is.

use super::OrderStatus::{
    self, Closed, Completed, Paid, PendingPayment, Refunded, Refunding, Shipped,
};
use super::shapes::Envelope;
use super::{MIN_ORDER_ID_DIGITS, Role, url_param, url_path};

#[derive(Clone, Copy)]
pub(super) enum Signal {
    Status(OrderStatus),
    /// Recognised, but not an order state this daemon tracks.
    Skip(&'static str),
}

/// Phrases in card texts (§5.5.3–5.5.7, §7.1). First match wins, so phrases that
/// contain another phrase come before it (e.g. `记得及时确认收货` before
/// `确认收货`, `已付款，待发货` before `已发货`).
const TEXT_RULES: &[(&str, Signal)] = &[
    (
        "我已小刀，待刀成",
        Signal::Skip("bargain card waiting for completion (我已小刀，待刀成)"),
    ),
    ("我已成功小刀，待发货", Signal::Status(Paid)),
    ("记得及时确认收货", Signal::Status(Shipped)),
    ("记得及时发货", Signal::Status(Paid)),
    ("我已修改价格，等待你付款", Signal::Status(PendingPayment)),
    ("我已付款，等待你发货", Signal::Status(Paid)),
    ("已付款，待发货", Signal::Status(Paid)),
    ("买家已付款", Signal::Status(Paid)),
    ("付款完成", Signal::Status(Paid)),
    ("等待卖家发货", Signal::Status(Paid)),
    ("已拍下，待付款", Signal::Status(PendingPayment)),
    ("等待买家付款", Signal::Status(PendingPayment)),
    ("退款成功", Signal::Status(Refunded)),
    ("卖家同意退款", Signal::Status(Refunded)),
    ("我发起了退款申请", Signal::Status(Refunding)),
    ("申请退款", Signal::Status(Refunding)),
    ("修改为「退款」", Signal::Status(Refunding)),
    ("关闭了订单", Signal::Status(Closed)),
    ("交易关闭", Signal::Status(Closed)),
    ("交易成功", Signal::Status(Completed)),
    ("快给ta一个评价吧", Signal::Status(Completed)),
    ("完成了评价", Signal::Status(Completed)),
    ("等待买家确认收货", Signal::Status(Shipped)),
    ("已发货", Signal::Status(Shipped)),
    ("订单已签收", Signal::Status(Shipped)),
];

/// `bizTag.taskName` prefixes (§5.7).
const TASK_RULES: &[(&str, OrderStatus)] = &[
    ("已拍下_未付款", PendingPayment),
    ("付款完成待发货", Paid),
    ("发起退款申请", Refunding),
    ("退款申请已同意", Refunded),
    ("提醒发货已发货", Shipped),
];

/// `updateKey` status tokens (§5.7), matched case-insensitively.
const UPDATE_KEY_RULES: &[(&str, OrderStatus)] = &[
    ("NOT_PAY", PendingPayment),
    ("BUYER_CREATE_ORDER", PendingPayment),
    ("TRADE_MODIFY_FEE", PendingPayment),
    ("TRADE_PAID", Paid),
    ("BUYER_RATE_SELLER", Completed),
];

fn text_signal(text: &str) -> Option<Signal> {
    TEXT_RULES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, signal)| *signal)
}

fn task_signal(task: &str) -> Option<Signal> {
    TASK_RULES
        .iter()
        .find(|(prefix, _)| task.starts_with(prefix))
        .map(|(_, s)| Signal::Status(*s))
}

fn update_key_signal(key: &str) -> Option<Signal> {
    // Status sits after `<cid>:<orderId>:`; only look there so ids never match.
    let status = key.splitn(3, ':').nth(2)?.to_ascii_uppercase();
    UPDATE_KEY_RULES
        .iter()
        .find(|(token, _)| status.contains(token))
        .map(|(_, s)| Signal::Status(*s))
}

/// Refund outcome on a card update (custom type 32): the title stays
/// `我发起了退款申请`, the button text carries the outcome (§5.5.5).
fn refund_outcome_signal(env: &Envelope<'_>) -> Option<Signal> {
    let main = env.update_main()?;
    main.title.as_deref().filter(|t| t.contains("退款"))?;
    match main.button_text.as_deref()? {
        "已同意" => Some(Signal::Status(Refunded)),
        "已撤销" => Some(Signal::Skip("refund request withdrawn by buyer")),
        "已拒绝" => Some(Signal::Skip("refund request rejected")),
        _ => None,
    }
}

/// Decides the order status from the most trustworthy source first.
/// `redReminder` comes last because it can be stale (§5.3, shape E). For card
/// updates (type 32) the update itself outranks the old reminder text.
pub(super) fn order_signal(env: &Envelope<'_>) -> Option<Signal> {
    let reminder = || env.text().and_then(text_signal);
    let title = || env.card_title().and_then(text_signal);
    let task = || env.task_name().and_then(task_signal);
    let key = || env.update_key().and_then(update_key_signal);
    let red = || env.red_reminder().and_then(text_signal);
    if env.content_type == Some(32) {
        refund_outcome_signal(env)
            .or_else(task)
            .or_else(title)
            .or_else(key)
            .or_else(reminder)
            .or_else(red)
    } else {
        reminder()
            .or_else(title)
            .or_else(task)
            .or_else(key)
            .or_else(red)
    }
}

/// Order id per §5.6: card URLs, then `updateKey`, then a scan of the message.
pub(super) fn order_id(env: &Envelope<'_>) -> Option<String> {
    let from_urls = env.card_urls().find_map(order_id_from_url);
    let from_key = || {
        let key = env.update_key()?;
        key.split(':').nth(1).filter(|id| is_order_id(id))
    };
    // The last resort reads the whole content and extension map (rare: cold path).
    let from_scan = || {
        let scan = |v: serde_json::Value| scan_order_id(&v.to_string());
        env.content_value()
            .and_then(scan)
            .or_else(|| env.ext_value().and_then(scan))
    };
    from_urls
        .or_else(from_key)
        .map(str::to_owned)
        .or_else(from_scan)
}

pub(super) fn order_id_from_url(url: &str) -> Option<&str> {
    // `id` alone is only an order id on order pages; elsewhere it could be an
    // item (`itemId=` is a different parameter and never matches here).
    let on_order_page = url_path(url).contains("order");
    ["orderId", "bizOrderId"]
        .into_iter()
        .find_map(|name| url_param(url, name))
        .or_else(|| url_param(url, "id").filter(|_| on_order_page))
        .filter(|id| is_order_id(id))
}

fn is_order_id(s: &str) -> bool {
    s.len() >= MIN_ORDER_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// zn's last resort: `orderId`/`bizOrderId`/`order_detail?id` followed by `=`
/// or `:` (quotes and JSON escapes allowed around it) and 10+ digits.
pub(super) fn scan_order_id(text: &str) -> Option<String> {
    ["bizOrderId", "orderId", "order_detail?id"]
        .iter()
        .find_map(|key| {
            text.match_indices(key).find_map(|(at, _)| {
                let rest = text.get(at + key.len()..)?;
                let rest = rest.trim_start_matches(['"', '\\', ' ']);
                let rest = rest.strip_prefix(['=', ':'])?;
                let rest = rest.trim_start_matches(['"', '\\', ' ']);
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                is_order_id(&digits).then_some(digits)
            })
        })
}

/// Role per §5.6: `role=` in card URLs, then the taskName suffix, then the
/// updateKey suffix. Failing those, a payment card whose sender is this account
/// means the account is the buyer (trade cards are sent in the buyer's name).
pub(super) fn role(env: &Envelope<'_>, status: OrderStatus, account_id: Option<&str>) -> Role {
    let from_url = env
        .card_urls()
        .find_map(|url| match url_param(url, "role")? {
            "seller" => Some(Role::Seller),
            "buyer" => Some(Role::Buyer),
            _ => None,
        });
    let from_task = || {
        let task = env.task_name()?;
        (task.contains("_买家").then_some(Role::Buyer))
            .or(task.contains("_卖家").then_some(Role::Seller))
    };
    let from_key = || {
        let key = env.update_key()?.to_ascii_uppercase();
        (key.ends_with("_BUYER").then_some(Role::Buyer))
            .or(key.ends_with("_SELLER").then_some(Role::Seller))
    };
    let from_sender = || {
        let buyer_actions = matches!(status, PendingPayment | Paid);
        let sent_by_us = account_id.is_some() && env.sender() == account_id;
        (buyer_actions && sent_by_us).then_some(Role::Buyer)
    };
    from_url
        .or_else(from_task)
        .or_else(from_key)
        .or_else(from_sender)
        .unwrap_or(Role::Seller)
}

/// The buyer: on a seller copy the first of sender / `1.1.1` / `userId` /
/// `peerUserId` that is not this account; on a buyer copy, this account.
pub(super) fn buyer_id(env: &Envelope<'_>, role: Role, account_id: Option<&str>) -> Option<String> {
    if let (Role::Buyer, Some(me)) = (role, account_id) {
        return Some(me.to_owned());
    }
    let peer = env.reminder_url().and_then(|u| url_param(u, "peerUserId"));
    [env.sender(), env.sender_id.as_deref(), env.user_id(), peer]
        .into_iter()
        .flatten()
        .find(|id| !id.is_empty() && Some(*id) != account_id)
        .map(str::to_owned)
}
