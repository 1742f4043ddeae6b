//! Golden bytes of every positional record type (`codec.rs`): what the first schema-3 build
//! wrote (enum variants by name) and what the first schema-4 build wrote (coded enums,
//! `coded.rs`) must read as the same record in every later build.
//!
//! Each check decodes the committed bytes and compares them with the record built in code
//! today, then round-trips that record and a sparse one (every optional field empty). A
//! field inserted in the middle, reordered, retyped or made required, a renamed enum
//! variant, or a `skip_serializing_if` on a positional field fails here.
//!
//! **Appending a field** (the only allowed change, with `#[serde(default)]`): add it to the
//! records below with its DEFAULT value (the golden bytes predate it, so they must read as
//! the default), and never edit a golden string. A check failure prints the bytes of this
//! build, for a new schema version's goldens only.

use std::fmt::Debug;

use serde::de::DeserializeOwned;

use super::codec::{Positional, decode, encode_row};
use super::records::*;
use crate::order::{OrderStatus, ShipMode};
use crate::why::catalog::every_why;
use crate::why::{Failure, PartRef, Why};

const ORDER: &str = "dc0016b334313239383736353433323130393837363534a46d61696eb3353637383930313233343540676f6f\
    66697368ad32323038373635343332313039a6e5b08fe9b1bcac393030303532363434323737b54f66666963\
    65203230323120e6bf80e6b4bbe7a081a9e4b893e4b89ae7898802a531392e3930a8726566756e646564cf00\
    0001a22dfbafabcf000001a22dfbb3e5a66d616e75616cace9a1bae4b8b0e5bfabe98092ac53463132333435\
    3637383930b7e58da1e5af86efbc9a412a2a2a2a2a2a2a2a2a2a2a2a5acf000001a22dfbafd9cf000001a233\
    1f0280cf000001a2331f0474cf000001a22dfbabf0cf000001a2331f0474";
const ORDER_SPARSE: &str = "dc0016b334313239383736353433323130393837363534a46d61696ec0c0c0c0c0c002c0ac70656e64696e67\
    5f73686970c0c0c0c0c0c0c0c0c0cf000001a22dfbabf0cf000001a2331f0474";
const LEDGER: &str = "dc0012b334313239383736353433323130393837363534a46d61696eab6e656564735f68756d616eb1636f6e\
    6669726d5f7468656e5f73656e64ac39303030353236343432373793a56361726473ab6f66666963652d3230\
    3231920304cf000001a22dfbb1cc02cf000001a22dfbb3d4cf000001a22dfbb3deb133353331373938373635\
    3433322e504e4db06e6f20616e7377657220696e2031307393af6f7574636f6d655f756e6b6e6f776ea96e6f\
    5f616e73776572930202c3aa6366672d3161326233639494cf000001a22dfbafd8a7706c616e6e6564a0c094\
    cf000001a22dfbb03ca87265736572766564a0c094cf000001a22dfbb3c0a773656e64696e67a092a7617474\
    656d70740294cf000001a22dfd3a60ab6e656564735f68756d616eb8e58d96e5aeb6e98089e68ba9e887aae5\
    b7b1e5a484e7908692b173656c6c65725f74616b65735f6f766572a673656c6c65729502cf000001a22dfbb3\
    c00103019298a474657874a473656e74bbe6849fe8b0a2e8b4ade4b9b020e58da1e5af86efbc9a422a2a2a59\
    ac396638366430383138383463b1333533313739383736353433322e504e4dcf000001a22dfbb3ca02c098a5\
    696d616765a7756e6b6e6f776ea967756964652e706e67ac396638366430383138383463c0cf000001a22dfb\
    b3ca02b06e6f20616e7377657220696e2031307398a474657874a473656e74bbe6849fe8b0a2e8b4ade4b9b0\
    20e58da1e5af86efbc9a422a2a2a59ac396638366430383138383463b1333533313739383736353433322e50\
    4e4dcf000001a22dfbb3ca02c0";
const LEDGER_SPARSE: &str = "dc0012b334313239383736353433323130393837363534a46d61696ea7706c616e6e6564c0c091a76e6f7468\
    696e67c000c0c0c0c0c0aa6366672d3161326233639194cf000001a22dfbafd8a7706c616e6e6564a0c0c090\
    c0";
