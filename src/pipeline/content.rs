//! What a delivery says, built from the product, the order and its keys (pure): the chat
//! parts in the shape the product asks for (`delivery.shape`), the follow-up message, and the
//! masked versions that may be stored, logged or shown.
//!
//! Masked by construction (issue 10 D5): the masked text is the same template rendered over
//! *masked* keys, never the real text with the keys replaced afterwards, so no filter, slice or
//! encoding of a key in a template (`| lower`, `| urlencode`, `k[:6] ~ k[6:]`) can carry a key
//! into a record, a page or a log. A masked text that still shows a key (`reveals_key`) keeps
//! only its length.
//!
//! The ship stage builds this inside [`crate::store::Store::begin_send`] on every attempt, so
//! a retry sends exactly what the first attempt planned (same template, same keys), and the
//! read-back rebuilds the very message whose outcome it checks.

use sha2::{Digest, Sha256};

use crate::config::templates::{AccountView, DeliveryView, OrderView, ProductView};
use crate::config::{Config, MessageShape, Proof, Stock};
use crate::marketplace::{ChatAddress, DeliveryMessage};
use crate::store::{OrderRecord, PartKind, PartPlan, mask_secret, reveals_key};

use super::plan::Plan;

/// What an image message reads as in the conversation.
pub(super) const IMAGE_ECHO: &str = "[图片]";

/// Longest masked text a part keeps on the ledger row for the status page.
const SUMMARY_CHARS: usize = 200;

/// One chat message of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    Text {
        text: String,
        masked: String,
    },
    /// One of `delivery.images`, sent from its CDN copy (found by `sha256`).
    Image {
        path: String,
        sha256: String,
    },
}

impl Part {
    /// Its ledger plan; `cdn_url` finds an image's CDN URL by SHA-256 (for the status page).
    fn plan(&self, cdn_url: &dyn Fn(&str) -> Option<String>) -> PartPlan {
        match self {
            Part::Text { text, masked } => PartPlan {
                kind: PartKind::Text,
                summary: masked.chars().take(SUMMARY_CHARS).collect(),
                fingerprint: fingerprint(text.as_bytes()),
                url: None,
            },
            Part::Image { path, sha256 } => PartPlan {
                kind: PartKind::Image,
                summary: path.clone(),
                fingerprint: sha256.chars().take(16).collect(),
                url: cdn_url(sha256),
            },
        }
    }
}

/// The chat content of one delivery, in send order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Content {
    pub parts: Vec<Part>,
}

impl Content {
    /// The ledger plan of every part; `cdn_url` as in [`Part::plan`].
    pub fn plans(&self, cdn_url: &dyn Fn(&str) -> Option<String>) -> Vec<PartPlan> {
        self.parts.iter().map(|p| p.plan(cdn_url)).collect()
    }

    /// Every text with its keys masked (and each image as `[图片] path`), for the order's
    /// `ship_content`.
    pub fn masked(&self) -> String {
        let texts: Vec<String> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Text { masked, .. } => masked.clone(),
                Part::Image { path, .. } => format!("[图片] {path}"),
            })
            .collect();
        texts.join("\n———\n")
    }

    /// The chat message of text part `index`, if it is one.
    pub fn message(&self, order: &OrderRecord, index: usize) -> Option<DeliveryMessage> {
        match self.parts.get(index)? {
            Part::Text { text, masked } => Some(message(order, text, masked)),
            Part::Image { .. } => None,
        }
    }

    /// What part `index` reads as in the conversation when its echo comes back: the text, or
    /// `[图片]` for an image. Registered as the shop's own with the part's claim.
    pub fn echo(&self, index: usize) -> Option<String> {
        match self.parts.get(index)? {
            Part::Text { text, .. } => Some(text.clone()),
            Part::Image { .. } => Some(IMAGE_ECHO.to_string()),
        }
    }

    /// The texts only (real or masked), for the proof of delivery.
    fn texts(&self, plain: bool) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text, masked } => Some(if plain { text } else { masked }.as_str()),
                Part::Image { .. } => None,
            })
            .collect()
    }
}

