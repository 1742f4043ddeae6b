//! The after-sale APIs (anchors-2026 §2(c), §2(e)): rate a buyer, the pending-ratings list,
//! the seller's item list, polish an item.
//!
//! Requests and answers follow what real clients send and accept:
//! - `mtop.taobao.idle.rate.create` **4.0** `{tradeId, rate:1, feedback, createOrAppend:0}`:
//!   YD (`Christ9038/Ydisks-Xianyu-Helper` `internal/xianyu/mtop/account_tasks.go`
//!   `RateBuyer`) and ZB (`zhinianboke/xianyu-auto-reply` `common/services/rate_service.py`
//!   `rate_buyer`), both `SUCCESS` in `ret`; ZB treats an answer mentioning 已评价 / 重复评价
//!   as "already rated". No public capture has that code: `FAIL_BIZ_RATE_DUPLICATE` here is
//!   assumed (the client matches the Chinese text too), as is the refusal for an order that
//!   is not complete yet.
//! - `mtop.taobao.idle.merchant.rate.list` 1.0 `{pageNumber, rowsPerPage, queryType:"ORDER",
//!   rateSearchParam:{sellerRateStatus:"5"}}` from the seller centre, answer
//!   `data.module.{items[].tradeId, totalCount}` (YD `FetchPendingRateOrders`, ZB
//!   `fetch_merchant_rate_list`).
//! - `mtop.idle.web.xyh.item.list` 1.0 `{needGroupInfo:false, pageNumber, pageSize ≤ 20,
//!   groupName:"在售", groupId, defaultGroup:true, userId}`, answer
//!   `data.{cardList[].cardData.{id, title, itemStatus, priceInfo, detailParams.itemId},
//!   nextPage}` (YD fork `hl85/Ydisks-Xianyu-Helper` `internal/xianyu/mtop/items.go`
//!   `fetchItemsPageOnce`, ZB `common/utils/item_info_manager.py` `get_item_list_info`; a
//!   page past the end has no `cardList` at all, as YD handles; a larger page is
//!   `FAIL_BIZ_FORBIDDEN`). The 在售 group lists on-shelf items only; without a group every
//!   item comes with its `itemStatus` (0 on shelf, assumed: both clients default to 0).
//! - `mtop.taobao.idle.item.polish` **2.0** `{itemId}` (YD `PolishItem`, ZB
//!   `scheduler/app/services/scheduler/polish_task.py` `_polish_item` with `v=2.0`; ZB#328 is
//!   the bug of calling path 1.0 with `v=2.0`, which this fake refuses as an unknown API):
//!   `SUCCESS::调用成功` with `data.success`, and
//!   `FAIL_BIZ_IDLEITEM_POLISH_AGAIN::宝贝已经擦亮过了，明天再来吧` for a second polish on the
//!   same Beijing day (YD's `account_tasks_test.go` fixture; both YD and ZB count it as a
//!   success, the rival bug this project does not repeat); an off-shelf item is
//!   `FAIL_BIZ_UNSUPPORTED_ITEM_STATUS::已下架商品不支持该操作` (ZB matches that text).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::book::FakeOrderStatus;
use super::state::State;
use super::wire::now_ms;

pub(super) const RATE_CREATE: &str = "mtop.taobao.idle.rate.create";
pub(super) const RATE_LIST: &str = "mtop.taobao.idle.merchant.rate.list";
pub(super) const ITEM_LIST: &str = "mtop.idle.web.xyh.item.list";
pub(super) const POLISH: &str = "mtop.taobao.idle.item.polish";

const RET_RATED: &str = "FAIL_BIZ_RATE_DUPLICATE::该订单已评价，不能重复评价";
const RET_NOT_RATABLE: &str = "FAIL_BIZ_RATE_NOT_ALLOWED::交易未完成，暂不能评价";
const RET_POLISHED: &str = "FAIL_BIZ_IDLEITEM_POLISH_AGAIN::宝贝已经擦亮过了，明天再来吧";
const RET_OFF_SHELF: &str = "FAIL_BIZ_UNSUPPORTED_ITEM_STATUS::已下架商品不支持该操作";
const RET_NO_ORDER: &str = "FAIL_BIZ_ORDER_NOT_EXIST::订单不存在";
const RET_NO_ITEM: &str = "FAIL_BIZ_ITEM_NOT_EXIST::商品不存在";
const RET_PAGE: &str = "FAIL_BIZ_FORBIDDEN::||最大可查看页数或者每页最大可查看商品数超限";
const RET_PARAM: &str = "FAIL_SYS_PARAMINVALID_ERROR::请求参数非法";

/// One rating the seller gave, as the platform keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRating {
    pub account: String,
    pub order_id: String,
    pub rate: i64,
    pub feedback: String,
}

/// One polish call and the platform's `ret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePolish {
    pub account: String,
    pub item_id: String,
    pub ret: String,
}

/// What the after-sale APIs remember.
#[derive(Default)]
pub(crate) struct AftersaleBook {
    pub ratings: Vec<FakeRating>,
    /// `rate.create` calls per order, refused ones included.
    pub rate_calls: BTreeMap<String, u32>,
    pub polishes: Vec<FakePolish>,
    /// item → the Beijing day it was last polished.
    polished_on: BTreeMap<String, String>,
    pub off_shelf: BTreeSet<String>,
}

