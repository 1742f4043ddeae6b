//! Payload shapes (reference §5.3): B typing, C read receipt, D red reminder, E card update,
//! F session card, and A the full message, whose fields go through one classifier that tells
//! chat from order cards.

use serde_json::{Map, Value};

use super::msgpack::decode_base64;
use super::signals::{Signal, buyer_id, order_id, order_signal, role};
use super::{
    DecodedEvent, HANDLE_SUFFIX, OrderStatus, as_int, find_url_param, id_string, strip_handle,
    url_param,
};

pub(super) fn ignored(reason: impl Into<String>) -> DecodedEvent {
    DecodedEvent::Ignored {
        reason: reason.into(),
    }
}

/// Shape B: `{"1": [{"1": "<cid>@goofish", "2": 1, "3": 1, "4": "<uid>@goofish"}]}`.
pub(super) fn shape_b(list: &[Value]) -> DecodedEvent {
    let typing = list.iter().find_map(|entry| {
        let cid = entry
            .get("1")
            .and_then(Value::as_str)
            .filter(|s| s.ends_with(HANDLE_SUFFIX))?;
        let user = entry.get("4").and_then(id_string)?;
        Some(DecodedEvent::Typing {
            cid: strip_handle(cid),
            user_id: strip_handle(&user),
        })
    });
    typing.unwrap_or_else(|| ignored("list payload without a typing entry"))
}

/// Shapes C, D and E all have a string `"1"`; `"2"` tells them apart (§5.3).
pub(super) fn shape_c_d_e(
    obj: &Map<String, Value>,
    first: &str,
    account_id: Option<&str>,
) -> DecodedEvent {
    match (obj.get("2"), obj.get("3"), obj.get("4")) {
        (Some(two), _, _) if two.as_i64() == Some(2) => shape_c(obj, first),
        (Some(two), Some(Value::Object(ext)), _) if two.as_i64() == Some(1) => {
            shape_d(first, ext, account_id)
        }
        (Some(Value::String(cid)), _, Some(Value::Object(ext))) => {
            shape_e(obj, first, cid, ext, account_id)
        }
        _ => ignored("unrecognized payload shape"),
    }
}

/// Shape C, read receipt: `{"1": "<msgId>.PNM", "2": 2, "3": 0, "4": "<cid>@goofish", "5": 1, "6": <ms>}`.
fn shape_c(obj: &Map<String, Value>, message_id: &str) -> DecodedEvent {
    match obj.get("4").and_then(id_string) {
        Some(cid) => DecodedEvent::ReadReceipt {
            cid: strip_handle(&cid),
            message_id: message_id.to_owned(),
            read_at_ms: obj.get("6").and_then(Value::as_u64),
        },
        None => ignored("read receipt without a conversation id"),
    }
}

