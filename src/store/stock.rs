//! Counted stock for products declared with `stock: N`.
//!
//! The YAML number is the quantity the seller has put up for sale; the store counts units
//! reserved or sold against it. Raising the number in the config restocks by the difference
//! (logged as `restock`), lowering it is logged as `adjust`.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::cards::log_stock;
use super::records::*;
use super::write_tx::WriteTx;
use super::{Result, STOCK, STOCK_LOG, Store, decode, encode, get_json};

impl Store {
    /// Bring the store's view of declared quantities in line with the config.
    pub fn sync_stock(&self, declared: &BTreeMap<String, u32>) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            for (item_id, configured) in declared {
                let mut row = load(tx, item_id)?.unwrap_or_default();
                if row.configured == *configured && row != StockRow::default() {
                    continue;
                }
                let change = i64::from(*configured) - i64::from(row.configured);
                row.configured = *configured;
                save(tx, item_id, &row)?;
                let action = if change >= 0 {
                    StockAction::Restock
                } else {
                    StockAction::Adjust
                };
                log_stock(tx, item_id, action, change, row.remaining(), None, now)?;
            }
            Ok(())
        })
    }

    pub fn stock_rows(&self) -> Result<BTreeMap<String, StockRow>> {
        self.read(|tx| {
            let mut out = BTreeMap::new();
            for row in tx.open_table(STOCK)?.iter()? {
                let (k, v) = row?;
                out.insert(k.value().to_string(), decode("stock", v.value())?);
            }
            Ok(out)
        })
    }

    pub fn stock_log(&self) -> Result<Vec<StockLogEntry>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(STOCK_LOG)?.iter()? {
                out.push(decode("stock_log", row?.1.value())?);
            }
            Ok(out)
        })
    }
}

fn load(tx: &WriteTx, item_id: &str) -> Result<Option<StockRow>> {
    get_json(&*tx.stock()?, "stock", item_id)
}

fn save(tx: &WriteTx, item_id: &str, row: &StockRow) -> Result<()> {
    tx.stock()?.insert(item_id, encode(row).as_slice())?;
    Ok(())
}

/// Reserve `units`; `Err(available)` when short. Also reports a low-stock threshold crossing.
pub(super) fn take(
    tx: &WriteTx,
    item_id: &str,
    units: u64,
    configured: u32,
    order_id: &str,
    low_stock_alert: Option<u32>,
    now: u64,
) -> Result<std::result::Result<(Holding, Option<i64>), u64>> {
    let mut row = load(tx, item_id)?.unwrap_or(StockRow {
        configured,
        committed: 0,
    });
    let before = row.remaining();
    // `remaining` never exceeds u32::MAX, so a count that fits it also fits the row.
    let units = match u32::try_from(units) {
        Ok(u) if i64::from(u) <= before => u,
        _ => return Ok(Err(before.max(0) as u64)),
    };
    row.committed += units;
    save(tx, item_id, &row)?;
    let after = row.remaining();
    log_stock(
        tx,
        item_id,
        StockAction::Reserve,
        -i64::from(units),
        after,
        Some(order_id),
        now,
    )?;
    let crossed = low_stock_alert
        .map(i64::from)
        .and_then(|threshold| (before > threshold && after <= threshold).then_some(after));
    Ok(Ok((
        Holding::Stock {
            item_id: item_id.to_string(),
            units,
        },
        crossed,
    )))
}

pub(super) fn sold(
    tx: &WriteTx,
    item_id: &str,
    units: u32,
    order_id: &str,
    now: u64,
) -> Result<()> {
    let remaining = load(tx, item_id)?.unwrap_or_default().remaining();
    log_stock(
        tx,
        item_id,
        StockAction::Sold,
        -i64::from(units),
        remaining,
        Some(order_id),
        now,
    )
}

pub(super) fn release(
    tx: &WriteTx,
    item_id: &str,
    units: u32,
    order_id: &str,
    now: u64,
) -> Result<()> {
    let mut row = load(tx, item_id)?.unwrap_or_default();
    row.committed = row.committed.saturating_sub(units);
    save(tx, item_id, &row)?;
    log_stock(
        tx,
        item_id,
        StockAction::Release,
        i64::from(units),
        row.remaining(),
        Some(order_id),
        now,
    )
}
