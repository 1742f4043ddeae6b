//! The fake Goofish server over real loopback sockets, driven by a minimal client written
//! here (reqwest for mtop, tokio-tungstenite for the IM socket) so the fake is checked
//! against the reference, not against the daemon's own client.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use xianyu_shopd::fake::{FakeGoofish, FakeOrderStatus, Fault, SendReply};
use xianyu_shopd::goofish::decode::{DecodedEvent, OrderStatus, Role, decode_frame};
use xianyu_shopd::goofish::sign::{Cookies, generate_device_id};

const SELLER: &str = "2202640918079";
const BUYER: &str = "3149637063";
const ITEM: &str = "900052644277";
const IM_APP_KEY: &str = "444e9908a51d1cb236a27862abc769c9";
const TOKEN_API: &str = "mtop.taobao.idlemessage.pc.login.token";
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A minimal mtop client
// ---------------------------------------------------------------------------

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_ms() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    d.as_millis().to_string()
}

struct Answer {
    status: u16,
    body: Value,
    set_cookies: Vec<String>,
}

impl Answer {
    fn ret0(&self) -> &str {
        self.body["ret"][0].as_str().unwrap_or_default()
    }
}

/// POSTs one mtop call with explicit `t` and `sign`.
async fn mtop_raw(
    fake: &FakeGoofish,
    cookie: &str,
    api: &str,
    t: &str,
    sign: &str,
    data: &str,
) -> Answer {
    let url = format!(
        "{}{api}/1.0/?jsv=2.7.2&appKey=34839810&t={t}&sign={sign}&v=1.0&type=originaljson&accountSite=xianyu&dataType=json&timeout=20000&api={api}&sessionOption=AutoLoginOnly",
        fake.mtop_base()
    );
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(format!("data={}", form_encode(data)))
        .send()
        .await
        .expect("http");
    let status = response.status().as_u16();
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        set_cookies,
    }
}

/// Signs with the cookie's token the way every bot does and POSTs.
async fn mtop(fake: &FakeGoofish, cookie: &str, api: &str, data: &str) -> Answer {
    let t = now_ms();
    let token = Cookies::parse(cookie)
        .mtop_token()
        .unwrap_or_default()
        .to_owned();
    let sign = md5_hex(&format!("{token}&{t}&34839810&{data}"));
    mtop_raw(fake, cookie, api, &t, &sign, data).await
}

fn merge(cookie: &str, set_cookies: &[String]) -> String {
    let mut jar = Cookies::parse(cookie);
    jar.merge_set_cookies(set_cookies.iter().map(String::as_str));
    jar.to_header()
}

fn device_id(user: &str) -> String {
    generate_device_id(&mut rand::rng(), user)
}

