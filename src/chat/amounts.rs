//! Finding amounts of money in chat text: the buyer's counter-offer and every number a model
//! reply names.
//!
//! Chat text writes money in many ways: `¥80`, `80元`, `80块`, `80块钱`, `80米` (slang),
//! `九块九`, `八十`, `一百二`, `5毛`, full-width digits. [`mentions`] finds all of them and
//! says whether each is *marked* as money (a currency sign or unit) or a *bare* number that
//! could be one ("最低80"). Numbers that are clearly something else — part of a word
//! (`Win10`), followed by a unit (`3天`, `128G`, `2台`) — are not mentions. Discounts
//! (`8折`, `打九折`) are reported separately because they are price promises in themselves.
//!
//! The scanner errs on the side of seeing money: a false mention only makes the guard fall
//! back to a template, a missed one could quote a price below the floor.

use crate::money::Cents;

/// One amount found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mention {
    pub value: Cents,
    /// Written with a currency sign or unit (元, 块, 米, ¥, rmb, 毛).
    pub marked: bool,
}

/// Everything money-like in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub amounts: Vec<Mention>,
    /// A discount was offered (`8折`, `打九折`).
    pub discount: bool,
}

/// Units after a number that make it not money.
const OTHER_UNITS: &[&str] = &[
    "天", "年", "月", "日", "号", "个", "次", "台", "人", "位", "小时", "钟头", "分钟", "分", "秒",
    "周", "星期", "寸", "张", "件", "本", "套", "份", "条", "部", "款", "代", "集", "季", "期",
    "页", "层", "楼", "岁", "点", "时", "%", "倍", "成", "斤", "克", "千克", "公斤", "米长",
    "厘米", "毫米", "公里", "码", "号码", "位数", "种", "遍", "首", "步", "秒钟", "兆", "核",
    "寸屏", "英寸", "毫安", "瓦", "伏", "帧", "句", "字", "楼层", "室", "颗", "块屏",
];
/// Units after a number that make it money.
const MONEY_UNITS: &[&str] = &["块钱", "元钱", "元", "块", "米", "rmb", "RMB", "毛", "角"];
/// Chinese idioms made of numerals that are not numbers.
const NUMERAL_IDIOMS: &[&str] = &["千万", "万一", "十分", "百分", "十足", "一万个", "万万"];

const CN_DIGITS: &[(char, u64)] = &[
    ('零', 0),
    ('〇', 0),
    ('一', 1),
    ('二', 2),
    ('两', 2),
    ('三', 3),
    ('四', 4),
    ('五', 5),
    ('六', 6),
    ('七', 7),
    ('八', 8),
    ('九', 9),
];

fn cn_digit(c: char) -> Option<u64> {
    CN_DIGITS.iter().find(|(d, _)| *d == c).map(|(_, v)| *v)
}

fn is_cn_numeral(c: char) -> bool {
    cn_digit(c).is_some() || matches!(c, '十' | '百' | '千' | '万')
}

/// Full-width ASCII (`０-９`, `．`, `￥` stays) to half-width, so `８０元` reads as `80元`.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' if c != '￥' => {
                char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c)
            }
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Finds every amount and discount in `text`.
pub fn mentions(text: &str) -> Scan {
    let chars: Vec<char> = normalize(text).chars().collect();
    let mut scan = Scan::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            i = arabic(&chars, i, &mut scan);
        } else if is_cn_numeral(c) {
            i = chinese(&chars, i, &mut scan);
        } else {
            i += 1;
        }
    }
    scan
}

fn rest(chars: &[char], from: usize) -> String {
    chars[from.min(chars.len())..].iter().take(6).collect()
}

/// After a number: skip spaces, then what follows.
fn after(chars: &[char], end: usize) -> (usize, String) {
    let mut j = end;
    while j < chars.len() && chars[j] == ' ' {
        j += 1;
    }
    (j, rest(chars, j))
}

fn money_unit(follow: &str) -> Option<&'static str> {
    // "一块儿" (together) is not money.
    MONEY_UNITS
        .iter()
        .copied()
        .find(|u| follow.starts_with(u) && !follow[u.len()..].starts_with('儿'))
}

fn other_unit(follow: &str) -> bool {
    OTHER_UNITS.iter().any(|u| follow.starts_with(u))
}

fn discount_unit(follow: &str) -> bool {
    follow.starts_with('折')
}

/// A currency sign or `rmb` just before position `start`.
fn currency_before(chars: &[char], start: usize) -> bool {
    let mut j = start;
    while j > 0 && chars[j - 1] == ' ' {
        j -= 1;
    }
    if j > 0 && matches!(chars[j - 1], '¥' | '￥' | '$') {
        return true;
    }
    let before: String = chars[j.saturating_sub(3)..j].iter().collect();
    before.eq_ignore_ascii_case("rmb")
}

