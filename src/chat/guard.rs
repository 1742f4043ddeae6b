//! The output guard: what any generated reply must pass before it may reach a buyer.
//!
//! A model's text is untrusted. [`OutputGuard::check`] cleans it (surrounding quotes, a
//! `卖家：` prefix, `<think>` blocks some local models emit) and rejects it when it is too
//! long, carries a link, a phone number or a WeChat/QQ id, contains any card key delivered in
//! this conversation, or breaks the [`PriceGuard`]. A rejected reply never goes out; the
//! stage falls back to its template or to silence, and the rejection is counted and shown.

use super::price::{PriceGuard, PriceViolation};

/// Why a reply was blocked. Stored and shown by its label; never contains the reply text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardRejection {
    Empty,
    TooLong {
        chars: usize,
        max: usize,
    },
    Link,
    Phone,
    ContactId,
    /// It contains a card key delivered in this conversation.
    CardKey,
    Price(PriceViolation),
}

impl GuardRejection {
    /// Short code for metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::Link => "link",
            Self::Phone => "phone",
            Self::ContactId => "contact_id",
            Self::CardKey => "card_key",
            Self::Price(PriceViolation::Promise(_)) => "price_promise",
            Self::Price(PriceViolation::Discount) => "discount",
            Self::Price(PriceViolation::BelowFloor(_)) => "below_floor",
            Self::Price(PriceViolation::Unexpected(_)) => "unexpected_amount",
        }
    }

    /// What the seller reads.
    pub fn label(&self) -> String {
        match self {
            Self::Empty => "模型回复为空".into(),
            Self::TooLong { chars, max } => format!("回复过长（{chars} 字，上限 {max} 字）"),
            Self::Link => "回复含链接".into(),
            Self::Phone => "回复含电话号码".into(),
            Self::ContactId => "回复含微信/QQ 等联系方式".into(),
            Self::CardKey => "回复含本会话已发出的卡密".into(),
            Self::Price(v) => v.label(),
        }
    }
}

/// The rules for one reply.
#[derive(Debug, Clone)]
pub struct OutputGuard<'a> {
    pub max_chars: usize,
    /// Every card key delivered in this conversation.
    pub delivered_keys: &'a [String],
    pub price: &'a PriceGuard,
}

const CONTACT_WORDS: &[&str] = &[
    "微信", "威信", "薇信", "v信", "vx", "wx", "weixin", "wechat", "加v", "+v", "qq", "扣扣",
    "企鹅", "电报", "telegram", "tg",
];
const LINK_WORDS: &[&str] = &["http://", "https://", "www.", "://"];
const TLDS: &[&str] = &[
    ".com", ".cn", ".net", ".org", ".io", ".me", ".top", ".xyz", ".cc", ".vip", ".link", ".ly",
    ".co", ".shop", ".site", ".online",
];

impl OutputGuard<'_> {
    /// The cleaned reply, or why it must not be sent.
    pub fn check(&self, raw: &str) -> Result<String, GuardRejection> {
        let text = clean(raw);
        if text.is_empty() {
            return Err(GuardRejection::Empty);
        }
        let chars = text.chars().count();
        if chars > self.max_chars {
            return Err(GuardRejection::TooLong {
                chars,
                max: self.max_chars,
            });
        }
        let lower = text.to_lowercase();
        if has_link(&lower) {
            return Err(GuardRejection::Link);
        }
        if contains_key(&text, self.delivered_keys) {
            return Err(GuardRejection::CardKey);
        }
        if has_phone(&lower) {
            return Err(GuardRejection::Phone);
        }
        if has_contact_id(&lower) {
            return Err(GuardRejection::ContactId);
        }
        self.price.check(&text).map_err(GuardRejection::Price)?;
        Ok(text)
    }
}

/// Strip what models wrap answers in: reasoning blocks, quotes, a speaker prefix.
pub fn clean(raw: &str) -> String {
    let mut text = raw.to_string();
    while let (Some(start), Some(end)) = (text.find("<think>"), text.find("</think>")) {
        if end < start {
            break;
        }
        text.replace_range(start..end + "</think>".len(), "");
    }
    let mut t = text.trim();
    for prefix in ["卖家：", "卖家:", "客服：", "客服:", "回复：", "回复:"] {
        t = t.strip_prefix(prefix).unwrap_or(t).trim();
    }
    let quoted = [('"', '"'), ('“', '”'), ('「', '」'), ('\'', '\'')]
        .iter()
        .find(|(o, c)| t.starts_with(*o) && t.ends_with(*c) && t.chars().count() >= 2);
    if let Some((o, c)) = quoted {
        t = t[o.len_utf8()..t.len() - c.len_utf8()].trim();
    }
    t.to_string()
}

