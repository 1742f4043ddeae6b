//! Local fakes of the notification services, each following its documented contract
//! (/work/shared/reference/notify-channels.md): they check paths, keys, signatures, timestamps
//! and body shapes, keep the vendor's limits, and answer with the vendor's error codes.
//! Tests can also script the next answers (`push_script`) to force an error code.
//!
//! Canonicalization and verification are written here independently of the client code; only
//! the HMAC/SHA primitives (pinned by RFC/FIPS vectors in `channels::sign`) are shared.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use xianyu_shopd::alert::{Alert, EventKind};
use xianyu_shopd::channels::sign;
use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::config::{self, Config};
use xianyu_shopd::notify::Router;
use xianyu_shopd::notify::dispatcher::Dispatcher;
use xianyu_shopd::store::{OutboxRow, Store};

/// A config directory whose `channels:` is `channels` (YAML, indented two spaces) and whose
/// `state/` holds `secrets` as files.
pub fn config_dir(
    channels: &str,
    notify: &str,
    secrets: &[(&str, &str)],
) -> (TempDir, Arc<Config>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    for (name, value) in secrets {
        std::fs::write(dir.path().join("state").join(name), value).unwrap();
    }
    let yaml = format!(
        "accounts:\n  - id: main\n    name: 主店\n    cookies_env: TEST_COOKIES\npipeline:\n  - ingest: {{}}\n  - notify: {notify}\nchannels:\n{channels}"
    );
    std::fs::write(dir.path().join("pipeline.yaml"), yaml).unwrap();
    let cfg = config::load(dir.path()).unwrap_or_else(|e| panic!("config: {e}"));
    (dir, cfg)
}

/// A dispatcher on an in-memory store with a manual clock, over a config directory.
pub struct Rig {
    pub dir: TempDir,
    pub cfg: Arc<Config>,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub dispatcher: Dispatcher,
}

pub fn rig(channels: &str, notify: &str, secrets: &[(&str, &str)]) -> Rig {
    rig_at(
        Arc::new(ManualClock::new(now_ms())),
        channels,
        notify,
        secrets,
    )
}

pub fn rig_at(
    clock: Arc<ManualClock>,
    channels: &str,
    notify: &str,
    secrets: &[(&str, &str)],
) -> Rig {
    let (dir, cfg) = config_dir(channels, notify, secrets);
    let store = Store::in_memory(clock.clone()).unwrap();
    let dispatcher = Dispatcher::new(
        store.clone(),
        config::handle(cfg.clone()),
        Arc::new(Notify::new()),
    );
    Rig {
        dir,
        cfg,
        store,
        clock,
        dispatcher,
    }
}

impl Rig {
    pub fn raise(&self, alert: &Alert) {
        let drafts = Router::new(self.cfg.notify()).drafts(alert);
        self.store.enqueue_notifications(&drafts).unwrap();
    }

    pub async fn drain(&self) {
        self.dispatcher.drain_due().await.unwrap();
    }

    pub fn rows(&self) -> Vec<OutboxRow> {
        let mut rows = self.store.notifications(10_000).unwrap();
        rows.reverse();
        rows
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance_ms(d.as_millis() as u64);
    }
}

pub fn manual(order: &str) -> Alert {
    let mut a = Alert::sample(EventKind::ManualShip);
    a.order_id = Some(order.to_string());
    a.facts[0].1 = order.to_string();
    a
}

pub const WECOM: &str = "  wecom:\n    type: wecom\n    url_file: state/wecom-url\n";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What a contract answers: status, headers, JSON body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

pub fn ok(body: Value) -> Answer {
    Answer {
        status: 200,
        headers: Vec::new(),
        body,
    }
}

pub fn status(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

/// A vendor's behaviour. `handle` sees every request; accepted ones are recorded by the server.
pub trait Contract: Send + 'static {
    fn handle(&mut self, req: &Received) -> Answer;
}

/// A running fake: its address, every request, the accepted ones, and a script of forced
/// answers that take precedence over the contract.
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Mutex<FakeState>>,
}

struct FakeState {
    contract: Box<dyn Contract>,
    all: Vec<Received>,
    accepted: Vec<Received>,
    script: VecDeque<Answer>,
    delay: Duration,
}

