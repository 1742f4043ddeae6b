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
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::Result;
use super::records::{
    CardRow, DeliveryRecord, Holding, Job, OrderRecord, StatusLogEntry, StockLogEntry,
};
use super::write_tx::WriteTx;

/// A record stored as a positional array: it follows the rules of the module doc, and
/// `codec_golden.rs` holds its golden bytes.
pub(super) trait Positional: Serialize {}

impl Positional for OrderRecord {}
impl Positional for DeliveryRecord {}
impl Positional for StatusLogEntry {}
impl Positional for CardRow {}
impl Positional for StockLogEntry {}

/// What an encode buffer starts with: most rows fit (a delivered ledger row is ~300 bytes,
/// the others less), so a row is one allocation instead of the six or seven of a buffer that
/// grows from empty (8, 16, … 512 bytes).
const ENCODE_CAPACITY: usize = 512;

/// A per-order record as a positional array (schema 4).
pub(super) fn encode_row<T: Positional>(v: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    rmp_serde::encode::write(&mut buf, v).expect("store records serialize");
    buf
}

/// Any other record as a map with field names.
pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    rmp_serde::encode::write_named(&mut buf, v).expect("store records serialize");
    buf
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

/// A ledger row's [`Holding`], read straight from its bytes. serde's derive for an internally
/// tagged enum first copies the whole value into a buffer of its own (a vector for the array
/// and one for the key ids) to find the tag, on every ledger read (profile of
/// `replay_throughput`). This reads what the derive writes: an array with the kind first
/// (`["cards", pool, ids]`, schemas 3 and 4) or a map with a `kind` key (JSON of schema 1,
/// maps of schema 2); and refuses what it refuses: an unknown kind, a missing or repeated
/// field, an array longer than its variant.
impl<'de> Deserialize<'de> for Holding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(HoldingVisitor)
    }
}

const HOLDING_KINDS: &[&str] = &["nothing", "cards", "stock"];

#[derive(Clone, Copy)]
enum HoldingKind {
    Nothing,
    Cards,
    Stock,
}

/// A field name of a [`Holding`] map.
enum HoldingField {
    Kind,
    Pool,
    Ids,
    ItemId,
    Units,
    Other,
}

/// A string read as one of a few words, borrowed, never copied: `pick` names the word.
struct Word<T>(fn(&str) -> Option<T>);

impl<T> Visitor<'_> for Word<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a holding kind or field name")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<T, E> {
        (self.0)(s).ok_or_else(|| E::unknown_variant(s, HOLDING_KINDS))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> std::result::Result<T, E> {
        match std::str::from_utf8(b) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(b), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for HoldingKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(Word(|s| match s {
            "nothing" => Some(Self::Nothing),
            "cards" => Some(Self::Cards),
            "stock" => Some(Self::Stock),
            _ => None,
        }))
    }
}

impl<'de> Deserialize<'de> for HoldingField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_identifier(Word(|s| {
            Some(match s {
                "kind" => Self::Kind,
                "pool" => Self::Pool,
                "ids" => Self::Ids,
                "item_id" => Self::ItemId,
                "units" => Self::Units,
                _ => Self::Other,
            })
        }))
    }
}

struct HoldingVisitor;

impl<'de> Visitor<'de> for HoldingVisitor {
    type Value = Holding;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a holding (an array with its kind first, or a map with `kind`)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Holding, A::Error> {
        let holding = match element::<_, HoldingKind>(&mut seq, 0, &self)? {
            HoldingKind::Nothing => Holding::Nothing,
            HoldingKind::Cards => Holding::Cards {
                pool: element(&mut seq, 1, &self)?,
                ids: element(&mut seq, 2, &self)?,
            },
            HoldingKind::Stock => Holding::Stock {
                item_id: element(&mut seq, 1, &self)?,
                units: element(&mut seq, 2, &self)?,
            },
        };
        match seq.next_element::<IgnoredAny>()? {
            Some(_) => Err(de::Error::invalid_length(
                4,
                &"no more fields than the kind has",
            )),
            None => Ok(holding),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Holding, A::Error> {
        let (mut kind, mut pool, mut ids, mut item_id, mut units) = (None, None, None, None, None);
        while let Some(field) = map.next_key::<HoldingField>()? {
            match field {
                HoldingField::Kind => once(&mut kind, map.next_value()?, "kind")?,
                HoldingField::Pool => once(&mut pool, map.next_value()?, "pool")?,
                HoldingField::Ids => once(&mut ids, map.next_value()?, "ids")?,
                HoldingField::ItemId => once(&mut item_id, map.next_value()?, "item_id")?,
                HoldingField::Units => once(&mut units, map.next_value()?, "units")?,
                HoldingField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let need = |name| de::Error::missing_field(name);
        Ok(match kind.ok_or_else(|| need("kind"))? {
            HoldingKind::Nothing => Holding::Nothing,
            HoldingKind::Cards => Holding::Cards {
                pool: pool.ok_or_else(|| need("pool"))?,
                ids: ids.ok_or_else(|| need("ids"))?,
            },
            HoldingKind::Stock => Holding::Stock {
                item_id: item_id.ok_or_else(|| need("item_id"))?,
                units: units.ok_or_else(|| need("units"))?,
            },
        })
    }
}

/// A list read with room for [`ROOM`] more elements. serde reads a list into a vector of
/// exactly its length, so the first push of a request (a ledger's history grows by an entry
/// on almost every request that reads it) copied the whole list into a new buffer.
pub(super) fn with_room<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    struct Room<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Room<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<T>, A::Error> {
            // A corrupt length must not reserve much: the rest grows as it is read.
            let len = seq.size_hint().unwrap_or(0).min(64);
            let mut list = Vec::with_capacity(len + ROOM);
            while let Some(item) = seq.next_element()? {
                list.push(item);
            }
            Ok(list)
        }
    }
    d.deserialize_seq(Room(PhantomData))
}

/// How many elements [`with_room`] leaves room for.
const ROOM: usize = 2;

/// The element at `at` of an array that must have it.
fn element<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    at: usize,
    what: &dyn de::Expected,
) -> std::result::Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::invalid_length(at, what))
}