async fn im_token(fake: &FakeGoofish, cookie: &str, did: &str) -> String {
    let data = format!(r#"{{"appKey":"{IM_APP_KEY}","deviceId":"{did}"}}"#);
    let answer = mtop(fake, cookie, TOKEN_API, &data).await;
    assert_eq!(answer.ret0(), "SUCCESS::调用成功", "{}", answer.body);
    // The token API answers the token path-escaped; `/reg` wants it raw (yd unescapes it).
    let escaped = answer.body["data"]["accessToken"].as_str().expect("token");
    assert!(escaped.contains("%2F"), "{escaped}");
    percent_encoding::percent_decode_str(escaped)
        .decode_utf8()
        .expect("utf-8")
        .into_owned()
}

// ---------------------------------------------------------------------------
// A minimal IM client
// ---------------------------------------------------------------------------

struct Im {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pushes: VecDeque<Value>,
    next_mid: u64,
    sid: String,
}

impl Im {
    async fn connect(fake: &FakeGoofish) -> Im {
        let (ws, _) = connect_async(fake.ws_url()).await.expect("ws connect");
        Im {
            ws,
            pushes: VecDeque::new(),
            next_mid: 100,
            sid: String::new(),
        }
    }

    /// Connects, fetches a token, registers and syncs: ready for pushes.
    async fn online(fake: &FakeGoofish, user: &str, cookie: &str) -> Im {
        let did = device_id(user);
        let token = im_token(fake, cookie, &did).await;
        let mut im = Im::connect(fake).await;
        let reg = im.register(&token, &did).await;
        assert_eq!(reg["code"], 200, "{reg}");
        im.sid = reg["headers"]["sid"].as_str().expect("sid").to_owned();
        let body = json!([{"pipeline": "sync", "tooLong2Tag": "PNM,1", "channel": "sync", "topic": "sync",
                           "highPts": 0, "pts": 1_741_667_630_548_000u64, "seq": 0, "timestamp": 1_741_667_630_548u64}]);
        let ack = im.request("/r/SyncStatus/ackDiff", json!({}), body).await;
        assert_eq!(ack["code"], 200);
        im
    }

    async fn register(&mut self, token: &str, did: &str) -> Value {
        let headers = json!({
            "cache-header": "app-key token ua wv", "app-key": IM_APP_KEY, "token": token,
            "ua": "Mozilla/5.0 DingTalk(2.1.5) OS(Windows/10) Browser(Chrome/133.0.0.0) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5",
            "dt": "j", "wv": "im:3,au:3,sy:6", "sync": "0,0;0;0;", "did": did
        });
        self.request_headers("/reg", headers, None).await
    }

    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("ws send");
    }

    /// The next text frame, or None on close / timeout.
    async fn read(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn mid(&mut self) -> String {
        self.next_mid += 1;
        format!("{}1741667630548 0", self.next_mid)
    }

    async fn request(&mut self, lwp: &str, headers: Value, body: Value) -> Value {
        self.request_headers(lwp, headers, Some(body)).await
    }

    /// Sends a request and waits for the response with its mid, buffering pushes.
    async fn request_headers(
        &mut self,
        lwp: &str,
        mut headers: Value,
        body: Option<Value>,
    ) -> Value {
        let mid = self.mid();
        headers["mid"] = json!(mid);
        let mut frame = json!({"lwp": lwp, "headers": headers});
        if let Some(body) = body {
            frame["body"] = body;
        }
        self.send(frame).await;
        self.response(&mid, WAIT).await.expect("response")
    }

    async fn response(&mut self, mid: &str, wait: Duration) -> Option<Value> {
        loop {
            let frame = self.read(wait).await?;
            if frame.get("lwp").is_some() {
                self.pushes.push_back(frame);
            } else if frame["headers"]["mid"] == mid {
                return Some(frame);
            }
        }
    }

    /// The next push (buffered or new), acknowledged the way the bots do.
    async fn push(&mut self) -> Value {
        let frame = match self.pushes.pop_front() {
            Some(f) => f,
            None => loop {
                let f = self.read(WAIT).await.expect("a push");
                if f.get("lwp").is_some() {
                    break f;
                }
            },
        };
        let h = &frame["headers"];
        let ack = json!({"code": 200, "headers": {"mid": h["mid"], "sid": h["sid"],
                         "app-key": h["app-key"], "ua": h["ua"], "dt": "j"}});
        self.send(ack).await;
        frame
    }

    /// Pushes until one on `lwp` arrives.
    async fn push_on(&mut self, lwp: &str) -> Value {
        loop {
            let frame = self.push().await;
            if frame["lwp"] == lwp {
                return frame;
            }
        }
    }

    async fn send_text(
        &mut self,
        cid: &str,
        receivers: &[&str],
        text: &str,
    ) -> (String, Option<Value>) {
        // shaxiu style: spaces after separators, non-ASCII escaped.
        let inner = format!(
            "{{\"contentType\": 1, \"text\": {{\"text\": {}}}}}",
            serde_json::to_string(text).expect("json")
        );
        let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, inner);
        let receivers: Vec<String> = receivers.iter().map(|r| format!("{r}@goofish")).collect();
        let body = json!([
            {"uuid": "-17416676305481", "cid": format!("{cid}@goofish"), "conversationType": 1,
             "content": {"contentType": 101, "custom": {"type": 1, "data": data}},
             "redPointPolicy": 0, "extension": {"extJson": "{}"},
             "ctx": {"appVersion": "1.0", "platform": "web"}, "mtags": {}, "msgReadStatusSetting": 1},
            {"actualReceivers": receivers}
        ]);
        let mid = self.mid();
        self.send(json!({"lwp": "/r/MessageSend/sendByReceiverScope", "headers": {"mid": mid}, "body": body}))
            .await;
        let reply = self.response(&mid, Duration::from_millis(700)).await;
        (mid, reply)
    }
}

/// (order id, status, role, item id, buyer id) of an order event.
type OrderFacts = (String, OrderStatus, Role, Option<String>, Option<String>);

