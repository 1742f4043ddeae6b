//! Payload shapes (reference §5.3): B typing, C read receipt, D red reminder, E card update,
//! F session card, and A the full message, whose fields go through one classifier that tells
//! chat from order cards. Everything here reads the borrowed MessagePack view; the nested
//! JSON documents are read once, when a rule first asks for them.

use std::borrow::Cow;
use std::cell::OnceCell;

use serde_json::Value;

use super::msgpack::{Key, Node, Seq, decode_base64, to_value};
use super::nested::{self, CardMain, Content, Tags};
use super::signals::{Signal, buyer_id, order_id, order_signal, role};
use super::{DecodedEvent, HANDLE_SUFFIX, OrderStatus, find_url_param, url_param};

pub(super) fn ignored(reason: impl Into<String>) -> DecodedEvent {
    DecodedEvent::Ignored {
        reason: reason.into(),
    }
}

fn strip_handle(s: &str) -> &str {
    s.strip_suffix(HANDLE_SUFFIX).unwrap_or(s)
}

fn strip_handle_cow(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(strip_handle(s)),
        Cow::Owned(s) => Cow::Owned(strip_handle(&s).to_owned()),
    }
}

/// The top-level fields shapes C, D and E are told apart by.
pub(super) struct Top<'a> {
    pub(super) two: Option<Node<'a>>,
    pub(super) three: Option<Node<'a>>,
    pub(super) four: Option<Node<'a>>,
    pub(super) five: Option<Node<'a>>,
    pub(super) six: Option<Node<'a>>,
}

/// Shape B: `{"1": [{"1": "<cid>@goofish", "2": 1, "3": 1, "4": "<uid>@goofish"}]}`.
pub(super) fn shape_b(list: Seq<'_>) -> DecodedEvent {
    let typing = list.values().find_map(|entry| {
        let [cid, user] = entry.as_map()?.pick([Key::Int(1), Key::Int(4)]);
        let cid = cid?.as_str().filter(|s| s.ends_with(HANDLE_SUFFIX))?;
        let user = user?.id_string()?;
        Some(DecodedEvent::Typing {
            cid: strip_handle(cid).to_owned(),
            user_id: strip_handle(&user).to_owned(),
        })
    });
    typing.unwrap_or_else(|| ignored("list payload without a typing entry"))
}

/// Shapes C, D and E all have a string `"1"`; `"2"` tells them apart (§5.3).
pub(super) fn shape_c_d_e(top: &Top<'_>, first: &str, account_id: Option<&str>) -> DecodedEvent {
    match (top.two, top.three, top.four) {
        (Some(two), _, _) if two.as_i64() == Some(2) => shape_c(top, first),
        (Some(two), Some(Node::Map(ext)), _) if two.as_i64() == Some(1) => {
            shape_d(first, ext, account_id)
        }
        (Some(Node::Str(_)), _, Some(Node::Map(ext))) => match top.two.and_then(Node::as_str) {
            Some(cid) => shape_e(top, first, cid, ext, account_id),
            None => ignored("unrecognized payload shape"),
        },
        _ => ignored("unrecognized payload shape"),
    }
}

/// Shape C, read receipt: `{"1": "<msgId>.PNM", "2": 2, "3": 0, "4": "<cid>@goofish", "5": 1, "6": <ms>}`.
fn shape_c(top: &Top<'_>, message_id: &str) -> DecodedEvent {
    match top.four.and_then(Node::id_string) {
        Some(cid) => DecodedEvent::ReadReceipt {
            cid: strip_handle(&cid).to_owned(),
            message_id: message_id.to_owned(),
            read_at_ms: top.six.and_then(Node::as_u64),
        },
        None => ignored("read receipt without a conversation id"),
    }
}

