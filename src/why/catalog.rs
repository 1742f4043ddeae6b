//! One instance of every [`Why`] variant and the English-sentence check, for the tests that
//! must render them all (`why` itself and `tests/status_reasons.rs`).

use super::*;

/// One instance of every [`Why`] variant. The exhaustive match in [`variant_index`] makes a
/// new variant a compile error until it is added to one of the families below.
pub fn every_why() -> Vec<Why> {
    let mut all = handed_to_seller();
    all.extend(delivery_failures(Failure::Refused));
    all.extend(progress_notes(Failure::Refused));
    all.extend(supplier_notes(Failure::Refused));
    all.extend(follow_up_notes(Failure::Refused));
    all.extend(failure_variety());
    all
}

/// A part of a split delivery, as the reasons about one part carry it.
fn sample_part() -> Option<PartRef> {
    Some(PartRef {
        index: 2,
        of: 3,
        image: true,
    })
}

/// Orders routed to the seller before any delivery attempt (stock, rules, blacklist, kind).
fn handed_to_seller() -> Vec<Why> {
    vec![
        Why::OutOfStock {
            pool: Some("office-2021".into()),
            item_id: None,
            needed: 1,
            available: 0,
        },
        Why::Blacklisted { buyer: "b1".into() },
        Why::NoItemId,
        Why::NoRule {
            item_id: "i1".into(),
        },
        Why::RuleInactive {
            item_id: "i1".into(),
        },
        Why::OtherAccount {
            item_id: "i1".into(),
            owner: "a".into(),
            account: "b".into(),
        },
        Why::Physical,
        Why::AutoShipOff,
        Why::ShippingOff,
        Why::NoPoolForSku {
            sku: "红色".into()
        },
        Why::NoShipStage,
    ]
}

/// Deliveries that failed, or whose outcome is not known.
fn delivery_failures(f: Failure) -> Vec<Why> {
    let part = sample_part();
    vec![
        Why::SendFailed {
            failure: f,
            attempts: 3,
        },
        Why::ConfirmFailed {
            failure: f,
            attempts: 3,
            message_sent: true,
        },
        Why::SupplierFailed { failure: f },
        Why::UploadFailed {
            failure: f,
            attempts: 2,
            image: "images/guide.png".into(),
        },
        Why::SupplierUncertain {
            unit: 1,
            failure: None,
        },
        Why::OutcomeUnknown {
            failure: Failure::NoAnswer,
            part,
        },
        Why::Interrupted { part: None },
        Why::Unbuildable,
        Why::InternalError,
        Why::SellerTakesOver {
            operator: "alice".into(),
        },
    ]
}

/// The timeline's progress notes.
fn progress_notes(f: Failure) -> Vec<Why> {
    vec![
        Why::AttemptFailed {
            failure: f,
            part: sample_part(),
        },
        Why::Due {
            at_ms: 1_700_000_000_000,
        },
        Why::Attempt { n: 2 },
        Why::Accepted,
        Why::Confirmed,
        Why::Rearmed {
            operator: "alice".into(),
        },
        Why::Replanned,
        Why::CancelledBeforeDelivery,
        Why::KeysRevoked,
    ]
}

/// The card supplier's steps.
fn supplier_notes(f: Failure) -> Vec<Why> {
    vec![
        Why::SupplierFetched { unit: 1 },
        Why::SupplierNotBought {
            unit: 1,
            failure: f,
        },
        Why::SupplierReturned { unit: 1 },
        Why::SupplierReturnFailed {
            unit: 1,
            failure: f,
        },
    ]
}

/// The after-delivery follow-up message.
fn follow_up_notes(f: Failure) -> Vec<Why> {
    vec![
        Why::FollowUpSent,
        Why::FollowUpUnknown { failure: Some(f) },
        Why::FollowUpFailed {
            failure: f,
            gave_up: true,
        },
        Why::FollowUpUnbuildable,
    ]
}

/// Every failure kind inside the reasons that show it most, and stock counted per item.
fn failure_variety() -> Vec<Why> {
    let mut all = Vec::new();
    for failure in Failure::ALL {
        all.push(Why::SendFailed {
            failure,
            attempts: 1,
        });
        all.push(Why::ConfirmFailed {
            failure,
            attempts: 1,
            message_sent: false,
        });
    }
    all.push(Why::OutOfStock {
        pool: None,
        item_id: Some("i1".into()),
        needed: 2,
        available: -1,
    });
    all
}

