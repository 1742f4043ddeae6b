//! Every HTTP channel against a local fake of its service (tests/support/notify_fakes.rs): the
//! fake checks the documented contract (path, key, signature, timestamp, body shape, limits)
//! and answers with the documented codes; the channel must classify each answer by its body
//! code as accepted, retryable (with the right wait), permanent or quota.
//!
//! Channels are configured through a real `pipeline.yaml` with secrets in files under `state/`
//! (and one in the environment), so the config keys and the secret handling are exercised too.

#[path = "support/notify_fakes.rs"]
mod notify_fakes;

use notify_fakes::*;
use serde_json::json;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::channels::{Notification, SendResult, build_channel};
use xianyu_shopd::config::{self, Config};

fn sample(cfg: &Config, kind: EventKind) -> Notification {
    let now = now_ms();
    Notification::sample(kind, cfg.notify(), now, now)
}

async fn send_as(cfg: &Config, channel: &str, n: &Notification) -> SendResult {
    let http = reqwest::Client::new();
    let ch =
        build_channel(&cfg.channels[channel], &http).unwrap_or_else(|e| panic!("{channel}: {e}"));
    ch.send(n).await
}

async fn send(cfg: &Config, channel: &str) -> SendResult {
    send_as(cfg, channel, &sample(cfg, EventKind::ManualShip)).await
}

fn assert_permanent(r: &SendResult, needle: &str) {
    match r {
        SendResult::Permanent { error } => assert!(error.contains(needle), "{error}"),
        other => panic!("expected permanent with {needle}, got {other:?}"),
    }
}

