//! The frames themselves (pure, unit-tested): mids, the `/reg` user agent, the send body and
//! how its answer is judged, ACKs, re-sync hints, and reading cids and reasons from answers.

use base64::Engine;
use serde_json::{Value, json};

use super::HANDLE;
use crate::clock::now_ms;
use crate::goofish::sign;
use crate::goofish::values::id_text;
use crate::marketplace::SendOutcome;

pub(super) fn new_mid() -> String {
    sign::generate_mid(&mut rand::rng(), now_ms())
}

pub(super) fn strip_handle(s: &str) -> &str {
    s.strip_suffix(HANDLE).unwrap_or(s)
}

/// The `/reg` `ua`: the browser UA plus the DingTalk web-client suffix (reference §4.3), its
/// `OS(name/version)` read from that same UA (every bot hard-codes `OS(Windows/10)`, which
/// contradicts a Mac or Linux user agent; one client derives it from its configured platform
/// the same way).
pub(super) fn reg_user_agent(browser: &str) -> String {
    let chrome = browser
        .split_whitespace()
        .find(|p| p.starts_with("Chrome/"))
        .unwrap_or("Chrome/146.0.0.0");
    let os = crate::goofish::agent::os(browser);
    format!(
        "{browser} DingTalk(2.1.5) OS({}/{}) Browser({chrome}) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5",
        os.dingtalk_name, os.version
    )
}

/// The client `uuid` of a sent message: the bots' `-<ms>1`, with the last part counting up when
/// several messages leave within one millisecond (two deliveries must never share a uuid, or
/// the service takes the second for a repeat of the first and answers it without delivering
/// it).
pub(super) fn message_uuid(now_ms: u64) -> String {
    static LAST: std::sync::Mutex<(u64, u32)> = std::sync::Mutex::new((0, 0));
    next_uuid(&mut LAST.lock().unwrap_or_else(|p| p.into_inner()), now_ms)
}

/// The uuid after `last`, never going backwards: concurrent senders read the clock in one
/// order and take the lock in another, and an older millisecond must not start its count
/// again at 1 (that gave two orders' deliveries one uuid during a burst: tests/burst_kill.rs).
fn next_uuid(last: &mut (u64, u32), now_ms: u64) -> String {
    let (ms, seq) = if now_ms > last.0 {
        (now_ms, 1)
    } else {
        (last.0, last.1 + 1)
    };
    *last = (ms, seq);
    sign::generate_uuid(ms, seq)
}

/// The `sendByReceiverScope` body for a text message (reference §6.1).
pub(super) fn send_body(cid: &str, peer: &str, me: &str, text: &str, uuid: &str) -> Value {
    let inner = json!({"contentType": 1, "text": {"text": text}});
    scope_body(cid, peer, me, &inner, 1, uuid)
}

/// The `sendByReceiverScope` body for an image already on the CDN (reference §6.2): inner
/// `{"contentType":2,"image":{"pics":[{height,type:0,url,width}]}}`. `custom.type` is 2 as in
/// `cv-cat/XianYuApis` `goofish_live.py` `send_msg` and jv (zn sends 1; both reported working).
pub(super) fn image_body(
    cid: &str,
    peer: &str,
    me: &str,
    image: (&str, u32, u32),
    uuid: &str,
) -> Value {
    let (url, width, height) = image;
    let inner = json!({"contentType": 2, "image": {"pics": [
        {"height": height, "type": 0, "url": url, "width": width}
    ]}});
    scope_body(cid, peer, me, &inner, 2, uuid)
}

fn scope_body(
    cid: &str,
    peer: &str,
    me: &str,
    inner: &Value,
    custom_type: u8,
    uuid: &str,
) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(inner.to_string());
    let cid = strip_handle(cid);
    json!([
        {
            "uuid": uuid,
            "cid": format!("{cid}{HANDLE}"),
            "conversationType": 1,
            "content": {"contentType": 101, "custom": {"type": custom_type, "data": data}},
            "redPointPolicy": 0,
            "extension": {"extJson": "{}"},
            "ctx": {"appVersion": "1.0", "platform": "web"},
            "mtags": {},
            "msgReadStatusSetting": 1
        },
        {"actualReceivers": [format!("{}{HANDLE}", strip_handle(peer)), format!("{me}{HANDLE}")]}
    ])
}

