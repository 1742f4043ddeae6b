//! The mtop gateway and its endpoints (reference §2, §3, §9): the checks every call goes
//! through in the order a gateway would make them (faults, API, token, signature, session),
//! the `{"api","data","ret","v"}` envelope with `Set-Cookie` on token errors, and the
//! answers of each API read from the order book.

use std::time::Duration;

use serde_json::{Value, json};

use super::actions::{
    ConsignForm, RET_ALREADY_SHIPPED, RET_NO_ORDER, RET_NO_SELLER_CENTRE, RET_SUCCESS,
};
use super::auth::{IM_TOKEN_LIFETIME_MS, TokenState};
use super::book::{FakeOrderStatus, Order};
use super::ids::alnum;
use super::state::State;
use super::wire::{china_time, now_ms, yuan};
use crate::goofish::sign::{Cookies, IM_APP_KEY, MTOP_APP_KEY, is_device_id, mtop_sign};

const RET_TOKEN_EMPTY: &str = "FAIL_SYS_TOKEN_EMPTY::令牌为空";
const RET_TOKEN_EXPIRED: &str = "FAIL_SYS_TOKEN_EXOIRED::令牌过期";
const RET_SESSION_EXPIRED: &str = "FAIL_SYS_SESSION_EXPIRED::Session过期";
/// Not in the reference; the text other mtop clients report for a wrong `sign`.
const RET_ILLEGAL_SIGN: &str = "FAIL_SYS_ILLEGAL_SIGN::非法请求签名";
const RET_PARAM_INVALID: &str = "FAIL_SYS_PARAMINVALID_ERROR::请求参数非法";
const RET_API_NOT_FOUND: &str = "FAIL_SYS_API_NOT_FOUNDED::请求API不存在";
const RET_ITEM_NOT_FOUND: &str = "FAIL_BIZ_ITEM_NOT_EXIST::商品不存在";
const RET_RISK: [&str; 2] = [
    "FAIL_SYS_USER_VALIDATE",
    "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试",
];

/// One mtop call as the HTTP layer parsed it.
pub(crate) struct MtopRequest {
    pub api: String,
    pub version: String,
    pub t: Option<String>,
    pub sign: Option<String>,
    /// The exact `data` string (form field, or query for GET).
    pub data: Option<String>,
    pub cookies: Cookies,
    /// Browser headers (`user-agent`, `accept-encoding`, `sec-ch-ua*`), lower-case names.
    pub headers: Vec<(String, String)>,
}

/// What to send back.
pub(crate) struct MtopReply {
    /// 200 for every business answer; 502 for an injected gateway failure.
    pub status: u16,
    pub body: String,
    pub set_cookies: Vec<String>,
    pub delay: Option<Duration>,
    /// A redirect target (with status 302).
    pub location: Option<String>,
    /// Compress the body (the client accepts gzip).
    pub gzip: bool,
}

type Handler = fn(&mut State, &str, &Value) -> Result<Value, &'static str>;

/// An API the fake serves. `login` APIs need a live session (`cookie2` + `unb`).
struct Endpoint {
    api: &'static str,
    version: &'static str,
    login: bool,
    handler: Handler,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        api: "mtop.taobao.idlemessage.pc.login.token",
        version: "1.0",
        login: true,
        handler: login_token,
    },
    Endpoint {
        api: "mtop.taobao.idlemessage.pc.loginuser.get",
        version: "1.0",
        login: true,
        handler: loginuser_get,
    },
    Endpoint {
        api: "mtop.taobao.idle.pc.detail",
        version: "1.0",
        login: true,
        handler: item_detail,
    },
    Endpoint {
        api: "mtop.idle.web.trade.order.detail",
        version: "1.0",
        login: true,
        handler: order_detail,
    },
    Endpoint {
        api: "mtop.taobao.idle.logistic.consign.dummy",
        version: "1.0",
        login: true,
        handler: consign,
    },
    Endpoint {
        api: MERCHANT_CONSIGN,
        version: "1.0",
        login: true,
        handler: merchant_consign,
    },
    Endpoint {
        api: "mtop.taobao.idle.trade.merchant.sold.get",
        version: "1.0",
        login: true,
        handler: sold_get,
    },
    Endpoint {
        api: "mtop.idle.groupon.activity.seller.freeshipping",
        version: "1.0",
        login: true,
        handler: freeshipping,
    },
    // After-sale (see `aftersale.rs` for the clients each is compared with).
    Endpoint {
        api: super::aftersale::RATE_CREATE,
        version: "4.0",
        login: true,
        handler: super::aftersale::rate_create,
    },
    Endpoint {
        api: super::aftersale::RATE_LIST,
        version: "1.0",
        login: true,
        handler: super::aftersale::rate_list,
    },
    Endpoint {
        api: super::aftersale::ITEM_LIST,
        version: "1.0",
        login: true,
        handler: super::aftersale::item_list,
    },
    Endpoint {
        api: super::aftersale::POLISH,
        version: "2.0",
        login: true,
        handler: super::aftersale::polish,
    },
    // Unsigned bootstrap calls (cvcat) that exist to obtain a first `_m_h5_tk`.
    Endpoint {
        api: "mtop.idle.web.user.page.nav",
        version: "1.0",
        login: false,
        handler: empty,
    },
    Endpoint {
        api: "mtop.taobao.idlehome.home.webpc.feed",
        version: "1.0",
        login: false,
        handler: empty,
    },
];