fn assert_retry(r: &SendResult, wait_ms: Option<u64>) {
    match r {
        SendResult::Retryable { retry_after_ms, .. } => assert_eq!(*retry_after_ms, wait_ms),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn wecom_text_with_mentions_errcodes_and_byte_limit() {
    let fake = Fake::start(Wecom::new("KEY-1")).await;
    let url = fake.url("/cgi-bin/webhook/send?key=KEY-1");
    let channels = "  wecom:\n    type: wecom\n    url_file: state/wecom-url\n    mention_mobiles: [\"13800001111\"]\n  wecom-bad:\n    type: wecom\n    url_file: state/wecom-bad\n";
    let bad = fake.url("/cgi-bin/webhook/send?key=WRONG");
    let (_d, cfg) = config_dir(
        channels,
        "{ channels: [wecom] }",
        &[("wecom-url", &url), ("wecom-bad", &bad)],
    );
    assert_eq!(
        cfg.channels["wecom"].max_per_minute,
        Some(20),
        "WeCom defaults to 20/min"
    );

    assert_eq!(send(&cfg, "wecom").await, SendResult::Accepted);
    let body = fake.accepted()[0].json();
    assert_eq!(body["msgtype"], "text");
    let content = body["text"]["content"].as_str().unwrap();
    assert!(content.starts_with("【测试】【待人工发货】"), "{content}");
    for needle in [
        "主店 (main)",
        "3000000000000000001",
        "专业版",
        "¥19.80",
        "买家昵称",
        "发货截止",
    ] {
        assert!(content.contains(needle), "{needle} missing in {content}");
    }
    assert_eq!(
        body["text"]["mentioned_mobile_list"],
        json!(["13800001111"])
    );

    let r = send(&cfg, "wecom-bad").await;
    assert_permanent(&r, "errcode 93000");
    assert!(
        !format!("{r:?}").contains("203.0.113.9"),
        "the echoed caller IP is cut: {r:?}"
    );

    fake.push_script(ok(
        json!({"errcode": 45009, "errmsg": "api freq out of limit"}),
    ));
    assert_retry(&send(&cfg, "wecom").await, Some(65_000));

    // 5000 Chinese characters = 15000 bytes: cut at a character boundary to fit 2048 bytes,
    // which the fake enforces with 40058.
    let mut long = sample(&cfg, EventKind::ManualShip);
    long.text = "超长内容".repeat(1250);
    assert_eq!(send_as(&cfg, "wecom", &long).await, SendResult::Accepted);
    let last = fake.accepted().last().unwrap().json();
    let content = last["text"]["content"].as_str().unwrap();
    assert!(
        content.len() <= 2048 && content.ends_with("（内容过长已截断）"),
        "{} bytes",
        content.len()
    );
}

#[tokio::test]
async fn dingtalk_signature_keyword_and_throttle() {
    let secret = "SEC0123456789abcdef0123456789abcdef";
    let fake = Fake::start(Dingtalk::new("TOKEN-1", Some(secret), Some("店铺提醒"))).await;
    let url = fake.url("/robot/send?access_token=TOKEN-1");
    let channels = "  ding:\n    type: dingtalk\n    url_file: state/ding-url\n    secret_file: state/ding-secret\n    keyword: 店铺提醒\n    at_mobiles: [\"13800000000\"]\n  ding-wrong:\n    type: dingtalk\n    url_file: state/ding-url\n    secret_file: state/ding-wrong\n";
    let (_d, cfg) = config_dir(
        channels,
        "{ channels: [ding] }",
        &[
            ("ding-url", &url),
            ("ding-secret", secret),
            ("ding-wrong", "SECwrong"),
        ],
    );
    // Several sends so that signatures containing `+`, `/` and `=` occur: each must verify.
    for _ in 0..5 {
        assert_eq!(send(&cfg, "ding").await, SendResult::Accepted);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let body = fake.accepted()[0].json();
    let content = body["text"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("店铺提醒 "),
        "keyword prepended: {content}"
    );
    assert!(content.ends_with("@13800000000"), "{content}");
    assert_eq!(body["at"]["atMobiles"], json!(["13800000000"]));
    assert!(
        body["msgUuid"]
            .as_str()
            .unwrap()
            .starts_with("xianyu-shopd-")
    );

    assert_permanent(
        &send(&cfg, "ding-wrong").await,
        "errcode 310000: sign not match",
    );

    fake.push_script(ok(
        json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}),
    ));
    match send(&cfg, "ding").await {
        SendResult::Quota { retry_after_ms, .. } => assert_eq!(retry_after_ms, Some(600_000)),
        other => panic!("expected quota, got {other:?}"),
    }
}

/// The fake decodes strictly, so the bug other bots have (Base64 not URL-encoded: `+` turns
/// into a space) is caught.
#[tokio::test]
async fn dingtalk_fake_rejects_an_unencoded_signature() {
    let secret = "SECplus";
    let fake = Fake::start(Dingtalk::new("T", Some(secret), None)).await;
    let http = reqwest::Client::new();
    let mut ts = now_ms();
    let raw = loop {
        let b64 = xianyu_shopd::channels::sign::base64(&xianyu_shopd::channels::sign::hmac_sha256(
            secret.as_bytes(),
            format!("{ts}\n{secret}").as_bytes(),
        ));
        if b64.contains('+') {
            break b64;
        }
        ts += 1;
    };
    let url = fake.url(&format!(
        "/robot/send?access_token=T&timestamp={ts}&sign={raw}"
    ));
    let body: serde_json::Value = http
        .post(url)
        .json(&json!({"msgtype": "text", "text": {"content": "x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["errcode"], 310000);
}

#[tokio::test]
async fn feishu_body_signature_and_throttle_hints() {
    let secret = "feishu-test-secret";
    let fake = Fake::start(Feishu::new("HOOK", Some(secret), None)).await;
    let url = fake.url("/open-apis/bot/v2/hook/HOOK");
    let channels = "  feishu:\n    type: feishu\n    url_file: state/f-url\n    secret_file: state/f-secret\n    at_all: true\n  feishu-wrong:\n    type: feishu\n    url_file: state/f-url\n    secret_file: state/f-wrong\n";
    let (_d, cfg) = config_dir(
        channels,
        "{ channels: [feishu] }",
        &[("f-url", &url), ("f-secret", secret), ("f-wrong", "nope")],
    );
    assert_eq!(send(&cfg, "feishu").await, SendResult::Accepted);
    let body = fake.accepted()[0].json();
    assert_eq!(body["msg_type"], "text");
    assert!(
        body["content"]["text"]
            .as_str()
            .unwrap()
            .ends_with("<at user_id=\"all\">所有人</at>")
    );

    assert_permanent(&send(&cfg, "feishu-wrong").await, "code 19021");

    fake.push_script(ok(json!({"code": 11232, "msg": "frequency limited"})));
    assert_retry(&send(&cfg, "feishu").await, Some(60_000));
    fake.push_script(Answer {
        status: 429,
        headers: vec![("x-ogw-ratelimit-reset", "7".into())],
        body: json!({"code": 99991400, "msg": "request trigger frequency limit"}),
    });
    assert_retry(&send(&cfg, "feishu").await, Some(7_000));
}

#[tokio::test]
async fn bark_push_levels_and_unknown_key() {
    let fake = Fake::start(Bark {
        device_key: "DEVKEY123".into(),
    })
    .await;
    let channels = format!(
        "  bark:\n    type: bark\n    server: {}\n    device_key_file: state/bark\n  bark-bad:\n    type: bark\n    server: {}\n    device_key_file: state/bark-bad\n",
        fake.url(""),
        fake.url("")
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [bark] }",
        &[("bark", "DEVKEY123"), ("bark-bad", "OTHERKEY9")],
    );
    assert_eq!(send(&cfg, "bark").await, SendResult::Accepted);
    let body = fake.accepted()[0].json();
    assert_eq!(body["level"], "timeSensitive", "manual_ship is urgent");
    assert_eq!(body["group"], "xianyu");
    assert!(body["title"].as_str().unwrap().contains("待人工发货"));

    let low = sample(&cfg, EventKind::LowStock);
    assert_eq!(send_as(&cfg, "bark", &low).await, SendResult::Accepted);
    assert_eq!(fake.accepted()[1].json()["level"], "active");

    let r = send(&cfg, "bark-bad").await;
    assert_permanent(&r, "code 400");
    assert!(
        !format!("{r:?}").contains("OTHERKEY9"),
        "the device key is not echoed: {r:?}"
    );
}

#[tokio::test]
async fn telegram_send_message_and_flood_control() {
    let fake = Fake::start(Telegram {
        token: "123:ABC".into(),
        chat_id: -1001234567890,
    })
    .await;
    let channels = format!(
        "  tg:\n    type: telegram\n    api_base: {}\n    token_file: state/tg\n    chat_id: -1001234567890\n  tg-bad:\n    type: telegram\n    api_base: {}\n    token_file: state/tg-bad\n    chat_id: -1001234567890\n",
        fake.url(""),
        fake.url("")
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [tg] }",
        &[("tg", "123:ABC"), ("tg-bad", "999:XYZ")],
    );
    assert_eq!(send(&cfg, "tg").await, SendResult::Accepted);
    assert_eq!(
        fake.accepted()[0].json()["chat_id"],
        json!(-1001234567890i64)
    );
    assert_permanent(&send(&cfg, "tg-bad").await, "error 401");
    fake.push_script(status(
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5", "parameters": {"retry_after": 5}}),
    ));
    assert_retry(&send(&cfg, "tg").await, Some(5_000));
}

#[tokio::test]
async fn serverchan_and_pushplus_body_codes() {
    let sc = Fake::start(Serverchan {
        key: "SCTKEY1".into(),
    })
    .await;
    let pp = Fake::start(Pushplus {
        token: "PPTOKEN1".into(),
    })
    .await;
    let channels = format!(
        "  sc:\n    type: serverchan\n    sendkey_file: state/sc\n    api_base: {sc}\n  sc-bad:\n    type: serverchan\n    sendkey_file: state/sc-bad\n    api_base: {sc}\n  pp:\n    type: pushplus\n    url: {pp}\n    token_file: state/pp\n  pp-bad:\n    type: pushplus\n    url: {pp}\n    token_file: state/pp-bad\n",
        sc = sc.url(""),
        pp = pp.url("/send"),
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [sc] }",
        &[
            ("sc", "SCTKEY1"),
            ("sc-bad", "SCTWRONG"),
            ("pp", "PPTOKEN1"),
            ("pp-bad", "PPWRONG"),
        ],
    );
    assert_eq!(send(&cfg, "sc").await, SendResult::Accepted);
    assert!(
        sc.accepted()[0].json()["title"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 32
    );
    let r = send(&cfg, "sc-bad").await;
    assert_permanent(&r, "code 40001");

    assert_eq!(send(&cfg, "pp").await, SendResult::Accepted);
    assert_eq!(pp.accepted()[0].json()["template"], "txt");
    assert_permanent(&send(&cfg, "pp-bad").await, "code 907");
    pp.push_script(ok(json!({"code": 900, "msg": "系统异常"})));
    assert_retry(&send(&cfg, "pp").await, Some(600_000));
}

#[tokio::test]
async fn webhook_standard_signature_and_retry_after() {
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let whsec = format!("whsec_{}", xianyu_shopd::channels::sign::base64(&key));
    let fake = Fake::start(Webhook::new(Some(key))).await;
    let channels = "  hook:\n    type: webhook\n    url_file: state/hook-url\n    secret_file: state/hook-secret\n  hook-wrong:\n    type: webhook\n    url_file: state/hook-url\n    secret_file: state/hook-wrong\n";
    let url = fake.url("/hooks/shop?token=abc");
    let (_d, cfg) = config_dir(
        channels,
        "{ channels: [hook] }",
        &[
            ("hook-url", &url),
            ("hook-secret", &whsec),
            ("hook-wrong", "whsec_d3Jvbmc="),
        ],
    );
    assert_eq!(send(&cfg, "hook").await, SendResult::Accepted);
    let got = &fake.accepted()[0];
    let body = got.json();
    assert_eq!(body["event"], "manual_ship");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["data"]["order_id"], "3000000000000000001");
    assert_eq!(got.header("webhook-id"), body["id"].as_str());

    assert_permanent(&send(&cfg, "hook-wrong").await, "HTTP 401");
    fake.push_script(Answer {
        status: 503,
        headers: vec![("retry-after", "3".into())],
        body: json!({}),
    });
    assert_retry(&send(&cfg, "hook").await, Some(3_000));
}

#[tokio::test]
async fn aliyun_sms_rpc_v1_signature_params_and_quota() {
    let mut contract = Aliyun::new("LTAIkeyid", "aliyun-secret");
    contract.daily_limit = 2;
    let fake = Fake::start(contract).await;
    let channels = format!(
        "  sms:\n    type: aliyun_sms\n    endpoint: {}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk\n    sign_name: 闲鱼小店\n    template_code: SMS_154950909\n    phone_numbers: [13800138000]\n    params: [event, order_id, item]\n  sms-wrong:\n    type: aliyun_sms\n    endpoint: {}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk-wrong\n    sign_name: 闲鱼小店\n    template_code: SMS_154950909\n    phone_numbers: [13800138000]\n",
        fake.url(""),
        fake.url("")
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [sms] }",
        &[
            ("ak", "LTAIkeyid"),
            ("sk", "aliyun-secret"),
            ("sk-wrong", "nope"),
        ],
    );
    assert_eq!(send(&cfg, "sms").await, SendResult::Accepted);
    let form: std::collections::HashMap<_, _> =
        form_decode(&String::from_utf8(fake.accepted()[0].body.clone()).unwrap())
            .into_iter()
            .collect();
    let tp: serde_json::Value = serde_json::from_str(&form["TemplateParam"]).unwrap();
    assert_eq!(tp["event"], "待人工发货");
    assert_eq!(tp["order_id"], "3000000000000000001");
    assert_eq!(form["SignName"], "闲鱼小店");

    let r = send(&cfg, "sms-wrong").await;
    assert_permanent(&r, "SignatureDoesNotMatch");
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("LTAIkeyid") && !shown.contains("13800138000"),
        "the echoed string-to-sign is dropped: {shown}"
    );

    assert_eq!(send(&cfg, "sms").await, SendResult::Accepted);
    match send(&cfg, "sms").await {
        SendResult::Quota { error, .. } => assert!(error.contains("isv.BUSINESS_LIMIT_CONTROL")),
        other => panic!("expected quota, got {other:?}"),
    }
}