impl Fake {
    pub async fn start(contract: impl Contract) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(FakeState {
            contract: Box::new(contract),
            all: Vec::new(),
            accepted: Vec::new(),
            script: VecDeque::new(),
            delay: Duration::ZERO,
        }));
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Fake { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Force the next answers, in order, before the contract is consulted again.
    pub fn push_script(&self, answer: Answer) {
        self.inner.lock().unwrap().script.push_back(answer);
    }

    pub fn set_delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.lock().unwrap().all.clone()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.inner.lock().unwrap().accepted.clone()
    }
}

async fn handle(
    state: Arc<Mutex<FakeState>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        method,
        path,
        query,
        headers,
        body,
        at: Instant::now(),
    };
    let delay = state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = {
        let mut s = state.lock().unwrap();
        s.all.push(received.clone());
        let answer = match s.script.pop_front() {
            Some(a) => a,
            None => s.contract.handle(&received),
        };
        if (200..300).contains(&answer.status) && is_success(&answer.body) {
            s.accepted.push(received);
        }
        answer
    };
    let mut resp = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json; charset=utf-8");
    for (k, v) in &answer.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from(answer.body.to_string())))
        .unwrap())
}

/// Success as each vendor spells it.
fn is_success(body: &Value) -> bool {
    body["errcode"] == 0
        || body["code"] == 0
        || body["code"] == 200
        || body["ok"] == true
        || body["Code"] == "OK"
        || body["StatusCode"] == 0
        || body["accepted"] == true
        || body["Response"]["SendStatusSet"]
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x["Code"] == "Ok"))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Query pairs decoded the way a strict server does: `+` is a space, `%XX` a byte.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 unreserved characters stay, everything else is `%XX` (Aliyun's rule).
fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_map(q: &str) -> HashMap<String, String> {
    form_decode(q).into_iter().collect()
}

/// Constant-time comparison, as the real services do.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Sliding window of request times (ms), on the real clock or a test's manual clock.
#[derive(Default)]
struct Window {
    hits: VecDeque<u64>,
    clock: Option<Arc<ManualClock>>,
}

impl Window {
    fn now(&self) -> u64 {
        use xianyu_shopd::clock::Clock;
        self.clock.as_ref().map_or_else(now_ms, |c| c.now_ms())
    }

    fn hit(&mut self, span: Duration, max: usize) -> bool {
        let now = self.now();
        let span = span.as_millis() as u64;
        while self
            .hits
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= span)
        {
            self.hits.pop_front();
        }
        if self.hits.len() >= max {
            return false;
        }
        self.hits.push_back(now);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// WeCom group bot

pub struct Wecom {
    pub key: String,
    window: Window,
}

impl Wecom {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.into(),
            window: Window::default(),
        }
    }

    /// The 20-a-minute window follows `clock` (the store's manual clock in a test).
    pub fn with_clock(key: &str, clock: Arc<ManualClock>) -> Self {
        Self {
            key: key.into(),
            window: Window {
                hits: VecDeque::new(),
                clock: Some(clock),
            },
        }
    }
}

fn wecom_err(code: i64, msg: &str) -> Answer {
    ok(
        json!({"errcode": code, "errmsg": format!("{msg}, hint: [1700000000_1_abc], from ip: 203.0.113.9, more info at https://open.work.weixin.qq.com/devtool/query?e={code}")}),
    )
}

impl Contract for Wecom {
    fn handle(&mut self, r: &Received) -> Answer {
        if r.method != "POST" || r.path != "/cgi-bin/webhook/send" {
            return status(404, json!({}));
        }
        if query_map(&r.query).get("key") != Some(&self.key) {
            return wecom_err(93000, "invalid webhook url");
        }
        let body = r.json();
        let kind = body["msgtype"].as_str().unwrap_or("");
        if ![
            "text",
            "markdown",
            "markdown_v2",
            "image",
            "news",
            "file",
            "template_card",
        ]
        .contains(&kind)
        {
            return wecom_err(40008, "invalid message type");
        }
        let content = body[kind]["content"].as_str().unwrap_or("");
        if content.is_empty() {
            return wecom_err(44004, "empty content");
        }
        let max = if kind == "text" { 2048 } else { 4096 };
        if content.len() > max {
            return wecom_err(
                40058,
                &format!("{kind}.content exceed max length {max}. invalid Request Parameter"),
            );
        }
        if !self.window.hit(Duration::from_secs(60), 20) {
            return wecom_err(45009, "api freq out of limit");
        }
        ok(json!({"errcode": 0, "errmsg": "ok"}))
    }
}

