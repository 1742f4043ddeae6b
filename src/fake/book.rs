//! The fake marketplace's own truth: sellers, items, orders and conversations. The mtop
//! answers (order detail, sold list, item detail) are read from here, and the push builders
//! take their facts from here, so the socket and the API never disagree unless a fault says so.

use std::collections::HashMap;

use super::wire::mask_nick;

/// Order state in the fake's book (what the seller centre would show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeOrderStatus {
    /// 等待买家付款.
    PendingPayment,
    /// 等待卖家发货.
    Paid,
    /// 已发货 (consigned).
    Shipped,
    /// 交易成功.
    Completed,
    /// 交易关闭.
    Closed,
    /// 退款中 (buyer asked for a refund).
    Refunding,
    /// 退款成功.
    Refunded,
}

impl FakeOrderStatus {
    /// `commonData.orderStatus` in the sold-order list (zn's vocabulary, §3.6).
    pub(crate) fn sold_text(self) -> &'static str {
        match self {
            Self::PendingPayment => "待付款",
            Self::Paid => "待发货",
            Self::Shipped => "已发货",
            Self::Completed => "交易成功",
            Self::Closed => "交易关闭",
            Self::Refunding => "退款中",
            Self::Refunded => "退款成功",
        }
    }

    /// `data.status` in order detail. 1–5 follow 9r's enum; bots disagree beyond that
    /// (§3.3), so refunding uses yd's 7 and refunded reads as closed (5).
    pub(crate) fn detail_code(self) -> u32 {
        match self {
            Self::PendingPayment => 1,
            Self::Paid => 2,
            Self::Shipped => 3,
            Self::Completed => 4,
            Self::Closed | Self::Refunded => 5,
            Self::Refunding => 7,
        }
    }

    /// `utArgs.orderStatusName` / `orderStatusInfo.title` in order detail.
    pub(crate) fn detail_name(self) -> &'static str {
        match self {
            Self::PendingPayment => "等待买家付款",
            Self::Paid => "等待卖家发货",
            Self::Shipped => "等待买家确认收货",
            Self::Completed => "交易成功",
            Self::Closed => "交易关闭",
            Self::Refunding => "退款中",
            Self::Refunded => "退款成功",
        }
    }
}

/// An account known to the fake (it can log in and hold an IM connection).
pub(crate) struct Seller {
    pub nick: String,
}

/// A listed item.
pub(crate) struct Item {
    pub id: String,
    pub seller: String,
    pub title: String,
    pub price_cents: u64,
    /// SKU labels as given, `"红色"` or `"颜色:红色"`.
    pub skus: Vec<String>,
    /// `itemDO.desc`; the title when empty.
    pub description: String,
}

/// One order.
#[derive(Clone)]
pub(crate) struct Order {
    pub id: String,
    pub seller: String,
    pub buyer: String,
    pub item_id: String,
    pub title: String,
    pub unit_cents: u64,
    pub quantity: u32,
    pub sku: Option<String>,
    pub status: FakeOrderStatus,
    pub cid: String,
    /// `bizTag.taskId` of this order's cards (one task per order in the capture).
    pub task_id: String,
    /// Server message id of the "created" card, which shape-E updates refer to.
    pub created_card: Option<String>,
    pub created_ms: u64,
    pub paid_ms: Option<u64>,
    pub consigned_ms: Option<u64>,
    pub finished_ms: Option<u64>,
}

impl Order {
    pub(crate) fn total_cents(&self) -> u64 {
        self.unit_cents.saturating_mul(u64::from(self.quantity))
    }

    /// The SKU split into (spec name, spec value); plain labels get the name 规格.
    pub(crate) fn spec(&self) -> Option<(String, String)> {
        let sku = self.sku.as_deref()?;
        Some(match sku.split_once(':') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => ("规格".to_owned(), sku.to_owned()),
        })
    }
}

/// A single chat between a seller and a buyer about an item (one cid for both sides).
pub(crate) struct Conversation {
    pub cid: String,
    pub seller: String,
    pub buyer: String,
    pub item_id: Option<String>,
    pub created_ms: u64,
    /// The newest message in it; a buyer-side push starts with a read receipt for it.
    pub last_message: Option<String>,
    /// Every message in it, oldest first (served by `listUserMessages`).
    pub history: Vec<HistoryEntry>,
}

/// One message of a conversation, as its history lists it.
#[derive(Debug, Clone)]
pub(crate) struct HistoryEntry {
    pub message_id: String,
    pub created_ms: u64,
    /// Who sent it (a trade card is sent in the buyer's name).
    pub sender: String,
    /// The content JSON (`{"contentType":1,"text":{…}}`, `{"contentType":26,…}`).
    pub content: String,
    pub summary: String,
}

/// Everything the fake marketplace knows.
#[derive(Default)]
pub(crate) struct Book {
    sellers: HashMap<String, Seller>,
    items: HashMap<String, Item>,
    /// In creation order; the sold list shows the newest first.
    orders: Vec<Order>,
    convs: Vec<Conversation>,
}

