//! Classification: which product rule applies to an order and whether it ships automatically.
//!
//! Pure: computed from one config snapshot and the order, so every stage (and a job resumed
//! under a newer config) recomputes it instead of storing it. Without a usable rule the title
//! keywords only say what kind of item it looks like (for the seller's alert).

use crate::config::{Category, Config, Product, Stage};
use crate::order::ShipMode;
use crate::store::OrderRecord;
use crate::why::Why;

/// The classification of one order under one config snapshot.
#[derive(Debug, Clone)]
pub struct Plan {
    pub product: Product,
    /// Deliver automatically (rule says auto_ship, category virtual, ship stage enabled).
    pub auto: bool,
    pub mode: ShipMode,
}

/// Why a blacklisted buyer's order goes to the seller, if its buyer is on `blacklist.buyers`.
pub fn blacklisted(config: &Config, order: &OrderRecord) -> Option<Why> {
    let buyer = order.buyer_id.as_deref()?;
    config.is_blacklisted(buyer).then(|| Why::Blacklisted {
        buyer: buyer.to_string(),
    })
}

/// The rule for this order, or why there is none usable.
pub fn plan_for(config: &Config, order: &OrderRecord) -> Result<Plan, Why> {
    if let Some(why) = blacklisted(config, order) {
        return Err(why);
    }
    let item_id = order.item_id.as_deref().ok_or(Why::NoItemId)?;
    let product = config.product(item_id).ok_or_else(|| Why::NoRule {
        item_id: item_id.to_string(),
    })?;
    if !product.active {
        return Err(Why::RuleInactive {
            item_id: item_id.to_string(),
        });
    }
    if let Some(acc) = &product.account {
        if acc != &order.account {
            return Err(Why::OtherAccount {
                item_id: item_id.to_string(),
                owner: acc.clone(),
                account: order.account.clone(),
            });
        }
    }
    let ship = config.ship();
    let mode = product
        .ship_mode
        .or(ship.map(|s| s.mode))
        .unwrap_or(ShipMode::SendThenConfirm);
    let auto = product.auto_ship
        && product.category == Category::Virtual
        && ship.is_some_and(|s| s.enabled);
    let mut product = product.clone();
    // A SKU with its own images (`delivery.sku_images`) sends those instead.
    product.delivery.select_sku(order.sku.as_deref());
    Ok(Plan {
        product,
        auto,
        mode,
    })
}

/// Title keywords decide what an unconfigured item looks like.
pub fn guess_category(config: &Config, title: &str) -> Category {
    let Some(Stage::Classify(p)) = config
        .stages
        .iter()
        .find(|s| matches!(s, Stage::Classify(_)))
    else {
        return Category::Physical;
    };
    if p.virtual_keywords
        .iter()
        .any(|k| title.contains(k.as_str()))
    {
        Category::Virtual
    } else if p
        .physical_keywords
        .iter()
        .any(|k| title.contains(k.as_str()))
    {
        Category::Physical
    } else {
        p.default
    }
}
