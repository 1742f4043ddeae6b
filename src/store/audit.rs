//! The audit log: who did what outside the automatic flow (imports, manual ships, retries,
//! reloads, ignored events), in commit order.

use redb::ReadableTable;

use super::records::AuditEntry;
use super::write_tx::WriteTx;
use super::{AUDIT, Result, Store, decode, encode, next_id};

pub(super) fn append(tx: &WriteTx, at: u64, actor: &str, action: &str, detail: &str) -> Result<()> {
    let seq = next_id(tx, "audit")?;
    let entry = AuditEntry {
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        detail: detail.to_string(),
    };
    tx.audit()?.insert(seq, encode(&entry).as_slice())?;
    Ok(())
}

impl Store {
    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<()> {
        let now = self.now();
        self.write(|tx| append(tx, now, actor, action, detail))
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_tail(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(AUDIT)?.iter()?.rev().take(limit) {
                out.push(decode("audit_log", row?.1.value())?);
            }
            Ok(out)
        })
    }
}