impl Book {
    pub(crate) fn add_seller(&mut self, id: &str, nick: &str) {
        self.sellers.insert(
            id.to_owned(),
            Seller {
                nick: nick.to_owned(),
            },
        );
    }

    pub(crate) fn is_account(&self, id: &str) -> bool {
        self.sellers.contains_key(id)
    }

    /// The nick of any user: an account's own, else a stable made-up buyer nick.
    pub(crate) fn nick(&self, user: &str) -> String {
        match self.sellers.get(user) {
            Some(s) => s.nick.clone(),
            None => format!("买家{}", tail(user, 4)),
        }
    }

    /// The nick as URLs show it (`男***y`).
    pub(crate) fn masked_nick(&self, user: &str) -> String {
        mask_nick(&self.nick(user))
    }

    pub(crate) fn add_item(&mut self, item: Item) {
        self.items.insert(item.id.clone(), item);
    }

    /// The seller's items, ordered by id (the item list pages through them).
    pub(crate) fn items_of(&self, seller: &str) -> Vec<&Item> {
        let mut items: Vec<&Item> = self.items.values().filter(|i| i.seller == seller).collect();
        items.sort_by(|a, b| a.id.cmp(&b.id));
        items
    }

    pub(crate) fn item(&self, id: &str) -> Option<&Item> {
        self.items.get(id)
    }

    pub(crate) fn item_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.items.get_mut(id)
    }

    /// The seller's first listed item (conversations need one for `reminderUrl`).
    pub(crate) fn first_item_of(&self, seller: &str) -> Option<String> {
        let mut ids: Vec<&Item> = self.items.values().filter(|i| i.seller == seller).collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        ids.first().map(|i| i.id.clone())
    }

    pub(crate) fn insert_order(&mut self, order: Order) {
        self.orders.push(order);
    }

    pub(crate) fn order(&self, id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.id == id)
    }

    pub(crate) fn order_mut(&mut self, id: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.id == id)
    }

    /// The seller's orders, newest first.
    pub(crate) fn sold_orders(&self, seller: &str) -> impl Iterator<Item = &Order> {
        self.orders.iter().rev().filter(move |o| o.seller == seller)
    }

    /// The conversation for (seller, buyer, item), if one exists.
    pub(crate) fn conversation(
        &self,
        seller: &str,
        buyer: &str,
        item: Option<&str>,
    ) -> Option<&Conversation> {
        self.convs
            .iter()
            .find(|c| c.seller == seller && c.buyer == buyer && c.item_id.as_deref() == item)
    }

    /// The newest conversation between seller and buyer about any item.
    pub(crate) fn latest_conversation(&self, seller: &str, buyer: &str) -> Option<&Conversation> {
        self.convs
            .iter()
            .rev()
            .find(|c| c.seller == seller && c.buyer == buyer)
    }

    pub(crate) fn conversation_by_cid(&self, cid: &str) -> Option<&Conversation> {
        self.convs.iter().find(|c| c.cid == cid)
    }

    pub(crate) fn add_conversation(&mut self, conv: Conversation) {
        self.convs.push(conv);
    }

    /// Adds a message to a conversation's history and makes it the newest. Times are kept
    /// strictly increasing within a conversation, so a time cursor pages exactly.
    pub(crate) fn note_message(&mut self, cid: &str, mut entry: HistoryEntry) {
        if let Some(c) = self.convs.iter_mut().find(|c| c.cid == cid) {
            if let Some(last) = c.history.last() {
                entry.created_ms = entry.created_ms.max(last.created_ms + 1);
            }
            c.last_message = Some(entry.message_id.clone());
            c.history.push(entry);
        }
    }
}

/// The last `n` characters of `s` (all of it when shorter).
fn tail(s: &str, n: usize) -> &str {
    let start = s.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i);
    s.get(start..).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_and_tail() {
        let mut book = Book::default();
        book.add_seller("2202640918079", "sha修");
        assert_eq!(book.nick("2202640918079"), "sha修");
        assert_eq!(book.nick("3149637063"), "买家7063");
        assert_eq!(book.masked_nick("3149637063"), "买***3");
        assert_eq!(tail("12", 4), "12");
    }

    #[test]
    fn spec_split() {
        let mut order = Order {
            id: "1".into(),
            seller: "s".into(),
            buyer: "b".into(),
            item_id: "i".into(),
            title: "t".into(),
            unit_cents: 990,
            quantity: 2,
            sku: Some("颜色:红色".into()),
            status: FakeOrderStatus::Paid,
            cid: "c".into(),
            task_id: "x".into(),
            created_card: None,
            created_ms: 0,
            paid_ms: None,
            consigned_ms: None,
            finished_ms: None,
        };
        assert_eq!(order.total_cents(), 1980);
        assert_eq!(order.spec(), Some(("颜色".into(), "红色".into())));
        order.sku = Some("红色".into());
        assert_eq!(order.spec(), Some(("规格".into(), "红色".into())));
    }
}