/// How a send answer is judged (reference §6.3). Only an explicit refusal proves the message
/// was not stored, so only that is [`SendOutcome::NotDelivered`] (and may be sent again): a
/// rejection reason (`CSI_FORBID||安全拦截`, …) or a 4xx code. An answer without a code is
/// acceptance: zn notes IM answers "usually have no code", and treats even silence as "not
/// rejected" (`zhinianboke/xianyu-auto-reply` `im_client.py`). A 5xx or another unexpected code
/// proves nothing either way: [`SendOutcome::Unknown`], never resent.
pub(super) fn send_outcome(answer: &Value) -> SendOutcome {
    let code = answer.get("code").and_then(Value::as_i64);
    let shown = code.map_or_else(|| "none".to_string(), |c| c.to_string());
    match (code, reason_of(answer)) {
        (Some(c), _) if c >= 500 || (c != 200 && c < 400) => SendOutcome::Unknown {
            reason: format!("answered with code {c}"),
        },
        (_, Some(r)) => SendOutcome::NotDelivered {
            reason: format!("rejected (code {shown}): {r}"),
        },
        (Some(c), None) if c != 200 => SendOutcome::NotDelivered {
            reason: format!("rejected (code {c})"),
        },
        (_, None) => {
            let body = answer.get("body");
            let id = ["messageId", "1", "server-timestamp"]
                .iter()
                .find_map(|k| body.and_then(|b| b.get(*k)).and_then(id_text));
            SendOutcome::Accepted { message_id: id }
        }
    }
}

/// A rejection reason from `body.reason` / `body.moreInfo` (and the other places yd looks).
pub(super) fn reason_of(answer: &Value) -> Option<String> {
    let body = answer.get("body");
    let pick = |v: Option<&Value>, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.and_then(|b| b.get(*k)).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let reason = pick(body, &["reason", "message", "msg"])
        .or_else(|| pick(Some(answer), &["reason", "message", "msg"]))
        .or_else(|| pick(answer.get("headers"), &["reason", "error-message", "error"]))?;
    Some(match pick(body, &["moreInfo"]) {
        Some(more) => format!("{reason} ({more})"),
        None => reason,
    })
}

/// The cid in a `SingleChatConversation/create` answer, wherever the variants put it (§4.8).
pub(super) fn conversation_cid(answer: &Value) -> Option<String> {
    if answer.get("code").and_then(Value::as_i64) != Some(200) {
        return None;
    }
    let body = answer.get("body")?;
    [
        "/singleChatConversation/cid",
        "/0/singleChatConversation/cid",
        "/singleChatUserConversation/singleChatConversation/cid",
        "/data/singleChatConversation/cid",
        "/cid",
    ]
    .iter()
    .find_map(|p| body.pointer(p).and_then(id_text))
    .map(|c| strip_handle(&c).to_string())
    .filter(|c| !c.is_empty())
}

/// yd re-syncs when a push carries `syncExtraType.type` 1 or 2.
pub(super) fn needs_resync(frame: &Value) -> bool {
    matches!(
        frame
            .pointer("/body/syncExtraType/type")
            .and_then(Value::as_i64),
        Some(1 | 2)
    )
}

