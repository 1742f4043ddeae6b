//! One method per mtop API the daemon calls, and the typed answers (reference §3).

use std::fmt;

use tokio::time::Instant;

use super::client::{Answer, Call, Page};
use super::interpret::{
    is_already_shipped, json_str, parse_im_token, parse_item_detail, parse_order_detail,
    parse_sold_page,
};
use super::{MtopClient, MtopError};
use crate::clock::now_ms;
use crate::event::EventStatus;
use crate::goofish::sign::IM_APP_KEY;

/// Sold-order pages read per reconciliation (30 rows each).
const MAX_SOLD_PAGES: u32 = 10;
/// The 无需寄件 form takes at most 200 characters of `tradeText` (XP truncates to 200; the Go
/// client in the corpus cites the same official limit).
pub const PROOF_TEXT_MAX: usize = 200;
/// …and at most three pictures in `picList` (the same Go client; the fake enforces it).
pub const PROOF_PICS_MAX: usize = crate::config::delivery::PROOF_PICS_MAX;

/// The IM access token (`/reg` `token` header). `Debug` hides the value.
#[derive(Clone)]
pub struct ImToken {
    pub access_token: String,
    /// When this token should be replaced (and the socket reconnected).
    pub refresh_at: Instant,
}

impl fmt::Debug for ImToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImToken")
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// `mtop.taobao.idle.pc.detail`: what the pipeline may want to know about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemDetail {
    pub item_id: String,
    pub title: Option<String>,
    /// The listing's description (`itemDO.desc`), for the chat model's prompt.
    pub description: Option<String>,
    pub price_cents: Option<u64>,
    pub quantity: Option<u32>,
    pub skus: Vec<Sku>,
    pub seller_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sku {
    pub sku_id: Option<String>,
    /// The spec values, e.g. `红色` or `红色;L` for two dimensions.
    pub name: String,
    pub price_cents: Option<u64>,
    pub quantity: Option<u32>,
}

/// `mtop.idle.web.trade.order.detail`, parsed defensively (reference §3.3, §8a).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderDetail {
    pub order_id: String,
    /// Only set when the platform's answer is unambiguous.
    pub status: Option<EventStatus>,
    pub item_id: Option<String>,
    pub title: Option<String>,
    pub quantity: Option<u32>,
    /// The spec value (`skuInfo` `颜色:红色` → `红色`, or `specValue`).
    pub sku: Option<String>,
    /// Paid amount in yuan, as shown.
    pub amount: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_nick: Option<String>,
}

impl OrderDetail {
    /// Fill what an event does not know yet from this detail (the event's own values win,
    /// except quantity, which only the detail knows reliably).
    pub fn fill(&self, ev: &mut crate::event::OrderEvent) {
        use crate::event::fill_missing as fill;
        fill(&mut ev.item_id, &self.item_id);
        fill(&mut ev.item_title, &self.title);
        fill(&mut ev.buyer_id, &self.buyer_id);
        fill(&mut ev.buyer_nick, &self.buyer_nick);
        fill(&mut ev.sku, &self.sku);
        fill(&mut ev.amount, &self.amount);
        if let Some(q) = self.quantity {
            ev.quantity = q;
        }
    }

    /// The platform says the order is already past "paid" (shipped elsewhere, closed,
    /// refunded): that status, so a stale paid signal cannot start a delivery.
    pub fn later_status(&self) -> Option<EventStatus> {
        self.status
            .filter(|s| !matches!(s, EventStatus::PendingPayment | EventStatus::Paid))
    }
}

/// One row of `merchant.sold.get` (reference §3.6).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoldOrder {
    pub order_id: String,
    pub item_id: Option<String>,
    pub title: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_nick: Option<String>,
    pub amount: Option<String>,
    pub quantity: Option<u32>,
    pub status_text: String,
    pub in_refund: bool,
}

impl SoldOrder {
    /// Paid and waiting for the seller: what reconciliation delivers.
    pub fn awaits_shipment(&self) -> bool {
        !self.in_refund
            && (self.status_text.contains("待发货") || self.status_text.contains("等待卖家发货"))
    }
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consigned {
    Confirmed,
    /// `ORDER_ALREADY_DELIVERY` / `已发货成功`: as good as confirmed.
    AlreadyShipped,
}

impl MtopClient {
    /// The IM access token, cached until its refresh time (the token API is the risk-control
    /// hot spot, so it is not called per connection).
    pub async fn im_token(&self) -> Result<ImToken, MtopError> {
        if let Some(t) = self
            .lock()
            .token
            .clone()
            .filter(|t| Instant::now() < t.refresh_at)
        {
            return Ok(t);
        }
        let device_id = self
            .device_id()
            .ok_or_else(|| MtopError::NoCookies("cookies not loaded".into()))?;
        let data = format!(
            r#"{{"appKey":"{IM_APP_KEY}","deviceId":{}}}"#,
            json_str(&device_id)
        );
        self.check_usable()?;
        self.take_token_budget()?;
        let fetched = self
            .call(Call::v1(
                "mtop.taobao.idlemessage.pc.login.token",
                data,
                Page::Im,
            ))
            .await
            .and_then(|answer| parse_im_token(&answer, self.token_refresh));
        self.registry
            .record_token_refresh(&self.account, fetched.is_ok(), now_ms());
        let token = fetched?;
        self.lock().token = Some(token.clone());
        self.token_pause.send_if_modified(|p| p.take().is_some());
        Ok(token)
    }