/// Shape D, simplified red reminder: `{"1": "<cid>@goofish", "2": 1, "3": {"redReminder": …}}`.
fn shape_d(cid: &str, ext: Seq<'_>, account_id: Option<&str>) -> DecodedEvent {
    let ext = Ext::read(ext);
    let env = Envelope {
        cid: Some(Cow::Borrowed(strip_handle(cid))),
        content_type: ext.ext_json().content_type,
        ext: Some(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape E, card update: `{"1": "<msgId>.PNM", "2": "<cid>@goofish", "3": 1, "4": {ext}, "5": <ms>}`.
fn shape_e(
    top: &Top<'_>,
    message_id: &str,
    cid: &str,
    ext: Seq<'_>,
    account_id: Option<&str>,
) -> DecodedEvent {
    let ext = Ext::read(ext);
    let env = Envelope {
        cid: Some(Cow::Borrowed(strip_handle(cid))),
        message_id: Some(Cow::Borrowed(message_id)),
        created_at_ms: top.five.and_then(Node::as_u64),
        content_type: ext.ext_json().content_type,
        ext: Some(ext),
        ..Envelope::default()
    };
    classify_envelope(&env, account_id)
}

/// Shape F, plain-JSON session card from `/s/vulcan`.
pub(super) fn shape_f(info: Option<Node<'_>>, session_id: Option<Node<'_>>) -> DecodedEvent {
    let [info_session_id, extensions, group_owner] = info
        .and_then(Node::as_map)
        .map(|i| {
            i.pick([
                Key::Name("sessionId"),
                Key::Name("extensions"),
                Key::Name("groupOwnerId"),
            ])
        })
        .unwrap_or_default();
    let Some(cid) = session_id.or(info_session_id).and_then(Node::id_string) else {
        return ignored("session payload without a session id");
    };
    let [item, item_seller, owner, ext_user] = extensions
        .and_then(Node::as_map)
        .map(|e| {
            e.pick([
                Key::Name("itemId"),
                Key::Name("itemSellerId"),
                Key::Name("ownerUserId"),
                Key::Name("extUserId"),
            ])
        })
        .unwrap_or_default();
    let id = |node: Option<Node<'_>>| node.and_then(Node::id_string).map(Cow::into_owned);
    DecodedEvent::Session {
        cid: cid.into_owned(),
        item_id: id(item),
        seller_id: id(item_seller)
            .or_else(|| id(owner))
            .or_else(|| id(group_owner)),
        buyer_id: id(ext_user),
    }
}

// The extension map

/// The extension ("reminder") map: shape A `1.10`, D `3`, E `4`. Its string fields are read in
/// one pass; `bizTag` and `extJson` are parsed the first time a rule asks for them.
pub(super) struct Ext<'a> {
    map: Seq<'a>,
    reminder_content: Option<&'a str>,
    reminder_url: Option<&'a str>,
    sender_user_id: Option<&'a str>,
    red_reminder: Option<&'a str>,
    user_id: Option<Cow<'a, str>>,
    biz_tag: Option<&'a str>,
    ext_json: Option<&'a str>,
    /// `senderNick` and `reminderTitle`: who sent a chat message, by name.
    sender_nick: Option<&'a str>,
    reminder_title: Option<&'a str>,
    biz_tag_read: OnceCell<Tags<'a>>,
    ext_json_read: OnceCell<Tags<'a>>,
}

impl<'a> Ext<'a> {
    fn read(map: Seq<'a>) -> Self {
        let [
            content,
            url,
            sender,
            red,
            user,
            biz_tag,
            ext_json,
            nick,
            title,
        ] = map.pick([
            Key::Name("reminderContent"),
            Key::Name("reminderUrl"),
            Key::Name("senderUserId"),
            Key::Name("redReminder"),
            Key::Name("userId"),
            Key::Name("bizTag"),
            Key::Name("extJson"),
            Key::Name("senderNick"),
            Key::Name("reminderTitle"),
        ]);
        let text = |node: Option<Node<'a>>| node.and_then(Node::as_str);
        Ext {
            map,
            reminder_content: text(content),
            reminder_url: text(url),
            sender_user_id: text(sender),
            red_reminder: text(red),
            user_id: user.and_then(Node::id_string),
            biz_tag: text(biz_tag),
            ext_json: text(ext_json),
            sender_nick: text(nick),
            reminder_title: text(title),
            biz_tag_read: OnceCell::new(),
            ext_json_read: OnceCell::new(),
        }
    }

    fn biz_tag(&self) -> &Tags<'a> {
        self.biz_tag_read
            .get_or_init(|| self.biz_tag.map(nested::tags).unwrap_or_default())
    }

    fn ext_json(&self) -> &Tags<'a> {
        self.ext_json_read
            .get_or_init(|| self.ext_json.map(nested::tags).unwrap_or_default())
    }
}