/// Answers one call. Never fails: every problem is a `ret` code, as on the real gateway.
pub(crate) fn answer(state: &mut State, req: &MtopRequest) -> MtopReply {
    let user = req.cookies.user_id().map(str::to_owned);
    let user = user.as_deref();
    state.record.mtop_call(user, &req.api);
    let gzip = note_headers(state, req, user);
    let delay = state.faults.slow(user);
    if state.faults.take_http5xx(user) {
        let body = "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned();
        return MtopReply {
            status: 502,
            body,
            set_cookies: Vec::new(),
            delay,
            location: None,
            gzip,
        };
    }
    if state.faults.redirect(user) {
        // The slider, reached the way a browser is sent there (the URL is the one the
        // risk-control answer carries in `data.url`, §2.6).
        return MtopReply {
            status: 302,
            body: String::new(),
            set_cookies: Vec::new(),
            delay,
            location: Some(punish_url(req)),
            gzip: false,
        };
    }
    let mut reply = match check_and_dispatch(state, req, user) {
        Ok(data) => envelope(req, &[RET_SUCCESS], data),
        Err(Refusal {
            ret,
            data,
            set_cookies,
        }) => {
            let mut reply = envelope(req, &ret, data);
            reply.set_cookies = set_cookies;
            reply
        }
    };
    reply.delay = delay;
    reply.gzip = gzip;
    reply
}

/// Records the browser headers of the call; returns whether the answer may be gzipped.
fn note_headers(state: &mut State, req: &MtopRequest, user: Option<&str>) -> bool {
    let stats = state.record.stats_mut(user.unwrap_or_default());
    stats.mtop_headers = req.headers.iter().cloned().collect();
    let gzip = stats
        .mtop_headers
        .get("accept-encoding")
        .is_some_and(|e| e.split(',').any(|c| c.trim() == "gzip"));
    if gzip {
        stats.compressed_answers += 1;
    }
    gzip
}

/// A failed call: its `ret`, `data` and any `Set-Cookie`.
struct Refusal {
    ret: Vec<&'static str>,
    data: Value,
    set_cookies: Vec<String>,
}

impl Refusal {
    fn ret(ret: &'static str) -> Self {
        Self {
            ret: vec![ret],
            data: json!({}),
            set_cookies: Vec::new(),
        }
    }
}

fn check_and_dispatch(
    state: &mut State,
    req: &MtopRequest,
    user: Option<&str>,
) -> Result<Value, Refusal> {
    if state.faults.risk(user) {
        return Err(risk_refusal(req));
    }
    let endpoint = ENDPOINTS
        .iter()
        .find(|e| e.api == req.api && e.version == req.version)
        .ok_or_else(|| Refusal::ret(RET_API_NOT_FOUND))?;
    let (Some(t), Some(data)) = (req.t.as_deref(), req.data.as_deref()) else {
        return Err(Refusal::ret(RET_PARAM_INVALID));
    };
    check_token(state, req, user)?;
    let token = req.cookies.mtop_token().unwrap_or_default();
    if req.sign.as_deref() != Some(mtop_sign(token, t, MTOP_APP_KEY, data).as_str()) {
        return Err(Refusal::ret(RET_ILLEGAL_SIGN));
    }
    let caller = if endpoint.login {
        check_session(state, &req.cookies)?
    } else {
        user.unwrap_or_default().to_owned()
    };
    let data: Value = serde_json::from_str(data).map_err(|_| Refusal::ret(RET_PARAM_INVALID))?;
    (endpoint.handler)(state, &caller, &data).map_err(Refusal::ret)
}