    /// One token call from the hourly budget, or [`MtopError::TokenPaused`] (announced once
    /// on [`Self::watch_token_pause`]).
    fn take_token_budget(&self) -> Result<(), MtopError> {
        let taken = self
            .token_budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now());
        taken.map_err(|until| {
            self.token_pause.send_if_modified(|p| {
                let new = p.is_none();
                *p = Some(until);
                new
            });
            MtopError::TokenPaused { until }
        })
    }

    /// Forget the cached IM token (the server refused it at `/reg`).
    pub fn invalidate_im_token(&self) {
        self.lock().token = None;
    }

    pub async fn item_detail(&self, item_id: &str) -> Result<ItemDetail, MtopError> {
        let api = "mtop.taobao.idle.pc.detail";
        let answer = self.lookup(api, "itemId", item_id, Page::Item(item_id));
        Ok(parse_item_detail(item_id, &answer.await?))
    }

    pub async fn order_detail(&self, order_id: &str) -> Result<OrderDetail, MtopError> {
        let api = "mtop.idle.web.trade.order.detail";
        let answer = self.lookup(api, "tid", order_id, Page::Order(order_id));
        Ok(parse_order_detail(order_id, &answer.await?))
    }

    /// A read of one thing by its id: `{"<key>":"<id>"}` to `api`, from `page`.
    async fn lookup(
        &self,
        api: &str,
        key: &str,
        id: &str,
        page: Page<'_>,
    ) -> Result<Answer, MtopError> {
        let data = format!(r#"{{"{key}":{}}}"#, json_str(id));
        self.call(Call::v1(api, data, page)).await
    }

    /// Confirm shipment without logistics (虚拟发货).
    pub async fn consign(&self, order_id: &str) -> Result<Consigned, MtopError> {
        // Byte-for-byte the bots' body, space included (reference §3.4).
        let data = format!(
            r#"{{"orderId":{}, "tradeText":"","picList":[],"newUnconsign":true}}"#,
            json_str(order_id)
        );
        self.consign_data(data).await
    }

    async fn consign_data(&self, data: String) -> Result<Consigned, MtopError> {
        let result = self
            .call(Call::v1(
                "mtop.taobao.idle.logistic.consign.dummy",
                data,
                Page::Home,
            ))
            .await;
        match result {
            Ok(_) => Ok(Consigned::Confirmed),
            Err(MtopError::Business { ret, .. }) if is_already_shipped(&ret) => {
                Ok(Consigned::AlreadyShipped)
            }
            Err(e) => Err(e),
        }
    }

    /// Confirm shipment with a proof of delivery in the 无需寄件 form (`tradeText`, at most
    /// [`PROOF_TEXT_MAX`] characters). anchors-2026 §2(e): the seller-centre variant
    /// `mtop.taobao.idle.logistics.merchant.consign.dummy` with `picList` as a JSON array
    /// *string* and the seller-centre headers (XP `OrderServiceImpl.consignDummyDelivery`);
    /// a seller without 鱼小铺 is refused there with `FAIL_BIZ_IDLE_USER_UNAUTHORIZED`, and
    /// then, like XP, the plain API (§3.4) carries the same text.
    pub async fn consign_with_proof(
        &self,
        order_id: &str,
        trade_text: &str,
        pics: &[String],
    ) -> Result<Consigned, MtopError> {
        let text: String = trade_text.chars().take(PROOF_TEXT_MAX).collect();
        let pics = serde_json::to_string(&pics.iter().take(PROOF_PICS_MAX).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        let data = format!(
            r#"{{"orderId":{},"tradeText":{},"picList":{},"newUnconsign":true}}"#,
            json_str(order_id),
            json_str(&text),
            json_str(&pics)
        );
        let result = self
            .call(Call::v1(
                "mtop.taobao.idle.logistics.merchant.consign.dummy",
                data,
                Page::SellerCentre,
            ))
            .await;
        match result {
            Ok(_) => Ok(Consigned::Confirmed),
            Err(MtopError::Business { ret, .. }) if is_already_shipped(&ret) => {
                Ok(Consigned::AlreadyShipped)
            }
            Err(MtopError::Business { ret, .. })
                if ret.contains("FAIL_BIZ_IDLE_USER_UNAUTHORIZED") =>
            {
                let data = format!(
                    r#"{{"orderId":{}, "tradeText":{},"picList":{},"newUnconsign":true}}"#,
                    json_str(order_id),
                    json_str(&text),
                    pics
                );
                self.consign_data(data).await
            }
            Err(e) => Err(e),
        }
    }

    /// Every sold order waiting for shipment (all pages, bounded).
    pub async fn pending_shipments(&self) -> Result<Vec<SoldOrder>, MtopError> {
        let mut out = Vec::new();
        for page in 1..=MAX_SOLD_PAGES {
            let data = format!(
                r#"{{"pageNumber":{page},"rowsPerPage":30,"orderIds":"","queryCode":"NOT_SHIP","orderSearchParam":"{{}}"}}"#
            );
            let answer = self
                .call(Call::v1(
                    "mtop.taobao.idle.trade.merchant.sold.get",
                    data,
                    Page::SellerCentre,
                ))
                .await?;
            let (rows, more) = parse_sold_page(&answer);
            out.extend(rows.into_iter().filter(SoldOrder::awaits_shipment));
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// `loginuser.get`: keeps the session warm and notices an expired login early.
    pub async fn keep_alive(&self) -> Result<(), MtopError> {
        self.call(Call::v1(
            "mtop.taobao.idlemessage.pc.loginuser.get",
            "{}".into(),
            Page::Im,
        ))
        .await
        .map(drop)
    }
}
