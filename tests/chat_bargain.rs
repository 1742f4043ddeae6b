//! Bargaining: 1,000 random model outputs — amounts in every form people write them, below
//! the floor, above the list price, "已改价", discounts — go through the real bargain stage,
//! the output guard and the store. Nothing below the floor ever reaches the buyer, nothing the
//! program did not allow passes as the model wrote it, and the round limit holds.
//!
//! The oracle is the generator: it knows every amount it put into a model output, so the
//! test does not trust the guard's own amount scanner.

use std::time::Duration;

use proptest::prelude::*;
use xianyu_shopd::chat::input::{ChatInput, InputKind};
use xianyu_shopd::chat::price::{BargainState, Offer, buyer_offer, next_offer};
use xianyu_shopd::chat::stage::{ChatCtx, ItemFacts, Question, Step};
use xianyu_shopd::chat::stages::{AfterModel, ModelOutcome, after_model, bargain};
use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::config::chat::{
    BargainParams, BargainRule, ChatTexts, DEFAULT_BARGAIN_WORDS, LlmParams, OnModelError,
    ProductChat,
};
use xianyu_shopd::llm::Completion;
use xianyu_shopd::money::Cents;
use xianyu_shopd::store::{ChatEffect, NewInbound, PlanOutcome, PlannedReply, Store};

const LIST: u64 = 99_00;