/// All order events of a push frame.
fn orders(frame: &Value, account: &str) -> Vec<OrderFacts> {
    decode_frame(&frame.to_string(), Some(account))
        .expect("decodes")
        .into_iter()
        .filter_map(|d| match d.event {
            DecodedEvent::Order {
                order_id,
                status,
                role,
                item_id,
                buyer_id,
                ..
            } => Some((order_id, status, role, item_id, buyer_id)),
            _ => None,
        })
        .collect()
}

async fn shop() -> (FakeGoofish, String) {
    let fake = FakeGoofish::start().await.expect("start");
    let cookie = fake.add_seller(SELLER, "sha修");
    fake.add_item(
        SELLER,
        ITEM,
        "Office 2021 激活码",
        990,
        &["标准版", "颜色:红色"],
    );
    (fake, cookie)
}

// ---------------------------------------------------------------------------
// mtop
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reference_sign_vector_is_accepted_and_a_bad_sign_rejected() {
    let fake = FakeGoofish::start().await.expect("start");
    let cookie = fake.add_seller("3888777108", "vector");
    let mut jar = Cookies::parse(&cookie);
    jar.set("_m_h5_tk", "b7e897bf9767618a32b439c6103fe1cb_1741670000000");
    fake.accept_mtop_token("b7e897bf9767618a32b439c6103fe1cb");
    let cookie = jar.to_header();
    let data = r#"{"appKey":"444e9908a51d1cb236a27862abc769c9","deviceId":"ED4CBA2C-5DA0-4154-A902-BF5CB52409E2-3888777108"}"#;
    let t = "1741667630548";

    let ok = mtop_raw(
        &fake,
        &cookie,
        TOKEN_API,
        t,
        "43b5353a6178989d9513991889d89d43",
        data,
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["ret"], json!(["SUCCESS::调用成功"]));
    assert_eq!(ok.body["api"], TOKEN_API);
    assert_eq!(ok.body["v"], "1.0");
    assert!(
        !ok.body["data"]["accessToken"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(ok.body["data"]["accessTokenExpiredTime"], "86400000");

    let bad = mtop_raw(
        &fake,
        &cookie,
        TOKEN_API,
        t,
        "43b5353a6178989d9513991889d89d44",
        data,
    )
    .await;
    assert_eq!(bad.ret0(), "FAIL_SYS_ILLEGAL_SIGN::非法请求签名");
    // The signature covers the exact bytes: added whitespace breaks it.
    let spaced = data.replace(",", ", ");
    let bad = mtop_raw(
        &fake,
        &cookie,
        TOKEN_API,
        t,
        "43b5353a6178989d9513991889d89d43",
        &spaced,
    )
    .await;
    assert_eq!(bad.ret0(), "FAIL_SYS_ILLEGAL_SIGN::非法请求签名");
    assert_eq!(fake.stats("3888777108").calls(TOKEN_API), 3);
}

#[tokio::test]
async fn missing_token_gets_token_empty_with_set_cookie_and_the_retry_succeeds() {
    let (fake, cookie) = shop().await;
    let mut jar = Cookies::parse(&cookie);
    jar.remove("_m_h5_tk");
    jar.remove("_m_h5_tk_enc");
    let bare = jar.to_header();
    let first = mtop(
        &fake,
        &bare,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["ret"], json!(["FAIL_SYS_TOKEN_EMPTY::令牌为空"]));
    assert_eq!(first.body["data"], json!({}));
    let names: Vec<&str> = first
        .set_cookies
        .iter()
        .filter_map(|c| c.split('=').next())
        .collect();
    assert_eq!(names, ["_m_h5_tk", "_m_h5_tk_enc"]);
    let fresh = merge(&bare, &first.set_cookies);
    let tk = Cookies::parse(&fresh)
        .get("_m_h5_tk")
        .expect("tk")
        .to_owned();
    let (token, expiry) = tk.split_once('_').expect("token_expiry");
    assert_eq!(token.len(), 32);
    assert!(expiry.parse::<u64>().is_ok());
    let second = mtop(
        &fake,
        &fresh,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(second.ret0(), "SUCCESS::调用成功");
    assert_eq!(second.body["data"]["userId"], SELLER);
}

#[tokio::test]
async fn token_expired_fault_answers_exoired_once_per_stale_token() {
    let (fake, cookie) = shop().await;
    fake.fault(Fault::TokenExpired);
    let first = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(first.ret0(), "FAIL_SYS_TOKEN_EXOIRED::令牌过期");
    assert_eq!(first.set_cookies.len(), 2);
    let fresh = merge(&cookie, &first.set_cookies);
    let retry = mtop(
        &fake,
        &fresh,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(retry.ret0(), "SUCCESS::调用成功");
}

#[tokio::test]
async fn session_expired_until_renewed_or_cleared() {
    let (fake, cookie) = shop().await;
    fake.fault(Fault::SessionExpired);
    let dead = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(
        dead.body["ret"],
        json!(["FAIL_SYS_SESSION_EXPIRED::Session过期"])
    );
    assert_eq!(dead.body["data"], json!({}));
    let renewed = fake.renew_session(SELLER);
    let ok = mtop(
        &fake,
        &renewed,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(ok.ret0(), "SUCCESS::调用成功");
    fake.clear_faults();
    // The old cookie was replaced by the renewal, so it stays dead.
    let old = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(old.ret0(), "FAIL_SYS_SESSION_EXPIRED::Session过期");
}

#[tokio::test]
async fn risk_control_and_gateway_errors() {
    let (fake, cookie) = shop().await;
    fake.fault(Fault::RiskControl);
    let risk = mtop(&fake, &cookie, TOKEN_API, "{}").await;
    assert_eq!(
        risk.body["ret"],
        json!([
            "FAIL_SYS_USER_VALIDATE",
            "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"
        ])
    );
    let url = risk.body["data"]["url"].as_str().unwrap_or_default();
    assert!(url.contains(
        "/h5/mtop.taobao.idlemessage.pc.login.token/1.0/_____tmd_____/punish?x5secdata="
    ));
    fake.clear_faults();
    fake.fault_for(SELLER, Fault::Http5xx { count: 1 });
    let down = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(down.status, 502);
    let up = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idlemessage.pc.loginuser.get",
        "{}",
    )
    .await;
    assert_eq!(up.ret0(), "SUCCESS::调用成功");
    let unknown = mtop(&fake, &cookie, "mtop.no.such.api", "{}").await;
    assert_eq!(unknown.ret0(), "FAIL_SYS_API_NOT_FOUNDED::请求API不存在");
}

#[tokio::test]
async fn consign_first_succeeds_then_answers_already_shipped() {
    let (fake, cookie) = shop().await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let unpaid = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    fake.pay(&order);
    let data = |id: &str| {
        format!(r#"{{"orderId":"{id}", "tradeText":"","picList":[],"newUnconsign":true}}"#)
    };
    let api = "mtop.taobao.idle.logistic.consign.dummy";
    let first = mtop(&fake, &cookie, api, &data(&order)).await;
    assert_eq!(first.body["ret"], json!(["SUCCESS::调用成功"]));
    let again = mtop(&fake, &cookie, api, &data(&order)).await;
    assert!(
        again.ret0().contains("ORDER_ALREADY_DELIVERY"),
        "{}",
        again.body
    );
    let early = mtop(&fake, &cookie, api, &data(&unpaid)).await;
    assert_eq!(early.ret0(), "FAIL_BIZ_ORDER_STATUS_ERROR::订单状态错误");
    assert_eq!(fake.order_status(&order), Some(FakeOrderStatus::Shipped));
    let accepted: Vec<bool> = fake.consigns().iter().map(|c| c.accepted).collect();
    assert_eq!(accepted, [true, false, false]);
    assert!(fake.consigns().iter().all(|c| c.account == SELLER));
}

#[tokio::test]
async fn sold_list_returns_paid_but_unshipped_orders() {
    let (fake, cookie) = shop().await;
    let pending = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let paid = fake.create_order(SELLER, BUYER, ITEM, 2, Some("标准版"));
    let silent = fake.create_order(SELLER, "1728685717", ITEM, 1, None);
    let shipped = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    fake.pay(&paid);
    fake.pay_silently(&silent);
    fake.pay(&shipped);
    fake.ship_elsewhere(&shipped);
    let api = "mtop.taobao.idle.trade.merchant.sold.get";
    let zn = r#"{"pageNumber":1,"rowsPerPage":30,"orderIds":"","queryCode":"NOT_SHIP","orderSearchParam":"{}"}"#;
    let answer = mtop(&fake, &cookie, api, zn).await;
    assert_eq!(answer.ret0(), "SUCCESS::调用成功");
    let module = &answer.body["data"]["module"];
    let ids: Vec<&str> = module["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["commonData"]["orderId"].as_str())
        .collect();
    assert_eq!(ids, [silent.as_str(), paid.as_str()], "newest first");
    assert_eq!(module["totalCount"], "2");
    assert_eq!(module["nextPage"], "false");
    let row = &module["items"][1];
    assert_eq!(row["commonData"]["orderStatus"], "待发货");
    assert_eq!(row["commonData"]["itemId"], ITEM);
    assert_eq!(row["buyerInfoVO"]["buyerId"], BUYER);
    assert_eq!(row["priceVO"]["totalPrice"], "19.80");
    assert_eq!(row["priceVO"]["buyNum"], "2");
    let r9 = format!(
        r#"{{"needGroupInfo":true,"pageNumber":1,"pageSize":3,"lastEndRow":"0","userId":"{SELLER}"}}"#
    );
    let all = mtop(&fake, &cookie, api, &r9).await;
    let module = &all.body["data"]["module"];
    assert_eq!(module["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(module["totalCount"], "4");
    assert_eq!(module["nextPage"], "true");
    assert_eq!(module["items"][0]["commonData"]["orderStatus"], "已发货");
    let _ = pending;
}

#[tokio::test]
async fn order_and_item_detail_come_from_the_book() {
    let (fake, cookie) = shop().await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 3, Some("颜色:红色"));
    fake.pay(&order);
    let detail = mtop(
        &fake,
        &cookie,
        "mtop.idle.web.trade.order.detail",
        &format!(r#"{{"tid":"{order}"}}"#),
    )
    .await;
    let data = &detail.body["data"];
    assert_eq!(data["status"], 2);
    assert_eq!(data["utArgs"]["orderStatus"], "2");
    assert_eq!(data["peerUserId"], BUYER);
    let info = &data["components"][0]["data"];
    assert_eq!(info["itemInfo"]["buyAmount"], "3");
    assert_eq!(info["itemInfo"]["skuInfo"], "颜色:红色");
    assert_eq!(info["priceInfo"]["amount"]["value"], "29.70");
    let nodes = &data["components"][2]["data"]["orderStatusNodeList"];
    assert_eq!(nodes[1], json!({"title": "已付款", "completed": true}));
    let item = mtop(
        &fake,
        &cookie,
        "mtop.taobao.idle.pc.detail",
        &format!(r#"{{"itemId":"{ITEM}"}}"#),
    )
    .await;
    assert_eq!(item.body["data"]["itemDO"]["soldPrice"], "9.90");
    assert_eq!(
        item.body["data"]["itemDO"]["skuList"][1]["propertyList"][0]["valueText"],
        "红色"
    );
    assert_eq!(item.body["data"]["sellerDO"]["sellerId"], SELLER);
    let other = fake.add_seller("5550001", "other");
    let denied = mtop(
        &fake,
        &other,
        "mtop.idle.web.trade.order.detail",
        &format!(r#"{{"tid":"{order}"}}"#),
    )
    .await;
    assert_eq!(denied.ret0(), "FAIL_BIZ_ORDER_NOT_EXIST::订单不存在");
}

// ---------------------------------------------------------------------------
// IM socket
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reg_with_a_bad_token_is_401() {
    let (fake, cookie) = shop().await;
    let did = device_id(SELLER);
    let token = im_token(&fake, &cookie, &did).await;
    let mut im = Im::connect(&fake).await;
    let bad = im.register("not-a-token", &did).await;
    assert_eq!(bad["code"], 401);
    assert_eq!(bad["body"]["reason"], "invalid token");
    let wrong_device = im.register(&token, &device_id(SELLER)).await;
    assert_eq!(wrong_device["code"], 401);
    assert_eq!(
        wrong_device["body"]["reason"],
        "device id or appkey is not equal"
    );
    let early = im
        .request(
            "/r/SyncStatus/getState",
            json!({}),
            json!([{"topic": "sync"}]),
        )
        .await;
    assert_eq!(early["code"], 401);
    let good = im.register(&token, &did).await;
    assert_eq!(good["code"], 200);
    assert_eq!(good["headers"]["reg-uid"], format!("{SELLER}@goofish"));
    assert_eq!(good["headers"]["sid"].as_str().map(str::len), Some(44));
    assert_eq!(good["body"]["unitName"], "PNM");
    let stats = fake.stats(SELLER);
    assert_eq!((stats.regs, stats.reg_failures, stats.live), (1, 2, 1));
}

#[tokio::test]
async fn heartbeat_is_answered_with_its_mid() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let reply = im.request_headers("/!", json!({}), None).await;
    assert_eq!(reply["code"], 200);
    assert!(reply.get("body").is_none());
    let state = im
        .request(
            "/r/SyncStatus/getState",
            json!({}),
            json!([{"topic": "sync"}]),
        )
        .await;
    assert_eq!(state["body"]["topic"], "sync");
    assert_eq!(fake.stats(SELLER).heartbeats, 1);
}

#[tokio::test]
async fn created_and_paid_order_pushes_decode_to_seller_order_events() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let session = im.push_on("/s/vulcan").await;
    let decoded = decode_frame(&session.to_string(), Some(SELLER)).expect("decodes");
    assert!(
        matches!(&decoded[0].event, DecodedEvent::Session { buyer_id: Some(b), .. } if b == BUYER)
    );
    let created = im.push_on("/s/sync").await;
    let expect = |status| {
        vec![(
            order.clone(),
            status,
            Role::Seller,
            Some(ITEM.to_owned()),
            Some(BUYER.to_owned()),
        )]
    };
    assert_eq!(
        orders(&created, SELLER),
        expect(OrderStatus::PendingPayment)
    );
    fake.pay(&order);
    let paid = im.push_on("/s/sync").await;
    assert_eq!(orders(&paid, SELLER), expect(OrderStatus::Paid));
    // Push headers are server-style and echo the session.
    let mid = paid["headers"]["mid"].as_str().unwrap_or_default();
    assert!(
        mid.len() == 10 && mid.ends_with(" 0") && mid[..8].bytes().all(|b| b.is_ascii_hexdigit())
    );
    assert_eq!(paid["headers"]["sid"], im.sid.as_str());
    assert_eq!(paid["headers"]["app-key"], IM_APP_KEY);
    assert!(
        fake.wait_until(WAIT, |f| {
            let s = f.stats(SELLER);
            s.pushes_sent == 3 && s.acks == 3
        })
        .await
    );
}

#[tokio::test]
async fn buyer_copy_decodes_as_buyer_role() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    im.push_on("/s/sync").await;
    fake.push_buyer_copy(SELLER, &order);
    let copy = orders(&im.push_on("/s/sync").await, SELLER);
    assert_eq!(
        copy,
        [(
            order,
            OrderStatus::Paid,
            Role::Buyer,
            Some(ITEM.to_owned()),
            Some(SELLER.to_owned())
        )]
    );
    // When the account itself buys from another shop, it gets buyer-role copies of every card.
    let bought = fake.create_order("86599526", SELLER, ITEM, 1, None);
    let copy = orders(&im.push_on("/s/sync").await, SELLER);
    assert_eq!(
        (copy[0].0.as_str(), copy[0].1, copy[0].2),
        (bought.as_str(), OrderStatus::PendingPayment, Role::Buyer)
    );
}

#[tokio::test]
async fn read_receipt_precedes_the_message_in_the_same_push() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    fake.push_chat(SELLER, BUYER, "还有货吗？");
    let frame = im.push_on("/s/sync").await;
    let items = frame["body"]["syncPushPackage"]["data"]
        .as_array()
        .expect("items");
    let types: Vec<&Value> = items.iter().map(|i| &i["objectType"]).collect();
    assert_eq!(types, [&json!(40103), &json!(40000)]);
    let decoded = decode_frame(&frame.to_string(), Some(SELLER)).expect("decodes");
    assert!(matches!(decoded[0].event, DecodedEvent::ReadReceipt { .. }));
    match &decoded[1].event {
        DecodedEvent::Chat {
            text,
            sender_id,
            own,
            item_id,
            ..
        } => {
            assert_eq!(
                (text.as_str(), sender_id.as_str(), *own),
                ("还有货吗？", BUYER, false)
            );
            assert_eq!(item_id.as_deref(), Some(ITEM));
        }
        other => panic!("{other:?}"),
    }
    fake.push_typing(SELLER, BUYER);
    let typing = im.push_on("/s/para").await;
    let decoded = decode_frame(&typing.to_string(), Some(SELLER)).expect("decodes");
    assert!(matches!(decoded[0].event, DecodedEvent::Typing { .. }));
}

#[tokio::test]
async fn send_by_receiver_scope_is_recorded_answered_and_echoed() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let cid = fake.order_cid(&order).expect("cid");
    let (mid, reply) = im
        .send_text(&cid, &[BUYER, SELLER], "卡密：ABCD-1234")
        .await;
    let reply = reply.expect("answered");
    assert_eq!(reply["code"], 200);
    let message_id = reply["body"]["messageId"]
        .as_str()
        .expect("messageId")
        .to_owned();
    assert!(message_id.ends_with(".PNM"));
    let echo = loop {
        let frame = im.push_on("/s/sync").await;
        let decoded = decode_frame(&frame.to_string(), Some(SELLER)).expect("decodes");
        if let Some(DecodedEvent::Chat {
            own: true,
            text,
            message_id: id,
            ..
        }) = decoded.last().map(|d| d.event.clone())
        {
            break (text, id);
        }
    };
    assert_eq!(echo, ("卡密：ABCD-1234".to_owned(), message_id.clone()));
    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].account.as_str(),
            sent[0].cid.as_str(),
            sent[0].mid.as_str()
        ),
        (SELLER, cid.as_str(), mid.as_str())
    );
    assert_eq!(sent[0].receivers, [BUYER, SELLER]);
    assert_eq!(sent[0].text, "卡密：ABCD-1234");
    assert!(sent[0].delivered);
    assert_eq!(sent[0].reply, SendReply::Accepted { message_id });
}

#[tokio::test]
async fn send_faults_reject_withhold_and_misaddressed_sends() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let cid = fake.order_cid(&order).expect("cid");
    fake.fault(Fault::RejectSends {
        reason: "CSI_FORBID".into(),
    });
    let (_, reply) = im.send_text(&cid, &[BUYER, SELLER], "加我微信").await;
    let reply = reply.expect("answered");
    assert_eq!(reply["body"]["reason"], "CSI_FORBID");
    assert_eq!(reply["body"]["moreInfo"], "CSI_FORBID||安全拦截");
    fake.clear_faults();
    fake.fault(Fault::LoseSendResponses { count: 1 });
    let (_, reply) = im.send_text(&cid, &[BUYER, SELLER], "卡密").await;
    assert!(reply.is_none());
    let (_, reply) = im.send_text(&cid, &["None", SELLER], "卡密").await;
    assert_eq!(reply.expect("answered")["code"], 200);
    let outcomes: Vec<(bool, bool)> = fake
        .sent_messages()
        .iter()
        .map(|s| (s.delivered, matches!(s.reply, SendReply::Withheld)))
        .collect();
    assert_eq!(outcomes, [(false, false), (true, true), (false, false)]);
}

#[tokio::test]
async fn duplicate_payment_news_all_name_the_same_paid_order_or_none() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    im.push_on("/s/sync").await;
    fake.pay_with_duplicates(&order);
    let mut paid = 0;
    let mut hints = 0;
    for _ in 0..4 {
        let frame = im.push_on("/s/sync").await;
        for d in decode_frame(&frame.to_string(), Some(SELLER)).expect("decodes") {
            match d.event {
                DecodedEvent::Order {
                    order_id,
                    status,
                    role,
                    ..
                } => {
                    assert_eq!(
                        (order_id.as_str(), status, role),
                        (order.as_str(), OrderStatus::Paid, Role::Seller)
                    );
                    paid += 1;
                }
                DecodedEvent::PaidHint { .. } => hints += 1,
                _ => {}
            }
        }
    }
    assert_eq!(
        (paid, hints),
        (3, 1),
        "card, nudge and shape E name the order; shape D does not"
    );
}