/// Written when `proof` and `PartMark::url` were appended.
const LEDGER_PROOF: &str = "dc0013b334313239383736353433323130393837363534a46d61696eab6e656564735f68756d616eb1636f6e\
    6669726d5f7468656e5f73656e64ac39303030353236343432373793a56361726473ab6f66666963652d3230\
    3231920304cf000001a22dfbb1cc02cf000001a22dfbb3d4cf000001a22dfbb3deb133353331373938373635\
    3433322e504e4db06e6f20616e7377657220696e2031307393af6f7574636f6d655f756e6b6e6f776ea96e6f\
    5f616e73776572930202c3aa6366672d3161326233639494cf000001a22dfbafd8a7706c616e6e6564a0c094\
    cf000001a22dfbb03ca87265736572766564a0c094cf000001a22dfbb3c0a773656e64696e67a092a7617474\
    656d70740294cf000001a22dfd3a60ab6e656564735f68756d616eb8e58d96e5aeb6e98089e68ba9e887aae5\
    b7b1e5a484e7908692b173656c6c65725f74616b65735f6f766572a673656c6c65729502cf000001a22dfbb3\
    c00103019299a474657874a473656e74bbe6849fe8b0a2e8b4ade4b9b020e58da1e5af86efbc9a422a2a2a59\
    ac396638366430383138383463b1333533313739383736353433322e504e4dcf000001a22dfbb3ca02c0c099\
    a5696d616765a7756e6b6e6f776ea967756964652e706e67ac396638366430383138383463c0cf000001a22d\
    fbb3ca02b06e6f20616e7377657220696e20313073d93268747470733a2f2f696d672e616c6963646e2e636f\
    6d2f696d6765787472612f69312f4f31434e303167756964652e706e6799a474657874a473656e74bbe6849f\
    e8b0a2e8b4ade4b9b020e58da1e5af86efbc9a422a2a2a59ac396638366430383138383463b1333533313739\
    383736353433322e504e4dcf000001a22dfbb3ca02c0c09601cf000001a22dfbb3d9b7e58da1e5af86efbc9a\
    412a2a2a2a2a2a2a2a2a2a2a2a5ac391d93268747470733a2f2f696d672e616c6963646e2e636f6d2f696d67\
    65787472612f69312f4f31434e303167756964652e706e67af74656d706c617465206661696c6564";
/// Schema 4: the same records (`ORDER`, `LEDGER_PROOF`, …) with their enums coded.
const ORDER_4: &str = "dc0016b334313239383736353433323130393837363534a46d61696eb3353637383930313233343540676f6f\
    66697368ad32323038373635343332313039a6e5b08fe9b1bcac393030303532363434323737b54f66666963\
    65203230323120e6bf80e6b4bbe7a081a9e4b893e4b89ae7898802a531392e393006cf000001a22dfbafabcf\
    000001a22dfbb3e501ace9a1bae4b8b0e5bfabe98092ac534631323334353637383930b7e58da1e5af86efbc\
    9a412a2a2a2a2a2a2a2a2a2a2a2a5acf000001a22dfbafd9cf000001a2331f0280cf000001a2331f0474cf00\
    0001a22dfbabf0cf000001a2331f0474";
const LEDGER_4: &str = "dc0013b334313239383736353433323130393837363534a46d61696e0901ac39303030353236343432373793\
    a56361726473ab6f66666963652d32303231920304cf000001a22dfbb1cc02cf000001a22dfbb3d4cf000001\
    a22dfbb3deb1333533313739383736353433322e504e4db06e6f20616e7377657220696e2031307393af6f75\
    74636f6d655f756e6b6e6f776ea96e6f5f616e73776572930202c3aa6366672d3161326233639494cf000001\
    a22dfbafd800a0c094cf000001a22dfbb03c01a0c094cf000001a22dfbb3c003a092a7617474656d70740294\
    cf000001a22dfd3a6009b8e58d96e5aeb6e98089e68ba9e887aae5b7b1e5a484e7908692b173656c6c65725f\
    74616b65735f6f766572a673656c6c65729502cf000001a22dfbb3c001030192990002bbe6849fe8b0a2e8b4\
    ade4b9b020e58da1e5af86efbc9a422a2a2a59ac396638366430383138383463b13335333137393837363534\
    33322e504e4dcf000001a22dfbb3ca02c0c0990103a967756964652e706e67ac396638366430383138383463\
    c0cf000001a22dfbb3ca02b06e6f20616e7377657220696e20313073d93268747470733a2f2f696d672e616c\
    6963646e2e636f6d2f696d6765787472612f69312f4f31434e303167756964652e706e67990002bbe6849fe8\
    b0a2e8b4ade4b9b020e58da1e5af86efbc9a422a2a2a59ac396638366430383138383463b133353331373938\
    3736353433322e504e4dcf000001a22dfbb3ca02c0c09601cf000001a22dfbb3d9b7e58da1e5af86efbc9a41\
    2a2a2a2a2a2a2a2a2a2a2a2a5ac391d93268747470733a2f2f696d672e616c6963646e2e636f6d2f696d6765\
    787472612f69312f4f31434e303167756964652e706e67af74656d706c617465206661696c6564";