fn arabic(chars: &[char], start: usize, scan: &mut Scan) -> usize {
    let mut end = start;
    while end < chars.len() && chars[end].is_ascii_digit() {
        end += 1;
    }
    // one decimal point followed by digits
    if end + 1 < chars.len() && chars[end] == '.' && chars[end + 1].is_ascii_digit() {
        end += 1;
        while end < chars.len() && chars[end].is_ascii_digit() {
            end += 1;
        }
    }
    // `Win10`, and `Windows 11` / `iPhone 13`: a number right after a Latin word is a name.
    let word_before = (start > 0 && chars[start - 1].is_ascii_alphabetic())
        || (start > 1
            && chars[start - 1] == ' '
            && is_product_word(&word_ending_at(chars, start - 1)));
    let text: String = chars[start..end].iter().collect();
    let value = parse_arabic(&text);
    let (j, follow) = after(chars, end);
    if word_before && !currency_before(chars, start) {
        return end; // Win10, iPhone13
    }
    let follow_lower = follow.to_ascii_lowercase();
    if let Some(unit) = money_unit(&follow).or(money_unit(&follow_lower)) {
        let unit_end = j + unit.chars().count();
        let (value, next) = with_small_change(chars, value, unit, unit_end);
        push(scan, value, true);
        return next;
    }
    if discount_unit(&follow) {
        scan.discount = true;
        return end;
    }
    if currency_before(chars, start) {
        push(scan, value, true);
        return end;
    }
    let letter_after = follow
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    if letter_after || other_unit(&follow) {
        return end; // 128G, 3天
    }
    push(scan, value, false);
    end
}

/// `9块9`, `九块九`: a single digit right after 块/元 is jiao. `5毛` is half a yuan.
fn with_small_change(
    chars: &[char],
    value: Option<Cents>,
    unit: &str,
    unit_end: usize,
) -> (Option<Cents>, usize) {
    let value = match (value, unit) {
        (Some(v), "毛" | "角") => Some(Cents(v.0 / 10)),
        (v, _) => v,
    };
    let next = chars.get(unit_end).copied();
    let jiao = next.and_then(|c| c.to_digit(10).map(u64::from).or(cn_digit(c)));
    // `30元一个月`: a digit that starts a quantity is not jiao.
    let digit_follows = chars
        .get(unit_end + 1)
        .is_some_and(|c| c.is_ascii_digit() || is_cn_numeral(*c))
        || other_unit(&rest(chars, unit_end + 1));
    match (value, jiao) {
        (Some(v), Some(d)) if matches!(unit, "块" | "元") && !digit_follows => {
            (Some(Cents(v.0 + d * 10)), unit_end + 1)
        }
        _ => (value, unit_end),
    }
}

/// The Latin word that ends right before position `end`.
fn word_ending_at(chars: &[char], end: usize) -> String {
    let start = chars[..end]
        .iter()
        .rposition(|c| !c.is_ascii_alphabetic())
        .map_or(0, |p| p + 1);
    chars[start..end].iter().collect()
}

/// A product or version name (`Windows`, `iPhone`, `Office`, `Pro`), as opposed to a word a
/// reply could put before a price (`OK 50`, `only 50`).
fn is_product_word(word: &str) -> bool {
    const MONEYISH: &[&str] = &[
        "ok", "okay", "only", "just", "price", "yuan", "rmb", "cny", "usd", "total",
    ];
    word.len() >= 3
        && word.chars().any(|c| c.is_ascii_lowercase())
        && !MONEYISH.contains(&word.to_ascii_lowercase().as_str())
}

fn parse_arabic(text: &str) -> Option<Cents> {
    match Cents::parse(text) {
        Ok(c) => Some(c),
        // More than two decimals: still money-like; truncate to fen.
        Err(crate::money::MoneyError::TooPrecise(_)) => {
            let (w, f) = text.split_once('.')?;
            Cents::parse(&format!("{w}.{}", &f[..2])).ok()
        }
        Err(_) => None,
    }
}

fn push(scan: &mut Scan, value: Option<Cents>, marked: bool) {
    // A number too large to hold is still a number: record it as the largest amount.
    let value = value.unwrap_or(Cents(u64::MAX));
    scan.amounts.push(Mention { value, marked });
}

