//! Consistent copies of the whole store: `backup PATH` and dry runs.
//!
//! A read transaction is a snapshot, so copying every table inside one gives a consistent copy
//! even while the daemon keeps committing. A backup is written to a hidden temporary file next
//! to `PATH`, synced, checked table by table against the snapshot and only then renamed to
//! `PATH` (issue 10 D3): a backup that fails half-way (a full disk) leaves nothing behind that
//! could later be restored as an empty shop.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use redb::{
    Key, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, Value, WriteTransaction,
};

use super::*;

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let mut to = dst.open_table(def)?;
    // A store opened read-only may predate a table (chat): nothing to copy.
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Calls `$each!(table)` for every table of the store, in one place for copy and verify.
macro_rules! every_table {
    ($each:ident) => {{
        $each!(META);
        $each!(ORDERS);
        $each!(ORDER_LOG);
        $each!(SEEN);
        $each!(LEDGER);
        $each!(CARDS);
        $each!(CARDS_AVAILABLE);
        $each!(CARD_FINGERPRINTS);
        $each!(STOCK);
        $each!(STOCK_LOG);
        $each!(JOBS);
        $each!(JOBS_DUE);
        $each!(ORDER_JOBS);
        $each!(OUTBOX);
        $each!(OUTBOX_DUE);
        $each!(outbox::OUTBOX_GROUPS);
        $each!(outbox::NOTIFY_QUIET);
        $each!(outbox::NOTIFY_PROBLEMS);
        $each!(AUDIT);
        $each!(ACCOUNT_STATE);
        $each!(chat::INBOUND);
        $each!(chat::PENDING);
        $each!(chat::CONVERSATIONS);
        $each!(chat::HISTORY);
        $each!(chat::ONCE);
        $each!(chat::BARGAIN);
        $each!(chat_send::REPLIES);
        $each!(chat_send::REPLIES_OPEN);
        $each!(chat_send::OUTGOING);
        $each!(supplier::SUPPLIER_CALLS);
        $each!(images::IMAGE_UPLOADS);
        $each!(aftersale::ACTIONS);
        $each!(aftersale::GUARDS);
        $each!(aftersale::PLANS);
        $each!(rollup::ROLLUP);
        $each!(rollup::ROLLUP_TOTALS);
        $each!(rollup::REPLY_ROLLUP);
        $each!(rollup::STATS_META);
    }};
}

fn copy_all(src: &ReadTransaction, dst: &WriteTransaction) -> Result<()> {
    macro_rules! one {
        ($t:expr) => {
            copy(src, dst, $t)?
        };
    }
    every_table!(one);
    Ok(())
}

/// `(table, rows)` for every table, to compare a copy with its source.
fn row_counts(tx: &ReadTransaction) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    macro_rules! one {
        ($t:expr) => {
            out.push((
                $t.name().to_string(),
                match tx.open_table($t) {
                    Ok(t) => t.len()?,
                    Err(redb::TableError::TableDoesNotExist(_)) => 0,
                    Err(e) => return Err(e.into()),
                },
            ))
        };
    }
    every_table!(one);
    Ok(out)
}

/// The temporary file of a backup in progress; removed unless the backup succeeded.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn backup_error(dest: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected(format!(
        "备份失败，没有留下任何文件（{what}: {e}）；请检查 {} 所在磁盘的空间和权限后重试 (backup failed, nothing was left behind: {what}: {e})",
        dest.display()
    ))
}

impl Store {
    /// Write a consistent, verified copy of the store to `dest` (which must not exist yet).
    /// Returns its size in bytes. On any error nothing is left at `dest` or beside it.
    pub fn backup_to(&self, dest: &Path) -> Result<u64> {
        if dest.exists() {
            return Err(StoreError::Rejected(format!(
                "{} 已经存在，请换一个新文件名 ({} already exists; choose a new file name)",
                dest.display(),
                dest.display()
            )));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into());
        let mut partial = Partial {
            path: dir.join(format!(".{name}.partial-{}", std::process::id())),
            keep: false,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&partial.path)
            .map_err(|e| backup_error(dest, "creating the temporary file", e))?;
        // Every error inside is the backup's (mapped to `Rejected`), so a full backup disk is
        // never taken for a failing store.
        let expected = self.read(|src| {
            let expected = row_counts(src)?;
            let written = |e: &dyn std::fmt::Display| backup_error(dest, "writing", e);
            let out = redb::backends::FileBackend::new(file)
                .and_then(|backend| redb::Builder::new().create_with_backend(backend))
                .map_err(|e| written(&e))?;
            let tx = out.begin_write().map_err(|e| written(&e))?;
            copy_all(src, &tx).map_err(|e| written(&e))?;
            tx.commit().map_err(|e| written(&e))?;
            Ok(expected)
        })?;
        File::open(&partial.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| backup_error(dest, "syncing", e))?;
        verify(&partial.path, &expected).map_err(|e| backup_error(dest, "verifying", e))?;
        std::fs::rename(&partial.path, dest).map_err(|e| backup_error(dest, "renaming", e))?;
        partial.keep = true;
        // The rename is durable only once the directory is synced.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
    }

    /// An in-memory copy of this store, for a dry run that must not write anything here.
    pub fn snapshot_in_memory(&self) -> Result<Store> {
        let copy = Store::in_memory(self.clock.clone())?;
        self.read(|src| copy.write(|tx| copy_all(src, tx.transaction()?)))?;
        Ok(copy)
    }
}

/// The copy is only a backup if it opens and verifies like a live store would (every page's
/// checksum) and holds as many rows in every table as the snapshot it was copied from.
fn verify(path: &Path, expected: &[(String, u64)]) -> Result<()> {
    let copy = super::handle::open_verified(path)?;
    let found = row_counts(&copy.begin_read()?)?;
    if found != expected {
        let diff: Vec<String> = expected
            .iter()
            .zip(&found)
            .filter(|(a, b)| a != b)
            .map(|((t, a), (_, b))| format!("{t}: {a} rows, copy has {b}"))
            .collect();
        return Err(StoreError::Rejected(format!(
            "the copy differs from the store: {}",
            diff.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backup copies every table a write request can write (the alert grouping and the
    /// repeat suppression of notifications were once left out): the write scope's table list
    /// is the store's own.
    #[test]
    fn a_backup_copies_every_table_the_store_writes() {
        let mut copied = Vec::new();
        macro_rules! one {
            ($t:expr) => {
                copied.push($t.name().to_string())
            };
        }
        every_table!(one);
        let missing: Vec<_> = super::super::write_tx::table_names()
            .into_iter()
            .filter(|name| !copied.iter().any(|c| c == name))
            .collect();
        assert!(missing.is_empty(), "not in the backup: {missing:?}");
    }
}
