//! The IM side (reference §4, §6): a WebSocket server on loopback speaking LWP JSON frames.
//! It answers `/reg` (token bound to the device id, 401 otherwise), heartbeats `/!`,
//! `getState`/`ackDiff` (after which a connection receives pushes), `sendByReceiverScope`
//! (recorded, echoed back, or rejected/withheld by faults), conversation creation and a
//! conversation's history (`super::history`), and
//! counts ACKs. Pushes are queued by [`super::hub`] on the same per-connection channel.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::auth::RegError;
use super::hub::{Hub, Outgoing};
use super::ids::hex;
use super::record::{SendReply, SentChat};
use super::state::{Shared, State};
use super::wire::{handle, now_ms, strip_handle};
use crate::goofish::decode::payload_to_value;
use crate::goofish::sign::{Cookies, IM_APP_KEY};

/// yd reads with an 8 MiB limit; nothing legitimate comes close.
const MAX_MESSAGE: usize = 8 << 20;
/// A TCP connection that does not finish the WebSocket handshake in time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection: handshake, then one loop that writes queued frames and reads requests.
pub(crate) async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut cookie_user: Option<String> = None;
    // The callback's signature is tungstenite's; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        // Python bots send the browser cookie; yd does not (§4.1). Either is fine: it only
        // lets the fake attribute the connection before `/reg`.
        cookie_user = req
            .headers()
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| Cookies::parse(c).user_id().map(str::to_owned));
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await else {
        return;
    };
    let (tx, mut rx) = unbounded_channel();
    let id = open(&shared, tx.clone(), cookie_user);
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) => {
                    let _ = sink.close().await;
                    break;
                }
                Some(Outgoing::Drop) | None => break,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => on_text(&shared, id, &tx, text.as_str()),
                // Pings are answered by tungstenite; binary frames are not LWP.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    shared.lock().hub.remove(id);
}

fn open(shared: &Shared, tx: UnboundedSender<Outgoing>, account: Option<String>) -> u64 {
    let mut st = shared.lock();
    if let Some(user) = &account {
        st.record.stats_mut(user).connections += 1;
    }
    st.hub.open(tx, account)
}

/// Handles one text frame: a request (has `lwp`) or an ACK (has `code` and `headers`).
fn on_text(shared: &Shared, id: u64, tx: &UnboundedSender<Outgoing>, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return; // Not JSON: the real server's reaction is unknown; ignoring is safest.
    };
    let (reply, delay) = {
        let mut st = shared.lock();
        let reply = dispatch(&mut st, id, &frame);
        let account = st.hub.get(id).and_then(|c| c.account.clone());
        (reply, st.faults.slow(account.as_deref()))
    };
    if let Some(reply) = reply {
        send_reply(shared, tx, reply.to_string(), delay);
    }
}

/// Queues a response, after the `Slow` fault's delay if one stands.
fn send_reply(
    shared: &Shared,
    tx: &UnboundedSender<Outgoing>,
    frame: String,
    delay: Option<Duration>,
) {
    let Some(delay) = delay else {
        let _ = tx.send(Outgoing::Text(frame));
        return;
    };
    let (tx, cancel) = (tx.clone(), shared.cancel.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(delay) => { let _ = tx.send(Outgoing::Text(frame)); }
        }
    });
}

fn dispatch(st: &mut State, id: u64, frame: &Value) -> Option<Value> {
    let mid = frame
        .pointer("/headers/mid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(lwp) = frame.get("lwp").and_then(Value::as_str) else {
        on_ack(st, id, frame, &mid);
        return None;
    };
    let conn = st.hub.get(id)?;
    let (account, registered) = (conn.account.clone(), conn.registered);
    match lwp {
        "/reg" => Some(register(st, id, &mid, frame)),
        "/!" => {
            if let Some(a) = &account {
                st.record.stats_mut(a).heartbeats += 1;
            }
            Some(ok(&mid, None))
        }
        _ if !registered => Some(refuse(401, &mid, "not auth")),
        "/r/SyncStatus/getState" => Some(ok(&mid, Some(sync_state()))),
        "/r/SyncStatus/ackDiff" => ack_diff(st, id, &mid),
        "/r/MessageSend/sendByReceiverScope" => send_message(st, id, &mid, frame),
        "/r/SingleChatConversation/create" => Some(create_conversation(st, id, &mid, frame)),
        "/r/MessageStatus/read" => Some(ok(&mid, None)),
        "/r/MessageManager/listUserMessages" => {
            super::history::list_user_messages(st, account.as_deref()?, &mid, frame)
        }
        _ => Some(refuse(404, &mid, "not supported by the fake server")),
    }
}