/// `_m_h5_tk` must be present and issued by this fake; otherwise the token error plus a
/// fresh token in `Set-Cookie` (§2.5, §9).
fn check_token(state: &mut State, req: &MtopRequest, user: Option<&str>) -> Result<(), Refusal> {
    let now = now_ms();
    let ret = match state.auth.mtop_state(req.cookies.mtop_token(), now) {
        TokenState::Valid => return Ok(()),
        TokenState::Missing => RET_TOKEN_EMPTY,
        TokenState::Stale => RET_TOKEN_EXPIRED,
    };
    state
        .record
        .stats_mut(user.unwrap_or_default())
        .token_refusals += 1;
    let issued = state.auth.issue_mtop(user, now);
    Err(Refusal {
        ret: vec![ret],
        data: json!({}),
        set_cookies: issued.set_cookies(),
    })
}

/// The user whose live session `cookies` carry (the image upload's login check).
pub(super) fn session_user(state: &State, cookies: &Cookies) -> Option<String> {
    check_session(state, cookies).ok()
}

/// `cookie2` must name a live session of the `unb` user; returns the user.
fn check_session(state: &State, cookies: &Cookies) -> Result<String, Refusal> {
    let expired = || Refusal::ret(RET_SESSION_EXPIRED);
    let user = cookies.user_id().ok_or_else(expired)?;
    let session = cookies
        .get("cookie2")
        .and_then(|c| state.auth.session(c))
        .ok_or_else(expired)?;
    if session.user != user || state.faults.session_dead(user, session.seq) {
        return Err(expired());
    }
    Ok(user.to_owned())
}

fn risk_refusal(req: &MtopRequest) -> Refusal {
    Refusal {
        ret: RET_RISK.to_vec(),
        data: json!({"url": punish_url(req)}),
        set_cookies: Vec::new(),
    }
}

/// The captcha page of a risk-control answer (§2.6).
fn punish_url(req: &MtopRequest) -> String {
    format!(
        "https://h5api.m.goofish.com:443//h5/{}/{}/_____tmd_____/punish?x5secdata={}&x5step=2&action=captcha&pureCaptcha=",
        req.api,
        req.version,
        alnum(48)
    )
}

fn envelope(req: &MtopRequest, ret: &[&str], data: Value) -> MtopReply {
    let body = json!({"api": req.api, "data": data, "ret": ret, "v": req.version});
    MtopReply {
        status: 200,
        body: body.to_string(),
        set_cookies: Vec::new(),
        delay: None,
        location: None,
        gzip: false,
    }
}

/// A string field of the request data (ids may also come as numbers).
fn field(data: &Value, name: &str) -> Option<String> {
    match data.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn param_invalid() -> &'static str {
    RET_PARAM_INVALID
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

fn empty(_: &mut State, _: &str, _: &Value) -> Result<Value, &'static str> {
    Ok(json!({}))
}

/// §3.1: issues an IM access token bound to the device id.
fn login_token(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let app_key = field(data, "appKey").ok_or_else(param_invalid)?;
    let did = field(data, "deviceId").ok_or_else(param_invalid)?;
    if app_key != IM_APP_KEY || !valid_device_id(&did) {
        return Err(param_invalid());
    }
    let token = state.auth.issue_im(user, &did, now_ms());
    Ok(json!({
        // No capture shows a token; yd path-unescapes it before `/reg` (§3.1), so the fake's
        // tokens carry base64 punctuation and are answered escaped: `/reg` wants them raw.
        "accessToken": escape_token(&token),
        "accessTokenExpiredTime": IM_TOKEN_LIFETIME_MS.to_string(),
        "refreshToken": alnum(64)
    }))
}

/// `/`, `+` and `=` as `%2F`, `%2B`, `%3D`.
fn escape_token(token: &str) -> String {
    token
        .replace('/', "%2F")
        .replace('+', "%2B")
        .replace('=', "%3D")
}

/// A device id of §1.1: the UUID-like part, `-`, then a numeric suffix (`unb`, or epoch
/// ms in gc's variant).
fn valid_device_id(did: &str) -> bool {
    let suffix = did.get(37..).unwrap_or_default();
    !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) && is_device_id(did, suffix)
}

/// §3.7 keep-alive. The live response body is not documented; this one names the user.
fn loginuser_get(state: &mut State, user: &str, _: &Value) -> Result<Value, &'static str> {
    let nick = state.book.nick(user);
    Ok(json!({"userId": user, "nick": nick, "displayName": nick}))
}

