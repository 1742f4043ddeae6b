//! Pure interpretation of mtop answers (unit-tested): the `ret` envelope and its failure
//! classes (reference §2.5–2.6), and the parsers of each API's `data`.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::MtopError;
use super::api::{ImToken, ItemDetail, OrderDetail, Sku, SoldOrder};
use super::client::Answer;
use crate::clock::now_ms;
use crate::event::EventStatus;
use crate::goofish::values::as_u64;

/// A token is refreshed this long before the server says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(10 * 60);

/// A JSON string literal for `s` (ids are digits, but nothing from outside is trusted).
pub(super) fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A redirect instead of an answer (the client follows none). Towards a captcha or punish page
/// it is risk control: that is how the gateway sends a browser to the slider, and following it
/// or calling it a plain HTTP error would retry into the same wall. Any other redirect is an
/// HTTP failure.
pub(super) fn check_redirect(status: u16, location: Option<&str>) -> Result<(), MtopError> {
    if !(300..400).contains(&status) {
        return Ok(());
    }
    match location {
        Some(l) if looks_like_punish(l) => Err(MtopError::RiskControl {
            code: "redirect to a verification page".into(),
        }),
        _ => Err(MtopError::Http(status)),
    }
}

/// Turns an HTTP answer into the `ret`/`data` envelope or the error it means.
pub(super) fn interpret(api: &str, status: u16, body: &[u8]) -> Result<Answer, MtopError> {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(envelope) = parsed.filter(Value::is_object) else {
        // Risk-control pages may come as HTML with any status (reference §2.5).
        if looks_like_punish(&text) {
            return Err(MtopError::RiskControl {
                code: "punish page".into(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(MtopError::Http(status));
        }
        return Err(MtopError::BadResponse(format!(
            "{api}: body is not a JSON object ({} bytes)",
            body.len()
        )));
    };
    let ret: Vec<String> = envelope
        .get("ret")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let data = envelope.get("data").cloned().unwrap_or(Value::Null);
    classify_ret(api, &ret, &data)?;
    if !(200..300).contains(&status) {
        return Err(MtopError::Http(status));
    }
    Ok(Answer { data })
}

/// Success, or which failure the `ret` strings announce (reference §2.5–2.6).
fn classify_ret(api: &str, ret: &[String], data: &Value) -> Result<(), MtopError> {
    let has = |needles: &[&str]| ret.iter().any(|r| needles.iter().any(|n| r.contains(n)));
    if has(&["SUCCESS"]) {
        return Ok(());
    }
    let first = || ret.first().cloned().unwrap_or_else(|| "(empty ret)".into());
    if has(&[
        "FAIL_SYS_TOKEN_EMPTY",
        "FAIL_SYS_TOKEN_EXOIRED",
        "FAIL_SYS_TOKEN_EXPIRED",
        "FAIL_SYS_TOKEN_ILLEGAL",
        "令牌为空",
        "令牌过期",
    ]) {
        return Err(MtopError::Token(code_of(&first())));
    }
    if has(&["FAIL_SYS_SESSION_EXPIRED", "Session过期"]) {
        return Err(MtopError::LoginExpired);
    }
    let punish_url = data
        .get("url")
        .and_then(Value::as_str)
        .is_some_and(looks_like_punish);
    if punish_url
        || has(&[
            "FAIL_SYS_USER_VALIDATE",
            "RGV587_ERROR",
            "RRXVv_ERROR",
            "FAIL_SYS_ILLEGAL_ACCESS",
            "FAIL_BIZ_WUA_IS_MACHINE",
            "被挤爆",
        ])
    {
        let code = ret.iter().map(|r| code_of(r)).collect::<Vec<_>>().join(",");
        return Err(MtopError::RiskControl { code });
    }
    if has(&["FAIL_SYS_TRAFFIC_LIMIT", "FAIL_SYS_USER_LIMIT"]) {
        return Err(MtopError::RateLimited(code_of(&first())));
    }
    Err(MtopError::Business {
        api: api.to_string(),
        ret: ret.join(" | "),
    })
}

/// The machine part of `CODE::message`.
fn code_of(ret: &str) -> String {
    ret.split("::").next().unwrap_or(ret).to_string()
}

fn looks_like_punish(text: &str) -> bool {
    ["punish", "x5secdata", "captcha", "_____tmd_____"]
        .iter()
        .any(|n| text.contains(n))
}

pub(super) fn is_already_shipped(ret: &str) -> bool {
    ret.contains("ORDER_ALREADY_DELIVERY") || ret.contains("已发货成功")
}

pub(super) fn parse_im_token(answer: &Answer, refresh: Duration) -> Result<ImToken, MtopError> {
    let token = answer
        .data
        .get("accessToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| MtopError::BadResponse("login.token: no data.accessToken".into()))?;
    let lifetime = answer
        .data
        .get("accessTokenExpiredTime")
        .and_then(lifetime_of)
        .map(|l| l.saturating_sub(TOKEN_MARGIN))
        .filter(|l| !l.is_zero());
    let wait = lifetime.map_or(refresh, |l| l.min(refresh));
    // yd path-unescapes the token before `/reg` (reference §3.1): `%XX` become bytes, a `+`
    // stays a `+`. A token that is not valid UTF-8 once decoded is used as given.
    let decoded = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .map_or_else(|_| token.to_string(), |t| t.into_owned());
    Ok(ImToken {
        access_token: decoded,
        refresh_at: Instant::now() + wait,
    })
}

/// `accessTokenExpiredTime` as a remaining lifetime: a duration in ms (gc: `86400000`), or an
/// absolute epoch time in s or ms (yd accepts all three).
fn lifetime_of(v: &Value) -> Option<Duration> {
    let n = as_u64(v)?;
    let now_ms = now_ms();
    Some(match n {
        n if n >= 1_000_000_000_000 => Duration::from_millis(n.saturating_sub(now_ms)),
        n if n >= 1_000_000_000 => Duration::from_millis((n * 1000).saturating_sub(now_ms)),
        n => Duration::from_millis(n),
    })
}

/// A string or number field as text.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field(v: &Value, path: &str) -> Option<String> {
    v.pointer(path).and_then(text_of)
}

/// Yuan text (`"12.50"`, `"12"`) → cents.
fn yuan_to_cents(s: &str) -> Option<u64> {
    let s = s.trim().trim_start_matches(['¥', '￥']);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole: u64 = whole.parse().ok()?;
    let frac = format!("{frac:0<2}");
    let cents: u64 = frac.get(..2)?.parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

pub(super) fn parse_item_detail(item_id: &str, answer: &Answer) -> ItemDetail {
    let item = answer.data.get("itemDO").cloned().unwrap_or(Value::Null);
    let price_cents = field(&item, "/soldPrice")
        .or_else(|| field(&item, "/minPrice"))
        .as_deref()
        .and_then(yuan_to_cents);
    let skus = item
        .get("skuList")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(parse_sku).collect())
        .unwrap_or_default();
    ItemDetail {
        item_id: field(&item, "/itemId").unwrap_or_else(|| item_id.to_string()),
        title: field(&item, "/title"),
        description: field(&item, "/desc"),
        price_cents,
        quantity: item
            .get("quantity")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok()),
        skus,
        seller_id: field(&answer.data, "/sellerDO/sellerId"),
    }
}

fn parse_sku(sku: &Value) -> Sku {
    let values: Vec<String> = sku
        .get("propertyList")
        .and_then(Value::as_array)
        .map(|props| {
            props
                .iter()
                .filter_map(|p| field(p, "/valueText"))
                .collect()
        })
        .unwrap_or_default();
    Sku {
        sku_id: field(sku, "/skuId"),
        name: values.join(";"),
        // `priceInCent` (Go fixture) or `price` in cents (shaxiu) — reference §8a.
        price_cents: sku
            .get("priceInCent")
            .or_else(|| sku.get("price"))
            .and_then(as_u64),
        quantity: sku
            .get("quantity")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok()),
    }
}

pub(super) fn parse_order_detail(order_id: &str, answer: &Answer) -> OrderDetail {
    let data = &answer.data;
    let component = |render: &str| -> Option<&Value> {
        data.get("components")?
            .as_array()?
            .iter()
            .find(|c| c.get("render").and_then(Value::as_str) == Some(render))?
            .get("data")
    };
    let info = component("orderInfoVO").cloned().unwrap_or(Value::Null);
    let item = info.get("itemInfo").cloned().unwrap_or(Value::Null);
    OrderDetail {
        order_id: order_id.to_string(),
        status: order_status(data, component("orderStatusVO")),
        item_id: field(&item, "/itemId").or_else(|| field(data, "/itemId")),
        title: field(&item, "/title"),
        quantity: item
            .get("buyAmount")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok())
            .filter(|q| *q > 0),
        sku: spec_of(&item),
        amount: field(&info, "/priceInfo/amount/value").or_else(|| field(&item, "/price")),
        buyer_id: field(&info, "/buyerUserId")
            .or_else(|| field(&info, "/buyerId"))
            .or_else(|| field(data, "/peerUserId")),
        buyer_nick: field(&info, "/buyerNick"),
    }
}