const STATUS_LOG_4: &str = "97cf000001a22dfbb3e5010201a673656c6c6572b9e9a1bae4b8b0e5bfabe980922053463132333435363738\
    393091a86163636570746564";
const CARD_4: &str = "96ae414243442d313233342d5758595a02b334313239383736353433323130393837363534c3cf000001a229\
    f12800cf000001a22dfbb3d4";
const STOCK_LOG_4: &str = "96cf000001a22dfbb03cb0706f6f6c3a6f66666963652d3230323103fe29b334313239383736353433323130\
    393837363534";
const HOLDINGS: &str = "9391a76e6f7468696e6793a56361726473ab6f66666963652d32303231910793a573746f636bac3930303035\
    3236343432373703";
const STATUS_LOG: &str = "97cf000001a22dfbb3e5ac70656e64696e675f73686970a773686970706564a66d616e75616ca673656c6c65\
    72b9e9a1bae4b8b0e5bfabe980922053463132333435363738393091a86163636570746564";
const CARD: &str = "96ae414243442d313233342d5758595aa964656c697665726564b33431323938373635343332313039383736\
    3534c3cf000001a229f12800cf000001a22dfbb3d4";
const STOCK_LOG: &str = "96cf000001a22dfbb03cb0706f6f6c3a6f66666963652d32303231a772657365727665fe29b3343132393837\
    36353433323130393837363534";
