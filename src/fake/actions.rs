//! Marketplace scenarios as state changes plus the pushes the real service would send:
//! accounts logging in, conversations opening, orders moving through their lifecycle,
//! buyers chatting and typing, the account's own messages echoing back, consigns. The
//! public handle calls these to play the buyer's side; the mtop and IM handlers call them
//! for the seller's side.

use serde_json::Value;

use super::auth::cookie_header;
use super::book::{Conversation, FakeOrderStatus, HistoryEntry, Item, Order};
use super::cards::{self, CardFacts, CardKind, Side};
use super::hub::{Channel, Push};
use super::ids::{alnum, hex};
use super::pushes::{self, ChatFacts, OBJECT_MESSAGE, OBJECT_READ};
use super::record::Consign;
use super::state::State;
use super::wire::{now_ms, quote};

/// `ret` of a consign on an order that is already shipped (bots look for
/// `ORDER_ALREADY_DELIVERY`; the exact live text is unknown, §10.1).
pub(crate) const RET_ALREADY_SHIPPED: &str = "FAIL_BIZ_ORDER_ALREADY_DELIVERY::订单已发货";
/// `ret` of a consign on an order in a state that cannot ship (yd fixture).
pub(crate) const RET_STATUS_ERROR: &str = "FAIL_BIZ_ORDER_STATUS_ERROR::订单状态错误";
/// `ret` for an order the caller is not party to (guessed; no capture).
pub(crate) const RET_NO_ORDER: &str = "FAIL_BIZ_ORDER_NOT_EXIST::订单不存在";
pub(crate) const RET_SUCCESS: &str = "SUCCESS::调用成功";
/// A 无需寄件 form with more than three pictures (the text is assumed; no capture).
pub(crate) const RET_TOO_MANY_PICS: &str = "FAIL_SYS_PARAMINVALID_ERROR::图片最多3张";
/// The seller-centre consign for a seller without 鱼小铺 (XP `OrderServiceImplConsignTest`).
pub(crate) const RET_NO_SELLER_CENTRE: &str = "FAIL_BIZ_IDLE_USER_UNAUTHORIZED::无需邮寄发货";

/// The 无需寄件 form of one consign call.
pub(crate) struct ConsignForm {
    pub api: &'static str,
    pub trade_text: String,
    pub pic_list: Vec<String>,
}

/// How the service announces a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayNews {
    /// The paid card (shape A).
    Card,
    /// Paid card, the buyer's 记得及时发货 nudge, shape D and shape E.
    Duplicates,
    /// Nothing at all (the order book changes; only a poll can see it).
    Silent,
}

impl State {
    /// Adds (or re-logs in) an account; returns its browser cookie string.
    pub(crate) fn add_seller(&mut self, user: &str, nick: &str) -> String {
        self.book.add_seller(user, nick);
        self.login(user)
    }

    /// A new login for `user`, replacing its older sessions; returns the cookie string.
    pub(crate) fn renew_session(&mut self, user: &str) -> String {
        if !self.book.is_account(user) {
            self.book.add_seller(user, user);
        }
        let cookie = self.login(user);
        let cookie2 = crate::goofish::sign::Cookies::parse(&cookie)
            .get("cookie2")
            .unwrap_or_default()
            .to_owned();
        self.auth.end_sessions_except(user, &cookie2);
        cookie
    }

    fn login(&mut self, user: &str) -> String {
        let cookie2 = self.auth.new_session(user);
        let issued = self.auth.issue_mtop(Some(user), now_ms());
        cookie_header(user, &self.book.nick(user), &cookie2, &issued)
    }

    pub(crate) fn add_item(
        &mut self,
        seller: &str,
        item_id: &str,
        title: &str,
        price: u64,
        skus: &[&str],
    ) {
        self.book.add_item(Item {
            id: item_id.to_owned(),
            seller: seller.to_owned(),
            title: title.to_owned(),
            price_cents: price,
            skus: skus.iter().map(|s| (*s).to_owned()).collect(),
            description: String::new(),
        });
    }

    /// The conversation of (seller, buyer, item), opened if needed. `item` None means the
    /// newest conversation of the pair (or a new one about the seller's first item). A
    /// conversation the buyer opens (`announce`) sends the seller a `/s/vulcan` card.
    pub(crate) fn conversation_for(
        &mut self,
        seller: &str,
        buyer: &str,
        item: Option<&str>,
        announce: bool,
    ) -> String {
        let existing = match item {
            Some(i) => self.book.conversation(seller, buyer, Some(i)),
            None => self.book.latest_conversation(seller, buyer),
        };
        if let Some(conv) = existing {
            return conv.cid.clone();
        }
        let item_id = item
            .map(str::to_owned)
            .or_else(|| self.book.first_item_of(seller));
        let cid = self.ids.cid();
        let now = now_ms();
        self.book.add_conversation(Conversation {
            cid: cid.clone(),
            seller: seller.to_owned(),
            buyer: buyer.to_owned(),
            item_id: item_id.clone(),
            created_ms: now,
            last_message: None,
            history: Vec::new(),
        });
        if announce {
            self.announce_session(&cid, seller, buyer, item_id.as_deref().unwrap_or_default());
        }
        cid
    }

