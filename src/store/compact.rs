//! Giving back the space that many small commits leave in the redb file: `xianyu-shopd
//! compact`, and the same work when the daemon starts on a file that is mostly waste.
//!
//! redb writes copy-on-write: every commit writes the pages it changes to new places and
//! frees the old ones. Freed pages are reused, but the file never shrinks by itself, so after a
//! burst of commits (a flash sale) it stays at its high-water mark. `Database::compact` moves
//! the live pages to the front of the file and cuts the rest off. It needs the database to
//! itself, so it only runs under the [`DaemonLock`](super::DaemonLock) (no daemon) and before
//! anything else of this process opens the store. Nothing is decoded or rewritten: the same
//! records, only fewer pages.
//!
//! **Repacking.** redb splits a full leaf page in two halves, so a table whose rows arrive out
//! of key order or grow after they are written (an order gains its payment, a card key its
//! order) ends up with pages about half full, and `Database::compact` alone keeps them so.
//! Before it, the per-order tables are copied byte for byte, in key order, into fresh tables
//! that replace them in the same transaction ([`repack`]): an ascending load leaves every leaf
//! packed (redb starts a new leaf instead of splitting the last one). The row counts are
//! checked before the commit; a failure changes nothing.

use std::path::Path;

use redb::{
    Database, Key, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, Value,
    WriteTransaction,
};

use super::handle::open_verified;
use super::{
    CARD_FINGERPRINTS, CARDS, DB_FILE, DaemonLock, LEDGER, ORDER_LOG, ORDERS, Result, SEEN,
    STOCK_LOG, StoreError, file_check,
};

/// Start compacting at daemon start once this much of the file is reclaimable…
pub const START_MIN_WASTE: u64 = 8 << 20;
/// …and it is at least this share (percent) of the file.
pub const START_MIN_SHARE: u64 = 50;

/// How the store file's bytes are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceUse {
    /// The file's length.
    pub file: u64,
    /// Bytes in pages redb has allocated (live tables and redb's own bookkeeping).
    pub allocated: u64,
    /// Keys and values stored, plus page headers and indexes: what a perfect file would hold.
    pub data: u64,
}

impl SpaceUse {
    /// Bytes of the file no page uses: what `compact` gives back at most.
    pub fn free(&self) -> u64 {
        self.file.saturating_sub(self.allocated)
    }

    /// Whether the daemon should compact before it starts (see [`START_MIN_WASTE`]).
    pub fn worth_compacting_at_start(&self) -> bool {
        let free = self.free();
        free >= START_MIN_WASTE && free.saturating_mul(100) >= self.file * START_MIN_SHARE
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub before: SpaceUse,
    pub after: SpaceUse,
}

/// Compact the store in `state_dir`. `_lock` proves no daemon runs on it; redb holds off the
/// CLI commands that may open the file meanwhile (`cards import`, `orders`, `backup`), and
/// refuses (changing nothing) if one of them is in the middle of a transaction.
pub fn compact(_lock: &DaemonLock, state_dir: &Path) -> Result<Compacted> {
    let path = state_dir.join(DB_FILE);
    file_check::refuse_unusable(&path)?;
    let mut db = open_verified(&path)?;
    let before = space_use(&db, &path)?;
    let tx = db.begin_write()?;
    repack_per_order_tables(&tx)?;
    tx.commit()?;
    while db.compact()? {}
    let after = space_use(&db, &path)?;
    drop(db);
    Ok(Compacted { before, after })
}

/// Compact at daemon start when [`SpaceUse::worth_compacting_at_start`]; `None` when the file
/// did not need it (or does not exist yet).
pub fn compact_if_wasteful(lock: &DaemonLock, state_dir: &Path) -> Result<Option<Compacted>> {
    let path = state_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(None);
    }
    file_check::refuse_unusable(&path)?;
    let db = open_verified(&path)?;
    let space = space_use(&db, &path)?;
    drop(db);
    if !space.worth_compacting_at_start() {
        return Ok(None);
    }
    compact(lock, state_dir).map(Some)
}

/// The tables that grow with every order, repacked by [`compact`].
fn repack_per_order_tables(tx: &WriteTransaction) -> Result<()> {
    repack(tx, ORDERS)?;
    repack(tx, LEDGER)?;
    repack(tx, ORDER_LOG)?;
    repack(tx, CARDS)?;
    repack(tx, CARD_FINGERPRINTS)?;
    repack(tx, STOCK_LOG)?;
    repack(tx, SEEN)?;
    Ok(())
}

/// Copy `def`'s rows in key order into a fresh table and let it take `def`'s name (see the
/// module doc). Keys and values are copied as bytes, never decoded.
fn repack<K: Key + 'static, V: Value + 'static>(
    tx: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let fresh_name = format!("{}~repack", def.name());
    let fresh: TableDefinition<K, V> = TableDefinition::new(&fresh_name);
    let (rows, copied) = {
        let source = tx.open_table(def)?;
        let mut target = tx.open_table(fresh)?;
        for row in source.iter()? {
            let (k, v) = row?;
            target.insert(k.value(), v.value())?;
        }
        (source.len()?, target.len()?)
    };
    if rows != copied {
        return Err(StoreError::Corrupt {
            table: "repack",
            detail: format!("{}: {rows} rows, {copied} copied", def.name()),
        });
    }
    tx.delete_table(def)?;
    tx.rename_table(fresh, def)?;
    Ok(())
}

fn space_use(db: &Database, path: &Path) -> Result<SpaceUse> {
    // Statistics are only offered on a write transaction; it is aborted, nothing is written.
    let tx = db.begin_write()?;
    let stats = tx.stats()?;
    tx.abort()?;
    let page = stats.page_size() as u64;
    Ok(SpaceUse {
        file: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        allocated: stats.allocated_pages() * page,
        data: stats.stored_bytes() + stats.metadata_bytes(),
    })
}
