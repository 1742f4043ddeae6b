//! Bargaining arithmetic and the price guard, as pure functions.
//!
//! The program decides the price; a model may only phrase it (xianyu-Plus's design,
//! anchors-2026 §2(a)). [`next_offer`] computes this round's offer from the seller's
//! `bargain: { floor, step, max_rounds }`, the previous offer and the buyer's own proposal.
//! [`PriceGuard`] then checks any text about to reach a buyer: every amount it names must be
//! one the program allowed, nothing may be below the floor, and it may not promise a price
//! change ("已改价", "直接拍").

use std::collections::BTreeSet;

use super::amounts::{Scan, mentions};
use crate::config::chat::BargainRule;
use crate::money::Cents;

/// Where bargaining with one buyer over one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BargainState {
    pub rounds: u32,
    pub last_offer: Option<Cents>,
}

/// This round's answer to a bargaining buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// A new (or the buyer's own) price, counted as round `round`.
    Counter {
        offer: Cents,
        round: u32,
        /// The buyer's own proposal was acceptable and is the offer.
        buyer_accepted: bool,
    },
    /// No more room: the rounds are used up or the price is already at the floor. The
    /// reply is the fixed "final" text at this price; the round count does not move.
    Final { offer: Cents },
}

impl Offer {
    pub fn price(&self) -> Cents {
        match self {
            Self::Counter { offer, .. } | Self::Final { offer } => *offer,
        }
    }
}

/// `max(floor, last − step)`, or the buyer's own offer when it lies between that and the last
/// offer. `list` is the current list price; the first round starts from it.
pub fn next_offer(
    rule: &BargainRule,
    list: Cents,
    state: &BargainState,
    buyer: Option<Cents>,
) -> Offer {
    let last = state.last_offer.unwrap_or(list).min(list);
    if list <= rule.floor {
        // Nothing to give: the listing is at (or below) the floor already.
        return Offer::Final { offer: list };
    }
    if state.rounds >= rule.max_rounds || last <= rule.floor {
        return Offer::Final {
            offer: last.max(rule.floor),
        };
    }
    let candidate = last.saturating_sub(rule.step).max(rule.floor);
    let round = state.rounds + 1;
    match buyer {
        // A buyer offering at least our last price gets our last price: what was quoted holds.
        Some(b) if b >= last => Offer::Counter {
            offer: last,
            round,
            buyer_accepted: true,
        },
        Some(b) if b >= candidate => Offer::Counter {
            offer: b,
            round,
            buyer_accepted: true,
        },
        _ => Offer::Counter {
            offer: candidate,
            round,
            buyer_accepted: false,
        },
    }
}

/// The amount a bargaining buyer proposes: the lowest money-like amount in their message
/// that is below the list price (`80行吗`, `八十出吗`, `¥75`).
pub fn buyer_offer(text: &str, list: Cents) -> Option<Cents> {
    mentions(text)
        .amounts
        .iter()
        .map(|m| m.value)
        .filter(|v| *v < list && v.0 > 0)
        .min()
}

/// Phrases that promise a price change or tell the buyer to order at a price the listing
/// does not show (xianyu-Plus's guard plus the variants models actually produce).
const PROMISES: &[&str] = &[
    "已改价",
    "改好价",
    "改好了",
    "已经改价",
    "改了价",
    "已修改价格",
    "帮你改价",
    "给你改价",
    "帮您改价",
    "给您改价",
    "改一下价",
    "改下价",
    "直接拍",
    "直接下单",
    "拍下改价",
    "拍下后改",
    "拍了我改",
    "拍下我改",
    "私下交易",
    "线下交易",
    "转账",
    "返现",
    "退你差价",
    "退您差价",
];

/// Why a text may not reach the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceViolation {
    /// It promises a price change or an off-platform deal.
    Promise(&'static str),
    /// It offers a discount (`8折`).
    Discount,
    BelowFloor(Cents),
    /// An amount the program did not allow.
    Unexpected(Cents),
}

