//! Consistent copies of the whole store: `backup PATH` and dry runs.
//!
//! A read transaction is a snapshot, so copying every table inside one gives a consistent copy
//! even while the daemon keeps committing.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction,
};

use super::*;

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn copy_all(src: &ReadTransaction, dst: &WriteTransaction) -> Result<()> {
    copy(src, dst, META)?;
    copy(src, dst, ORDERS)?;
    copy(src, dst, ORDER_LOG)?;
    copy(src, dst, SEEN)?;
    copy(src, dst, LEDGER)?;
    copy(src, dst, CARDS)?;
    copy(src, dst, CARDS_AVAILABLE)?;
    copy(src, dst, CARD_FINGERPRINTS)?;
    copy(src, dst, STOCK)?;
    copy(src, dst, STOCK_LOG)?;
    copy(src, dst, JOBS)?;
    copy(src, dst, JOBS_DUE)?;
    copy(src, dst, ORDER_JOBS)?;
    copy(src, dst, OUTBOX)?;
    copy(src, dst, OUTBOX_DUE)?;
    copy(src, dst, AUDIT)?;
    copy(src, dst, ACCOUNT_STATE)?;
    copy(src, dst, chat::INBOUND)?;
    copy(src, dst, chat::PENDING)?;
    copy(src, dst, chat::CONVERSATIONS)?;
    copy(src, dst, chat::HISTORY)?;
    copy(src, dst, chat::ONCE)?;
    copy(src, dst, chat::BARGAIN)?;
    copy(src, dst, chat_send::REPLIES)?;
    copy(src, dst, chat_send::REPLIES_OPEN)?;
    copy(src, dst, chat_send::OUTGOING)?;
    Ok(())
}

impl Store {
    /// Write a consistent copy of the store to `dest` (which must not exist yet).
    pub fn backup_to(&self, dest: &Path) -> Result<u64> {
        if dest.exists() {
            return Err(StoreError::Rejected(format!(
                "{} already exists; choose a new file name",
                dest.display()
            )));
        }
        self.read(|src| {
            let out = Database::create(dest)?;
            let tx = out.begin_write()?;
            copy_all(src, &tx)?;
            tx.commit()?;
            Ok(())
        })?;
        // The copy is only a backup if it opens and verifies like a live store would.
        let copy = super::handle::open_verified(dest)?;
        drop(copy);
        Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
    }

    /// An in-memory copy of this store, for a dry run that must not write anything here.
    pub fn snapshot_in_memory(&self) -> Result<Store> {
        let copy = Store::in_memory(self.clock.clone())?;
        self.read(|src| copy.write(|tx| copy_all(src, tx)))?;
        Ok(copy)
    }
}