/// Fill a field of a map once; a second one is an error, as in serde's derive.
fn once<T, E: de::Error>(
    slot: &mut Option<T>,
    value: T,
    name: &'static str,
) -> std::result::Result<(), E> {
    match slot.replace(value) {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
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
    use crate::store::records::Note;

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

    /// Allocations made on this thread: the library's unit tests run on this counting
    /// allocator, so a test can count what an encode or a decode costs.
    mod allocs {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static COUNT: Cell<u64> = const { Cell::new(0) };
        }

        struct Counting;

        // SAFETY: every call is passed on to the system allocator unchanged.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) }
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get() + 1));
                unsafe { System.realloc(ptr, layout, size) }
            }
        }

        #[global_allocator]
        static COUNTING: Counting = Counting;

        /// The allocations (and reallocations) `f` makes on this thread.
        pub fn during<T>(f: impl FnOnce() -> T) -> (T, u64) {
            let before = COUNT.with(Cell::get);
            let out = f();
            (out, COUNT.with(Cell::get) - before)
        }
    }

    fn holdings() -> [(Holding, u64); 3] {
        [
            (Holding::Nothing, 0),
            (
                Holding::Cards {
                    pool: "office-2021".into(),
                    ids: vec![7, 8],
                },
                2,
            ),
            (
                Holding::Stock {
                    item_id: "900052644277".into(),
                    units: 3,
                },
                1,
            ),
        ]
    }

    #[test]
    fn a_holding_reads_with_only_the_allocations_of_its_own_strings_and_ids() {
        for (holding, owned) in holdings() {
            let bytes = rmp_serde::to_vec(&holding).unwrap();
            assert_eq!(
                bytes[0] & 0xf0,
                0x90,
                "a positional row holds it as an array"
            );
            let (read, n) = allocs::during(|| decode::<Holding>(&bytes).unwrap());
            assert_eq!((read, n), (holding, owned));
        }
    }

    #[test]
    fn a_row_is_encoded_into_one_buffer() {
        let o = order();
        let (bytes, n) = allocs::during(|| encode_row(&o));
        assert_eq!((decode::<OrderRecord>(&bytes).unwrap(), n), (o.clone(), 1));
        let (_, n) = allocs::during(|| encode(&o));
        assert_eq!(n, 1);
    }

    #[test]
    fn a_ledger_history_takes_its_next_entry_without_a_new_buffer() {
        let mut rec = DeliveryRecord::new("3002", "main", "v1", 1);
        rec.set_state(crate::store::DeliveryState::Reserved, 2, Note::None);
        let mut read: DeliveryRecord = decode(&encode_row(&rec)).unwrap();
        let ((), n) = allocs::during(|| {
            read.set_state(crate::store::DeliveryState::Scheduled, 3, Note::None);
            read.set_state(crate::store::DeliveryState::Sending, 4, Note::None);
        });
        assert_eq!((read.history.len(), n), (4, 0));
    }

    #[test]
    fn a_key_is_masked_into_one_string() {
        use crate::store::records::mask_secret;
        let (masked, n) = allocs::during(|| mask_secret("ABCD-1234-WXYZ-5678"));
        assert_eq!((masked.as_str(), n), ("AB***************78", 1));
        assert_eq!(mask_secret("1234567"), "*******");
    }

    #[test]
    fn a_holding_reads_from_json_and_maps_with_its_kind_anywhere() {
        let json = r#"{"pool":"office-2021","kind":"cards","ids":[7,8],"later":1}"#;
        let cards = holdings()[1].0.clone();
        assert_eq!(decode::<Holding>(json.as_bytes()).unwrap(), cards);
        for (holding, _) in holdings() {
            let json = serde_json::to_vec(&holding).unwrap();
            assert_eq!(decode::<Holding>(&json).unwrap(), holding);
            assert_eq!(decode::<Holding>(&encode(&holding)).unwrap(), holding);
        }
    }

    #[test]
    fn a_holding_that_the_derive_would_refuse_is_refused() {
        let refused = [
            r#"{"kind":"cash"}"#,
            r#"{"kind":"cards","pool":"p"}"#,
            r#"{"kind":"stock","kind":"stock","item_id":"9","units":1}"#,
            r#"{"pool":"p","ids":[]}"#,
            r#"{"kind":"cards","pool":7,"ids":[]}"#,
        ];
        for json in refused {
            assert!(decode::<Holding>(json.as_bytes()).is_err(), "{json}");
        }
        // As arrays: empty, a kind short of its fields, kinds with a field too many.
        let refused = [
            vec![0x90],
            rmp_serde::to_vec(&("cards", "p")).unwrap(),
            rmp_serde::to_vec(&("stock", "9", 1u32, 2u32)).unwrap(),
            rmp_serde::to_vec(&("nothing", "x")).unwrap(),
        ];
        for bytes in refused {
            assert!(decode::<Holding>(&bytes).is_err(), "{bytes:x?}");
        }
    }
}