    fn announce_session(&mut self, cid: &str, seller: &str, buyer: &str, item_id: &str) {
        let title = self
            .book
            .item(item_id)
            .map(|i| i.title.clone())
            .unwrap_or_default();
        let card = pushes::session_card(&pushes::SessionFacts {
            cid,
            seller,
            buyer,
            item_id,
            item_title: &title,
            now_ms: now_ms(),
        });
        let item = pushes::vulcan_item(&card);
        self.push(
            seller,
            Push {
                channel: Channel::Vulcan,
                items: vec![item],
            },
        );
    }

    /// A buyer orders: the order book gets a pending order and the "created" card goes out.
    pub(crate) fn create_order(
        &mut self,
        seller: &str,
        buyer: &str,
        item_id: &str,
        quantity: u32,
        sku: Option<&str>,
    ) -> String {
        let (title, unit_cents) = self
            .book
            .item(item_id)
            .map_or((format!("商品{item_id}"), 0), |i| {
                (i.title.clone(), i.price_cents)
            });
        let cid = self.conversation_for(seller, buyer, Some(item_id), true);
        let id = self.ids.order_id();
        let order = Order {
            id: id.clone(),
            seller: seller.to_owned(),
            buyer: buyer.to_owned(),
            item_id: item_id.to_owned(),
            title,
            unit_cents,
            quantity,
            sku: sku.map(str::to_owned),
            status: FakeOrderStatus::PendingPayment,
            cid,
            task_id: self.ids.task_id(),
            created_card: None,
            created_ms: now_ms(),
            paid_ms: None,
            consigned_ms: None,
            finished_ms: None,
        };
        self.book.insert_order(order);
        let card = self.announce(&id, CardKind::Created);
        if let Some(order) = self.book.order_mut(&id) {
            order.created_card = card;
        }
        id
    }

    /// Moves an order to `status` (no checks: tests may script any sequence) and stamps
    /// the matching time. Returns the order as it is now.
    fn set_status(&mut self, order_id: &str, status: FakeOrderStatus) -> Option<Order> {
        let order = self.book.order_mut(order_id)?;
        let now = now_ms();
        order.status = status;
        match status {
            FakeOrderStatus::Paid => order.paid_ms = Some(now),
            FakeOrderStatus::Shipped => order.consigned_ms = Some(now),
            FakeOrderStatus::Completed | FakeOrderStatus::Closed | FakeOrderStatus::Refunded => {
                order.finished_ms = Some(now);
            }
            FakeOrderStatus::PendingPayment | FakeOrderStatus::Refunding => {}
        }
        Some(order.clone())
    }

    pub(crate) fn pay(&mut self, order_id: &str, news: PayNews) {
        let Some(order) = self.set_status(order_id, FakeOrderStatus::Paid) else {
            return;
        };
        if news == PayNews::Silent {
            return;
        }
        let paid_card = self.announce(order_id, CardKind::Paid);
        if news == PayNews::Duplicates {
            self.announce(order_id, CardKind::Nudge);
            let d = cards::red_reminder(&order.cid, &order.buyer, cards::red_text(CardKind::Paid));
            self.push(&order.seller, pushes::sync(&[(&d, OBJECT_MESSAGE)]));
            let original = order.created_card.clone().or(paid_card).unwrap_or_default();
            let facts = self.card_facts(&order, Side::Seller, &order.seller);
            let e = cards::paid_update(&facts, &original, now_ms());
            self.push(&order.seller, pushes::sync(&[(&e, OBJECT_MESSAGE)]));
        }
    }

    /// The order closes: unpaid → the buyer closed it; paid → the seller closed and refunded.
    pub(crate) fn close(&mut self, order_id: &str) {
        let was_unpaid = self
            .book
            .order(order_id)
            .is_some_and(|o| o.status == FakeOrderStatus::PendingPayment);
        let kind = if was_unpaid {
            CardKind::ClosedUnpaid
        } else {
            CardKind::ClosedPaid
        };
        self.transition(order_id, FakeOrderStatus::Closed, kind);
    }

    /// Status change plus its card.
    pub(crate) fn transition(&mut self, order_id: &str, status: FakeOrderStatus, kind: CardKind) {
        if self.set_status(order_id, status).is_some() {
            self.announce(order_id, kind);
        }
    }