/// Shape D, simplified red reminder: `{"1": "<cid>@goofish", "2": 1, "3": {"redReminder": …}}`.
fn shape_d(cid: &str, ext: &Map<String, Value>, account_id: Option<&str>) -> DecodedEvent {
    let env = Envelope {
        cid: Some(strip_handle(cid)),
        ext: Some(ext),
        content_type: ext_content_type(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape E, card update: `{"1": "<msgId>.PNM", "2": "<cid>@goofish", "3": 1, "4": {ext}, "5": <ms>}`.
fn shape_e(
    obj: &Map<String, Value>,
    message_id: &str,
    cid: &str,
    ext: &Map<String, Value>,
    account_id: Option<&str>,
) -> DecodedEvent {
    let env = Envelope {
        cid: Some(strip_handle(cid)),
        message_id: Some(message_id.to_owned()),
        created_at_ms: obj.get("5").and_then(Value::as_u64),
        ext: Some(ext),
        content_type: ext_content_type(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape F, plain-JSON session card from `/s/vulcan`.
pub(super) fn shape_f(obj: &Map<String, Value>) -> DecodedEvent {
    let info = obj.get("sessionInfo");
    let cid = obj
        .get("sessionId")
        .or_else(|| info.and_then(|i| i.get("sessionId")))
        .and_then(id_string);
    let Some(cid) = cid else {
        return ignored("session payload without a session id");
    };
    let ext = info.and_then(|i| i.get("extensions"));
    let field = |key: &str| ext.and_then(|e| e.get(key)).and_then(id_string);
    DecodedEvent::Session {
        cid,
        item_id: field("itemId"),
        seller_id: field("itemSellerId")
            .or_else(|| field("ownerUserId"))
            .or_else(|| info.and_then(|i| i.get("groupOwnerId")).and_then(id_string)),
        buyer_id: field("extUserId"),
    }
}

// Shape A and the shared message classifier

/// The fields of a message that classification needs, gathered from shape A
/// (full message), D (conversation-level reminder) or E (card update).
#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub(super) cid: Option<String>,
    pub(super) sender_id: Option<String>,
    pub(super) message_id: Option<String>,
    pub(super) created_at_ms: Option<u64>,
    /// The extension ("reminder") map: shape A `1.10`, D `3`, E `4`.
    pub(super) ext: Option<&'a Map<String, Value>>,
    /// Parsed content JSON (`1.6.3.5`); shape A only.
    pub(super) content: Option<Value>,
    /// Custom content type: 1 text, 2 image, 14 tip, 26 trade card, 32 card update…
    pub(super) content_type: Option<i64>,
    /// Field `1.7`: 2 for user messages, 1 for system cards.
    pub(super) kind: Option<i64>,
    /// Summary text `1.6.3.2`.
    pub(super) summary: Option<String>,
}

/// Shape A: `{"1": {message}, "3": {"needPush": …}}`.
pub(super) fn shape_a(msg: &Map<String, Value>, account_id: Option<&str>) -> DecodedEvent {
    let custom = msg.get("6").and_then(|c| c.get("3"));
    let content = custom
        .and_then(|c| c.get("5"))
        .and_then(Value::as_str)
        .and_then(parse_content);
    let content_type = custom
        .and_then(|c| c.get("4"))
        .and_then(Value::as_i64)
        .or_else(|| {
            content
                .as_ref()
                .and_then(|c| c.get("contentType"))
                .and_then(as_int)
        });
    let env = Envelope {
        cid: msg.get("2").and_then(id_string).map(|c| strip_handle(&c)),
        sender_id: msg
            .get("1")
            .and_then(|s| s.get("1"))
            .and_then(id_string)
            .map(|s| strip_handle(&s)),
        message_id: msg.get("3").and_then(id_string),
        created_at_ms: msg.get("5").and_then(Value::as_u64),
        ext: msg.get("10").and_then(Value::as_object),
        content,
        content_type,
        kind: msg.get("7").and_then(Value::as_i64),
        summary: custom
            .and_then(|c| c.get("2"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    classify_envelope(&env, account_id)
}

/// The content JSON is plain text in live pushes but base64 JSON in history and
/// "old-format" pushes (zn); accept both.
fn parse_content(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().or_else(|| {
        let bytes = decode_base64(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    })
}

fn classify_envelope(env: &Envelope<'_>, account_id: Option<&str>) -> DecodedEvent {
    if env.is_user_message() {
        // Typed text never drives orders: a buyer could type "[我已付款，等待你发货]".
        return chat(env, account_id);
    }
    match order_signal(env) {
        Some(Signal::Status(status)) => order(env, status, account_id),
        Some(Signal::Skip(why)) => ignored(why),
        None => ignored(format!(
            "system message without order status: {}",
            env.text().unwrap_or_default()
        )),
    }
}

impl Envelope<'_> {
    pub(super) fn ext_str(&self, key: &str) -> Option<&str> {
        self.ext.and_then(|e| e.get(key)).and_then(Value::as_str)
    }

    /// A JSON document stored as a string inside the extension map.
    pub(super) fn ext_json(&self, key: &str) -> Option<Value> {
        self.ext_str(key).and_then(|s| serde_json::from_str(s).ok())
    }

    pub(super) fn reminder_url(&self) -> Option<&str> {
        self.ext_str("reminderUrl")
    }

    pub(super) fn task_name(&self) -> Option<String> {
        self.ext_json("bizTag")?
            .get("taskName")?
            .as_str()
            .map(str::to_owned)
    }

    pub(super) fn update_key(&self) -> Option<String> {
        self.ext_json("extJson")?
            .get("updateKey")?
            .as_str()
            .map(str::to_owned)
    }

    /// Whether a person sent this. Field `1.7` is set by the server (2 = user,
    /// 1 = system card) and decides; the content type does not, because the
    /// sending client picks `custom.type` and a buyer could forge a trade card.
    /// Shapes D/E carry no `1.7`, so there the content type has to do.
    pub(super) fn is_user_message(&self) -> bool {
        match self.kind {
            Some(kind) => kind == 2,
            None => matches!(self.content_type, Some(1 | 2 | 3 | 5)),
        }
    }

    /// The text to act on: `reminderContent`, else the summary.
    pub(super) fn text(&self) -> Option<&str> {
        self.ext_str("reminderContent").or(self.summary.as_deref())
    }

    pub(super) fn sender(&self) -> Option<String> {
        self.ext_str("senderUserId")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| self.sender_id.clone())
    }

    pub(super) fn message_id_or_card_id(&self) -> Option<String> {
        self.message_id.clone().or_else(|| {
            ["extJson", "bizTag"].iter().find_map(|key| {
                self.ext_json(key)?
                    .get("messageId")?
                    .as_str()
                    .map(str::to_owned)
            })
        })
    }

    pub(super) fn cid_or_fallback(&self) -> Option<String> {
        self.cid.clone().filter(|c| !c.is_empty()).or_else(|| {
            self.reminder_url()
                .and_then(|u| url_param(u, "sid"))
                .map(str::to_owned)
                .or_else(|| self.update_key()?.split(':').next().map(str::to_owned))
                .filter(|c| !c.is_empty())
        })
    }

    pub(super) fn item_id(&self) -> Option<String> {
        let from_url = self.reminder_url().and_then(|u| url_param(u, "itemId"));
        let from_json = || {
            ["bizTag", "extJson"]
                .iter()
                .find_map(|key| self.ext_json(key)?.get("itemId").and_then(id_string))
        };
        let from_content = || {
            self.content
                .as_ref()
                .and_then(|c| find_url_param(c, "itemId"))
        };
        from_url
            .map(str::to_owned)
            .or_else(from_json)
            .or_else(from_content)
            .filter(|id| !id.is_empty())
    }

    pub(super) fn card_main(&self) -> Option<&Value> {
        self.content.as_ref()?.pointer("/dxCard/item/main")
    }

    pub(super) fn update_main(&self) -> Option<&Value> {
        self.content
            .as_ref()?
            .pointer("/dynamicOperation/changeContent/dxCard/item/main")
    }

    /// Card `targetUrl`s in the order the recipes trust them (§5.6).
    pub(super) fn card_urls(&self) -> Vec<&str> {
        [self.card_main(), self.update_main()]
            .into_iter()
            .flatten()
            .flat_map(|main| {
                [
                    main.pointer("/exContent/button/targetUrl"),
                    main.get("targetUrl"),
                ]
            })
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    pub(super) fn card_title(&self) -> Option<&str> {
        [self.update_main(), self.card_main()]
            .into_iter()
            .flatten()
            .find_map(|main| main.pointer("/exContent/title")?.as_str())
    }
}

/// Which content-type value an extension map advertises (shapes D/E carry no
/// content, only `extJson.contentType` as a string).
fn ext_content_type(ext: &Map<String, Value>) -> Option<i64> {
    let ext_json: Value = serde_json::from_str(ext.get("extJson")?.as_str()?).ok()?;
    ext_json.get("contentType").and_then(as_int)
}

fn chat(env: &Envelope<'_>, account_id: Option<&str>) -> DecodedEvent {
    let (Some(cid), Some(sender_id), Some(message_id)) = (
        env.cid_or_fallback(),
        env.sender(),
        env.message_id_or_card_id(),
    ) else {
        return ignored("chat message without cid, sender or message id");
    };
    // zn prefers the decoded text for plain text messages; reminderContent can
    // be a truncated notification.
    let typed = env
        .content
        .as_ref()
        .filter(|_| env.content_type == Some(1))
        .and_then(|c| c.pointer("/text/text"))
        .and_then(Value::as_str);
    let text = typed.or(env.text()).unwrap_or_default().to_owned();
    let sender_nick = ["senderNick", "reminderTitle"]
        .iter()
        .find_map(|k| env.ext_str(k).filter(|n| !n.trim().is_empty()))
        .map(str::to_owned);
    DecodedEvent::Chat {
        own: account_id == Some(sender_id.as_str()),
        cid,
        sender_id,
        message_id,
        text,
        item_id: env.item_id(),
        sender_nick,
        sent_at_ms: env.created_at_ms,
    }
}

fn order(env: &Envelope<'_>, status: OrderStatus, account_id: Option<&str>) -> DecodedEvent {
    let cid = env.cid_or_fallback();
    let Some(order_id) = order_id(env) else {
        // Shape D/E reminders and "你已发货" tips name no order: the caller must
        // look the order up (sold-order list) — it cannot be keyed here.
        if status == OrderStatus::Paid {
            return DecodedEvent::PaidHint { cid };
        }
        return ignored(format!(
            "order hint without order id: status={} cid={}",
            status.as_str(),
            cid.as_deref().unwrap_or("?")
        ));
    };
    let role = role(env, status, account_id);
    DecodedEvent::Order {
        order_id,
        item_id: env.item_id(),
        buyer_id: buyer_id(env, role, account_id),
        cid,
        status,
        role,
        source_msg_id: env.message_id_or_card_id(),
        created_at_ms: env.created_at_ms,
    }
}
