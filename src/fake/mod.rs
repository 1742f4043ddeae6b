//! A faithful fake of the Goofish (Xianyu) service for tests and `demo`: the mtop HTTP API and
//! the IM WebSocket on loopback, speaking the same frames and encodings as the real service.
//!
//! [`FakeGoofish::start`] binds two loopback ports (HTTP for `/h5/<api>/<v>/`, WebSocket for
//! LWP) and returns a cheap-to-clone handle. Tests play the marketplace's side through the
//! handle (add sellers and items, have buyers order, pay, chat), inject [`Fault`]s, and read
//! back what the client did ([`SentChat`], [`Consign`], [`ConnStats`]). Everything the
//! client sees follows `shared/reference/goofish-protocol.md`; where the reference has no
//! capture, the module that builds the answer says what was assumed.
//!
//! Module map: `state` (the shared state), `book` (accounts, items, orders, conversations),
//! `auth` (tokens and sessions), `actions` (scenarios: state change + pushes), `cards` and
//! `pushes` (payload builders, shapes A–F), `hub` (connections, push frames, ACKs), `apis` +
//! `http` (mtop), `ws` (IM socket), `history` (a conversation's messages), `aftersale` (rating, pending ratings, item list, polishing), `faults`, `record`, `ids`, `wire` (small codecs), `upload` (the image upload endpoint); `supplier` is a fake card supplier
//! (HTTP) for `products[].supplier`.

mod actions;
mod aftersale;
mod apis;
mod auth;
mod book;
mod cards;
mod faults;
mod history;
mod http;
mod hub;
mod ids;
pub mod model;
mod pushes;
mod record;
mod serve;
pub mod shop_sim;
mod state;
pub mod supplier;
mod upload;
mod wire;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use aftersale::{FakePolish, FakeRating};
pub use book::FakeOrderStatus;
pub use faults::Fault;
pub use record::{ConnStats, Consign, FakeUpload, SendReply, SentChat};

use actions::PayNews;
use cards::CardKind;
use hub::Outgoing;
use state::Shared;