    /// The seller shipped in another client: the order is shipped and the tip goes out.
    pub(crate) fn ship_elsewhere(&mut self, order_id: &str) {
        if let Some(order) = self.set_status(order_id, FakeOrderStatus::Shipped) {
            self.send_shipped_tip(&order);
        }
    }

    /// `consign.dummy` by `account`: ships a paid order once; records every call.
    pub(crate) fn consign(
        &mut self,
        account: &str,
        order_id: &str,
        form: ConsignForm,
    ) -> Result<(), &'static str> {
        let status = self
            .book
            .order(order_id)
            .filter(|o| o.seller == account)
            .map(|o| o.status);
        let outcome = match status {
            // The form takes three pictures at most (anchors-2026 §2(e)).
            _ if form.pic_list.len() > 3 => Err(RET_TOO_MANY_PICS),
            None => Err(RET_NO_ORDER),
            Some(FakeOrderStatus::Paid) => Ok(()),
            Some(FakeOrderStatus::Shipped | FakeOrderStatus::Completed) => Err(RET_ALREADY_SHIPPED),
            Some(_) => Err(RET_STATUS_ERROR),
        };
        self.record.consigns.push(Consign {
            account: account.to_owned(),
            order_id: order_id.to_owned(),
            accepted: outcome.is_ok(),
            ret: outcome.err().unwrap_or(RET_SUCCESS).to_owned(),
            api: form.api.to_owned(),
            trade_text: form.trade_text,
            pic_list: form.pic_list,
        });
        if outcome.is_ok() {
            self.ship_elsewhere(order_id);
        }
        outcome
    }

    fn send_shipped_tip(&mut self, order: &Order) {
        let message_id = self.ids.message_id();
        let tip = pushes::shipped_tip(
            &order.cid,
            &order.buyer,
            &order.item_id,
            &message_id,
            now_ms(),
        );
        self.push(&order.seller, pushes::sync(&[(&tip, OBJECT_MESSAGE)]));
        let entry = system_entry(&message_id, &order.buyer, "你已发货");
        self.book.note_message(&order.cid, entry);
    }

    /// Sends a card to the seller (and a buyer-role copy to the buyer if the buyer is an
    /// account here). Both copies share one message id, as one conversation does. Returns
    /// the message id.
    fn announce(&mut self, order_id: &str, kind: CardKind) -> Option<String> {
        let order = self.book.order(order_id)?.clone();
        let prior = self.prior_message(&order.cid);
        let mut facts = self.card_facts(&order, Side::Seller, &order.seller);
        let card = cards::trade_card(kind, &facts);
        self.push_after_receipt(&order.seller, &order.cid, &prior, &card);
        if self.book.is_account(&order.buyer) && order.buyer != order.seller {
            facts.side = Side::Buyer;
            facts.receiver = order.buyer.clone();
            let copy = cards::trade_card(kind, &facts);
            self.push_after_receipt(&order.buyer, &order.cid, &prior, &copy);
        }
        let entry = system_entry(&facts.message_id, &order.buyer, kind.summary());
        self.book.note_message(&order.cid, entry);
        Some(facts.message_id)
    }

    /// A buyer-role copy of the paid card sent to `account` (it must not trigger delivery).
    pub(crate) fn push_buyer_copy(&mut self, account: &str, order_id: &str) {
        let Some(order) = self.book.order(order_id).cloned() else {
            return;
        };
        let prior = self.prior_message(&order.cid);
        let facts = self.card_facts(&order, Side::Buyer, account);
        let card = cards::trade_card(CardKind::Paid, &facts);
        self.push_after_receipt(account, &order.cid, &prior, &card);
    }

    fn card_facts(&mut self, order: &Order, side: Side, receiver: &str) -> CardFacts {
        CardFacts {
            side,
            receiver: receiver.to_owned(),
            buyer: order.buyer.clone(),
            buyer_masked: self.book.masked_nick(&order.buyer),
            cid: order.cid.clone(),
            item_id: order.item_id.clone(),
            order_id: order.id.clone(),
            task_id: order.task_id.clone(),
            message_id: self.ids.message_id(),
            card_id: hex(32),
            correlation: format!("{}_{}", order.task_id, alnum(12)),
            created_ms: now_ms(),
        }
    }

    /// The message a read receipt in the next push refers to: the conversation's newest,
    /// or a made-up earlier one so every buyer-side push starts with a receipt and the
    /// `data[0]`-only pitfall (§4.7) is always exercised.
    fn prior_message(&mut self, cid: &str) -> String {
        let last = self
            .book
            .conversation_by_cid(cid)
            .and_then(|c| c.last_message.clone());
        last.unwrap_or_else(|| self.ids.message_id())
    }

    /// One `/s/sync` push: a read receipt for `prior`, then the message (jv's capture).
    fn push_after_receipt(&mut self, account: &str, cid: &str, prior: &str, message: &Value) {
        let receipt = pushes::read_receipt(prior, cid, now_ms());
        self.push(
            account,
            pushes::sync(&[(&receipt, OBJECT_READ), (message, OBJECT_MESSAGE)]),
        );
    }

    /// A buyer types `text` to the seller.
    pub(crate) fn push_chat(&mut self, seller: &str, buyer: &str, text: &str) {
        self.push_chat_with(seller, buyer, None, text, now_ms());
    }

    /// A buyer message about `item` (its conversation), written at `created_ms`.
    pub(crate) fn push_chat_with(
        &mut self,
        seller: &str,
        buyer: &str,
        item: Option<&str>,
        text: &str,
        created_ms: u64,
    ) {
        let cid = self.conversation_for(seller, buyer, item, true);
        let prior = self.prior_message(&cid);
        let item = self
            .book
            .conversation_by_cid(&cid)
            .and_then(|c| c.item_id.clone());
        let (nick, masked) = (self.book.nick(buyer), self.book.masked_nick(buyer));
        let (message_id, card_id) = (self.ids.message_id(), hex(32));
        let content = pushes::text_content(text);
        let message = pushes::chat_message(&ChatFacts {
            sender: buyer,
            sender_nick: &nick,
            sender_masked: Some(&masked),
            cid: &cid,
            item_id: item.as_deref(),
            message_id: &message_id,
            card_id: &card_id,
            created_ms,
            summary: text,
            content_type: 1,
            content: &content,
            platform: "android",
            need_push: true,
        });
        self.push_after_receipt(seller, &cid, &prior, &message);
        let entry = HistoryEntry {
            message_id,
            created_ms: now_ms(),
            sender: buyer.to_owned(),
            content,
            summary: text.to_owned(),
        };
        self.book.note_message(&cid, entry);
    }

    /// The seller types `text` by hand in another client (the app, the web page): it reaches
    /// the buyer and comes back to the account as its own message, like every own send.
    pub(crate) fn seller_types(&mut self, seller: &str, buyer: &str, text: &str) -> String {
        let cid = self.conversation_for(seller, buyer, None, false);
        let content: Value =
            serde_json::from_str(&pushes::text_content(text)).unwrap_or_else(|_| Value::Null);
        self.echo_own_message(seller, &cid, text, &content)
    }

    /// The buyer is typing in the pair's conversation.
    pub(crate) fn push_typing(&mut self, seller: &str, buyer: &str) {
        let cid = self.conversation_for(seller, buyer, None, true);
        let payload = pushes::typing(&cid, seller);
        self.push(seller, pushes::push_for_raw(&payload));
    }

    /// Sends the account's last business push again (a re-push, shaxiu #75).
    pub(crate) fn repush(&mut self, account: &str) {
        if let Some(push) = self.hub.last_push(account) {
            self.push(account, push);
        }
    }

    /// Echoes a message the account sent back to its connections (`needPush:"false"`,
    /// A2) and makes it the conversation's newest. Returns the server message id.
    pub(crate) fn echo_own_message(
        &mut self,
        account: &str,
        conv_cid: &str,
        summary: &str,
        content: &Value,
    ) -> String {
        let message_id = self.ids.message_id();
        let item = self
            .book
            .conversation_by_cid(conv_cid)
            .and_then(|c| c.item_id.clone());
        let content_type = content
            .get("contentType")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let nick = self.book.nick(account);
        let echo = pushes::chat_message(&ChatFacts {
            sender: account,
            sender_nick: &nick,
            sender_masked: None,
            cid: conv_cid,
            item_id: item.as_deref(),
            message_id: &message_id,
            card_id: &hex(32),
            created_ms: now_ms(),
            summary,
            content_type,
            content: &content.to_string(),
            platform: "web",
            need_push: false,
        });
        self.push(account, pushes::sync(&[(&echo, OBJECT_MESSAGE)]));
        let entry = HistoryEntry {
            message_id: message_id.clone(),
            created_ms: now_ms(),
            sender: account.to_owned(),
            content: content.to_string(),
            summary: summary.to_owned(),
        };
        self.book.note_message(conv_cid, entry);
        message_id
    }
}

/// A system message (trade card, tip) in a conversation's history.
fn system_entry(message_id: &str, sender: &str, summary: &str) -> HistoryEntry {
    HistoryEntry {
        message_id: message_id.to_owned(),
        created_ms: now_ms(),
        sender: sender.to_owned(),
        content: format!(r#"{{"contentType":26,"title":{}}}"#, quote(summary)),
        summary: summary.to_owned(),
    }
}