#[tokio::test]
async fn tencent_sms_tc3_signature_and_status_set() {
    let fake = Fake::start(Tencent {
        secret_id: "AKIDtest".into(),
        secret_key: "tencent-key".into(),
    })
    .await;
    let channels = format!(
        "  tsms:\n    type: tencent_sms\n    endpoint: {ep}\n    secret_id_file: state/sid\n    secret_key_file: state/skey\n    sdk_app_id: 1400006666\n    sign_name: 闲鱼小店\n    template_id: 1110\n    phone_numbers: [\"13800138000\"]\n    params: [event, order_id]\n  tsms-wrong:\n    type: tencent_sms\n    endpoint: {ep}\n    secret_id_file: state/sid\n    secret_key_file: state/wrong\n    sdk_app_id: 1400006666\n    sign_name: 闲鱼小店\n    template_id: 1110\n    phone_numbers: [\"13800138000\"]\n",
        ep = fake.url("")
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [tsms] }",
        &[
            ("sid", "AKIDtest"),
            ("skey", "tencent-key"),
            ("wrong", "nope"),
        ],
    );
    assert_eq!(send(&cfg, "tsms").await, SendResult::Accepted);
    let body = fake.accepted()[0].json();
    assert_eq!(body["PhoneNumberSet"], json!(["+8613800138000"]));
    assert_eq!(body["TemplateParamSet"][0], "待人工发货");
    assert_permanent(
        &send(&cfg, "tsms-wrong").await,
        "AuthFailure.SignatureFailure",
    );
    fake.push_script(ok(json!({"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "请求频率超限"}, "RequestId": "r"}})));
    assert_retry(&send(&cfg, "tsms").await, None);
}

/// Secrets can also come from the environment; a missing variable is a permanent failure that
/// names the variable, never a value.
#[tokio::test]
async fn secrets_from_the_environment() {
    let fake = Fake::start(Wecom::new("ENVKEY")).await;
    // Unique names: tests in this binary run in parallel threads.
    unsafe {
        std::env::set_var(
            "NOTIFY_TEST_WECOM_URL_ENVCASE",
            fake.url("/cgi-bin/webhook/send?key=ENVKEY"),
        )
    };
    let channels = "  wecom:\n    type: wecom\n    url_env: NOTIFY_TEST_WECOM_URL_ENVCASE\n  unset:\n    type: wecom\n    url_env: NOTIFY_TEST_NEVER_SET_VARIABLE\n";
    let (_d, cfg) = config_dir(channels, "{ channels: [wecom] }", &[]);
    assert_eq!(send(&cfg, "wecom").await, SendResult::Accepted);
    let http = reqwest::Client::new();
    let Err(err) = build_channel(&cfg.channels["unset"], &http) else {
        panic!("an unset variable fails")
    };
    assert!(
        err.to_string().contains("NOTIFY_TEST_NEVER_SET_VARIABLE"),
        "{err}"
    );
}

/// Config mistakes are reported at load with their position, like every other key.
#[test]
fn channel_config_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "accounts:\n  - id: main\n    cookies_env: C\npipeline:\n  - ingest: {}\n  - notify: { channels: [mail], cooldown: { login_expird: 3h }, dedupe_window: soon }\nchannels:\n  mail:\n    type: email\n    host: smtp.example.com\n    tls: none\n    from: not-an-address\n    to: []\n  sms:\n    type: aliyun_sms\n    access_key_id_env: AK\n    access_key_secret_env: SK\n    sign_name: x\n    template_code: SMS_1\n    phone_numbers: [13800138000]\n    params: [order]\n  plain:\n    type: bark\n    server: http://push.example.com\n    device_key_env: K\n";
    std::fs::write(dir.path().join("pipeline.yaml"), yaml).unwrap();
    let Err(err) = config::load(dir.path()) else {
        panic!("the config is invalid")
    };
    let err = err.to_string();
    for needle in [
        "`not-an-address` is not an e-mail address",
        "missing `to`",
        "`none` would send mail and password unencrypted",
        "unknown parameter `order`, known: event, order_id",
        "use https://",
        "unknown event `login_expird`, did you mean `login_expired`?",
        "`soon` is not a duration",
    ] {
        assert!(err.contains(needle), "{needle} not in:\n{err}");
    }
}
