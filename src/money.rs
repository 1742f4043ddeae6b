//! Money as whole cents: the one amount type config, chat pricing and templates share.
//!
//! Prices a seller writes (`price: 99`, `floor: 79.5`) and amounts found in chat text are parsed
//! into [`Cents`] exactly, never through floating point, so "79.9" is 7 990 cents and a price
//! comparison never rounds the wrong way. Leaf module: it imports nothing from the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in fen (1/100 元).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub u64);

/// Why a written amount is not money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an amount in yuan (write it like 99 or 79.5)")]
    NotAmount(String),
    #[error("`{0}` has more than two decimals (amounts are in yuan, to the fen)")]
    TooPrecise(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub fn from_yuan(yuan: u64) -> Self {
        Cents(yuan.saturating_mul(100))
    }

    /// Parses `99`, `99.5`, `99.50`, `¥99` (surrounding spaces ignored). Negative, empty and
    /// exponent forms are refused.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let t = text.trim().trim_start_matches(['¥', '￥']).trim();
        let bad = || MoneyError::NotAmount(text.to_string());
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) || (t.ends_with('.')) {
            return Err(bad());
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise(text.to_string()));
        }
        let whole: u64 = whole
            .parse()
            .map_err(|_| MoneyError::TooLarge(text.to_string()))?;
        let frac_cents = match frac.len() {
            0 => 0,
            1 => u64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse::<u64>().unwrap_or(0),
        };
        whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac_cents))
            .map(Cents)
            .ok_or_else(|| MoneyError::TooLarge(text.to_string()))
    }

    pub fn saturating_sub(self, other: Cents) -> Cents {
        Cents(self.0.saturating_sub(other.0))
    }
}

/// `99`, `79.5`, `0.05`: the shortest exact yuan form, the way a seller writes prices.
impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (yuan, fen) = (self.0 / 100, self.0 % 100);
        match fen {
            0 => write!(f, "{yuan}"),
            f10 if f10 % 10 == 0 => write!(f, "{yuan}.{}", f10 / 10),
            _ => write!(f, "{yuan}.{fen:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sellers_write() {
        assert_eq!(Cents::parse("99"), Ok(Cents(9900)));
        assert_eq!(Cents::parse(" 79.5 "), Ok(Cents(7950)));
        assert_eq!(Cents::parse("79.05"), Ok(Cents(7905)));
        assert_eq!(Cents::parse("¥12"), Ok(Cents(1200)));
        assert_eq!(Cents::parse("0.1"), Ok(Cents(10)));
        for bad in ["", "-1", "1e3", "abc", "1.", ".5", "1,000"] {
            assert!(
                matches!(Cents::parse(bad), Err(MoneyError::NotAmount(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Cents::parse("1.005"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Cents::parse("999999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_shortest_exact_form() {
        assert_eq!(Cents(9900).to_string(), "99");
        assert_eq!(Cents(7950).to_string(), "79.5");
        assert_eq!(Cents(7905).to_string(), "79.05");
        assert_eq!(Cents(5).to_string(), "0.05");
        for c in [0, 1, 10, 99, 100, 12345, 1_000_000] {
            assert_eq!(Cents::parse(&Cents(c).to_string()), Ok(Cents(c)));
        }
    }
}
