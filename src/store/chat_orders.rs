//! What the chat pipeline may know about a buyer's orders with an account: the order and its
//! delivery (for "发货了吗"), and the card keys delivered to that buyer (only so the output
//! guard can make sure no reply repeats one; they are never logged or shown).

use redb::ReadableTable;

use super::records::{CardRow, DeliveryRecord, DeliveryState, Holding, OrderRecord};
use super::{CARDS, LEDGER, ORDERS, Result, Store, decode};

/// One of the buyer's orders and its delivery-ledger row.
#[derive(Debug, Clone, PartialEq)]
pub struct BuyerOrder {
    pub order: OrderRecord,
    pub delivery: Option<DeliveryRecord>,
}

impl Store {
    /// The buyer's orders with this account, newest first.
    pub fn chat_buyer_orders(&self, account: &str, buyer_id: &str) -> Result<Vec<BuyerOrder>> {
        if buyer_id.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|tx| {
            let orders = tx.open_table(ORDERS)?;
            let ledger = tx.open_table(LEDGER)?;
            let needle = buyer_id.as_bytes();
            let mut out = Vec::new();
            for row in orders.iter()? {
                let (_, v) = row?;
                // Decoding every order is the cost; the buyer id's bytes, which a record holds
                // verbatim (a MessagePack string, or a JSON one of schema 1), are a cheap test
                // that skips nearly all of them.
                if !contains(v.value(), needle) {
                    continue;
                }
                let order: OrderRecord = decode("orders", v.value())?;
                if order.account != account || order.buyer_id.as_deref() != Some(buyer_id) {
                    continue;
                }
                let delivery = match ledger.get(order.order_id.as_str())? {
                    Some(d) => Some(decode("delivery_ledger", d.value())?),
                    None => None,
                };
                out.push(BuyerOrder { order, delivery });
            }
            out.sort_by(|a, b| b.order.updated_time.cmp(&a.order.updated_time));
            Ok(out)
        })
    }

    /// Every card key that may have reached the buyer through these orders.
    pub fn chat_delivered_keys(&self, orders: &[BuyerOrder]) -> Result<Vec<String>> {
        self.read(|tx| {
            let cards = tx.open_table(CARDS)?;
            let mut keys = Vec::new();
            for o in orders {
                let Some(d) = &o.delivery else { continue };
                let maybe_sent = d.sent_at.is_some()
                    || matches!(d.state, DeliveryState::Sending | DeliveryState::NeedsHuman);
                if !maybe_sent {
                    continue;
                }
                let Holding::Cards { pool, ids } = &d.holding else {
                    // A supplier product's cards are kept per unit, not in a pool.
                    keys.extend(super::supplier::fetched_cards(tx, &d.order_id)?);
                    continue;
                };
                for id in ids {
                    if let Some(v) = cards.get((pool.as_str(), *id))? {
                        keys.push(decode::<CardRow>("card_keys", v.value())?.secret);
                    }
                }
            }
            Ok(keys)
        })
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