impl PriceViolation {
    /// What the seller reads.
    pub fn label(&self) -> String {
        match self {
            Self::Promise(p) => format!("承诺改价或场外交易（“{p}”）"),
            Self::Discount => "擅自给出折扣".into(),
            Self::BelowFloor(c) => format!("报价 {c} 元低于底价"),
            Self::Unexpected(c) => format!("提到了未允许的金额 {c} 元"),
        }
    }
}

/// Which amounts a reply may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceGuard {
    /// Amounts that may appear marked as money (`85元`) or bare.
    money: BTreeSet<Cents>,
    /// Bare numbers the seller wrote (in the title, facts, description); never as money.
    bare: BTreeSet<Cents>,
    /// Nothing below this may appear unless the seller wrote it as money.
    floor: Option<Cents>,
}

impl PriceGuard {
    /// For a bargaining reply: only this round's offer and the list price.
    pub fn for_offer(offer: Cents, list: Cents, floor: Cents, title: &str) -> Self {
        Self {
            money: [offer, list].into_iter().collect(),
            bare: numbers_in(&[title]),
            floor: Some(floor.min(offer)),
        }
    }

    /// For any other reply: the list price and the amounts the seller wrote in the item's
    /// texts. Without a bargain rule the floor is the list price itself (no discounts).
    pub fn general(list: Option<Cents>, floor: Option<Cents>, seller_texts: &[&str]) -> Self {
        let written: BTreeSet<Cents> = seller_texts
            .iter()
            .flat_map(|t| {
                mentions(t)
                    .amounts
                    .into_iter()
                    .filter(|m| m.marked)
                    .map(|m| m.value)
            })
            .collect();
        Self {
            money: list.into_iter().chain(written).collect(),
            bare: numbers_in(seller_texts),
            floor: floor.or(list),
        }
    }

    /// The first violation in `text`, if any.
    pub fn check(&self, text: &str) -> Result<(), PriceViolation> {
        if let Some(p) = promise_in(text) {
            return Err(PriceViolation::Promise(p));
        }
        let Scan { amounts, discount } = mentions(text);
        if discount {
            return Err(PriceViolation::Discount);
        }
        for m in amounts {
            if self.money.contains(&m.value) {
                continue;
            }
            let below = self.floor.is_some_and(|f| m.value < f);
            if !m.marked && self.bare.contains(&m.value) && !below {
                continue;
            }
            return Err(if below {
                PriceViolation::BelowFloor(m.value)
            } else {
                PriceViolation::Unexpected(m.value)
            });
        }
        Ok(())
    }
}

fn promise_in(text: &str) -> Option<&'static str> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    PROMISES.iter().copied().find(|p| compact.contains(p))
}

