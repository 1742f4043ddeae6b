//! A redb table read as raw bytes, for tests that must see what is stored without decoding it.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// The leaf pages of table `name` (keys `K`) and its rows: each key as `Debug` text, each value
/// as stored.
pub fn raw_table<K>(db: &redb::Database, name: &str) -> (u64, Vec<(String, Vec<u8>)>)
where
    K: redb::Key + 'static,
    for<'a> K::SelfType<'a>: std::fmt::Debug,
{
    let def: TableDefinition<K, &[u8]> = TableDefinition::new(name);
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(def).unwrap();
    let rows = table
        .iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (format!("{:?}", k.value()), v.value().to_vec())
        })
        .collect();
    (table.stats().unwrap().leaf_pages(), rows)
}