// ---------------------------------------------------------------------------------------------
// DingTalk custom robot

pub struct Dingtalk {
    pub token: String,
    pub secret: Option<String>,
    pub keyword: Option<String>,
    window: Window,
    muted_until: Option<Instant>,
    pub uuids: HashSet<String>,
}

impl Dingtalk {
    pub fn new(token: &str, secret: Option<&str>, keyword: Option<&str>) -> Self {
        Self {
            token: token.into(),
            secret: secret.map(Into::into),
            keyword: keyword.map(Into::into),
            window: Window::default(),
            muted_until: None,
            uuids: HashSet::new(),
        }
    }

    fn check_sign(&self, q: &HashMap<String, String>) -> Result<(), Answer> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let ts: u64 = q
            .get("timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ding_err(310000, "invalid timestamp"))?;
        if now_ms().abs_diff(ts) > 3_600_000 {
            return Err(ding_err(310000, "invalid timestamp"));
        }
        let want = sign::base64(&sign::hmac_sha256(
            secret.as_bytes(),
            format!("{ts}\n{secret}").as_bytes(),
        ));
        // Strictly decoded: an unencoded `+` became a space and fails here, as on DingTalk.
        match q.get("sign") {
            Some(got) if same(got, &want) => Ok(()),
            _ => Err(ding_err(310000, "sign not match")),
        }
    }
}

fn ding_err(code: i64, msg: &str) -> Answer {
    ok(json!({"errcode": code, "errmsg": msg}))
}

impl Contract for Dingtalk {
    fn handle(&mut self, r: &Received) -> Answer {
        if r.path != "/robot/send" {
            return status(404, json!({}));
        }
        let q = query_map(&r.query);
        if q.get("access_token") != Some(&self.token) {
            return ding_err(300005, "token is not exist");
        }
        if let Err(a) = self.check_sign(&q) {
            return a;
        }
        let body = r.json();
        let content = body["text"]["content"]
            .as_str()
            .or(body["markdown"]["text"].as_str())
            .unwrap_or("");
        if self
            .keyword
            .as_ref()
            .is_some_and(|k| !content.contains(k.as_str()))
        {
            return ding_err(310000, "keywords not in content");
        }
        if self.muted_until.is_some_and(|t| Instant::now() < t) {
            return ding_err(410100, "发送速度太快而限流");
        }
        if !self.window.hit(Duration::from_secs(60), 20) {
            self.muted_until = Some(Instant::now() + Duration::from_secs(600));
            return ok(
                json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute", "status": 1111, "wait": 5}),
            );
        }
        if let Some(u) = body["msgUuid"].as_str()
            && !self.uuids.insert(u.to_string())
        {
            return ding_err(0, "ok"); // a duplicate is dropped silently
        }
        ding_err(0, "ok")
    }
}

// ---------------------------------------------------------------------------------------------
// Feishu custom bot

pub struct Feishu {
    pub token: String,
    pub secret: Option<String>,
    pub keyword: Option<String>,
    per_second: Window,
    per_minute: Window,
}

impl Feishu {
    pub fn new(token: &str, secret: Option<&str>, keyword: Option<&str>) -> Self {
        Self {
            token: token.into(),
            secret: secret.map(Into::into),
            keyword: keyword.map(Into::into),
            per_second: Window::default(),
            per_minute: Window::default(),
        }
    }
}

fn feishu_err(code: i64, msg: &str) -> Answer {
    ok(json!({"code": code, "data": {}, "msg": msg}))
}