const EVERY_WHY: &str = "dc004995ac6f75745f6f665f73746f636bab6f66666963652d32303231c0010092ab626c61636b6c69737465\
    64a2623191aa6e6f5f6974656d5f696492a76e6f5f72756c65a2693192ad72756c655f696e616374697665a2\
    693194ad6f746865725f6163636f756e74a26931a161a16291a8706879736963616c91ad6175746f5f736869\
    705f6f666691ac7368697070696e675f6f666692af6e6f5f706f6f6c5f666f725f736b75a6e7baa2e889b291\
    ad6e6f5f736869705f737461676593ab73656e645f6661696c6564a7726566757365640394ae636f6e666972\
    6d5f6661696c6564a77265667573656403c392af737570706c6965725f6661696c6564a77265667573656494\
    ad75706c6f61645f6661696c6564a77265667573656402b0696d616765732f67756964652e706e6793b27375\
    70706c6965725f756e6365727461696e01c093af6f7574636f6d655f756e6b6e6f776ea96e6f5f616e737765\
    72930203c392ab696e746572727570746564c091ab756e6275696c6461626c6591ae696e7465726e616c5f65\
    72726f7292b173656c6c65725f74616b65735f6f766572a5616c69636593ae617474656d70745f6661696c65\
    64a772656675736564930203c392a3647565cf0000018bcfe5680092a7617474656d70740291a86163636570\
    74656491a9636f6e6669726d656492a7726561726d6564a5616c69636591a97265706c616e6e656491b96361\
    6e63656c6c65645f6265666f72655f64656c697665727991ac6b6579735f7265766f6b656492b0737570706c\
    6965725f666574636865640193b3737570706c6965725f6e6f745f626f7567687401a77265667573656492b1\
    737570706c6965725f72657475726e65640193b6737570706c6965725f72657475726e5f6661696c656401a7\
    7265667573656491ae666f6c6c6f775f75705f73656e7492b1666f6c6c6f775f75705f756e6b6e6f776ea772\
    65667573656493b0666f6c6c6f775f75705f6661696c6564a772656675736564c391b5666f6c6c6f775f7570\
    5f756e6275696c6461626c6593ab73656e645f6661696c6564ad6e6f745f636f6e6e65637465640194ae636f\
    6e6669726d5f6661696c6564ad6e6f745f636f6e6e656374656401c293ab73656e645f6661696c6564a96e6f\
    5f616e737765720194ae636f6e6669726d5f6661696c6564a96e6f5f616e7377657201c293ab73656e645f66\
    61696c6564a7726566757365640194ae636f6e6669726d5f6661696c6564a77265667573656401c293ab7365\
    6e645f6661696c6564a3646e730194ae636f6e6669726d5f6661696c6564a3646e7301c293ab73656e645f66\
    61696c6564a3746c730194ae636f6e6669726d5f6661696c6564a3746c7301c293ab73656e645f6661696c65\
    64a76e6574776f726b0194ae636f6e6669726d5f6661696c6564a76e6574776f726b01c293ab73656e645f66\
    61696c6564ad6c6f67696e5f657870697265640194ae636f6e6669726d5f6661696c6564ad6c6f67696e5f65\
    78706972656401c293ab73656e645f6661696c6564ac7269736b5f636f6e74726f6c0194ae636f6e6669726d\
    5f6661696c6564ac7269736b5f636f6e74726f6c01c293ab73656e645f6661696c6564ac726174655f6c696d\
    697465640194ae636f6e6669726d5f6661696c6564ac726174655f6c696d6974656401c293ab73656e645f66\
    61696c6564a9666f7262696464656e0194ae636f6e6669726d5f6661696c6564a9666f7262696464656e01c2\
    93ab73656e645f6661696c6564ad62757965725f756e6b6e6f776e0194ae636f6e6669726d5f6661696c6564\
    ad62757965725f756e6b6e6f776e01c293ab73656e645f6661696c6564a66b69636b65640194ae636f6e6669\
    726d5f6661696c6564a66b69636b656401c293ab73656e645f6661696c6564ac7365727665725f6572726f72\
    0194ae636f6e6669726d5f6661696c6564ac7365727665725f6572726f7201c293ab73656e645f6661696c65\
    64ac6261645f726573706f6e73650194ae636f6e6669726d5f6661696c6564ac6261645f726573706f6e7365\
    01c293ab73656e645f6661696c6564a7636f6e74656e740194ae636f6e6669726d5f6661696c6564a7636f6e\
    74656e7401c293ab73656e645f6661696c6564a8706c6174666f726d0194ae636f6e6669726d5f6661696c65\
    64a8706c6174666f726d01c293ab73656e645f6661696c6564a56f746865720194ae636f6e6669726d5f6661\
    696c6564a56f7468657201c295ac6f75745f6f665f73746f636bc0a2693102ff";

/// `golden` (hex) reads as `today`, and `today` and `sparse` survive a round trip.
fn check<T: Positional + DeserializeOwned + PartialEq + Debug>(
    name: &str,
    golden: &str,
    today: &T,
    sparse: &T,
) {
    let written_now = hex::encode(encode_row(today));
    let bytes = hex::decode(golden).expect("golden bytes are hex");
    let read: T = decode(&bytes).unwrap_or_else(|e| {
        panic!(
            "{name}: the schema-3 golden bytes no longer read ({e}): a field was inserted, \
             reordered, retyped or made required (see the rules in codec.rs); this build \
             writes {written_now}"
        )
    });
    assert_eq!(
        &read, today,
        "{name}: the schema-3 golden bytes read as another record (see the rules in \
         codec.rs); this build writes {written_now}"
    );
    for record in [today, sparse] {
        let again: T = decode(&encode_row(record)).unwrap_or_else(|e| {
            panic!("{name}: a record does not read back ({e}): skip_serializing_if on a positional field?")
        });
        assert_eq!(
            &again, record,
            "{name}: a record changes in a round trip: skip_serializing_if on a positional field?"
        );
    }
}

