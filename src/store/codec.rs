//! How a record is kept in a redb value (schema 4): the per-order records as positional
//! MessagePack arrays, their unit enums as one-byte codes (`coded.rs`), everything else as
//! MessagePack maps with field names; and how the records of schemas 1 (JSON), 2 (maps
//! everywhere) and 3 (arrays with enum names) are still read and migrated.
//!
//! **Why positional arrays for the hot records.** The per-order records (order, delivery
//! ledger with its history, status log, card key, stock log) are most of the file. As maps
//! (schema 2) their field names were about a third of their bytes: a ledger history entry
//! spelled `at` and `state` again for every step. An array keeps only the values.
//!
//! **The rules for a [`Positional`] record** (and every type nested in one: `LedgerEvent`,
//! `PartMark`, `ReadBackState`, `ConfirmProof`, `Holding`, `Why`, `PartRef`), because a field
//! is known by its place, not its name:
//! 1. a new field is appended LAST, with `#[serde(default)]`: a row written before it is a
//!    shorter array, and the missing tail reads as the default;
//! 2. never `skip_serializing_if`: a skipped field would shift every field after it;
//! 3. never reorder, remove or retype a field; an enum variant keeps its serde name (variants
//!    of `Why` are stored by name) and, for a coded enum, its code (`coded.rs`: a new variant
//!    takes the next unused code);
//! 4. a change that breaks 1–3 needs a new schema version and a migration.
//!
//! A row with more fields than this build knows (written by a newer build) is refused as
//! `Corrupt`, never misread; an upgraded store is not meant for an older build anyway.
//!
//! `codec_golden.rs` holds bytes written by the first schema-3 and schema-4 builds for every
//! positional type and checks they still read as the same values, and that a sparse record (every
//! optional field empty) and a full one survive a round trip: reordering fields, inserting
//! one in the middle or adding `skip_serializing_if` fails there, not in a seller's store.
//!
//! The other records (jobs, outbox, chat, after-sale, supplier, audit) stay maps: they are
//! few or short-lived, and a map tolerates any new field. A reader that wants only some
//! fields of a positional record (the views) declares them in order through [`Head`].
//!
//! **Older rows.** A JSON record (schema 1) is an object and starts with `{`, which
//! MessagePack never does (0x7b would be a positive integer), so [`decode`] reads JSON,
//! maps and arrays alike (serde reads a struct from either a map or a sequence, and a coded
//! enum from its code or its name). Opening an older store rewrites every row of the
//! per-order tables at once ([`migrate`], in the transaction that writes schema 4); the remaining JSON jobs are rewritten as maps,
//! the rest on its next write. The statistics rollups have their own encoding and are not
//! touched.

use std::marker::PhantomData;

use redb::ReadableTable;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::Result;
use super::records::{CardRow, DeliveryRecord, Job, OrderRecord, StatusLogEntry, StockLogEntry};
use super::write_tx::WriteTx;

/// A record stored as a positional array: it follows the rules of the module doc, and
/// `codec_golden.rs` holds its golden bytes.
pub(super) trait Positional: Serialize {}

impl Positional for OrderRecord {}
impl Positional for DeliveryRecord {}
impl Positional for StatusLogEntry {}
impl Positional for CardRow {}
impl Positional for StockLogEntry {}

/// A per-order record as a positional array (schema 4).
pub(super) fn encode_row<T: Positional>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec(v).expect("store records serialize")
}

/// Any other record as a map with field names.
pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("store records serialize")
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    if is_json(bytes) {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Records decoded by table on this thread, in test builds: the per-request decode budgets
/// in the tests (`rollup.rs`) read them, so a decode that a cut removed cannot come back
/// unnoticed. Write requests run on their caller's thread (`commit.rs`).
#[cfg(test)]
pub(super) mod decodes {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        static COUNTS: RefCell<BTreeMap<&'static str, u32>> = RefCell::default();
    }

    pub fn note(table: &'static str) {
        COUNTS.with(|c| *c.borrow_mut().entry(table).or_default() += 1);
    }

    /// The counts since the last call, and start again from zero.
    pub fn take() -> BTreeMap<&'static str, u32> {
        COUNTS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }
}

/// The leading fields of a record, for a reader that needs only some of them (the views): `T`
/// declares the record's fields in their order up to the last one it needs, under the
/// record's names, with [`serde::de::IgnoredAny`] for those it skips. The rest of an array is
/// skipped without allocating anything; a map (an older row) is read by field name.
pub(super) struct Head<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Head<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = Head<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record (an array or a map)")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Head<T>, A::Error> {
                let head = T::deserialize(SeqAccessDeserializer::new(&mut seq))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Head(head))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Head<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Head)
            }
        }
        d.deserialize_any(Fields(PhantomData))
    }
}

/// A schema-1 record (see the module doc).
fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

/// A MessagePack array: fixarray, array 16 or array 32.
#[cfg(test)]
fn is_array(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd))
}

/// Re-encode every row of `$table` (records of type `$ty`) for which `$stale` holds with
/// `$encode`. The rows to rewrite are collected first (redb tables cannot be written while
/// iterated).
macro_rules! rewrite {
    ($table:expr, $name:literal, $ty:ty, $stale:expr, $encode:expr, $owned:expr, $key:expr) => {{
        let mut table = $table;
        let mut rows = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if $stale(v.value()) {
                let record: $ty = super::decode($name, v.value())?;
                rows.push(($owned(k.value()), $encode(&record)));
            }
        }
        for (k, v) in &rows {
            table.insert($key(k), v.as_slice())?;
        }
        rows.len()
    }};
}