fn chinese(chars: &[char], start: usize, scan: &mut Scan) -> usize {
    let mut end = start;
    while end < chars.len() && is_cn_numeral(chars[end]) {
        end += 1;
    }
    let run: String = chars[start..end].iter().collect();
    let (j, follow) = after(chars, end);
    if let Some(unit) = money_unit(&follow) {
        let unit_end = j + unit.chars().count();
        let (value, next) = with_small_change(chars, parse_chinese(&run), unit, unit_end);
        if value.is_some() {
            push(scan, value, true);
            return next;
        }
        return next;
    }
    if discount_unit(&follow) {
        scan.discount = true;
        return end;
    }
    let with_follow: String = chars[start..(end + 2).min(chars.len())].iter().collect();
    let idiom = NUMERAL_IDIOMS.iter().any(|i| with_follow.contains(i));
    let has_scale = run.chars().any(|c| matches!(c, '十' | '百' | '千' | '万'));
    if idiom || !has_scale || other_unit(&follow) {
        return end; // 一下, 三天, 十分感谢
    }
    if let Some(v) = parse_chinese(&run).filter(|v| v.0 >= 1000) {
        push(scan, Some(v), false);
    }
    end
}

/// `八十` → 80, `一百二` → 120 (a trailing digit after a scale is one step down),
/// `两千五百` → 2500, `十五` → 15, `九` → 9.
fn parse_chinese(run: &str) -> Option<Cents> {
    let mut total: u64 = 0;
    let mut section: u64 = 0;
    let mut digit: Option<u64> = None;
    let mut last_scale: u64 = 1;
    // 一百零五 = 105: a zero after a scale makes the trailing digit a unit digit.
    let mut zero_after_scale = false;
    for c in run.chars() {
        if let Some(d) = cn_digit(c) {
            zero_after_scale |= d == 0;
            digit = Some(d);
            continue;
        }
        zero_after_scale = false;
        let scale = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            '万' => 10_000,
            _ => return None,
        };
        if scale == 10_000 {
            section += digit.take().unwrap_or(0);
            total = (total + section).checked_mul(10_000)?;
            section = 0;
        } else {
            section += digit.take().unwrap_or(1) * scale;
        }
        last_scale = scale;
    }
    if let Some(d) = digit {
        // 一百二 = 120: a lone trailing digit after a scale above ten counts one place lower.
        section += if last_scale >= 100 && !zero_after_scale {
            d * (last_scale / 10)
        } else {
            d
        };
    }
    Some(Cents::from_yuan(total.checked_add(section)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(u64, bool)> {
        mentions(text)
            .amounts
            .iter()
            .map(|m| (m.value.0, m.marked))
            .collect()
    }

    #[test]
    fn marked_amounts_in_every_common_form() {
        assert_eq!(values("最低80元"), vec![(8000, true)]);
        assert_eq!(values("¥79.5 包邮"), vec![(7950, true)]);
        assert_eq!(values("80 块钱可以吗"), vec![(8000, true)]);
        assert_eq!(values("五十米出吗"), vec![(5000, true)]);
        assert_eq!(values("九块九"), vec![(990, true)]);
        assert_eq!(values("9块9"), vec![(990, true)]);
        assert_eq!(values("５毛"), vec![(50, true)]);
        assert_eq!(values("８０元"), vec![(8000, true)]);
        assert_eq!(values("一百二十块"), vec![(12000, true)]);
        assert_eq!(values("一百二块"), vec![(12000, true)]);
        assert_eq!(values("RMB 66"), vec![(6600, true)]);
        assert_eq!(values("OK 50吧"), vec![(5000, false)]);
        assert_eq!(values("only 50"), vec![(5000, false)]);
        assert_eq!(values("66rmb"), vec![(6600, true)]);
    }

    #[test]
    fn bare_numbers_count_but_other_units_do_not() {
        assert_eq!(values("最低80了"), vec![(8000, false)]);
        assert_eq!(values("两千五百"), vec![(250_000, false)]);
        assert!(values("有效期3天，支持2台设备，128G").is_empty());
        assert!(values("Win10 和 iPhone13 都能用").is_empty());
        assert!(values("支持 Windows 11 和 iPhone 13 Pro").is_empty());
        assert_eq!(values("RMB 66"), vec![(6600, true)]);
        assert_eq!(values("OK 50吧"), vec![(5000, false)]);
        assert_eq!(values("only 50"), vec![(5000, false)]);
        assert!(values("十分感谢，千万别急，一下就好，一块儿").is_empty());
        assert!(values("发货后24小时内").is_empty());
    }

    #[test]
    fn discounts_are_flagged() {
        assert!(mentions("给你打8折").discount);
        assert!(mentions("九折出").discount);
        assert!(!mentions("包邮").discount);
    }

    #[test]
    fn chinese_numerals_parse() {
        let p = |s: &str| parse_chinese(s).map(|c| c.0 / 100);
        assert_eq!(p("八十"), Some(80));
        assert_eq!(p("十五"), Some(15));
        assert_eq!(p("一百零五"), Some(105));
        assert_eq!(p("两百五"), Some(250));
        assert_eq!(p("三千五"), Some(3500));
        assert_eq!(p("一万二千"), Some(12000));
        assert_eq!(p("九"), Some(9));
    }
}