/// The SKU spec value from either format (reference §8a): `skuInfo` `颜色:红色` (several
/// pairs joined by `;`) or `specName`/`specValue`.
fn spec_of(item: &Value) -> Option<String> {
    if let Some(v) = field(item, "/specValue") {
        return Some(v);
    }
    let info = field(item, "/skuInfo")?;
    let values: Vec<&str> = info
        .split([';', '；'])
        .map(|pair| pair.split_once([':', '：']).map_or(pair, |(_, v)| v).trim())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(";"))
}

/// Order status from the detail, only where the sources agree (reference §3.3): status text
/// first, then numeric codes 1–4 (the only ones 9r and yd read the same way).
fn order_status(data: &Value, status_vo: Option<&Value>) -> Option<EventStatus> {
    let texts = [
        field(data, "/utArgs/orderStatusName"),
        status_vo.and_then(|s| field(s, "/orderStatusInfo/title")),
        status_vo.and_then(current_node),
    ];
    if let Some(s) = texts.iter().flatten().find_map(|t| status_from_text(t)) {
        return Some(s);
    }
    let code = data
        .get("status")
        .and_then(as_u64)
        .or_else(|| data.pointer("/utArgs/orderStatus").and_then(as_u64))?;
    match code {
        1 => Some(EventStatus::PendingPayment),
        2 => Some(EventStatus::Paid),
        3 => Some(EventStatus::Shipped),
        4 => Some(EventStatus::Completed),
        _ => None,
    }
}

