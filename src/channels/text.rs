//! Length limits: every channel caps its message, in bytes or in characters, and a cut must
//! never split a UTF-8 sequence (a half character makes some APIs reject the whole body).

/// Appended when a message had to be cut, so the seller knows to look elsewhere.
pub const CUT_MARK: &str = "…（内容过长已截断）";

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(CUT_MARK.len());
    let mut end = room.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    if room == 0 {
        return floor_bytes(CUT_MARK, max).to_string();
    }
    format!("{}{CUT_MARK}", &text[..end])
}

/// `text` cut to at most `max` characters, marked when cut.
pub fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mark = CUT_MARK.chars().count();
    if max <= mark {
        return text.chars().take(max).collect();
    }
    let kept: String = text.chars().take(max - mark).collect();
    format!("{kept}{CUT_MARK}")
}

/// At most `max` characters, no mark: for short fields such as SMS parameters and titles.
pub fn clip_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The longest prefix of at most `max` bytes that ends on a character boundary.
pub fn floor_bytes(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `content` starting with the bot's custom keyword when it lacks it (DingTalk and Feishu drop
/// messages without the keyword their bot was set up with).
pub fn with_keyword(content: String, keyword: Option<&str>) -> String {
    match keyword.filter(|k| !content.contains(*k)) {
        Some(k) => format!("{k} {content}"),
        None => content,
    }
}

/// Title and text as one message body (IM bots have no separate title field).
pub fn headed(title: &str, text: &str) -> String {
    if title.is_empty() {
        return text.trim_end().to_string();
    }
    format!("{title}\n{}", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_cut_lands_on_a_char_boundary_and_fits() {
        let text = "订单需要手动发货".repeat(200);
        for max in [10, 100, 2048, 4095] {
            let cut = cut_bytes(&text, max);
            assert!(cut.len() <= max, "{} > {max}", cut.len());
            assert!(cut.ends_with(CUT_MARK) || max < CUT_MARK.len());
        }
        assert_eq!(cut_bytes("短", 2048), "短");
    }

    #[test]
    fn char_cut_counts_characters() {
        let text = "闲".repeat(5000);
        let cut = cut_chars(&text, 4096);
        assert_eq!(cut.chars().count(), 4096);
        assert!(cut.ends_with(CUT_MARK));
        assert_eq!(clip_chars("阿里云短信测试", 3), "阿里云");
        assert_eq!(floor_bytes("阿里", 4), "阿");
    }
}