/// Schema 1, 2 or 3 → 4: every row of the per-order tables is rewritten as a positional array
/// with coded enums and JSON jobs become maps, in the caller's transaction. Returns the rows
/// rewritten.
pub(super) fn migrate(tx: &WriteTx) -> Result<usize> {
    fn str_key(k: &String) -> &str {
        k
    }
    fn pair_key((a, n): &(String, u64)) -> (&str, u64) {
        (a, *n)
    }
    let by_str = |k: &str| k.to_string();
    let by_pair = |(a, n): (&str, u64)| (a.to_string(), n);
    let by_id = |k: u64| k;
    let id_key = |k: &u64| *k;
    // Every row: those of schema 3 are arrays already but name their enum variants.
    let every = |_: &[u8]| true;
    let mut n = rewrite!(
        tx.orders()?,
        "orders",
        OrderRecord,
        every,
        encode_row,
        by_str,
        str_key
    );
    n += rewrite!(
        tx.ledger()?,
        "delivery_ledger",
        DeliveryRecord,
        every,
        encode_row,
        by_str,
        str_key
    );
    n += rewrite!(
        tx.order_log()?,
        "order_status_log",
        StatusLogEntry,
        every,
        encode_row,
        by_pair,
        pair_key
    );
    n += rewrite!(
        tx.cards()?,
        "card_keys",
        CardRow,
        every,
        encode_row,
        by_pair,
        pair_key
    );
    n += rewrite!(
        tx.stock_log()?,
        "stock_log",
        StockLogEntry,
        every,
        encode_row,
        by_id,
        id_key
    );
    n += rewrite!(tx.jobs()?, "jobs", Job, is_json, encode, by_id, id_key);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderStatus;

    fn order() -> OrderRecord {
        let json = r#"{"order_id":"3002","account":"main","chat_id":"c1","buyer_id":null,"buyer_nick":null,"item_id":"900052644277","item_title":null,"sku":null,"quantity":1,"amount":"19.90","status":"shipped","payment_time":1796067798955,"ship_time":null,"ship_method":"auto","logistics_company":null,"tracking_number":null,"ship_content":null,"created_time":1796067798000,"updated_time":1796067800037}"#;
        decode(json.as_bytes()).expect("a schema-1 JSON order reads")
    }

    #[test]
    fn a_record_reads_back_and_is_smaller_than_its_json_and_its_map() {
        let o = order();
        assert_eq!(o.status, OrderStatus::Shipped);
        let packed = encode_row(&o);
        assert!(is_array(&packed) && !is_json(&packed));
        assert_eq!(decode::<OrderRecord>(&packed).unwrap(), o);
        let json = serde_json::to_vec(&o).unwrap();
        let map = encode(&o);
        assert_eq!(
            decode::<OrderRecord>(&map).unwrap(),
            o,
            "a schema-2 map reads"
        );
        assert!(
            packed.len() * 2 < json.len() && packed.len() * 10 < map.len() * 7,
            "{} bytes as an array vs {} as a map, {} as JSON",
            packed.len(),
            map.len(),
            json.len()
        );
    }

    #[test]
    fn a_shorter_array_reads_its_missing_tail_as_default_and_a_longer_one_is_refused() {
        let card = CardRow {
            secret: "K".into(),
            state: crate::store::CardState::Reserved,
            order_id: Some("3002".into()),
            reusable: false,
            imported_at: 7,
            updated_at: 9,
        };
        let bytes = encode_row(&card);
        // Six fields: a fixarray (0x96) whose last element is the one byte 9 (`updated_at`).
        assert_eq!((bytes[0], bytes[bytes.len() - 1]), (0x96, 9));
        // Written before `updated_at` existed (the last field, `#[serde(default)]`).
        let mut older = vec![0x95];
        older.extend_from_slice(&bytes[1..bytes.len() - 1]);
        let read: CardRow = decode(&older).unwrap();
        assert_eq!((read.imported_at, read.updated_at), (7, 0));
        // Written by a newer build with one more field: an error (`Corrupt`), never misread.
        let mut newer = vec![0x97];
        newer.extend_from_slice(&bytes[1..]);
        newer.extend_from_slice(&encode(&"a newer field"));
        assert!(decode::<CardRow>(&newer).is_err());
    }

    #[test]
    fn fields_added_later_or_unknown_are_tolerated() {
        // An older record without the optional fields, and one with a field this build does
        // not know (written by a newer one): both read.
        #[derive(Serialize)]
        struct Older<'a> {
            order_id: &'a str,
            account: &'a str,
            quantity: u32,
            status: &'a str,
            created_time: u64,
            updated_time: u64,
            later_field: &'a str,
        }
        let bytes = encode(&Older {
            order_id: "9",
            account: "main",
            quantity: 2,
            status: "pending_ship",
            created_time: 1,
            updated_time: 2,
            later_field: "ignored",
        });
        let o: OrderRecord = decode(&bytes).unwrap();
        assert_eq!((o.order_id.as_str(), o.quantity), ("9", 2));
        assert_eq!(o.item_id, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"{", b"\xc1", b"\x81\xa1x"] {
            assert!(decode::<OrderRecord>(bytes).is_err(), "{bytes:?}");
        }
    }
}