/// `{code:200, headers:{mid, sid, app-key?, ua?, dt?}}` (reference §4.6).
pub(super) fn ack_for(frame: &Value) -> Value {
    let headers = frame.get("headers");
    let get = |k: &str| headers.and_then(|h| h.get(k)).cloned();
    let mut out = serde_json::Map::new();
    out.insert("mid".into(), get("mid").unwrap_or_else(|| json!("")));
    out.insert("sid".into(), get("sid").unwrap_or_else(|| json!("")));
    for key in ["app-key", "ua", "dt"] {
        if let Some(v) = get(key) {
            out.insert(key.into(), v);
        }
    }
    json!({"code": 200, "headers": out})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_body_matches_the_reference() {
        let body = send_body(
            "47983389096",
            "3149637063",
            "2202640918079",
            "你好\n卡密：K-1",
            &sign::generate_uuid(1741667630548, 1),
        );
        assert_eq!(body[0]["uuid"], "-17416676305481");
        assert_eq!(body[0]["cid"], "47983389096@goofish");
        assert_eq!(body[0]["conversationType"], 1);
        assert_eq!(body[0]["content"]["contentType"], 101);
        assert_eq!(body[0]["content"]["custom"]["type"], 1);
        assert_eq!(body[0]["extension"]["extJson"], "{}");
        assert_eq!(
            body[1]["actualReceivers"],
            json!(["3149637063@goofish", "2202640918079@goofish"])
        );
        let data = body[0]["content"]["custom"]["data"].as_str().unwrap();
        let inner: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            inner,
            json!({"contentType": 1, "text": {"text": "你好\n卡密：K-1"}})
        );
        // A cid that already carries the suffix is not doubled.
        assert_eq!(
            send_body("1@goofish", "2", "3", "x", "-01")[0]["cid"],
            "1@goofish"
        );
    }

    #[test]
    fn send_outcomes() {
        assert_eq!(
            send_outcome(
                &json!({"code": 200, "headers": {"mid": "1 0"}, "body": {"messageId": "m1"}})
            ),
            SendOutcome::Accepted {
                message_id: Some("m1".into())
            }
        );
        assert_eq!(
            send_outcome(&json!({"code": 200, "headers": {}})),
            SendOutcome::Accepted { message_id: None }
        );
        // The right mid without a code: accepted, never "rejected (code 0)" and resent.
        assert_eq!(
            send_outcome(&json!({"headers": {"mid": "1 0"}, "body": {"messageId": "m2"}})),
            SendOutcome::Accepted {
                message_id: Some("m2".into())
            }
        );
        assert_eq!(
            send_outcome(&json!({"headers": {"mid": "1 0"}})),
            SendOutcome::Accepted { message_id: None }
        );
        let rejected = send_outcome(
            &json!({"code": 200, "body": {"reason": "CSI_FORBID", "moreInfo": "CSI_FORBID||安全拦截"}}),
        );
        assert!(
            matches!(&rejected, SendOutcome::NotDelivered { reason } if reason.contains("CSI_FORBID||安全拦截"))
        );
        // A reason without a code is still an explicit refusal.
        assert!(matches!(
            send_outcome(&json!({"headers": {}, "body": {"reason": "CSI_FORBID"}})),
            SendOutcome::NotDelivered { .. }
        ));
        assert!(matches!(
            send_outcome(&json!({"code": 400})),
            SendOutcome::NotDelivered { .. }
        ));
        // A server error proves nothing: unknown, judged by the read-back, never resent.
        assert!(matches!(
            send_outcome(&json!({"code": 500, "body": {"reason": "internal"}})),
            SendOutcome::Unknown { .. }
        ));
    }

    #[test]
    fn uuids_differ_within_one_millisecond() {
        let ms = 1_700_000_000_123;
        let mut last = (0, 0);
        let mut next = |at| next_uuid(&mut last, at);
        let (a, b, c) = (next(ms), next(ms), next(ms + 1));
        assert_eq!(a, "-17000000001231");
        assert_eq!(b, "-17000000001232");
        assert_eq!(c, "-17000000001241");
        // A sender that read the clock earlier but got the lock later: no repeat of "…1231".
        assert_eq!(next(ms), "-17000000001242");
        assert_eq!(next(ms + 2), "-17000000001251");
    }

    #[test]
    fn conversation_cid_variants() {
        let ok = |body: Value| json!({"code": 200, "body": body});
        assert_eq!(
            conversation_cid(&ok(
                json!({"singleChatConversation": {"cid": "55@goofish"}})
            ))
            .as_deref(),
            Some("55")
        );
        assert_eq!(
            conversation_cid(&ok(json!([{"singleChatConversation": {"cid": "56"}}]))).as_deref(),
            Some("56")
        );
        assert_eq!(
            conversation_cid(&ok(json!({"singleChatUserConversation": {"singleChatConversation": {"cid": "57@goofish"}}}))).as_deref(),
            Some("57")
        );
        assert_eq!(
            conversation_cid(
                &json!({"code": 400, "body": {"singleChatConversation": {"cid": "1"}}})
            ),
            None
        );
        assert_eq!(conversation_cid(&ok(json!({}))), None);
    }

    #[test]
    fn acks_copy_the_push_headers() {
        let push = json!({"lwp": "/s/sync", "headers": {"mid": "84a4001c 0", "sid": "s1", "app-key": "k", "ua": "u", "extra": "x"}});
        assert_eq!(
            ack_for(&push),
            json!({"code": 200, "headers": {"mid": "84a4001c 0", "sid": "s1", "app-key": "k", "ua": "u"}})
        );
        assert_eq!(
            ack_for(&json!({"lwp": "/s/para"})),
            json!({"code": 200, "headers": {"mid": "", "sid": ""}})
        );
        assert!(needs_resync(
            &json!({"body": {"syncExtraType": {"type": 1}}})
        ));
        assert!(!needs_resync(
            &json!({"body": {"syncExtraType": {"type": 3}}})
        ));
    }

    #[test]
    fn reg_ua_and_reasons() {
        let ua = reg_user_agent(crate::goofish::mtop::DEFAULT_USER_AGENT);
        assert!(ua.ends_with("DingTalk(2.1.5) OS(Windows/10) Browser(Chrome/146.0.0.0) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5"));
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/145.0.0.0 Safari/537.36";
        assert!(reg_user_agent(mac).ends_with("DingTalk(2.1.5) OS(MacOS/10.15.7) Browser(Chrome/145.0.0.0) DingWeb/2.1.5 IMPaaS DingWeb/2.1.5"));
        assert!(matches!(
            reason_of(&json!({"code": 401, "body": {"reason": "invalid token"}})).as_deref(),
            Some("invalid token")
        ));
    }
}