impl Contract for Feishu {
    fn handle(&mut self, r: &Received) -> Answer {
        if r.path != format!("/open-apis/bot/v2/hook/{}", self.token) {
            return status(
                404,
                json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}),
            );
        }
        if r.body.len() > 20 * 1024 {
            return status(400, json!({"code": 9499, "msg": "Bad Request", "data": {}}));
        }
        let body = r.json();
        if body.is_null() || body["msg_type"].as_str().is_none() {
            return status(400, json!({"code": 9499, "msg": "Bad Request", "data": {}}));
        }
        if let Some(secret) = &self.secret {
            let ts: u64 = body["timestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let want = sign::base64(&sign::hmac_sha256(
                format!("{ts}\n{secret}").as_bytes(),
                b"",
            ));
            let fresh = (now_ms() / 1000).abs_diff(ts) <= 3600;
            if !fresh || !same(body["sign"].as_str().unwrap_or(""), &want) {
                return feishu_err(
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            }
        }
        if self
            .keyword
            .as_ref()
            .is_some_and(|k| !body.to_string().contains(k.as_str()))
        {
            return feishu_err(19024, "Key Words Not Found");
        }
        if !self.per_second.hit(Duration::from_secs(1), 5)
            || !self.per_minute.hit(Duration::from_secs(60), 100)
        {
            return feishu_err(11232, "frequency limited");
        }
        ok(
            json!({"code": 0, "data": {}, "msg": "success", "StatusCode": 0, "StatusMessage": "success"}),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Bark

pub struct Bark {
    pub device_key: String,
}

impl Contract for Bark {
    fn handle(&mut self, r: &Received) -> Answer {
        let ts = now_ms() / 1000;
        if r.path != "/push"
            || !r
                .header("content-type")
                .unwrap_or("")
                .starts_with("application/json")
        {
            return status(
                400,
                json!({"code": 400, "message": "request bind failed", "timestamp": ts}),
            );
        }
        let body = r.json();
        match body["device_key"].as_str() {
            None | Some("") => status(
                400,
                json!({"code": 400, "message": "device key is empty", "timestamp": ts}),
            ),
            Some(k) if k != self.device_key => status(
                400,
                json!({"code": 400, "message": format!("failed to get device token: failed to get [{k}] device token from database"), "timestamp": ts}),
            ),
            Some(_) if body.to_string().len() > 4096 => status(
                500,
                json!({"code": 500, "message": "push failed: PayloadTooLarge", "timestamp": ts}),
            ),
            Some(_) => ok(json!({"code": 200, "message": "success", "timestamp": ts})),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Telegram

pub struct Telegram {
    pub token: String,
    pub chat_id: i64,
}

impl Contract for Telegram {
    fn handle(&mut self, r: &Received) -> Answer {
        if r.path != format!("/bot{}/sendMessage", self.token) {
            return status(
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        let body = r.json();
        if body["chat_id"].as_i64() != Some(self.chat_id) {
            return status(
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        let n = body["text"].as_str().map_or(0, |t| t.chars().count());
        if n == 0 || n > 4096 {
            return status(
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"}),
            );
        }
        ok(json!({"ok": true, "result": {"message_id": 123, "text": body["text"]}}))
    }
}

// ---------------------------------------------------------------------------------------------
// ServerChan

pub struct Serverchan {
    pub key: String,
}

impl Contract for Serverchan {
    fn handle(&mut self, r: &Received) -> Answer {
        if r.path != format!("/{}.send", self.key) {
            return status(
                400,
                json!({"message": "[AUTH]错误的Key", "code": 40001, "info": "错误的Key", "args": [null], "scode": 461}),
            );
        }
        let body = r.json();
        let title = body["title"].as_str().unwrap_or("");
        if title.is_empty() || title.chars().count() > 32 {
            return status(400, json!({"message": "title", "code": 40002}));
        }
        ok(
            json!({"code": 0, "message": "", "data": {"pushid": "1", "readkey": "SCTreadkeysecret", "error": "SUCCESS", "errno": 0}}),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// PushPlus

pub struct Pushplus {
    pub token: String,
}

impl Contract for Pushplus {
    fn handle(&mut self, r: &Received) -> Answer {
        let body = r.json();
        if r.path != "/send" {
            return status(404, json!({}));
        }
        if body["token"].as_str() != Some(self.token.as_str()) {
            return ok(json!({"code": 907, "msg": "token不存在", "data": null}));
        }
        let title = body["title"].as_str().unwrap_or("");
        let content = body["content"].as_str().unwrap_or("");
        if content.is_empty() || title.chars().count() > 100 {
            return ok(json!({"code": 905, "msg": "参数错误", "data": null}));
        }
        ok(json!({"code": 200, "msg": "请求成功", "data": "serial-1"}))
    }
}

// ---------------------------------------------------------------------------------------------
// Generic webhook, Standard Webhooks

pub struct Webhook {
    /// Raw signing key (the base64 inside `whsec_…`), or `None` for unsigned.
    pub key: Option<Vec<u8>>,
    /// Ids already processed: a receiver drops redeliveries (idempotency).
    pub seen: HashSet<String>,
    pub duplicates: usize,
}

impl Webhook {
    pub fn new(key: Option<Vec<u8>>) -> Self {
        Self {
            key,
            seen: HashSet::new(),
            duplicates: 0,
        }
    }
}

impl Contract for Webhook {
    fn handle(&mut self, r: &Received) -> Answer {
        let id = r.header("webhook-id").unwrap_or("").to_string();
        let ts: u64 = r
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if id.is_empty() || (now_ms() / 1000).abs_diff(ts) > 300 {
            return status(400, json!({"error": "missing id or stale timestamp"}));
        }
        if let Some(key) = &self.key {
            let mut msg = format!("{id}.{ts}.").into_bytes();
            msg.extend_from_slice(&r.body);
            let want = format!("v1,{}", sign::base64(&sign::hmac_sha256(key, &msg)));
            let got = r.header("webhook-signature").unwrap_or("");
            if !got.split(' ').any(|s| same(s, &want)) {
                return status(401, json!({"error": "bad signature"}));
            }
        }
        let body = r.json();
        if body["id"].as_str() != Some(id.as_str())
            || body["title"].as_str().is_none()
            || body["message"].as_str().is_none()
        {
            return status(422, json!({"error": "body shape"}));
        }
        if !self.seen.insert(id) {
            self.duplicates += 1;
        }
        ok(json!({"accepted": true}))
    }
}

// ---------------------------------------------------------------------------------------------
// Aliyun SendSms (RPC signature v1)

pub struct Aliyun {
    pub key_id: String,
    pub secret: String,
    pub nonces: HashSet<String>,
    /// Per (number, template) successful sends; `daily_limit` of them → BUSINESS_LIMIT_CONTROL.
    pub counts: HashMap<(String, String), u32>,
    pub daily_limit: u32,
    pub sent: Vec<HashMap<String, String>>,
}

impl Aliyun {
    pub fn new(key_id: &str, secret: &str) -> Self {
        Self {
            key_id: key_id.into(),
            secret: secret.into(),
            nonces: HashSet::new(),
            counts: HashMap::new(),
            daily_limit: 50,
            sent: Vec::new(),
        }
    }
}

fn aliyun(status_code: u16, code: &str, message: &str) -> Answer {
    status(
        status_code,
        json!({"RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990", "Code": code, "Message": message}),
    )
}

impl Contract for Aliyun {
    fn handle(&mut self, r: &Received) -> Answer {
        let raw = if r.method == "POST" {
            String::from_utf8_lossy(&r.body).into_owned()
        } else {
            r.query.clone()
        };
        let mut params: Vec<(String, String)> = form_decode(&raw);
        let Some(pos) = params.iter().position(|(k, _)| k == "Signature") else {
            return aliyun(
                400,
                "MissingSignature",
                "Signature is mandatory for this action.",
            );
        };
        let (_, got) = params.remove(pos);
        params.sort();
        let p: HashMap<String, String> = params.iter().cloned().collect();
        if p.get("AccessKeyId") != Some(&self.key_id) {
            return aliyun(
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            );
        }
        let canonical = params
            .iter()
            .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
            .collect::<Vec<_>>()
            .join("&");
        let to_sign = format!("{}&{}&{}", r.method, rfc3986("/"), rfc3986(&canonical));
        let want = sign::base64(&sign::hmac_sha1(
            format!("{}&", self.secret).as_bytes(),
            to_sign.as_bytes(),
        ));
        if !same(&got, &want) {
            return aliyun(
                400,
                "SignatureDoesNotMatch",
                &format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{to_sign}"
                ),
            );
        }
        let ts = p
            .get("Timestamp")
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let fresh = ts.is_some_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .unwrap_or_else(|e| e.duration())
                < Duration::from_secs(900)
        });
        if !fresh {
            return aliyun(
                400,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            );
        }
        if !self
            .nonces
            .insert(p.get("SignatureNonce").cloned().unwrap_or_default())
        {
            return aliyun(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            );
        }
        if p.get("Action").map(String::as_str) != Some("SendSms")
            || p.get("Version").map(String::as_str) != Some("2017-05-25")
        {
            return aliyun(400, "InvalidAction", "bad action or version");
        }
        let phones = p.get("PhoneNumbers").cloned().unwrap_or_default();
        if phones.is_empty()
            || !phones.split(',').all(|n| {
                n.len() == 11 && n.starts_with('1') && n.chars().all(|c| c.is_ascii_digit())
            })
        {
            return aliyun(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号");
        }
        let tp: Value = serde_json::from_str(p.get("TemplateParam").map_or("", String::as_str))
            .unwrap_or(Value::Null);
        let strings = tp.as_object().is_some_and(|o| {
            o.values()
                .all(|v| v.as_str().is_some_and(|s| s.chars().count() <= 35))
        });
        if !strings {
            return aliyun(
                200,
                "isv.INVALID_JSON_PARAM",
                "JSON参数不合法，只接受字符串值",
            );
        }
        let template = p.get("TemplateCode").cloned().unwrap_or_default();
        for phone in phones.split(',') {
            let c = self
                .counts
                .entry((phone.to_string(), template.clone()))
                .or_default();
            if *c >= self.daily_limit {
                return aliyun(200, "isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:50");
            }
        }
        for phone in phones.split(',') {
            *self
                .counts
                .entry((phone.to_string(), template.clone()))
                .or_default() += 1;
        }
        self.sent.push(p);
        status(
            200,
            json!({"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990"}),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Tencent Cloud SendSms (TC3-HMAC-SHA256)

pub struct Tencent {
    pub secret_id: String,
    pub secret_key: String,
}

fn tencent_err(code: &str, msg: &str) -> Answer {
    ok(json!({"Response": {"Error": {"Code": code, "Message": msg}, "RequestId": "req-1"}}))
}

impl Contract for Tencent {
    fn handle(&mut self, r: &Received) -> Answer {
        let h = |n: &str| r.header(n).unwrap_or("").to_string();
        let ts: u64 = h("x-tc-timestamp").parse().unwrap_or(0);
        if (now_ms() / 1000).abs_diff(ts) > 300 {
            return tencent_err("AuthFailure.SignatureExpire", "签名过期");
        }
        if h("x-tc-action") != "SendSms"
            || h("x-tc-version") != "2021-01-11"
            || h("x-tc-region").is_empty()
        {
            return tencent_err("InvalidParameter", "bad action, version or region");
        }
        let date = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(ts))
            .to_string()[..10]
            .to_string();
        let canonical = format!(
            "POST\n/\n\ncontent-type:{}\nhost:{}\nx-tc-action:{}\n\ncontent-type;host;x-tc-action\n{}",
            h("content-type").to_lowercase(),
            h("host").to_lowercase(),
            h("x-tc-action").to_lowercase(),
            sign::sha256_hex(&r.body)
        );
        let scope = format!("{date}/sms/tc3_request");
        let to_sign = format!(
            "TC3-HMAC-SHA256\n{ts}\n{scope}\n{}",
            sign::sha256_hex(canonical.as_bytes())
        );
        let k = sign::hmac_sha256(
            format!("TC3{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k = sign::hmac_sha256(&k, b"sms");
        let k = sign::hmac_sha256(&k, b"tc3_request");
        let sig = hex::encode(sign::hmac_sha256(&k, to_sign.as_bytes()));
        let want = format!(
            "TC3-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host;x-tc-action, Signature={sig}",
            self.secret_id
        );
        if !same(&h("authorization"), &want) {
            return tencent_err("AuthFailure.SignatureFailure", "请求签名验证失败");
        }
        let body = r.json();
        let Some(phones) = body["PhoneNumberSet"].as_array() else {
            return tencent_err("MissingParameter", "PhoneNumberSet");
        };
        if body["TemplateParamSet"].as_array().is_none() || body["SmsSdkAppId"].as_str().is_none() {
            return tencent_err("MissingParameter", "TemplateParamSet/SmsSdkAppId");
        }
        let set: Vec<Value> = phones
            .iter()
            .map(|p| {
                let p = p.as_str().unwrap_or("");
                let code = if p.starts_with("+86") && p.len() == 14 { "Ok" } else { "InvalidParameterValue.IncorrectPhoneNumber" };
                json!({"SerialNo": "2640:1", "PhoneNumber": p, "Fee": 1, "SessionContext": "", "Code": code, "Message": "send success", "IsoCode": "CN"})
            })
            .collect();
        ok(json!({"Response": {"SendStatusSet": set, "RequestId": "req-1"}}))
    }
}