/// The first not-yet-completed node of `orderStatusNodeList` names the current state
/// (`待发货` after a completed `已付款`).
fn current_node(status_vo: &Value) -> Option<String> {
    let nodes = status_vo.get("orderStatusNodeList")?.as_array()?;
    let done = |n: &Value| n.get("completed").and_then(Value::as_bool) == Some(true);
    let pending = nodes.iter().find(|n| !done(n))?;
    field(pending, "/title")
}

fn status_from_text(text: &str) -> Option<EventStatus> {
    const RULES: &[(&str, EventStatus)] = &[
        ("退款成功", EventStatus::Refunded),
        ("已退款", EventStatus::Refunded),
        ("退款中", EventStatus::Refunding),
        ("退款", EventStatus::Refunding),
        ("交易关闭", EventStatus::Closed),
        ("交易成功", EventStatus::Completed),
        ("待收货", EventStatus::Shipped),
        ("已发货", EventStatus::Shipped),
        ("等待买家确认收货", EventStatus::Shipped),
        ("待发货", EventStatus::Paid),
        ("等待卖家发货", EventStatus::Paid),
        ("待付款", EventStatus::PendingPayment),
        ("等待买家付款", EventStatus::PendingPayment),
    ];
    RULES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, s)| *s)
}

/// Rows of one `merchant.sold.get` page and whether another page follows.
pub(super) fn parse_sold_page(answer: &Answer) -> (Vec<SoldOrder>, bool) {
    let module = answer.data.get("module").unwrap_or(&answer.data);
    let rows = module
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(parse_sold_row).collect())
        .unwrap_or_default();
    let more = module
        .get("nextPage")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    (rows, more)
}