pub fn variant_index(w: &Why) -> usize {
    match w {
        Why::OutOfStock { .. } => 0,
        Why::Blacklisted { .. } => 1,
        Why::NoItemId => 2,
        Why::NoRule { .. } => 3,
        Why::RuleInactive { .. } => 4,
        Why::OtherAccount { .. } => 5,
        Why::Physical => 6,
        Why::AutoShipOff => 7,
        Why::ShippingOff => 8,
        Why::NoPoolForSku { .. } => 9,
        Why::NoShipStage => 10,
        Why::SendFailed { .. } => 11,
        Why::ConfirmFailed { .. } => 12,
        Why::SupplierFailed { .. } => 13,
        Why::SupplierUncertain { .. } => 14,
        Why::OutcomeUnknown { .. } => 15,
        Why::Interrupted { .. } => 16,
        Why::Unbuildable => 17,
        Why::InternalError => 18,
        Why::SellerTakesOver { .. } => 19,
        Why::AttemptFailed { .. } => 20,
        Why::Due { .. } => 21,
        Why::Attempt { .. } => 22,
        Why::Accepted => 23,
        Why::Confirmed => 24,
        Why::Rearmed { .. } => 25,
        Why::Replanned => 26,
        Why::CancelledBeforeDelivery => 27,
        Why::KeysRevoked => 28,
        Why::SupplierFetched { .. } => 29,
        Why::SupplierNotBought { .. } => 30,
        Why::SupplierReturned { .. } => 31,
        Why::SupplierReturnFailed { .. } => 32,
        Why::FollowUpSent => 33,
        Why::FollowUpUnknown { .. } => 34,
        Why::FollowUpFailed { .. } => 35,
        Why::FollowUpUnbuildable => 36,
        Why::UploadFailed { .. } => 37,
    }
}

pub const VARIANTS: usize = 38;

/// A run of ASCII words outside backticks, three words or more: an English sentence (or a
/// raw error) where a seller reads. Commands in backticks and ids are fine.
pub fn english_sentence(text: &str) -> Option<String> {
    let outside: String = text
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(" ");
    let mut words = 0;
    let mut run = String::new();
    for c in outside.chars().chain(std::iter::once('。')) {
        let ends_word = run.chars().last().is_some_and(|l| l.is_ascii_alphabetic());
        if c.is_ascii_alphabetic() || c == '_' || c == '\'' {
            run.push(c);
        } else if c.is_ascii_digit() {
        } else if c.is_ascii() {
            if ends_word {
                words += 1;
                run.push(' ');
            }
        } else {
            if ends_word {
                words += 1;
            }
            if words >= 3 {
                return Some(run);
            }
            words = 0;
            run.clear();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_chinese(s: &str) -> bool {
        s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_reason_renders_in_chinese_with_a_next_step_when_it_needs_one() {
        let all = every_why();
        let mut seen = [false; VARIANTS];
        for w in &all {
            seen[variant_index(w)] = true;
            let label = w.label();
            assert!(has_chinese(&label), "{w:?} renders {label:?}");
            assert_eq!(english_sentence(&label), None, "{w:?} renders {label:?}");
            let next = w.next_step("3002");
            assert_eq!(w.is_problem(), next.is_some(), "{w:?}: next step {next:?}");
            if let Some(next) = next {
                assert!(has_chinese(&next), "{w:?}: {next:?}");
                assert_eq!(english_sentence(&next), None, "{w:?}: {next:?}");
                assert!(
                    next.contains("3002")
                        || next.contains("check")
                        || next.contains("cookies_file")
                );
            }
            // Stored as JSON and read back unchanged.
            let json = serde_json::to_string(w).unwrap();
            assert_eq!(&serde_json::from_str::<Why>(&json).unwrap(), w);
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|i| !seen[*i]).collect();
        assert!(
            missing.is_empty(),
            "variants without an example: {missing:?}"
        );
        for f in Failure::ALL {
            assert!(has_chinese(f.label()) && has_chinese(f.advice()), "{f:?}");
            assert_eq!(english_sentence(f.advice()), None, "{f:?}");
        }
    }

    #[test]
    fn the_english_detector_finds_raw_errors_and_passes_commands() {
        assert!(english_sentence("库存不足：out of stock: needs 1, 0 available").is_some());
        assert!(english_sentence("Connection refused (os error 111)").is_some());
        assert!(english_sentence("attempt 2").is_none());
        assert!(english_sentence("运行 `xianyu-shopd orders retry 3002` 重新发货").is_none());
        assert!(english_sentence("写入 cookies_file 指定的文件").is_none());
    }

    #[test]
    fn raw_errors_classify_to_the_step_a_seller_can_take() {
        let cases = [
            (
                "account `main` has no Goofish connection",
                Failure::NotConnected,
            ),
            (
                "cannot connect: IO error: Connection refused (os error 111)",
                Failure::Refused,
            ),
            (
                "no answer to /r/MessageSend/sendByReceiverScope",
                Failure::NoAnswer,
            ),
            (
                "login expired (FAIL_SYS_SESSION_EXPIRED): fresh cookies are needed",
                Failure::LoginExpired,
            ),
            (
                "risk control (RGV587_ERROR): solve the slider",
                Failure::RiskControl,
            ),
            ("not delivered: CSI_FORBID", Failure::Forbidden),
            ("buyer id unknown", Failure::BuyerUnknown),
            ("HTTP status 503", Failure::ServerError),
            (
                "rate limited (FAIL_SYS_USER_FLOW_LIMIT)",
                Failure::RateLimited,
            ),
            ("something odd", Failure::Other),
        ];
        for (raw, want) in cases {
            assert_eq!(Failure::classify(raw), want, "{raw}");
        }
    }
}