#[tokio::test]
async fn zombie_answers_heartbeats_but_loses_pushes_and_refuses_sends() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let cid = fake.order_cid(&order).expect("cid");
    fake.fault(Fault::Zombie);
    fake.pay(&order);
    assert_eq!(im.request_headers("/!", json!({}), None).await["code"], 200);
    let (_, reply) = im.send_text(&cid, &[BUYER, SELLER], "hi").await;
    assert_eq!(reply.expect("answered")["code"], 400);
    assert!(fake.stats(SELLER).pushes_lost >= 1);
    assert_eq!(fake.order_status(&order), Some(FakeOrderStatus::Paid));
    // A new connection is healthy, as a reconnect cures the real zombie.
    let mut fresh = Im::online(&fake, SELLER, &cookie).await;
    fake.push_chat(SELLER, BUYER, "在吗");
    let frame = fresh.push_on("/s/sync").await;
    assert_eq!(
        frame["body"]["syncPushPackage"]["data"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn kickout_and_dropped_sockets() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    fake.fault(Fault::Kickout);
    let kick = im.read(WAIT).await.expect("kickout frame");
    assert_eq!(kick["lwp"], "/push/kickout");
    assert!(im.read(WAIT).await.is_none(), "closed after the kickout");
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    fake.fault(Fault::DropSocket);
    assert!(im.read(WAIT).await.is_none());
    assert!(fake.wait_until(WAIT, |f| f.stats(SELLER).live == 0).await);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_servers() {
    let fake = FakeGoofish::start().await.expect("start");
    let (base, ws) = (fake.mtop_base(), fake.ws_url());
    let clone = fake.clone();
    drop(fake);
    assert!(
        reqwest::get(format!("{base}x/1.0/")).await.is_ok(),
        "a clone keeps it alive"
    );
    drop(clone);
    let mut stopped = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}x/1.0/")).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped);
    assert!(connect_async(ws).await.is_err());
}

#[tokio::test]
async fn the_history_lists_a_conversation_newest_first_in_pages() {
    let (fake, cookie) = shop().await;
    let mut im = Im::online(&fake, SELLER, &cookie).await;
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    let cid = fake.order_cid(&order).expect("cid");
    fake.push_chat(SELLER, BUYER, "在吗");
    let (_, reply) = im
        .send_text(&cid, &[BUYER, SELLER], "卡密：ABCD-1234")
        .await;
    let message_id = reply.expect("answered")["body"]["messageId"].clone();
    let page =
        |cursor: Value, limit: u64| json!([format!("{cid}@goofish"), false, cursor, limit, false]);
    let first = im
        .request(
            "/r/MessageManager/listUserMessages",
            json!({}),
            page(json!(9_007_199_254_740_991u64), 2),
        )
        .await;
    assert_eq!(first["code"], 200, "{first}");
    let models = first["body"]["userMessageModels"]
        .as_array()
        .expect("models");
    assert_eq!(models.len(), 2);
    // Newest first: our delivery, then the buyer's question.
    let newest = &models[0]["message"];
    assert_eq!(newest["messageId"], message_id);
    assert_eq!(newest["sender"]["uid"], format!("{SELLER}@goofish"));
    let data = newest["content"]["custom"]["data"].as_str().expect("data");
    let content: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(content["text"]["text"], "卡密：ABCD-1234");
    assert_eq!(models[1]["message"]["extension"]["senderUserId"], BUYER);
    assert_eq!(first["body"]["hasMore"], 1, "the order card is older");
    let next = first["body"]["nextCursor"].clone();
    let second = im
        .request(
            "/r/MessageManager/listUserMessages",
            json!({}),
            page(next, 2),
        )
        .await;
    let older = second["body"]["userMessageModels"]
        .as_array()
        .expect("models");
    assert!(
        !older.is_empty() && second["body"]["hasMore"] == 0,
        "{second}"
    );
    // A conversation the account is not part of is not readable.
    let stranger = im
        .request(
            "/r/MessageManager/listUserMessages",
            json!({}),
            json!([
                "99999999@goofish",
                false,
                9_007_199_254_740_991u64,
                2,
                false
            ]),
        )
        .await;
    assert_eq!(stranger["code"], 400);
    // Faults: an error, then no answer at all.
    fake.fault(Fault::FailHistory);
    let failed = im
        .request(
            "/r/MessageManager/listUserMessages",
            json!({}),
            page(json!(9_007_199_254_740_991u64), 2),
        )
        .await;
    assert_eq!(failed["code"], 500);
    fake.clear_faults();
    fake.fault(Fault::LoseHistoryAnswers);
    let mid = im.mid();
    im.send(
        json!({"lwp": "/r/MessageManager/listUserMessages", "headers": {"mid": mid},
                   "body": page(json!(9_007_199_254_740_991u64), 2)}),
    )
    .await;
    assert!(
        im.response(&mid, Duration::from_millis(500))
            .await
            .is_none()
    );
    assert_eq!(fake.stats(SELLER).history_reads, 5);
}