/// Cancels the background tasks when the last handle goes away.
struct Lifetime {
    cancel: CancellationToken,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Handle to a running fake. Clones share one server; the servers stop when the last
/// clone drops or on [`FakeGoofish::shutdown`].
#[derive(Clone)]
pub struct FakeGoofish {
    shared: Arc<Shared>,
    _lifetime: Arc<Lifetime>,
    http: SocketAddr,
    ws: SocketAddr,
}

impl FakeGoofish {
    /// Binds `127.0.0.1:0` twice (mtop HTTP, IM WebSocket) and starts serving.
    ///
    /// # Errors
    /// When a loopback port cannot be bound.
    pub async fn start() -> std::io::Result<FakeGoofish> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared::new(cancel.clone()));
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let ws_listener = TcpListener::bind("127.0.0.1:0").await?;
        let (http, ws) = (http_listener.local_addr()?, ws_listener.local_addr()?);
        let (on_http, on_ws) = (Arc::clone(&shared), Arc::clone(&shared));
        tokio::spawn(serve::accept_each(
            http_listener,
            cancel.clone(),
            move |s| http::connection(s, Arc::clone(&on_http)),
        ));
        tokio::spawn(serve::accept_each(ws_listener, cancel.clone(), move |s| {
            ws::connection(s, Arc::clone(&on_ws))
        }));
        Ok(FakeGoofish {
            shared,
            _lifetime: Arc::new(Lifetime { cancel }),
            http,
            ws,
        })
    }

    /// Stops both servers and closes every connection.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }

    /// The mtop base URL, `http://127.0.0.1:PORT/h5/`; clients append `<api>/<v>/`.
    pub fn mtop_base(&self) -> String {
        format!("http://{}/h5/", self.http)
    }

    /// The image upload URL (`marketplace.upload_url`), `http://127.0.0.1:PORT/api/upload.api`.
    pub fn upload_url(&self) -> String {
        format!("http://{}{}", self.http, upload::UPLOAD_PATH)
    }

    /// The IM WebSocket URL, `ws://127.0.0.1:PORT/`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    // -- accounts and catalogue ------------------------------------------------------

    /// Adds an account and logs it in; returns a `Cookie` header value valid for this fake
    /// (`unb`, `cookie2`, `_m_h5_tk` with a valid token, `_m_h5_tk_enc`, `t`, `sgcookie`, …).
    /// Calling it again for the same user adds another session (both stay valid).
    pub fn add_seller(&self, user_id: &str, nick: &str) -> String {
        self.shared.lock().add_seller(user_id, nick)
    }

    /// Logs the account in again, ending its older sessions (their cookies now answer
    /// `FAIL_SYS_SESSION_EXPIRED`); returns the new cookie string. Sessions made after a
    /// [`Fault::SessionExpired`] work despite it.
    pub fn renew_session(&self, user_id: &str) -> String {
        self.shared.lock().renew_session(user_id)
    }

    /// Lists an item. `skus` are labels such as `"红色"` or `"颜色:红色"`.
    pub fn add_item(
        &self,
        seller_id: &str,
        item_id: &str,
        title: &str,
        price_cents: u64,
        skus: &[&str],
    ) {
        self.shared
            .lock()
            .add_item(seller_id, item_id, title, price_cents, skus);
    }

    /// Makes the fake accept `token` as a valid `_m_h5_tk` prefix (e.g. the reference's
    /// signing test vector `b7e897bf9767618a32b439c6103fe1cb`).
    pub fn accept_mtop_token(&self, token: &str) {
        self.shared.lock().auth.install_mtop(token, u64::MAX);
    }

    // -- the buyer's side of orders ----------------------------------------------------

    /// A buyer orders; returns the 19-digit order id. Pushes the "created" card (shape A,
    /// identical in form to capture A1) preceded by a read receipt in the same push, and a
    /// `/s/vulcan` session card first if the conversation is new.
    pub fn create_order(
        &self,
        seller_id: &str,
        buyer_id: &str,
        item_id: &str,
        quantity: u32,
        sku: Option<&str>,
    ) -> String {
        self.shared
            .lock()
            .create_order(seller_id, buyer_id, item_id, quantity, sku)
    }

    /// The buyer pays: paid card (shape A, dxCard + `updateKey …:TRADE_PAID:26`).
    pub fn pay(&self, order_id: &str) {
        self.shared.lock().pay(order_id, PayNews::Card);
    }

    /// The buyer pays and the service repeats itself: paid card, the buyer's
    /// `[记得及时发货]` nudge card, shape D (no order id) and shape E (order id only in the
    /// stale `updateKey`), each its own push.
    pub fn pay_with_duplicates(&self, order_id: &str) {
        self.shared.lock().pay(order_id, PayNews::Duplicates);
    }

    /// Paid in the order book only, no push: what reconciliation must catch.
    pub fn pay_silently(&self, order_id: &str) {
        self.shared.lock().pay(order_id, PayNews::Silent);
    }

    /// Closes the order: `[未付款，买家关闭了订单]` if unpaid, else `[你关闭了订单，钱款已原路退返]`.
    pub fn close(&self, order_id: &str) {
        self.shared.lock().close(order_id);
    }

    /// The buyer asks for a refund: status 退款中, card `[我发起了退款申请]`.
    pub fn refund(&self, order_id: &str) {
        self.transition(
            order_id,
            FakeOrderStatus::Refunding,
            CardKind::RefundRequested,
        );
    }

    /// The refund is agreed: status 退款成功, card update (type 32) with button 已同意.
    pub fn refund_complete(&self, order_id: &str) {
        self.transition(order_id, FakeOrderStatus::Refunded, CardKind::RefundAgreed);
    }

    /// The buyer confirms receipt: status 交易成功, card `[买家确认收货，交易成功]`.
    pub fn complete(&self, order_id: &str) {
        self.transition(order_id, FakeOrderStatus::Completed, CardKind::Completed);
    }

    /// The seller shipped in another client (app, browser): status 已发货 and the
    /// `[你已发货]` tip (custom type 14, no order id). A later consign is "already shipped".
    pub fn ship_elsewhere(&self, order_id: &str) {
        self.shared.lock().ship_elsewhere(order_id);
    }

    fn transition(&self, order_id: &str, status: FakeOrderStatus, kind: CardKind) {
        self.shared.lock().transition(order_id, status, kind);
    }

    /// Sends `seller_id` a buyer-role copy of the paid card of `order_id` (taskName
    /// `付款完成待发货_买家`, `role=buyer`): it must not trigger anything. (When the buyer
    /// of an order is itself an account here, it gets buyer-role copies of every card.)
    pub fn push_buyer_copy(&self, seller_id: &str, order_id: &str) {
        self.shared.lock().push_buyer_copy(seller_id, order_id);
    }

    // -- chat --------------------------------------------------------------------------

    /// The buyer types `text` (shape A, `1.7 = 2`), after a read receipt in the same push.
    pub fn push_chat(&self, seller_id: &str, buyer_id: &str, text: &str) {
        self.shared.lock().push_chat(seller_id, buyer_id, text);
    }

    /// The buyer asks about `item_id` (the pair's conversation about that item).
    pub fn push_chat_about(&self, seller_id: &str, buyer_id: &str, item_id: &str, text: &str) {
        let now = crate::clock::now_ms();
        self.shared
            .lock()
            .push_chat_with(seller_id, buyer_id, Some(item_id), text, now);
    }

    /// A buyer message written at `created_ms` (a backlog the server delivers late).
    pub fn push_chat_sent_at(&self, seller_id: &str, buyer_id: &str, text: &str, created_ms: u64) {
        self.shared
            .lock()
            .push_chat_with(seller_id, buyer_id, None, text, created_ms);
    }

    /// The seller types `text` by hand in the app or on the web, in the pair's latest
    /// conversation: the account receives it as its own message (web echo, `needPush`
    /// `"false"`), exactly like an echo of its own send. Returns the message id.
    pub fn seller_types(&self, seller_id: &str, buyer_id: &str, text: &str) -> String {
        self.shared.lock().seller_types(seller_id, buyer_id, text)
    }

    /// The listing's description (`itemDO.desc` of the item detail).
    pub fn set_item_description(&self, item_id: &str, description: &str) {
        if let Some(item) = self.shared.lock().book.item_mut(item_id) {
            item.description = description.to_string();
        }
    }

    /// The conversation id of the pair's latest conversation, if there is one.
    pub fn conversation_cid(&self, seller_id: &str, buyer_id: &str) -> Option<String> {
        self.shared
            .lock()
            .book
            .latest_conversation(seller_id, buyer_id)
            .map(|c| c.cid.clone())
    }

    /// The buyer is typing (`/s/para`, shape B).
    pub fn push_typing(&self, seller_id: &str, buyer_id: &str) {
        self.shared.lock().push_typing(seller_id, buyer_id);
    }

    /// Pushes any decoded-shape payload, encoded like the real service: a list under `"1"`
    /// goes on `/s/para` (typing), a map with `sessionId`/`sessionInfo` on `/s/vulcan` as
    /// base64 JSON, anything else on `/s/sync` as MessagePack (objectType 40103 for read
    /// receipts, 40000 otherwise).
    pub fn push_raw(&self, seller_id: &str, payload: serde_json::Value) {
        let push = pushes::push_for_raw(&payload);
        self.shared.lock().push(seller_id, push);
    }

    /// Sends the account's last push again with a new mid (a re-push of the same message).
    pub fn repeat_last_push(&self, seller_id: &str) {
        self.shared.lock().repush(seller_id);
    }

    // -- faults ------------------------------------------------------------------------

    /// Injects a fault for every account. See [`Fault`] for each one's effect.
    pub fn fault(&self, f: Fault) {
        self.apply_fault(None, f);
    }

    /// Injects a fault for one account only.
    pub fn fault_for(&self, seller_id: &str, f: Fault) {
        self.apply_fault(Some(seller_id), f);
    }

    fn apply_fault(&self, scope: Option<&str>, f: Fault) {
        let mut st = self.shared.lock();
        let seq = st.auth.session_seq();
        if st.faults.stand(scope, &f, seq) {
            return;
        }
        match f {
            Fault::TokenExpired => st.auth.revoke_mtop(scope),
            Fault::DropSocket => st.hub.disconnect(scope, || Outgoing::Drop),
            Fault::CloseSocket => st.hub.disconnect(scope, || Outgoing::Close),
            Fault::Zombie => st.hub.set_zombie(scope, true),
            Fault::Kickout => st.hub.kick(scope, "/push/kickout", "kickout"),
            Fault::SessionRemove => st.hub.kick(scope, "/s/session/remove", "session remove"),
            // Standing faults were handled above.
            _ => {}
        }
    }

    /// Lifts every standing fault and cures zombie connections. One-shot faults that already
    /// happened (expired tokens, closed sockets) stay happened.
    pub fn clear_faults(&self) {
        let mut st = self.shared.lock();
        st.faults.clear();
        st.hub.set_zombie(None, false);
    }

    // -- after-sale ----------------------------------------------------------------------

    /// The seller polished the item in the app today: a polish call now answers
    /// `FAIL_BIZ_IDLEITEM_POLISH_AGAIN`.
    pub fn polish_in_app(&self, item_id: &str) {
        self.shared.lock().aftersale.polished_in_app(item_id);
    }

    /// The item is taken off the shelf (`itemStatus` 1; polishing it is refused).
    pub fn take_off_shelf(&self, item_id: &str) {
        self.shared
            .lock()
            .aftersale
            .off_shelf
            .insert(item_id.to_string());
    }

    /// Every rating the seller gave, in order.
    pub fn ratings(&self) -> Vec<FakeRating> {
        self.shared.lock().aftersale.ratings.clone()
    }

    /// `rate.create` calls for `order_id`, refused ones included.
    pub fn rate_calls(&self, order_id: &str) -> u32 {
        let st = self.shared.lock();
        st.aftersale.rate_calls.get(order_id).copied().unwrap_or(0)
    }

    /// Every polish call and the platform's answer, in order.
    pub fn polishes(&self) -> Vec<FakePolish> {
        self.shared.lock().aftersale.polishes.clone()
    }

    // -- observations ------------------------------------------------------------------

    /// Every `sendByReceiverScope` the client made, in order.
    pub fn sent_messages(&self) -> Vec<SentChat> {
        self.shared.lock().record.sent.clone()
    }

    /// Every image upload, in order (failed and refused ones included).
    pub fn uploads(&self) -> Vec<FakeUpload> {
        self.shared.lock().record.uploads.clone()
    }

    /// Every consign call, in order.
    pub fn consigns(&self) -> Vec<Consign> {
        self.shared.lock().record.consigns.clone()
    }

    /// The order's status in the fake's book.
    pub fn order_status(&self, order_id: &str) -> Option<FakeOrderStatus> {
        self.shared.lock().book.order(order_id).map(|o| o.status)
    }

    /// (buyer, item) of an order.
    pub fn order_parties(&self, order_id: &str) -> Option<(String, String)> {
        self.shared
            .lock()
            .book
            .order(order_id)
            .map(|o| (o.buyer.clone(), o.item_id.clone()))
    }

    /// The conversation id (without `@goofish`) of an order.
    pub fn order_cid(&self, order_id: &str) -> Option<String> {
        self.shared
            .lock()
            .book
            .order(order_id)
            .map(|o| o.cid.clone())
    }

    /// Counters for one account (`live` is computed now).
    pub fn stats(&self, seller_id: &str) -> ConnStats {
        let st = self.shared.lock();
        let mut stats = st.record.stats(seller_id);
        stats.live = st.hub.live(seller_id);
        stats
    }

    /// Waits until `user` has registered and synced at least `times` times and is connected
    /// ([`ConnStats::connected`]); returns whether that happened within `timeout`.
    pub async fn wait_connected(&self, user: &str, times: u32, timeout: Duration) -> bool {
        self.wait_until(timeout, |f| f.stats(user).connected(times))
            .await
    }

    /// Polls `f` every 10 ms until it holds or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, f: impl Fn(&FakeGoofish) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if f(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl std::fmt::Debug for FakeGoofish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGoofish")
            .field("mtop_base", &self.mtop_base())
            .field("ws_url", &self.ws_url())
            .finish()
    }
}