pub(super) fn order(full: bool) -> OrderRecord {
    let some = |s: &str| full.then(|| s.to_string());
    let at = |ms: u64| full.then_some(ms);
    OrderRecord {
        order_id: "4129876543210987654".into(),
        account: "main".into(),
        chat_id: some("56789012345@goofish"),
        buyer_id: some("2208765432109"),
        buyer_nick: some("小鱼"),
        item_id: some("900052644277"),
        item_title: some("Office 2021 激活码"),
        sku: some("专业版"),
        quantity: 2,
        amount: some("19.90"),
        status: if full {
            OrderStatus::Refunded
        } else {
            OrderStatus::PendingShip
        },
        payment_time: at(1_796_067_798_955),
        ship_time: at(1_796_067_800_037),
        ship_method: full.then_some(ShipMethod::Manual),
        logistics_company: some("顺丰快递"),
        tracking_number: some("SF1234567890"),
        ship_content: some("卡密：A************Z"),
        paid_at: at(1_796_067_799_001),
        refunded_at: at(1_796_154_000_000),
        closed_at: at(1_796_154_000_500),
        created_time: 1_796_067_798_000,
        updated_time: 1_796_154_000_500,
    }
}

fn part(image: bool) -> PartMark {
    PartMark {
        kind: if image {
            PartKind::Image
        } else {
            PartKind::Text
        },
        state: if image {
            PartState::Unknown
        } else {
            PartState::Sent
        },
        summary: if image {
            "guide.png"
        } else {
            "感谢购买 卡密：B***Y"
        }
        .into(),
        fingerprint: "9f86d081884c".into(),
        message_id: (!image).then(|| "3531798765432.PNM".to_string()),
        at: 1_796_067_800_010,
        attempts: 2,
        last_error: image.then(|| "no answer in 10s".to_string()),
        url: None,
    }
}

pub(super) fn ledger(full: bool) -> DeliveryRecord {
    let mut rec = DeliveryRecord::new(
        "4129876543210987654",
        "main",
        "cfg-1a2b3c",
        1_796_067_799_000,
    );
    if !full {
        return rec;
    }
    rec.state = DeliveryState::NeedsHuman;
    rec.mode = Some(ShipMode::ConfirmThenSend);
    rec.item_id = Some("900052644277".into());
    rec.holding = Holding::Cards {
        pool: "office-2021".into(),
        ids: vec![3, 4],
    };
    rec.due_ms = Some(1_796_067_799_500);
    rec.attempts = 2;
    rec.sent_at = Some(1_796_067_800_020);
    rec.confirmed_at = Some(1_796_067_800_030);
    rec.message_id = Some("3531798765432.PNM".into());
    rec.last_error = Some("no answer in 10s".into());
    rec.why = Some(Why::OutcomeUnknown {
        failure: Failure::NoAnswer,
        part: Some(PartRef {
            index: 2,
            of: 2,
            image: true,
        }),
    });
    rec.history.push(LedgerEvent::new(
        1_796_067_799_100,
        DeliveryState::Reserved,
        Note::None,
    ));
    rec.history.push(LedgerEvent::new(
        1_796_067_800_000,
        DeliveryState::Sending,
        Why::Attempt { n: 2 },
    ));
    rec.history.push(LedgerEvent {
        at: 1_796_067_900_000,
        state: DeliveryState::NeedsHuman,
        note: "卖家选择自己处理".into(),
        why: Some(Why::SellerTakesOver {
            operator: "seller".into(),
        }),
    });
    rec.read_back = Some(ReadBackState {
        attempt: 2,
        since_ms: 1_796_067_800_000,
        unreadable: 1,
        absent: 3,
        part: Some(1),
    });
    rec.parts = vec![part(false), part(true)];
    rec.follow_up = Some(part(false));
    rec
}

/// A ledger row with the fields appended after the first schema-3 goldens (the confirm proof,
/// an image part's URL).
fn ledger_with_proof() -> DeliveryRecord {
    let mut rec = ledger(true);
    rec.proof = Some(ConfirmProof {
        attempt: 1,
        at: 1_796_067_800_025,
        trade_text: "卡密：A************Z".into(),
        plain_cards: true,
        pic_list: vec!["https://img.alicdn.com/imgextra/i1/O1CN01guide.png".into()],
        error: Some("template failed".into()),
    });
    rec.parts[1].url = Some("https://img.alicdn.com/imgextra/i1/O1CN01guide.png".into());
    rec
}