fn ok(mid: &str, body: Option<Value>) -> Value {
    match body {
        Some(body) => json!({"code": 200, "headers": {"mid": mid}, "body": body}),
        None => json!({"code": 200, "headers": {"mid": mid}}),
    }
}

fn refuse(code: u16, mid: &str, reason: &str) -> Value {
    json!({"code": code, "headers": {"mid": mid}, "body": {"reason": reason}})
}

/// An ACK echoes a push's headers with `code` (§4.6); match it to the push.
fn on_ack(st: &mut State, id: u64, frame: &Value, mid: &str) {
    if frame.get("code").is_none() || mid.is_empty() {
        return;
    }
    let matched = st.hub.ack(id, mid);
    let Some(account) = st.hub.get(id).and_then(|c| c.account.clone()) else {
        return;
    };
    let stats = st.record.stats_mut(&account);
    if matched {
        stats.acks += 1;
    } else {
        stats.stray_acks += 1;
    }
}

/// `/reg` (§4.3): the token must come from `pc.login.token` for this very device id.
fn register(st: &mut State, id: u64, mid: &str, frame: &Value) -> Value {
    let header = |name: &str| {
        frame
            .get("headers")
            .and_then(|h| h.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (token, did) = (header("token"), header("did"));
    let checked = if header("app-key") == IM_APP_KEY {
        st.auth.check_im(token, did, now_ms()).map(str::to_owned)
    } else {
        Err(RegError::DeviceMismatch)
    };
    let refused = |user: &str| st.faults.refuse_reg(Some(user));
    let checked = match checked {
        Ok(user) if refused(&user) => Err(RegError::InvalidToken),
        other => other,
    };
    let user = match checked {
        Ok(user) => user,
        Err(err) => {
            let owner = st
                .auth
                .im_owner(token)
                .map(str::to_owned)
                .or_else(|| did_suffix(did));
            if let Some(owner) = owner {
                attribute(st, id, &owner);
                st.record.stats_mut(&owner).reg_failures += 1;
            }
            return refuse(401, mid, err.reason());
        }
    };
    attribute(st, id, &user);
    let stats = st.record.stats_mut(&user);
    stats.regs += 1;
    header("ua").clone_into(&mut stats.reg_ua);
    let sid = Hub::new_sid();
    if let Some(conn) = st.hub.get_mut(id) {
        conn.registered = true;
        conn.synced = false;
        conn.zombie = false;
        conn.sid.clone_from(&sid);
        conn.ua = header("ua").to_owned();
        conn.app_key = header("app-key").to_owned();
    }
    json!({
        "headers": {"ip-digest": hex(32), "dt": "j", "reg-sid": sid, "ip-region-digest": hex(32),
                    "reg-uid": handle(&user), "mid": mid, "real-ip": "127.0.0.1", "sid": sid},
        "code": 200,
        "body": {"unitName": "PNM", "cookie": "", "timestamp": now_ms(), "isFromChina": true}
    })
}

/// The `unb` suffix of a device id, to attribute a failed `/reg`.
fn did_suffix(did: &str) -> Option<String> {
    let suffix = did.get(37..)?;
    (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())).then(|| suffix.to_owned())
}

/// Ties a connection to an account, counting it once per account.
fn attribute(st: &mut State, id: u64, account: &str) {
    let Some(conn) = st.hub.get_mut(id) else {
        return;
    };
    if conn.account.as_deref() != Some(account) {
        conn.account = Some(account.to_owned());
        st.record.stats_mut(account).connections += 1;
    }
}

/// getState's answer (gc's field list).
fn sync_state() -> Value {
    let now = now_ms();
    json!({"pipeline": "sync", "tooLong2Tag": "PNM,1", "channel": "sync", "topic": "sync",
           "highPts": 0, "pts": now * 1000, "seq": 0, "timestamp": now})
}

/// ackDiff: from now on the connection receives pushes (answered unless
/// [`super::Fault::IgnoreAckDiff`] stands).
fn ack_diff(st: &mut State, id: u64, mid: &str) -> Option<Value> {
    let account = st.hub.get_mut(id).and_then(|conn| {
        conn.synced = true;
        conn.account.clone()
    });
    if let Some(account) = &account {
        st.record.stats_mut(account).syncs += 1;
    }
    if st.faults.ignore_ack_diff(account.as_deref()) {
        return None;
    }
    let fingerprint: i32 = rand::random_range(i32::MIN..0);
    Some(ok(
        mid,
        Some(
            json!({"syncExtensionModel": {"fingerprint": fingerprint}, "syncExtraType": {"type": 3}}),
        ),
    ))
}

/// What a `sendByReceiverScope` body says.
struct SendRequest {
    uuid: String,
    cid: String,
    receivers: Vec<String>,
    content: Value,
    text: String,
}

/// §6.1: `[{uuid, cid, content:{contentType:101, custom:{type, data}}, …}, {actualReceivers}]`.
fn parse_send(frame: &Value) -> Option<SendRequest> {
    let msg = frame.pointer("/body/0")?;
    let cid = msg.get("cid")?.as_str()?;
    let custom = msg.pointer("/content/custom")?;
    (msg.pointer("/content/contentType")?.as_i64()? == 101).then_some(())?;
    let content = payload_to_value(custom.get("data")?.as_str()?).ok()?;
    let receivers = frame
        .pointer("/body/1/actualReceivers")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(|r| strip_handle(r).to_owned())
        .collect();
    let text = match content.get("contentType").and_then(Value::as_i64) {
        Some(1) => content
            .pointer("/text/text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(2) => "[图片]".to_owned(),
        _ => String::new(),
    };
    Some(SendRequest {
        uuid: msg
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        cid: strip_handle(cid).to_owned(),
        receivers,
        content,
        text,
    })
}

/// `sendByReceiverScope`: decides the outcome, echoes delivered messages, records it.
fn send_message(st: &mut State, id: u64, mid: &str, frame: &Value) -> Option<Value> {
    let conn = st.hub.get(id)?;
    let (account, zombie) = (conn.account.clone()?, conn.zombie);
    st.record.stats_mut(&account).sends += 1;
    let Some(req) = parse_send(frame) else {
        return Some(refuse(400, mid, "param error"));
    };
    let peer = st.book.conversation_by_cid(&req.cid).and_then(|c| {
        match (c.seller == account, c.buyer == account) {
            (true, _) => Some(c.buyer.clone()),
            (_, true) => Some(c.seller.clone()),
            _ => None,
        }
    });
    let image = image_check(st, &account, &req);
    let (reply, delivered, response) = match (peer, zombie, st.faults.reject(Some(&account))) {
        (None, _, _) => refused(mid, 400, "conversation not exist"),
        (_, true, _) => refused(mid, 400, "session invalid"),
        (_, _, Some(reason)) => rejected(mid, reason),
        (Some(_), false, None) if image.is_some() => match image {
            Some(ImageCheck::NotOnCdn) => refused(mid, 400, "image not on cdn"),
            _ => rejected(mid, "CSI_FORBID".to_owned()),
        },
        (Some(_), false, None) if st.faults.drop_sends(Some(&account)) => {
            (SendReply::Withheld, false, None)
        }
        (Some(peer), false, None) => deliver(st, &account, &peer, mid, &req),
    };
    st.record.sent.push(SentChat {
        account,
        cid: req.cid,
        receivers: req.receivers,
        text: req.text,
        mid: mid.to_owned(),
        uuid: req.uuid,
        content: req.content,
        delivered,
        reply,
    });
    response
}

type Outcome = (SendReply, bool, Option<Value>);

/// Why an image message is refused.
enum ImageCheck {
    /// Its URL is not one the upload endpoint handed out: images must be on the CDN before
    /// they are sent (zn's comment, reference §3.8).
    NotOnCdn,
    /// [`super::Fault::RejectImages`].
    Rejected,
}

/// `None` for texts and for images that may go out.
fn image_check(st: &mut State, account: &str, req: &SendRequest) -> Option<ImageCheck> {
    if req.content.get("contentType").and_then(Value::as_i64) != Some(2) {
        return None;
    }
    let url = req
        .content
        .pointer("/image/pics/0/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !st
        .record
        .uploads
        .iter()
        .any(|u| !u.url.is_empty() && u.url == url)
    {
        return Some(ImageCheck::NotOnCdn);
    }
    st.faults
        .take_rejected_image(Some(account))
        .then_some(ImageCheck::Rejected)
}

fn refused(mid: &str, code: u16, reason: &str) -> Outcome {
    let reply = SendReply::Refused {
        code,
        reason: reason.to_owned(),
    };
    (reply, false, Some(refuse(code, mid, reason)))
}

/// Content-security rejection (§6.3): `code 200` with `reason` and `moreInfo`.
fn rejected(mid: &str, reason: String) -> Outcome {
    let body = json!({"reason": reason, "moreInfo": format!("{reason}||安全拦截")});
    (
        SendReply::Rejected { reason },
        false,
        Some(ok(mid, Some(body))),
    )
}

/// A send the service accepts. Without the peer among the receivers it is answered but
/// reaches nobody (zn PR #326); otherwise it is echoed back to the account's connections. A
/// `uuid` the account already sent is taken for a repeat: answered, not delivered again.
/// `LoseSendResponses` / `LeaveSendsUnanswered` withhold the answer after delivering;
/// `AnswerSendsWithoutCode` leaves the `code` out of it.
fn deliver(st: &mut State, account: &str, peer: &str, mid: &str, req: &SendRequest) -> Outcome {
    if let Some(first) =
        st.record.sent.iter().find(|m| {
            m.account == account && m.uuid == req.uuid && !req.uuid.is_empty() && m.delivered
        })
    {
        let message_id = match &first.reply {
            SendReply::Accepted { message_id }
            | SendReply::AnsweredWithoutCode { message_id }
            | SendReply::Duplicate { message_id } => message_id.clone(),
            _ => st.ids.message_id(),
        };
        let body = json!({"messageId": message_id, "server-timestamp": now_ms()});
        return (
            SendReply::Duplicate { message_id },
            false,
            Some(ok(mid, Some(body))),
        );
    }
    let delivered = req.receivers.iter().any(|r| r == peer);
    let message_id = if delivered {
        let summary = if req.text.is_empty() {
            "[卡片消息]"
        } else {
            req.text.as_str()
        };
        st.echo_own_message(account, &req.cid, summary, &req.content)
    } else {
        st.ids.message_id()
    };
    let unanswered = st.faults.unanswered(Some(account));
    if delivered && (unanswered || st.faults.take_lost_response(Some(account))) {
        return (SendReply::Withheld, true, None);
    }
    let body = json!({"messageId": message_id, "server-timestamp": now_ms()});
    if st.faults.no_code(Some(account)) {
        let answer = json!({"headers": {"mid": mid}, "body": body});
        return (
            SendReply::AnsweredWithoutCode { message_id },
            delivered,
            Some(answer),
        );
    }
    (
        SendReply::Accepted { message_id },
        delivered,
        Some(ok(mid, Some(body))),
    )
}

/// `/r/SingleChatConversation/create` (§4.8): finds or opens the conversation with the peer.
fn create_conversation(st: &mut State, id: u64, mid: &str, frame: &Value) -> Value {
    let Some(conn) = st.hub.get(id) else {
        return refuse(400, mid, "no connection");
    };
    let (Some(account), zombie) = (conn.account.clone(), conn.zombie) else {
        return refuse(401, mid, "not auth");
    };
    if zombie {
        // zn PR #290: on the zombie socket conversation creation fails with code 400.
        return refuse(400, mid, "session invalid");
    }
    let body = frame.pointer("/body/0");
    let pair = |k: &str| {
        body.and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (first, second) = (pair("pairFirst"), pair("pairSecond"));
    let own = handle(&account);
    let peer = match (first == own, second == own) {
        (true, false) => strip_handle(second),
        (false, true) => strip_handle(first),
        _ => return refuse(400, mid, "pair must contain self and one peer"),
    };
    if peer.is_empty() || !peer.bytes().all(|b| b.is_ascii_digit()) {
        return refuse(400, mid, "invalid peer"); // e.g. `None@goofish` (zn PR #326)
    }
    let item = body
        .and_then(|b| b.pointer("/extension/itemId"))
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty());
    let cid = st.conversation_for(&account, peer, item, false);
    let created = st
        .book
        .conversation_by_cid(&cid)
        .map_or(0, |c| c.created_ms);
    let conversation = json!({
        "cid": handle(&cid), "pairFirst": first, "pairSecond": second, "bizType": "1",
        "createAt": created, "extension": {"itemId": item.unwrap_or_default()}
    });
    ok(mid, Some(json!({"singleChatConversation": conversation})))
}