fn parse_sold_row(row: &Value) -> Option<SoldOrder> {
    let common = row.get("commonData")?;
    Some(SoldOrder {
        order_id: field(common, "/orderId")?,
        item_id: field(common, "/itemId"),
        title: field(row, "/itemVO/title"),
        buyer_id: field(row, "/buyerInfoVO/buyerId"),
        buyer_nick: field(row, "/buyerInfoVO/userNick"),
        amount: field(row, "/priceVO/totalPrice"),
        quantity: row
            .pointer("/priceVO/buyNum")
            .and_then(as_u64)
            .and_then(|q| u32::try_from(q).ok())
            .filter(|q| *q > 0),
        status_text: field(common, "/orderStatus").unwrap_or_default(),
        in_refund: field(common, "/inRefund").as_deref() == Some("true"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: Value) -> Answer {
        Answer {
            data: v.get("data").cloned().unwrap_or(Value::Null),
        }
    }

    fn rets(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ret_classification() {
        let empty = Value::Null;
        assert!(classify_ret("a", &rets(&["SUCCESS::调用成功"]), &empty).is_ok());
        assert_eq!(
            classify_ret("a", &rets(&["FAIL_SYS_TOKEN_EXOIRED::令牌过期"]), &empty),
            Err(MtopError::Token("FAIL_SYS_TOKEN_EXOIRED".into()))
        );
        assert!(matches!(
            classify_ret("a", &rets(&["FAIL_SYS_TOKEN_EMPTY::令牌为空"]), &empty),
            Err(MtopError::Token(_))
        ));
        assert_eq!(
            classify_ret(
                "a",
                &rets(&["FAIL_SYS_SESSION_EXPIRED::Session过期"]),
                &empty
            ),
            Err(MtopError::LoginExpired)
        );
        let risk = classify_ret(
            "a",
            &rets(&[
                "FAIL_SYS_USER_VALIDATE",
                "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试",
            ]),
            &serde_json::json!({"url": "https://h5api.m.goofish.com:443//h5/x/1.0/_____tmd_____/punish?x5secdata=abc"}),
        );
        assert_eq!(
            risk,
            Err(MtopError::RiskControl {
                code: "FAIL_SYS_USER_VALIDATE,RGV587_ERROR".into()
            })
        );
        assert!(matches!(
            classify_ret("a", &rets(&["FAIL_SYS_TRAFFIC_LIMIT::x"]), &empty),
            Err(MtopError::RateLimited(_))
        ));
        let biz = classify_ret(
            "consign",
            &rets(&["FAIL_BIZ_ORDER_STATUS_ERROR::订单状态错误"]),
            &empty,
        );
        assert!(
            matches!(&biz, Err(MtopError::Business { ret, .. }) if ret.contains("ORDER_STATUS"))
        );
        assert!(!biz.unwrap_err().is_transient());
        assert!(is_already_shipped(
            "FAIL_BIZ_ORDER_ALREADY_DELIVERY::已发货"
        ));
    }

    #[test]
    fn interpret_handles_html_and_status() {
        assert_eq!(
            interpret("a", 502, b"<html>bad gateway</html>").err(),
            Some(MtopError::Http(502))
        );
        assert!(MtopError::Http(502).is_transient());
        assert!(matches!(
            interpret("a", 200, b"<html>..punish?x5secdata=..</html>"),
            Err(MtopError::RiskControl { .. })
        ));
        assert!(matches!(
            interpret("a", 200, b"[1]"),
            Err(MtopError::BadResponse(_))
        ));
        let ok = interpret(
            "a",
            200,
            r#"{"api":"a","data":{"x":1},"ret":["SUCCESS::调用成功"],"v":"1.0"}"#.as_bytes(),
        );
        assert_eq!(ok.ok().map(|a| a.data), Some(serde_json::json!({"x": 1})));
        let punish =
            "https://h5api.m.goofish.com/h5/mtop.x/1.0/_____tmd_____/punish?x5secdata=ab&x5step=1";
        assert!(matches!(
            check_redirect(302, Some(punish)),
            Err(MtopError::RiskControl { .. })
        ));
        assert_eq!(
            check_redirect(301, Some("https://example.com/")),
            Err(MtopError::Http(301))
        );
        assert_eq!(check_redirect(200, Some(punish)), Ok(()));
    }

    #[test]
    fn form_encoding_and_money() {
        assert_eq!(form_encode(r#"{"a":"b c"}"#), "%7B%22a%22%3A%22b+c%22%7D");
        assert_eq!(form_encode("你"), "%E4%BD%A0");
        assert_eq!(yuan_to_cents("12.50"), Some(1250));
        assert_eq!(yuan_to_cents("12"), Some(1200));
        assert_eq!(yuan_to_cents("¥0.5"), Some(50));
        assert_eq!(yuan_to_cents("abc"), None);
    }

    #[test]
    fn order_detail_both_spec_formats() {
        let zn = answer(serde_json::json!({"data": {
        "status": 2,
        "peerUserId": "3149637063",
        "components": [
            {"render": "orderInfoVO", "data": {
                "itemInfo": {"itemId": "900052644277", "title": "Office", "buyAmount": "3",
                             "price": "9.90", "skuInfo": "版本:专业版"},
                "priceInfo": {"amount": {"value": "29.70"}}}},
            {"render": "orderStatusVO", "data": {"orderStatusNodeList": [
                {"title": "已付款", "completed": true}, {"title": "待发货", "completed": false}]}}
        ]}}));
        let d = parse_order_detail("1", &zn);
        assert_eq!(d.status, Some(EventStatus::Paid));
        assert_eq!(d.quantity, Some(3));
        assert_eq!(d.sku.as_deref(), Some("专业版"));
        assert_eq!(d.amount.as_deref(), Some("29.70"));
        assert_eq!(d.buyer_id.as_deref(), Some("3149637063"));
        assert_eq!(d.item_id.as_deref(), Some("900052644277"));

        let yd = answer(serde_json::json!({"data": {
            "utArgs": {"orderStatus": "3"},
            "components": [{"render": "orderInfoVO", "data": {
                "buyerUserId": 42,
                "itemInfo": {"buyAmount": 1, "specName": "颜色", "specValue": "红色"}}}]}}));
        let d = parse_order_detail("2", &yd);
        assert_eq!(d.status, Some(EventStatus::Shipped));
        assert_eq!(d.sku.as_deref(), Some("红色"));
        assert_eq!(d.buyer_id.as_deref(), Some("42"));
        assert_eq!(d.later_status(), Some(EventStatus::Shipped));

        // Nothing usable: defaults, no panic.
        let d = parse_order_detail(
            "3",
            &answer(serde_json::json!({"data": {"components": "x"}})),
        );
        assert_eq!(d.status, None);
        assert_eq!(d.quantity, None);
        assert_eq!(
            spec_of(&serde_json::json!({"skuInfo": "颜色:红色;尺码:L"})).as_deref(),
            Some("红色;L")
        );
    }

    #[test]
    fn sold_list_and_item_detail() {
        let page = answer(serde_json::json!({"data": {"module": {"items": [
            {"commonData": {"orderId": "3300351279401008157", "itemId": "907625879418", "orderStatus": "待发货"},
             "buyerInfoVO": {"buyerId": "1728685717", "userNick": "n"}, "itemVO": {"title": "T"},
             "priceVO": {"totalPrice": "39.00", "buyNum": "2"}},
            {"commonData": {"orderId": "2", "orderStatus": "待发货", "inRefund": "true"}},
            {"commonData": {"orderId": "3", "orderStatus": "已发货"}},
            {"noCommonData": true}
        ], "nextPage": "true"}}}));
        let (rows, more) = parse_sold_page(&page);
        assert!(more);
        assert_eq!(rows.len(), 3);
        let pending: Vec<_> = rows.iter().filter(|r| r.awaits_shipment()).collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].quantity, Some(2));
        assert_eq!(pending[0].buyer_id.as_deref(), Some("1728685717"));

        let item = answer(
            serde_json::json!({"data": {"itemDO": {"title": "会员", "soldPrice": "12.50", "quantity": 5,
            "skuList": [{"skuId": 1, "priceInCent": 990, "quantity": 2, "propertyList": [{"propertyText": "规格", "valueText": "月卡"}]},
                        {"skuId": 2, "price": "2990", "propertyList": [{"valueText": "年卡"}]}]},
            "sellerDO": {"sellerId": "99"}}}),
        );
        let d = parse_item_detail("5", &item);
        assert_eq!(d.price_cents, Some(1250));
        assert_eq!(d.skus[0].name, "月卡");
        assert_eq!(d.skus[0].price_cents, Some(990));
        assert_eq!(d.skus[1].price_cents, Some(2990));
        assert_eq!(d.seller_id.as_deref(), Some("99"));
    }

    #[test]
    fn token_lifetime_forms() {
        assert_eq!(
            lifetime_of(&serde_json::json!("86400000")),
            Some(Duration::from_secs(86400))
        );
        let soon_ms = now_ms() + 3_600_000;
        let l = lifetime_of(&serde_json::json!(soon_ms)).unwrap();
        assert!(l <= Duration::from_secs(3600) && l > Duration::from_secs(3500));
        let l = lifetime_of(&serde_json::json!(soon_ms / 1000)).unwrap();
        assert!(l <= Duration::from_secs(3600) && l > Duration::from_secs(3500));
        let t = parse_im_token(
            &answer(serde_json::json!({"data": {"accessToken": "secret-token", "accessTokenExpiredTime": "86400000"}})),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert!(t.refresh_at <= Instant::now() + Duration::from_secs(3600));
        assert!(!format!("{t:?}").contains("secret-token"));
        let t = parse_im_token(
            &answer(serde_json::json!({"data": {"accessToken": "a%2Fb%2Bc%3D%3D+d"}})),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert_eq!(t.access_token, "a/b+c==+d");
        assert!(
            parse_im_token(
                &answer(serde_json::json!({"data": {}})),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
