//! 发货凭证: the proof of delivery a confirm call carried, as a seller reads it. One typed view
//! for the 订单详情 page (and its JSON twin) and for `orders show`, so both say the same words.
//!
//! The store records the proof with every key already masked; nothing here unmasks one. With
//! `proof_cards: plain` the form got the keys in full, and the view says so instead of showing
//! them.

use serde::Serialize;

use crate::clock::format_beijing;
use crate::event::shown;
use crate::store::ConfirmProof;
use crate::why::shown_error;

/// The proof of delivery a confirm call carried, as the page shows it (keys masked).
#[derive(Debug, Clone, Serialize)]
pub struct ProofView {
    pub attempt: u32,
    pub at: u64,
    /// Which form, which attempt, when: `确认发货时填入“无需寄件”表单的内容，第 1 次确认，…`.
    pub summary: String,
    /// `tradeText` as sent (with `plain_cards`, the same text over masked keys).
    pub trade_text: String,
    pub plain_cards: bool,
    /// Set with `plain_cards`: the form had the keys in full, shown masked here.
    pub plain_note: Option<&'static str>,
    /// `picList`, in order.
    pub pic_list: Vec<LinkView>,
    /// Why the proof text could not be built, in Chinese.
    pub error: Option<String>,
    /// `error` as the sentence a seller reads.
    pub error_note: Option<String>,
}

/// A URL the platform answered; `link` only for http(s), so no other scheme becomes a link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub url: String,
    pub link: bool,
}

impl LinkView {
    pub fn new(url: &str) -> Self {
        let lower = url.to_ascii_lowercase();
        Self {
            url: url.to_string(),
            link: lower.starts_with("https://") || lower.starts_with("http://"),
        }
    }
}

impl ProofView {
    pub fn new(p: &ConfirmProof) -> Self {
        let error = p.error.as_deref().map(shown_error);
        Self {
            attempt: p.attempt,
            at: p.at,
            summary: format!(
                "确认发货时填入“无需寄件”表单的内容，第 {} 次确认，{}",
                p.attempt,
                format_beijing(p.at)
            ),
            trade_text: p.trade_text.clone(),
            plain_cards: p.plain_cards,
            plain_note: p
                .plain_cards
                .then_some("表单中的卡密为明文（proof_cards: plain），此处隐藏显示。"),
            pic_list: p.pic_list.iter().map(|u| LinkView::new(u)).collect(),
            error_note: error
                .as_deref()
                .map(|e| format!("凭证文字未能生成，已不带文字确认发货：{e}")),
            error,
        }
    }

    /// The `orders show` section: the same fields and words as the page, one per line, every
    /// line printable (control characters escaped).
    pub fn terminal_lines(&self) -> Vec<String> {
        let mut lines = vec![format!("发货凭证（{}）:", self.summary)];
        if !self.trade_text.is_empty() {
            lines.push("  凭证文字:".to_string());
            lines.extend(self.trade_text.lines().map(|l| format!("    {}", shown(l))));
            lines.extend(self.plain_note.map(|n| format!("  {n}")));
        } else if let Some(note) = &self.error_note {
            lines.push(format!("  凭证文字: {}", shown(note)));
        } else {
            lines.push("  凭证文字: —".to_string());
        }
        let pics: Vec<_> = self.pic_list.iter().map(|u| shown(&u.url)).collect();
        let pics = if pics.is_empty() {
            "—".to_string()
        } else {
            pics.join(" ")
        };
        lines.push(format!("  凭证图片: {pics}"));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(trade_text: &str, error: Option<&str>, pics: &[&str]) -> ConfirmProof {
        ConfirmProof {
            attempt: 2,
            at: 0,
            trade_text: trade_text.into(),
            plain_cards: false,
            pic_list: pics.iter().map(|p| p.to_string()).collect(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_proof_that_could_not_be_built_says_so_and_lists_its_images() {
        let p = proof(
            "",
            Some("模板渲染失败"),
            &["https://img.example/a.png", "x\u{7}y"],
        );
        let lines = ProofView::new(&p).terminal_lines();
        assert_eq!(
            lines,
            [
                "发货凭证（确认发货时填入“无需寄件”表单的内容，第 2 次确认，1970-01-01 08:00:00）:",
                "  凭证文字: 凭证文字未能生成，已不带文字确认发货：模板渲染失败",
                "  凭证图片: https://img.example/a.png x\\u{0007}y",
            ]
        );
    }

    #[test]
    fn the_text_prints_line_by_line_and_a_missing_part_as_a_dash() {
        let lines = ProofView::new(&proof("第一行\n第二行", None, &[])).terminal_lines();
        assert_eq!(
            lines[1..],
            ["  凭证文字:", "    第一行", "    第二行", "  凭证图片: —"]
        );
        let empty = ProofView::new(&proof("", None, &[])).terminal_lines();
        assert_eq!(empty[1], "  凭证文字: —");
    }
}