/// The content for `order` with its reserved `cards`, or why there is none (a safe failure for
/// a human: nothing can have left).
pub(super) fn build(
    config: &Config,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
) -> Result<Content, String> {
    let Some(template) = plan.product.template.as_deref() else {
        return Err("商品没有配置发货模板 (template)".into());
    };
    if matches!(plan.product.stock, Stock::Cards { .. }) && cards.is_empty() {
        // Never send a card product's message without its keys (no stock-check ran, or the
        // SKU has no pool): nothing has left, so this is a safe failure for a human.
        return Err("卡密商品没有预留到卡密，未发送".into());
    }
    if plan.product.supplier.is_some() && cards.is_empty() {
        return Err("供应商卡密尚未取得，未发送".into());
    }
    let units = u32::try_from(cards.len()).unwrap_or(u32::MAX);
    let groups: Vec<(u32, &[String])> = match plan.product.delivery.shape {
        MessageShape::PerKey if !cards.is_empty() => cards
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                    std::slice::from_ref(c),
                )
            })
            .collect(),
        _ => vec![(0, cards)],
    };
    let mut parts = Vec::with_capacity(groups.len());
    for (unit, keys) in groups {
        let (text, masked) = render_both(
            view(config, plan, order, unit, units),
            |v| config.templates.render(template, v),
            keys,
            cards,
            "发货模板",
        )?;
        parts.push(Part::Text { text, masked });
    }
    // Images follow the text, so the buyer reads what they are for first.
    parts.extend(
        plan.product
            .delivery
            .images
            .iter()
            .map(|image| Part::Image {
                path: image.path.clone(),
                sha256: image.sha256.clone(),
            }),
    );
    Ok(Content { parts })
}

/// The follow-up message (`delivery.follow_up`), if the product has one: its text and masked
/// text, or why it cannot be rendered.
pub(super) fn follow_up(
    config: &Config,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
) -> Option<Result<(String, String), String>> {
    let template = plan.product.delivery.follow_up.as_deref()?;
    Some(render_whole(
        config,
        plan,
        order,
        template,
        cards,
        "附加消息模板",
    ))
}

/// The proof of delivery for the 无需寄件 form (`delivery.proof`), if the product asks for
/// one: the text the confirm call sends (keys masked unless the seller opted in with
/// `proof_cards: plain`) and the same text over masked keys (what the ledger keeps); or why
/// it cannot be built.
pub(super) fn proof(
    config: &Config,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
) -> Option<Result<ProofText, String>> {
    let plain = plan.product.delivery.proof_plain_cards;
    let text = match &plan.product.delivery.proof {
        Proof::Off => return None,
        Proof::Content => build(config, plan, order, cards).map(|c| ProofText {
            sent: c.texts(plain).join("\n"),
            masked: c.texts(false).join("\n"),
        }),
        Proof::Summary(template) => {
            render_whole(config, plan, order, template, cards, "发货凭证模板").map(
                |(text, masked)| ProofText {
                    sent: if plain { text } else { masked.clone() },
                    masked,
                },
            )
        }
    };
    Some(text)
}

/// A proof-of-delivery text: as sent, and over masked keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProofText {
    pub sent: String,
    pub masked: String,
}

/// The plan entry of a follow-up text (for its ledger marker).
pub(super) fn follow_up_plan(masked: &str, text: &str) -> PartPlan {
    Part::Text {
        text: text.to_string(),
        masked: masked.to_string(),
    }
    .plan(&|_| None)
}

/// Where the order's chat messages go.
pub(super) fn address(order: &OrderRecord) -> ChatAddress {
    ChatAddress {
        account: order.account.clone(),
        order_id: order.order_id.clone(),
        cid: order.chat_id.clone(),
        buyer_id: order.buyer_id.clone(),
        item_id: order.item_id.clone(),
    }
}