/// §3.2 item detail.
fn item_detail(state: &mut State, _: &str, data: &Value) -> Result<Value, &'static str> {
    const STOCK: u64 = 100;
    let id = field(data, "itemId").ok_or_else(param_invalid)?;
    let item = state.book.item(&id).ok_or(RET_ITEM_NOT_FOUND)?;
    let price = yuan(item.price_cents);
    let skus: Vec<Value> = item
        .skus
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let (name, value) = label.split_once(':').unwrap_or(("规格", label));
            json!({
                "skuId": format!("{}{:02}", item.id, i + 1),
                "inventoryId": format!("{}{:02}", item.id, i + 1),
                "priceInCent": item.price_cents,
                "price": item.price_cents,
                "quantity": STOCK,
                "propertyList": [{"propertyText": name, "valueText": value, "enabled": true, "status": 1}]
            })
        })
        .collect();
    Ok(json!({
        "itemDO": {
            "itemId": item.id, "title": item.title, "desc": if item.description.is_empty() { &item.title } else { &item.description },
            "soldPrice": price, "minPrice": price, "maxPrice": price,
            "quantity": STOCK * (skus.len().max(1) as u64),
            "skuList": skus, "itemStatus": 0, "userId": item.seller
        },
        "sellerDO": {"sellerId": item.seller, "nick": state.book.nick(&item.seller)}
    }))
}

/// §3.3 order detail, for either party of the order.
fn order_detail(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let id = field(data, "tid")
        .or_else(|| field(data, "orderId"))
        .ok_or_else(param_invalid)?;
    let order = state
        .book
        .order(&id)
        .filter(|o| o.seller == user || o.buyer == user)
        .ok_or(RET_NO_ORDER)?;
    let peer = if order.seller == user {
        &order.buyer
    } else {
        &order.seller
    };
    Ok(detail_json(order, peer))
}

fn detail_json(order: &Order, peer: &str) -> Value {
    let (spec_name, spec_value) = order.spec().unwrap_or_default();
    let sku_info = order
        .sku
        .as_ref()
        .map(|_| format!("{spec_name}:{spec_value}"))
        .unwrap_or_default();
    let mut time_rows = vec![json!({"title": "下单时间", "value": china_time(order.created_ms)})];
    if let Some(paid) = order.paid_ms {
        time_rows.push(json!({"title": "付款时间", "value": china_time(paid)}));
    }
    json!({
        "status": order.status.detail_code(),
        "utArgs": {"orderStatus": order.status.detail_code().to_string(),
                   "orderStatusName": order.status.detail_name()},
        "peerUserId": peer,
        "itemId": order.item_id,
        "components": [
            {"render": "orderInfoVO", "data": {
                "itemInfo": {"itemId": order.item_id, "title": order.title,
                             "buyAmount": order.quantity.to_string(), "price": yuan(order.unit_cents),
                             "skuInfo": sku_info, "specName": spec_name, "specValue": spec_value},
                "priceInfo": {"amount": {"value": yuan(order.total_cents())}},
                "orderInfoList": time_rows,
                "buyerUserId": order.buyer,
                "addressInfo": {"receiverName": "", "receiverMobile": "", "province": "", "city": "",
                                "district": "", "detailAddress": "", "fullAddress": ""}}},
            {"render": "addressInfoVO", "data": {"name": "", "phoneNumber": "", "address": ""}},
            {"render": "orderStatusVO", "data": {
                "orderStatusNodeList": status_nodes(order.status),
                "orderStatusInfo": {"title": order.status.detail_name()}}},
            {"render": "cainiaoLogisticsInfoVO", "data": {}}
        ],
        "bottomBarVO": {"buttonList": []}
    })
}

/// The progress nodes zn's "can ship" rule reads (§3.3); closed and refund states have
/// none, which sends readers to `orderStatusInfo.title`.
fn status_nodes(status: FakeOrderStatus) -> Value {
    let nodes: &[(&str, bool)] = match status {
        FakeOrderStatus::PendingPayment => &[
            ("已拍下", true),
            ("待付款", false),
            ("待发货", false),
            ("交易成功", false),
        ],
        FakeOrderStatus::Paid => &[
            ("已拍下", true),
            ("已付款", true),
            ("待发货", false),
            ("交易成功", false),
        ],
        FakeOrderStatus::Shipped => &[
            ("已拍下", true),
            ("已付款", true),
            ("已发货", true),
            ("交易成功", false),
        ],
        FakeOrderStatus::Completed => &[
            ("已拍下", true),
            ("已付款", true),
            ("已发货", true),
            ("交易成功", true),
        ],
        FakeOrderStatus::Closed | FakeOrderStatus::Refunding | FakeOrderStatus::Refunded => &[],
    };
    nodes
        .iter()
        .map(|(title, done)| json!({"title": title, "completed": done}))
        .collect()
}

/// §3.4 confirm shipment without logistics.
fn consign(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let id = field(data, "orderId").ok_or_else(param_invalid)?;
    let form = consign_form(PLAIN_CONSIGN, data);
    state.consign(user, &id, form).map(|()| json!({}))
}