/// One piece of a generated model output.
#[derive(Debug, Clone)]
enum Piece {
    Filler(&'static str),
    /// An amount of money written in one of the usual forms.
    Amount(u64, Form),
    Forbidden(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Yuan,
    Kuai,
    KuaiQian,
    Sign,
    Bare,
    Chinese,
    ChineseYuan,
}

const FILLERS: &[&str] = &[
    "亲",
    "这个价格很实在了",
    "诚心要的话可以拍",
    "真的不能再少了",
    "包您满意",
    "老客户啦",
    "今天就发",
];
const FORBIDDEN: &[&str] = &[
    "已改价",
    "直接拍",
    "改好价了",
    "打8折",
    "直接下单就行",
    "帮你改价",
];

fn cn(n: u64) -> String {
    const D: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    let (q, b, s, g) = (n / 1000, n / 100 % 10, n / 10 % 10, n % 10);
    let mut out = String::new();
    if q > 0 {
        out += &format!("{}千", D[q as usize]);
    }
    if b > 0 {
        out += &format!("{}百", D[b as usize]);
    } else if q > 0 && (s > 0 || g > 0) {
        out += "零";
    }
    if s > 0 {
        out += &format!("{}十", D[s as usize]);
    } else if (q > 0 || b > 0) && g > 0 && !out.ends_with('零') {
        out += "零";
    }
    if g > 0 {
        out += D[g as usize];
    }
    out
}

impl Piece {
    fn text(&self) -> String {
        match self {
            Piece::Filler(f) | Piece::Forbidden(f) => f.to_string(),
            Piece::Amount(c, form) => {
                let m = Cents(*c).to_string();
                match form {
                    Form::Yuan => format!("{m}元"),
                    Form::Kuai => format!("{m}块"),
                    Form::KuaiQian => format!("{m}块钱"),
                    Form::Sign => format!("¥{m}"),
                    Form::Bare => m,
                    Form::Chinese => cn(c / 100),
                    Form::ChineseYuan => format!("{}元", cn(c / 100)),
                }
            }
        }
    }
}

fn amount() -> impl Strategy<Value = Piece> {
    let form = prop_oneof![
        Just(Form::Yuan),
        Just(Form::Kuai),
        Just(Form::KuaiQian),
        Just(Form::Sign),
        Just(Form::Bare),
        Just(Form::Chinese),
        Just(Form::ChineseYuan),
    ];
    // Whole yuan from 1 to 200 (around floor, offer and list price), sometimes with fen.
    let value = prop_oneof![
        (1u64..=200).prop_map(|y| y * 100),
        (1u64..=200, 1u64..=99).prop_map(|(y, f)| y * 100 + f),
    ];
    (value, form).prop_map(|(v, form)| match form {
        // Chinese numerals are written for whole yuan of at least 10 (a bare "九" is no price).
        Form::Chinese | Form::ChineseYuan => Piece::Amount((v / 100).max(10) * 100, form),
        other => Piece::Amount(v, other),
    })
}

fn piece(offer: u64) -> impl Strategy<Value = Piece> {
    let allowed_form = prop_oneof![
        Just(Form::Yuan),
        Just(Form::Kuai),
        Just(Form::Sign),
        Just(Form::Bare),
        Just(Form::ChineseYuan)
    ];
    prop_oneof![
        3 => prop::sample::select(FILLERS).prop_map(Piece::Filler),
        3 => amount(),
        // the offer itself and the list price, so some outputs are acceptable
        2 => (prop_oneof![Just(offer), Just(LIST)], allowed_form).prop_map(|(v, f)| Piece::Amount(v, f)),
        1 => prop::sample::select(FORBIDDEN).prop_map(Piece::Forbidden),
    ]
}

struct Shop {
    store: Store,
    texts: ChatTexts,
    product: ProductChat,
    item: ItemFacts,
    model: LlmParams,
    params: BargainParams,
    clock: std::sync::Arc<ManualClock>,
    seq: u64,
}

impl Shop {
    fn new(rule: BargainRule) -> Self {
        let clock = std::sync::Arc::new(ManualClock::new(1_780_000_000_000));
        Self {
            store: Store::in_memory(clock.clone()).unwrap(),
            texts: ChatTexts::default(),
            product: ProductChat {
                price: Some(Cents(LIST)),
                bargain: Some(rule),
                ..ProductChat::default()
            },
            item: ItemFacts {
                item_id: "900".into(),
                title: "Office 2021 激活码".into(),
                price: Some(Cents(LIST)),
                description: String::new(),
            },
            model: LlmParams {
                base_url: "http://127.0.0.1:9/v1".into(),
                model: "m".into(),
                api_key: None,
                timeout: Duration::from_secs(5),
                max_tokens: 100,
                temperature: 0.5,
                history_turns: 10,
                max_chars: 200,
                system_template: "chat/system.txt.j2".into(),
                on_error: OnModelError::Fallthrough,
                extra: serde_json::Map::new(),
            },
            params: BargainParams {
                keywords: DEFAULT_BARGAIN_WORDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                use_model: true,
                reset_after: Duration::from_secs(24 * 3600),
                offer_template: "chat/bargain_offer.txt.j2".into(),
                final_template: "chat/bargain_final.txt.j2".into(),
            },
            clock,
            seq: 0,
        }
    }

    /// One buyer message through the bargain stage, the model (answering `output`), the guard
    /// and the store. Returns what the buyer gets and the committed offer, if any.
    fn round(&mut self, buyer_text: &str, output: &str) -> (Vec<String>, Option<Cents>, bool) {
        self.seq += 1;
        self.clock.advance_ms(1000);
        let input = ChatInput {
            account: "main".into(),
            cid: "c1".into(),
            message_id: format!("{}.PNM", self.seq),
            sender_id: "buyer".into(),
            sender_nick: None,
            item_id: Some("900".into()),
            text: buyer_text.into(),
            sent_at: None,
            kind: InputKind::Buyer,
        };
        let inbound = NewInbound {
            account: "main".into(),
            cid: "c1".into(),
            message_id: input.message_id.clone(),
            buyer_id: "buyer".into(),
            buyer_nick: None,
            item_id: Some("900".into()),
            text: buyer_text.into(),
            at: self.store.now(),
        };
        self.store.chat_record_inbound(&inbound).unwrap();
        let snapshot = self
            .store
            .chat_snapshot("main", "c1", Some("900"), "buyer", 10)
            .unwrap();
        let question = Question::merge(&[(input.message_id.clone(), buyer_text.into())], false);
        let ctx = ChatCtx {
            now: self.store.now(),
            input: &input,
            question: &question,
            snapshot: &snapshot,
            item: Some(&self.item),
            product: Some(&self.product),
            orders: &[],
            delivered_keys: &[],
            texts: &self.texts,
            shop: "小店",
            model: Some(&self.model),
        };
        let (answer, model_used) = match bargain::decide(&self.params, &ctx) {
            Step::Answer(a) => (a, false),
            Step::Ask(ask) => {
                let completion = Completion {
                    text: output.into(),
                    model: None,
                    finish_reason: None,
                    latency: Duration::ZERO,
                    attempts: 1,
                };
                let policy = AfterModel {
                    max_chars: 200,
                    delivered_keys: &[],
                    on_error: OnModelError::Fallthrough,
                };
                match after_model(&ask, Ok(completion), &policy) {
                    ModelOutcome::Answer(a) => (a, true),
                    ModelOutcome::Fallback { answer, .. } => (answer, false),
                    ModelOutcome::Failed { .. } => {
                        panic!("the bargain stage always has a fallback")
                    }
                }
            }
            other => panic!("a bargaining message must be answered, got {other:?}"),
        };
        let offer = answer.effects.iter().find_map(|e| match e {
            ChatEffect::Bargain { offer, .. } => Some(*offer),
            _ => None,
        });
        let plan = PlannedReply {
            account: "main".into(),
            cid: "c1".into(),
            buyer_id: "buyer".into(),
            inbound: vec![input.message_id.clone()],
            messages: answer.messages.clone(),
            stage: "bargain".into(),
            effects: answer.effects.clone(),
            images: Vec::new(),
        };
        assert!(matches!(
            self.store.chat_plan_reply(&plan).unwrap(),
            PlanOutcome::Planned(_)
        ));
        (answer.messages, offer, model_used)
    }
}

fn rule() -> impl Strategy<Value = BargainRule> {
    (50u64..=95, 1u64..=10, 1u32..=5).prop_map(|(floor, step, max_rounds)| BargainRule {
        floor: Cents::from_yuan(floor),
        step: Cents::from_yuan(step),
        max_rounds,
    })
}

/// A model output; `u64::MAX` amounts stand for "this round's offer", filled in by `render`.
fn output() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(piece(u64::MAX), 1..6)
}

fn render(pieces: &[Piece], offer: u64) -> (String, Vec<u64>, bool) {
    let mut amounts = Vec::new();
    let mut forbidden = false;
    let text = pieces
        .iter()
        .map(|p| match p {
            Piece::Amount(v, f) => {
                let v = if *v == u64::MAX { offer } else { *v };
                amounts.push(v);
                Piece::Amount(v, *f).text()
            }
            Piece::Forbidden(_) => {
                forbidden = true;
                p.text()
            }
            Piece::Filler(_) => p.text(),
        })
        .collect::<Vec<_>>()
        .join("，");
    (text, amounts, forbidden)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn nothing_below_the_floor_reaches_the_buyer_and_rounds_are_limited(
        rule in rule(),
        outputs in prop::collection::vec(output(), 1..8),
        buyer_offers in prop::collection::vec(prop::option::of(30u64..=98), 8),
    ) {
        let mut shop = Shop::new(rule);
        let mut counters = 0u32;
        let mut last_offer = Cents(LIST);
        for (i, pieces) in outputs.iter().enumerate() {
            let buyer = match buyer_offers[i] {
                Some(y) => format!("{y}行吗"),
                None => "能便宜点吗".to_string(),
            };
            // The price this round may name, from the state the store holds.
            let state = shop.store.chat_snapshot("main", "c1", Some("900"), "buyer", 1).unwrap().bargain;
            let state = BargainState {
                rounds: state.map_or(0, |b| b.rounds),
                last_offer: state.map(|b| b.last_offer),
            };
            let predicted = next_offer(&rule, Cents(LIST), &state, buyer_offer(&buyer, Cents(LIST)));
            let (text, amounts, forbidden) = render(pieces, predicted.price().0);
            let (messages, offer, model_used) = shop.round(&buyer, &text);
            let sent = messages.join("\n");

            match predicted {
                Offer::Counter { offer: p, .. } => {
                    let offer = offer.expect("a counter-offer is committed with the reply");
                    prop_assert_eq!(offer, p);
                    counters += 1;
                    prop_assert!(offer >= rule.floor, "offer {offer} below floor {}", rule.floor);
                    prop_assert!(offer <= last_offer, "offers never go up: {offer} after {last_offer}");
                    last_offer = offer;
                    if model_used {
                        prop_assert_eq!(&sent, &text);
                        prop_assert!(!forbidden, "a promise passed the guard: {}", text);
                        for a in &amounts {
                            prop_assert!(*a == offer.0 || *a == LIST, "amount {} passed (offer {offer}): {}", Cents(*a), text);
                            prop_assert!(Cents(*a) >= rule.floor);
                        }
                    } else {
                        // The fallback template names exactly the offer.
                        prop_assert!(sent.contains(&format!("{offer} 元")), "{}", sent);
                    }
                    // The guard is not a wall: a clean output with only allowed amounts passes.
                    let clean = !forbidden
                        && amounts.iter().all(|a| *a == offer.0 || *a == LIST)
                        && text.chars().count() <= 200;
                    prop_assert!(!clean || model_used, "clean output rejected: {}", text);
                }
                Offer::Final { offer: p } => {
                    // The fixed text at the last offer: no new price, no round counted.
                    prop_assert!(offer.is_none());
                    prop_assert!(!model_used);
                    prop_assert!(counters >= rule.max_rounds || p <= rule.floor,
                        "final reply before the round limit ({counters}/{})", rule.max_rounds);
                    prop_assert!(sent.contains(&format!("{p} 元")), "{}", sent);
                    prop_assert!(p >= rule.floor);
                }
            }
            prop_assert!(counters <= rule.max_rounds, "{counters} rounds > max {}", rule.max_rounds);
        }
    }
}

#[test]
fn chinese_numerals_in_the_generator_are_what_they_say() {
    assert_eq!(cn(85), "八十五");
    assert_eq!(cn(105), "一百零五");
    assert_eq!(cn(120), "一百二十");
    assert_eq!(cn(1005), "一千零五");
    assert_eq!(cn(10), "一十");
}