fn has_link(lower: &str) -> bool {
    if LINK_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    // domain-looking: letters/digits, a dot and a known TLD followed by a non-letter
    TLDS.iter().any(|tld| {
        lower.match_indices(tld).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + tld.len()..].chars().next();
            before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphabetic())
        })
    })
}

/// Digits with the separators people put inside numbers removed.
fn digit_runs(lower: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = super::amounts::normalize(lower).chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            cur.push(*c);
            continue;
        }
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if between_digits && matches!(c, ' ' | '-' | '—') {
            continue;
        }
        if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// Seven or more digits in a row (spaces and dashes inside ignored): a phone, QQ or
/// landline number. Prices and specs are never that long.
fn has_phone(lower: &str) -> bool {
    digit_runs(lower).iter().any(|r| r.len() >= 7)
}

/// A contact word followed closely by something id-like (`vx: abc_123`, `加V abc123`).
fn has_contact_id(lower: &str) -> bool {
    CONTACT_WORDS.iter().any(|w| {
        lower.match_indices(w).any(|(i, _)| {
            // `wx`/`tg`/`qq` inside a longer latin word are not contact words
            let before = lower[..i].chars().next_back();
            if w.is_ascii() && before.is_some_and(|c| c.is_ascii_alphabetic()) {
                return false;
            }
            let tail: String = lower[i + w.len()..].chars().take(14).collect();
            id_like(&tail)
        })
    })
}

fn id_like(tail: &str) -> bool {
    let token: String = tail
        .trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, ':' | '：' | '号' | '是' | '=' | '-')
        })
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    token.len() >= 5
        && token
            .chars()
            .any(|c| c.is_ascii_digit() || c.is_ascii_alphabetic())
}

/// Letters and digits only, lower-cased: how a key is compared, whatever separators the
/// model put in or left out.
fn squash(s: &str) -> String {
    super::amounts::normalize(s)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Does the text contain a delivered key, or a long segment of one?
fn contains_key(text: &str, keys: &[String]) -> bool {
    let hay = squash(text);
    keys.iter().any(|key| {
        let whole = squash(key);
        if whole.len() >= 6 && hay.contains(&whole) {
            return true;
        }
        key.split(|c: char| !c.is_ascii_alphanumeric())
            .map(squash)
            .any(|seg| seg.len() >= 8 && hay.contains(&seg))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Cents;

    fn check(text: &str) -> Result<String, GuardRejection> {
        let price = PriceGuard::general(Some(Cents::from_yuan(99)), None, &[]);
        let keys = vec!["ABCD-EFGH-1234-5678".to_string()];
        OutputGuard {
            max_chars: 60,
            delivered_keys: &keys,
            price: &price,
        }
        .check(text)
    }

    #[test]
    fn clean_replies_pass_cleaned() {
        assert_eq!(
            check("“亲，在的，现货秒发～”").unwrap(),
            "亲，在的，现货秒发～"
        );
        assert_eq!(check("<think>想想</think>卖家：有货的").unwrap(), "有货的");
        assert_eq!(
            check("支持3台设备，售价99元").unwrap(),
            "支持3台设备，售价99元"
        );
    }

    #[test]
    fn every_forbidden_kind_is_caught() {
        assert_eq!(check(""), Err(GuardRejection::Empty));
        assert!(matches!(
            check(&"好".repeat(61)),
            Err(GuardRejection::TooLong { chars: 61, .. })
        ));
        assert_eq!(check("看这里 https://x.y"), Err(GuardRejection::Link));
        assert_eq!(check("去 taobao.com 买"), Err(GuardRejection::Link));
        assert_eq!(check("打我电话 138 0013 8000"), Err(GuardRejection::Phone));
        assert_eq!(check("加我vx：abc_12345"), Err(GuardRejection::ContactId));
        assert_eq!(
            check("Q Q 不行, qq号 ab12345"),
            Err(GuardRejection::ContactId)
        );
        assert_eq!(
            check("你的码是 abcd efgh 1234 5678"),
            Err(GuardRejection::CardKey)
        );
        assert_eq!(check("卡密ABCDEFGH12345678"), Err(GuardRejection::CardKey));
        assert!(matches!(check("给你80元"), Err(GuardRejection::Price(_))));
    }

    #[test]
    fn declining_to_share_contacts_is_fine() {
        assert!(check("不好意思，不方便加微信哦，闲鱼上聊就好").is_ok());
        assert!(check("拍下后系统自动发货，24小时内有效").is_ok());
    }
}
