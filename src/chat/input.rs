//! A chat push as the chat pipeline sees it: who wrote what, where, when.
//!
//! The Goofish source reduces every chat-related push (a typed message, the account's own echo,
//! typing, a read receipt) to one [`ChatInput`]; nothing downstream knows the wire shapes.
//! System notices that arrive looking like typed text (`[我已付款，等待你发货]`, marketing tips,
//! security warnings) are recognised here by the lists the reference collects (§5.5.8).

/// What kind of chat push this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A buyer typed something: the only kind that can be answered.
    Buyer,
    /// The account's own message: an echo of our send, or the seller typing elsewhere.
    Own,
    Typing,
    ReadReceipt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatInput {
    pub account: String,
    /// Conversation id without `@goofish`.
    pub cid: String,
    /// Server message id (`<digits>.PNM`), for dedupe.
    pub message_id: String,
    pub sender_id: String,
    pub sender_nick: Option<String>,
    pub item_id: Option<String>,
    pub text: String,
    /// Server time of the message (unix ms), when the push carries it.
    pub sent_at: Option<u64>,
    pub kind: InputKind,
}

impl ChatInput {
    /// When the message was written, or `received` if the push did not say.
    pub fn at(&self, received: u64) -> u64 {
        self.sent_at.unwrap_or(received)
    }
}

/// Texts the platform puts into a conversation that no one typed (reference §5.5.8).
const SYSTEM_TEXTS: &[&str] = &[
    "[我已拍下，待付款]",
    "[我已付款，等待你发货]",
    "[已付款，待发货]",
    "[你关闭了订单，钱款已原路退返]",
    "[未付款，买家关闭了订单]",
    "[不想宝贝被砍价?设置不砍价回复  ]",
    "AI正在帮你回复消息，不错过每笔订单",
    "发来一条消息",
    "发来一条新消息",
    "卖家人不错？送Ta闲鱼小红花",
    "你人真不错，送你闲鱼小红花",
    "[你已确认收货，交易成功]",
    "[买家确认收货，交易成功]",
    "买家已确认收货，交易成功",
    "[你已发货]",
    "已发货",
    "[注意！小心假客服骗钱！]",
    "「我将「退货退款」修改为「退款」」",
    "订单已签收",
    "有蚂蚁森林能量可领",
    "[我完成了评价]",
    "我完成了评价",
    "[退款成功，钱款已原路退返]",
    "[买家申请退款]",
    "[卖家同意退款]",
    "温馨提醒：商品信息近期有过变更",
    "查看商品详情",
    "[记得及时发货]",
    "[记得及时确认收货]",
    "[我已修改价格，等待你付款]",
    "快给ta一个评价吧~",
    "快给ta一个评价吧～",
];
const SYSTEM_SUBSTRINGS: &[&str] = &["[安全提醒]", "当前聊天内容可能包含诈骗信息"];

/// Is this text a platform notice rather than something a buyer typed? `extra` are the
/// seller's own additions (`filter: ignore_texts`).
pub fn is_system_notice(text: &str, extra: &[String]) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return true;
    }
    // Cards and tips are bracketed; shaxiu skips every `[…]` text. Stickers and images are
    // bracketed too (`[图片]`) and carry no question.
    let bracketed = (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('【') && t.ends_with('】') && t.chars().count() <= 12);
    bracketed
        || SYSTEM_TEXTS.contains(&t)
        || SYSTEM_SUBSTRINGS.iter().any(|s| t.contains(s))
        || extra
            .iter()
            .any(|e| !e.is_empty() && t.contains(e.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_recognised() {
        assert!(is_system_notice("[我已付款，等待你发货]", &[]));
        assert!(is_system_notice("[图片]", &[]));
        assert!(is_system_notice("卖家人不错？送Ta闲鱼小红花", &[]));
        assert!(is_system_notice("xx [安全提醒] yy", &[]));
        assert!(is_system_notice("  ", &[]));
        assert!(is_system_notice("队友喊你来打气", &["喊你来打气".into()]));
        assert!(!is_system_notice("在吗？[捂脸]还有货吗", &[]));
        assert!(!is_system_notice("发货了吗", &[]));
    }
}