impl AftersaleBook {
    /// The seller polished the item in the app today: our polish is "already polished".
    pub(crate) fn polished_in_app(&mut self, item: &str) {
        self.polished_on.insert(item.to_string(), today());
    }
}

fn today() -> String {
    crate::clock::format_beijing(now_ms())
        .chars()
        .take(10)
        .collect()
}

fn field(data: &Value, name: &str) -> Option<String> {
    match data.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `pageNumber` (from 1) and the page size under `size_key` (20 when absent).
fn paging(data: &Value, size_key: &str) -> (usize, usize) {
    let number = |name: &str| field(data, name).and_then(|v| v.parse::<usize>().ok());
    (
        number("pageNumber").unwrap_or(1).max(1),
        number(size_key).unwrap_or(20),
    )
}

pub(super) fn rate_create(
    state: &mut State,
    user: &str,
    data: &Value,
) -> Result<Value, &'static str> {
    let id = field(data, "tradeId").ok_or(RET_PARAM)?;
    let feedback = data
        .get("feedback")
        .and_then(Value::as_str)
        .ok_or(RET_PARAM)?;
    *state.aftersale.rate_calls.entry(id.clone()).or_default() += 1;
    let order = state
        .book
        .order(&id)
        .filter(|o| o.seller == user)
        .ok_or(RET_NO_ORDER)?;
    if order.status != FakeOrderStatus::Completed {
        return Err(RET_NOT_RATABLE);
    }
    if state.aftersale.ratings.iter().any(|r| r.order_id == id) {
        return Err(RET_RATED);
    }
    state.aftersale.ratings.push(FakeRating {
        account: user.to_string(),
        order_id: id,
        rate: data.get("rate").and_then(Value::as_i64).unwrap_or(0),
        feedback: feedback.to_string(),
    });
    Ok(json!({"success": true}))
}

pub(super) fn rate_list(
    state: &mut State,
    user: &str,
    data: &Value,
) -> Result<Value, &'static str> {
    let (page, rows) = paging(data, "rowsPerPage");
    let rows = rows.clamp(1, 100);
    let status = data["rateSearchParam"]["sellerRateStatus"].as_str();
    if data.get("queryType").and_then(Value::as_str) != Some("ORDER") || status != Some("5") {
        return Err(RET_PARAM);
    }
    let rated: BTreeSet<&str> = state
        .aftersale
        .ratings
        .iter()
        .map(|r| r.order_id.as_str())
        .collect();
    let pending: Vec<Value> = state
        .book
        .sold_orders(user)
        .filter(|o| o.status == FakeOrderStatus::Completed && !rated.contains(o.id.as_str()))
        .map(
            |o| json!({"tradeId": o.id, "itemId": o.item_id, "buyerId": o.buyer, "title": o.title}),
        )
        .collect();
    let total = pending.len();
    let items: Vec<Value> = pending
        .into_iter()
        .skip((page - 1) * rows)
        .take(rows)
        .collect();
    // `valueType=string` from the seller centre: counts come as strings.
    Ok(json!({"module": {"items": items, "totalCount": total.to_string()}}))
}

pub(super) fn item_list(
    state: &mut State,
    user: &str,
    data: &Value,
) -> Result<Value, &'static str> {
    let (page, size) = paging(data, "pageSize");
    if size > 20 || page > 50 {
        return Err(RET_PAGE);
    }
    if field(data, "userId").as_deref() != Some(user) {
        return Err(RET_PARAM);
    }
    let on_shelf_only = data.get("groupName").and_then(Value::as_str) == Some("在售");
    let items: Vec<_> = state
        .book
        .items_of(user)
        .into_iter()
        .filter(|i| !on_shelf_only || !state.aftersale.off_shelf.contains(&i.id))
        .collect();
    let cards: Vec<Value> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|i| {
            let status = i32::from(state.aftersale.off_shelf.contains(&i.id));
            json!({"cardType": 1003, "cardData": {
                "id": i.id, "title": i.title, "itemStatus": status,
                "priceInfo": {"price": super::wire::yuan(i.price_cents)},
                "detailParams": {"itemId": i.id, "title": i.title}
            }})
        })
        .collect();
    let next = page * size < items.len();
    let mut out = json!({"nextPage": next, "totalCount": 0});
    // A page past the end has no `cardList` at all.
    if !cards.is_empty() {
        out["cardList"] = Value::Array(cards);
    }
    Ok(out)
}

pub(super) fn polish(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let id = field(data, "itemId").ok_or(RET_PARAM)?;
    let ret = match state.book.item(&id).filter(|i| i.seller == user) {
        None => RET_NO_ITEM,
        Some(_) if state.aftersale.off_shelf.contains(&id) => RET_OFF_SHELF,
        Some(_) if state.aftersale.polished_on.get(&id) == Some(&today()) => RET_POLISHED,
        Some(_) => "SUCCESS::调用成功",
    };
    state.aftersale.polishes.push(FakePolish {
        account: user.to_string(),
        item_id: id.clone(),
        ret: ret.to_string(),
    });
    if !ret.starts_with("SUCCESS") {
        return Err(ret);
    }
    state.aftersale.polished_on.insert(id, today());
    Ok(json!({"success": true}))
}
