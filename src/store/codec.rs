//! How a record is kept in a redb value: a MessagePack map with field names (schema 2), and
//! how the JSON records of schema 1 are still read and migrated.
//!
//! **Why MessagePack maps.** The per-order records (order, delivery ledger with its history,
//! status log, card key, stock log) are most of the file, and JSON spent a third of their bytes
//! on digits of timestamps, quotes, `null`s and punctuation. A map with field names stays
//! self-describing like JSON: a field added with `#[serde(default)]` (the rule for every new
//! field) needs no migration, a removed one is ignored, `skip_serializing_if` and tagged
//! enums work as before, and a record written by a newer build with a new variant fails as
//! `Corrupt` instead of being misread. Positional arrays would save the names too, but every
//! field would then have to be appended last and never skipped; not worth the trap.
//!
//! **Schema 1 rows.** A JSON record is an object and starts with `{`; a MessagePack map never
//! does (0x7b would be a positive integer), so [`decode`] reads either. Opening a schema-1
//! store migrates the per-order tables at once ([`migrate_from_json`], in the transaction that
//! writes schema 2); the rest is rewritten as MessagePack on its next write. The statistics
//! rollups have their own encoding and are not touched.

use redb::{ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{CardRow, DeliveryRecord, Job, OrderRecord, StatusLogEntry, StockLogEntry};
use super::{CARDS, JOBS, LEDGER, ORDER_LOG, ORDERS, Result, STOCK_LOG};

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

/// A schema-1 record (see the module doc).
fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

/// Re-encode every JSON row of `$table` (records of type `$ty`) as MessagePack. The rows to
/// rewrite are collected first (redb tables cannot be written while iterated).
macro_rules! rewrite {
    ($tx:expr, $table:expr, $name:literal, $ty:ty, $owned:expr, $key:expr) => {{
        let mut table = $tx.open_table($table)?;
        let mut rows = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if is_json(v.value()) {
                let record: $ty = super::decode($name, v.value())?;
                rows.push(($owned(k.value()), encode(&record)));
            }
        }
        for (k, v) in &rows {
            table.insert($key(k), v.as_slice())?;
        }
        rows.len()
    }};
}

/// Schema 1 → 2: the per-order tables, in the caller's transaction. Returns the rows rewritten.
pub(super) fn migrate_from_json(tx: &WriteTransaction) -> Result<usize> {
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
    let mut n = rewrite!(tx, ORDERS, "orders", OrderRecord, by_str, str_key);
    n += rewrite!(
        tx,
        LEDGER,
        "delivery_ledger",
        DeliveryRecord,
        by_str,
        str_key
    );
    n += rewrite!(
        tx,
        ORDER_LOG,
        "order_status_log",
        StatusLogEntry,
        by_pair,
        pair_key
    );
    n += rewrite!(tx, CARDS, "card_keys", CardRow, by_pair, pair_key);
    n += rewrite!(tx, STOCK_LOG, "stock_log", StockLogEntry, by_id, id_key);
    n += rewrite!(tx, JOBS, "jobs", Job, by_id, id_key);
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
    fn a_record_reads_back_and_is_smaller_than_its_json() {
        let o = order();
        assert_eq!(o.status, OrderStatus::Shipped);
        let packed = encode(&o);
        assert!(!is_json(&packed));
        assert_eq!(decode::<OrderRecord>(&packed).unwrap(), o);
        let json = serde_json::to_vec(&o).unwrap();
        assert!(
            packed.len() * 10 < json.len() * 8,
            "{} bytes packed vs {} as JSON",
            packed.len(),
            json.len()
        );
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