// Shape A and the shared message classifier

/// The fields of a message that classification needs, gathered from shape A
/// (full message), D (conversation-level reminder) or E (card update).
#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub(super) cid: Option<Cow<'a, str>>,
    pub(super) sender_id: Option<Cow<'a, str>>,
    pub(super) message_id: Option<Cow<'a, str>>,
    pub(super) created_at_ms: Option<u64>,
    pub(super) ext: Option<Ext<'a>>,
    /// The content JSON (`1.6.3.5`) as read, and its text; shape A only.
    pub(super) content: Option<(Content<'a>, &'a str)>,
    /// Custom content type: 1 text, 2 image, 14 tip, 26 trade card, 32 card update…
    pub(super) content_type: Option<i64>,
    /// Field `1.7`: 2 for user messages, 1 for system cards.
    pub(super) kind: Option<i64>,
    /// Summary text `1.6.3.2`.
    pub(super) summary: Option<&'a str>,
}

/// Shape A: `{"1": {message}, "3": {"needPush": …}}`.
pub(super) fn shape_a(msg: Seq<'_>, account_id: Option<&str>) -> DecodedEvent {
    let [sender, cid, message_id, created_at, body, kind, ext] = msg.pick([
        Key::Int(1),
        Key::Int(2),
        Key::Int(3),
        Key::Int(5),
        Key::Int(6),
        Key::Int(7),
        Key::Int(10),
    ]);
    let custom = body.and_then(|b| b.get(Key::Int(3)));
    let [summary, custom_type, content_text] = custom
        .and_then(Node::as_map)
        .map(|c| c.pick([Key::Int(2), Key::Int(4), Key::Int(5)]))
        .unwrap_or_default();
    let content_text = content_text.and_then(Node::as_str);
    // The content JSON is plain text in live pushes but base64 JSON in history and
    // "old-format" pushes (zn); accept both. The decoded text must outlive the envelope.
    let from_base64: Option<String>;
    let content = match content_text.and_then(|t| nested::content(t).map(|c| (c, t))) {
        Some(read) => Some(read),
        None => {
            from_base64 = content_text
                .and_then(|t| decode_base64(t).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            from_base64
                .as_deref()
                .and_then(|t| nested::content(t).map(|c| (c, t)))
        }
    };
    let content_type = custom_type
        .and_then(Node::as_i64)
        .or_else(|| content.as_ref().and_then(|(c, _)| c.content_type));
    let env = Envelope {
        cid: cid.and_then(Node::id_string).map(strip_handle_cow),
        sender_id: sender
            .and_then(|s| s.get(Key::Int(1)))
            .and_then(Node::id_string)
            .map(strip_handle_cow),
        message_id: message_id.and_then(Node::id_string),
        created_at_ms: created_at.and_then(Node::as_u64),
        ext: ext.and_then(Node::as_map).map(Ext::read),
        content,
        content_type,
        kind: kind.and_then(Node::as_i64),
        summary: summary.and_then(Node::as_str),
    };
    classify_envelope(&env, account_id)
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

impl<'a> Envelope<'a> {
    pub(super) fn reminder_url(&self) -> Option<&'a str> {
        self.ext.as_ref()?.reminder_url
    }

    pub(super) fn red_reminder(&self) -> Option<&'a str> {
        self.ext.as_ref()?.red_reminder
    }

    pub(super) fn user_id(&self) -> Option<&str> {
        self.ext.as_ref()?.user_id.as_deref()
    }

    pub(super) fn task_name(&self) -> Option<&str> {
        self.ext.as_ref()?.biz_tag().task_name.as_deref()
    }

    pub(super) fn update_key(&self) -> Option<&str> {
        self.ext.as_ref()?.ext_json().update_key.as_deref()
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
    pub(super) fn text(&self) -> Option<&'a str> {
        self.ext
            .as_ref()
            .and_then(|e| e.reminder_content)
            .or(self.summary)
    }

    pub(super) fn sender(&self) -> Option<&str> {
        self.ext
            .as_ref()
            .and_then(|e| e.sender_user_id)
            .filter(|s| !s.is_empty())
            .or(self.sender_id.as_deref())
    }

    pub(super) fn message_id_or_card_id(&self) -> Option<&str> {
        self.message_id.as_deref().or_else(|| {
            let ext = self.ext.as_ref()?;
            [ext.ext_json(), ext.biz_tag()]
                .into_iter()
                .find_map(|tags| tags.message_id.as_deref())
        })
    }

    pub(super) fn cid_or_fallback(&self) -> Option<&str> {
        self.cid.as_deref().filter(|c| !c.is_empty()).or_else(|| {
            self.reminder_url()
                .and_then(|u| url_param(u, "sid"))
                .or_else(|| self.update_key()?.split(':').next())
                .filter(|c| !c.is_empty())
        })
    }

    pub(super) fn item_id(&self) -> Option<Cow<'_, str>> {
        let from_url = self.reminder_url().and_then(|u| url_param(u, "itemId"));
        let from_json = || {
            let ext = self.ext.as_ref()?;
            [ext.biz_tag(), ext.ext_json()]
                .into_iter()
                .find_map(|tags| tags.item_id.as_deref())
        };
        let from_content = || find_url_param(&self.content_value()?, "itemId").map(Cow::Owned);
        from_url
            .or_else(from_json)
            .map(Cow::Borrowed)
            .or_else(from_content)
            .filter(|id| !id.is_empty())
    }

    pub(super) fn card_main(&self) -> Option<&CardMain<'a>> {
        self.content.as_ref()?.0.card.as_ref()
    }

    pub(super) fn update_main(&self) -> Option<&CardMain<'a>> {
        self.content.as_ref()?.0.update.as_ref()
    }

    /// Card `targetUrl`s in the order the recipes trust them (§5.6).
    pub(super) fn card_urls(&self) -> impl Iterator<Item = &str> {
        [self.card_main(), self.update_main()]
            .into_iter()
            .flatten()
            .flat_map(|main| [main.button_url.as_deref(), main.target_url.as_deref()])
            .flatten()
    }

    pub(super) fn card_title(&self) -> Option<&str> {
        [self.update_main(), self.card_main()]
            .into_iter()
            .flatten()
            .find_map(|main| main.title.as_deref())
    }

    /// The whole content document, for the last-resort scans (rare: cold path).
    pub(super) fn content_value(&self) -> Option<Value> {
        serde_json::from_str(self.content.as_ref()?.1).ok()
    }

    /// The whole extension map, for the last-resort scan (rare: cold path).
    pub(super) fn ext_value(&self) -> Option<Value> {
        Some(to_value(Node::Map(self.ext.as_ref()?.map)))
    }
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
        .and_then(|(c, _)| c.text.as_deref());
    let text = typed.or(env.text()).unwrap_or_default().to_owned();
    let sender_nick = env.ext.as_ref().and_then(|ext| {
        [ext.sender_nick, ext.reminder_title]
            .into_iter()
            .flatten()
            .find(|nick| !nick.trim().is_empty())
            .map(str::to_owned)
    });
    DecodedEvent::Chat {
        own: account_id == Some(sender_id),
        cid: cid.to_owned(),
        sender_id: sender_id.to_owned(),
        message_id: message_id.to_owned(),
        text,
        item_id: env.item_id().map(Cow::into_owned),
        sender_nick,
        sent_at_ms: env.created_at_ms,
    }
}

fn order(env: &Envelope<'_>, status: OrderStatus, account_id: Option<&str>) -> DecodedEvent {
    let cid = env.cid_or_fallback().map(str::to_owned);
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
        item_id: env.item_id().map(Cow::into_owned),
        buyer_id: buyer_id(env, role, account_id),
        cid,
        status,
        role,
        source_msg_id: env.message_id_or_card_id().map(str::to_owned),
        created_at_ms: env.created_at_ms,
    }
}