const PLAIN_CONSIGN: &str = "mtop.taobao.idle.logistic.consign.dummy";
const MERCHANT_CONSIGN: &str = "mtop.taobao.idle.logistics.merchant.consign.dummy";

/// anchors-2026 §2(e): the seller-centre consign that carries the proof of delivery,
/// `{orderId, tradeText, picList (a JSON array *string*), newUnconsign:true}` (XP
/// `src/main/java/com/xianyusmart/service/impl/OrderServiceImpl.java` `consignDummyDelivery`;
/// the Go client in the corpus, `mtop` package "虚拟发货域", documents the same body, 200
/// characters and three images at most). A seller without 鱼小铺 gets
/// `FAIL_BIZ_IDLE_USER_UNAUTHORIZED` ([`super::Fault::NoSellerCentre`]).
fn merchant_consign(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let id = field(data, "orderId").ok_or_else(param_invalid)?;
    let form = consign_form(MERCHANT_CONSIGN, data);
    if state.faults.no_seller_centre(Some(user)) {
        state.record.consigns.push(super::record::Consign {
            account: user.to_owned(),
            order_id: id,
            accepted: false,
            ret: RET_NO_SELLER_CENTRE.to_owned(),
            api: form.api.to_owned(),
            trade_text: form.trade_text,
            pic_list: form.pic_list,
        });
        return Err(RET_NO_SELLER_CENTRE);
    }
    state.consign(user, &id, form).map(|()| json!({}))
}

/// The form fields of either consign API; `picList` may be an array or a JSON array string.
fn consign_form(api: &'static str, data: &Value) -> ConsignForm {
    let pics = match data.get("picList") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    ConsignForm {
        api,
        trade_text: data
            .get("tradeText")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        pic_list: pics
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// §3.5 bargain free-shipping: accepted for the seller's own unshipped orders.
fn freeshipping(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let id = field(data, "bizOrderId").ok_or_else(param_invalid)?;
    let order = state.book.order(&id).filter(|o| o.seller == user);
    match order.map(|o| o.status) {
        None => Err(RET_NO_ORDER),
        Some(FakeOrderStatus::Shipped | FakeOrderStatus::Completed) => Err(RET_ALREADY_SHIPPED),
        Some(_) => Ok(json!({})),
    }
}

/// §3.6 sold-order list, both request shapes (zn/yd `rowsPerPage`+`queryCode`, 9r
/// `pageSize`). `queryCode` `NOT_SHIP` lists paid, unshipped orders; anything else all.
fn sold_get(state: &mut State, user: &str, data: &Value) -> Result<Value, &'static str> {
    let number = |name: &str| field(data, name).and_then(|v| v.parse::<usize>().ok());
    let page = number("pageNumber").unwrap_or(1).max(1);
    let rows = number("rowsPerPage")
        .or_else(|| number("pageSize"))
        .unwrap_or(30)
        .clamp(1, 100);
    let not_ship = field(data, "queryCode").as_deref() == Some("NOT_SHIP");
    let matching: Vec<&Order> = state
        .book
        .sold_orders(user)
        .filter(|o| !not_ship || o.status == FakeOrderStatus::Paid)
        .collect();
    let start = (page - 1).saturating_mul(rows);
    let items: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(rows)
        .map(|o| sold_item(state, o))
        .collect();
    let end = (start + items.len()).min(matching.len());
    Ok(json!({"module": {
        "items": items,
        "lastEndRow": end.to_string(),
        "nextPage": (end < matching.len()).to_string(),
        "totalCount": matching.len().to_string()
    }}))
}

/// One row of the sold list; every value a string (`valueType=string`).
fn sold_item(state: &State, order: &Order) -> Value {
    let time = |ms: Option<u64>| ms.map(china_time).unwrap_or_default();
    json!({
        "buyerInfoVO": {"address": "", "buyerId": order.buyer, "name": "", "phone": "",
                        "userNick": state.book.nick(&order.buyer)},
        "commonData": {"createTime": china_time(order.created_ms), "itemId": order.item_id,
                       "orderId": order.id, "orderStatus": order.status.sold_text(),
                       "paySuccessTime": time(order.paid_ms), "consignTime": time(order.consigned_ms),
                       "finishTime": time(order.finished_ms),
                       "inRefund": (order.status == FakeOrderStatus::Refunding).to_string()},
        "itemVO": {"title": order.title, "skuInfo": order.sku.clone().unwrap_or_default()},
        "priceVO": {"totalPrice": yuan(order.total_cents()), "buyNum": order.quantity.to_string()}
    })
}