fn status_log(full: bool) -> StatusLogEntry {
    StatusLogEntry {
        at: 1_796_067_800_037,
        from: full.then_some(OrderStatus::PendingShip),
        to: OrderStatus::Shipped,
        action: if full {
            ActionType::Manual
        } else {
            ActionType::System
        },
        operator: if full { "seller" } else { "" }.into(),
        remark: if full {
            "顺丰快递 SF1234567890"
        } else {
            ""
        }
        .into(),
        why: full.then_some(Why::Accepted),
    }
}

pub(super) fn card(full: bool) -> CardRow {
    CardRow {
        secret: "ABCD-1234-WXYZ".into(),
        state: if full {
            CardState::Delivered
        } else {
            CardState::Available
        },
        order_id: full.then(|| "4129876543210987654".to_string()),
        reusable: full,
        imported_at: 1_796_000_000_000,
        updated_at: if full { 1_796_067_800_020 } else { 0 },
    }
}

fn stock_log(full: bool) -> StockLogEntry {
    StockLogEntry {
        at: 1_796_067_799_100,
        subject: "pool:office-2021".into(),
        action: if full {
            StockAction::Reserve
        } else {
            StockAction::Restock
        },
        quantity_change: -2,
        remaining: 41,
        order_id: full.then(|| "4129876543210987654".to_string()),
    }
}

/// A list of records is not itself [`Positional`]; the check wraps it.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Several<T>(Vec<T>);
impl<T: serde::Serialize> Positional for Several<T> {}

#[test]
fn records_of_the_first_schema_4_build_still_read() {
    check("OrderRecord (4)", ORDER_4, &order(true), &order(false));
    check(
        "DeliveryRecord (4)",
        LEDGER_4,
        &ledger_with_proof(),
        &ledger(false),
    );
    check(
        "StatusLogEntry (4)",
        STATUS_LOG_4,
        &status_log(true),
        &status_log(false),
    );
    check("CardRow (4)", CARD_4, &card(true), &card(false));
    check(
        "StockLogEntry (4)",
        STOCK_LOG_4,
        &stock_log(true),
        &stock_log(false),
    );
}

#[test]
fn orders_of_the_first_schema_3_build_still_read() {
    check("OrderRecord", ORDER, &order(true), &order(false));
    check(
        "OrderRecord (sparse)",
        ORDER_SPARSE,
        &order(false),
        &order(false),
    );
}

#[test]
fn ledger_rows_of_the_first_schema_3_build_still_read() {
    check("DeliveryRecord", LEDGER, &ledger(true), &ledger(false));
    check(
        "DeliveryRecord (new)",
        LEDGER_SPARSE,
        &ledger(false),
        &ledger(false),
    );
    check(
        "DeliveryRecord (proof)",
        LEDGER_PROOF,
        &ledger_with_proof(),
        &ledger(false),
    );
    let holdings = Several(vec![
        Holding::Nothing,
        Holding::Cards {
            pool: "office-2021".into(),
            ids: vec![7],
        },
        Holding::Stock {
            item_id: "900052644277".into(),
            units: 3,
        },
    ]);
    check("Holding", HOLDINGS, &holdings, &Several(vec![]));
}

#[test]
fn status_log_card_and_stock_log_rows_of_the_first_schema_3_build_still_read() {
    check(
        "StatusLogEntry",
        STATUS_LOG,
        &status_log(true),
        &status_log(false),
    );
    check("CardRow", CARD, &card(true), &card(false));
    check(
        "StockLogEntry",
        STOCK_LOG,
        &stock_log(true),
        &stock_log(false),
    );
}

/// Every reason a ledger row or its history can carry, as the first schema-3 build wrote
/// it. Each one read back must still be one of today's reasons (variants may be added to
/// the catalog in any order).
#[test]
fn every_reason_of_the_first_schema_3_build_still_reads() {
    let today = every_why();
    let bytes = hex::decode(EVERY_WHY).unwrap();
    let written_now = hex::encode(encode_row(&Several(today.clone())));
    let Several(read) = decode::<Several<Why>>(&bytes).unwrap_or_else(|e| {
        panic!("the schema-3 golden reasons no longer read ({e}); this build writes {written_now}")
    });
    assert!(read.len() >= 30, "{} reasons", read.len());
    for why in &read {
        assert!(
            today.contains(why),
            "{why:?} read from the golden bytes is no reason of today; this build writes {written_now}"
        );
    }
    check("Why", EVERY_WHY, &Several(read), &Several(vec![]));
}