/// Every number written in the seller's texts, as a bare amount.
fn numbers_in(texts: &[&str]) -> BTreeSet<Cents> {
    let mut out = BTreeSet::new();
    for t in texts {
        let normalized = super::amounts::normalize(t);
        for run in normalized.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            if let Ok(c) = Cents::parse(run.trim_matches('.')) {
                out.insert(c);
            }
        }
        out.extend(mentions(t).amounts.into_iter().map(|m| m.value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(floor: u64, step: u64, max_rounds: u32) -> BargainRule {
        BargainRule {
            floor: Cents::from_yuan(floor),
            step: Cents::from_yuan(step),
            max_rounds,
        }
    }

    fn y(n: u64) -> Cents {
        Cents::from_yuan(n)
    }

    #[test]
    fn offers_step_down_to_the_floor_and_stop_at_the_round_limit() {
        let r = rule(80, 5, 3);
        let mut st = BargainState::default();
        let mut offers = Vec::new();
        for _ in 0..5 {
            let o = next_offer(&r, y(99), &st, None);
            if let Offer::Counter { offer, round, .. } = o {
                st = BargainState {
                    rounds: round,
                    last_offer: Some(offer),
                };
            }
            offers.push(o);
        }
        assert_eq!(
            offers,
            vec![
                Offer::Counter {
                    offer: y(94),
                    round: 1,
                    buyer_accepted: false
                },
                Offer::Counter {
                    offer: y(89),
                    round: 2,
                    buyer_accepted: false
                },
                Offer::Counter {
                    offer: y(84),
                    round: 3,
                    buyer_accepted: false
                },
                Offer::Final { offer: y(84) },
                Offer::Final { offer: y(84) },
            ]
        );
        // the floor holds even when a step would cross it
        let st = BargainState {
            rounds: 1,
            last_offer: Some(y(82)),
        };
        assert_eq!(
            next_offer(&r, y(99), &st, None),
            Offer::Counter {
                offer: y(80),
                round: 2,
                buyer_accepted: false
            }
        );
        let at_floor = BargainState {
            rounds: 2,
            last_offer: Some(y(80)),
        };
        assert_eq!(
            next_offer(&r, y(99), &at_floor, None),
            Offer::Final { offer: y(80) }
        );
    }

    #[test]
    fn the_buyers_own_offer_wins_when_it_is_between() {
        let r = rule(80, 10, 5);
        let st = BargainState::default();
        // candidate 89, last 99: 92 is between
        assert_eq!(
            next_offer(&r, y(99), &st, Some(y(92))),
            Offer::Counter {
                offer: y(92),
                round: 1,
                buyer_accepted: true
            }
        );
        // below the candidate: the candidate
        assert_eq!(
            next_offer(&r, y(99), &st, Some(y(50))),
            Offer::Counter {
                offer: y(89),
                round: 1,
                buyer_accepted: false
            }
        );
        // a listing at the floor has no room
        assert_eq!(
            next_offer(&r, y(80), &st, Some(y(70))),
            Offer::Final { offer: y(80) }
        );
    }

    #[test]
    fn buyer_offers_are_read_from_text() {
        assert_eq!(buyer_offer("80行吗", y(99)), Some(y(80)));
        assert_eq!(buyer_offer("八十块出吗", y(99)), Some(y(80)));
        assert_eq!(buyer_offer("能便宜点吗", y(99)), None);
        assert_eq!(buyer_offer("原价99，70可以吗", y(99)), Some(y(70)));
    }

    #[test]
    fn the_guard_allows_only_the_offer_and_the_list_price() {
        let g = PriceGuard::for_offer(y(85), y(99), y(80), "Office 2021 激活码");
        assert_eq!(g.check("亲，最低85元，诚心要可以拍哦"), Ok(()));
        assert_eq!(g.check("原价99，现在85给你"), Ok(()));
        assert_eq!(g.check("支持Office 2021"), Ok(()));
        assert_eq!(g.check("那就75吧"), Err(PriceViolation::BelowFloor(y(75))));
        assert_eq!(g.check("88元吧"), Err(PriceViolation::Unexpected(y(88))));
        assert_eq!(g.check("七十元出"), Err(PriceViolation::BelowFloor(y(70))));
        assert_eq!(
            g.check("已改价，85元"),
            Err(PriceViolation::Promise("已改价"))
        );
        assert_eq!(
            g.check("你直接 拍吧"),
            Err(PriceViolation::Promise("直接拍"))
        );
        assert_eq!(g.check("给你打9折"), Err(PriceViolation::Discount));
    }

    #[test]
    fn the_general_guard_allows_what_the_seller_wrote() {
        let g = PriceGuard::general(Some(y(99)), None, &["续费30元/月", "支持3台设备 Win10"]);
        assert_eq!(g.check("续费是30元一个月，支持3台"), Ok(()));
        assert_eq!(g.check("现在99元"), Ok(()));
        // without a bargain rule there is no discount at all
        assert_eq!(g.check("给你95吧"), Err(PriceViolation::BelowFloor(y(95))));
        assert_eq!(g.check("120元"), Err(PriceViolation::Unexpected(y(120))));
    }
}
