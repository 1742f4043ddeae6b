//! What the 日志 page tells its story from: a few orders' status logs and delivery ledgers,
//! read in one transaction (the page picks the most recently active orders from the cached
//! view, so this is a handful of point lookups, never a scan of the log table).

use super::records::{DeliveryRecord, OrderRecord, StatusLogEntry};
use super::{LEDGER, ORDER_LOG, ORDERS, Result, Store, decode, get_json};

/// One order with everything that happened to it.
#[derive(Debug, Clone)]
pub struct OrderStory {
    pub order: OrderRecord,
    pub log: Vec<StatusLogEntry>,
    pub ledger: Option<DeliveryRecord>,
}

impl Store {
    /// The stories of `order_ids` (unknown ids are skipped).
    pub fn order_stories(&self, order_ids: &[String]) -> Result<Vec<OrderStory>> {
        self.read(|tx| {
            let orders = tx.open_table(ORDERS)?;
            let logs = tx.open_table(ORDER_LOG)?;
            let ledger = tx.open_table(LEDGER)?;
            let mut out = Vec::with_capacity(order_ids.len());
            for id in order_ids {
                let Some(order) = get_json::<OrderRecord>(&orders, "orders", id)? else {
                    continue;
                };
                let mut log = Vec::new();
                for row in logs.range((id.as_str(), 0)..=(id.as_str(), u64::MAX))? {
                    log.push(decode("order_status_log", row?.1.value())?);
                }
                let ledger = get_json(&ledger, "delivery_ledger", id)?;
                out.push(OrderStory { order, log, ledger });
            }
            Ok(out)
        })
    }
}