pub(super) fn message(order: &OrderRecord, text: &str, masked: &str) -> DeliveryMessage {
    DeliveryMessage {
        to: address(order),
        text: text.to_string(),
        masked_text: masked.to_string(),
    }
}

/// `template` rendered once over all of the order's keys (not per unit), and over them masked.
fn render_whole(
    config: &Config,
    plan: &Plan,
    order: &OrderRecord,
    template: &str,
    cards: &[String],
    what: &str,
) -> Result<(String, String), String> {
    let units = u32::try_from(cards.len()).unwrap_or(u32::MAX);
    render_both(
        view(config, plan, order, 0, units),
        |v| config.templates.render(template, v),
        cards,
        cards,
        what,
    )
}

/// `render` over the real `keys` (what the buyer gets) and over the same keys masked (what may
/// be kept): `(text, masked)`. A render error is reported as the masked render's, so an error
/// message quoting a value never carries a key into the ledger. `view` (its `cards` empty) is
/// built once for both renders.
fn render_both<E: std::fmt::Display>(
    mut view: DeliveryView,
    render: impl Fn(&DeliveryView) -> Result<String, E>,
    keys: &[String],
    all_keys: &[String],
    what: &str,
) -> Result<(String, String), String> {
    view.cards = keys.iter().map(|k| mask_secret(k)).collect();
    let masked = render(&view);
    view.cards = keys.to_vec();
    match render(&view) {
        Ok(t) if !t.trim().is_empty() => Ok((t, masked_content(masked.ok(), all_keys))),
        Ok(_) => Err(format!("{what}渲染结果为空")),
        Err(_) => {
            let why = match masked {
                Err(e) if !reveals_key(&e.to_string(), all_keys) => e.to_string(),
                _ => "模板在真实卡密上出错".to_string(),
            };
            Err(format!("{what}渲染失败: {why}"))
        }
    }
}

/// The masked render, unless it still shows a key (a template that spells a key some other
/// way) or did not render: then only what can be said without it.
fn masked_content(rendered: Option<String>, keys: &[String]) -> String {
    match rendered {
        Some(t) if !reveals_key(&t, keys) => t,
        Some(t) => format!(
            "（发货内容含卡密，不保存也不显示；共 {} 个字）",
            t.chars().count()
        ),
        None => "（发货内容含卡密，不保存也不显示）".to_string(),
    }
}

/// First 16 hex digits of the SHA-256: enough to tell contents apart, says nothing of them.
pub(super) fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// What a template sees of `order`, without its keys (`render_both` puts them in).
fn view(config: &Config, plan: &Plan, order: &OrderRecord, unit: u32, units: u32) -> DeliveryView {
    let account = config.account(&order.account);
    DeliveryView {
        order: OrderView {
            order_id: order.order_id.clone(),
            item_id: order.item_id.clone().unwrap_or_default(),
            item_title: order
                .item_title
                .clone()
                .unwrap_or_else(|| plan.product.title.clone()),
            buyer_id: order.buyer_id.clone().unwrap_or_default(),
            buyer_nick: order.buyer_nick.clone().unwrap_or_default(),
            sku: order.sku.clone().unwrap_or_default(),
            quantity: order.quantity,
            amount: order.amount.clone().unwrap_or_default(),
            paid_at: order
                .payment_time
                .map(crate::clock::format_beijing)
                .unwrap_or_default(),
        },
        product: ProductView {
            item_id: plan.product.item_id.clone(),
            title: plan.product.title.clone(),
            category: plan.product.category.as_str().to_string(),
        },
        cards: Vec::new(),
        unit,
        units,
        account: AccountView {
            id: order.account.clone(),
            name: account.map(|a| a.name.clone()).unwrap_or_default(),
        },
    }
}
