//! Classification: which product rule applies to an order and whether it ships automatically.
//!
//! Pure: computed from one config snapshot and the order, so every stage (and a job resumed
//! under a newer config) recomputes it instead of storing it. Without a usable rule the title
//! keywords only say what kind of item it looks like (for the seller's alert).

use crate::config::{Category, Config, Product, Stage};
use crate::order::ShipMode;
use crate::store::OrderRecord;

/// The classification of one order under one config snapshot.
#[derive(Debug, Clone)]
pub struct Plan {
    pub product: Product,
    /// Deliver automatically (rule says auto_ship, category virtual, ship stage enabled).
    pub auto: bool,
    pub mode: ShipMode,
}

/// Why a blacklisted buyer's order goes to the seller, if its buyer is on `blacklist.buyers`.
pub fn blacklisted(config: &Config, order: &OrderRecord) -> Option<String> {
    let buyer = order.buyer_id.as_deref()?;
    config.is_blacklisted(buyer).then(|| {
        format!(
            "买家 {buyer} 在黑名单中（pipeline.yaml 的 blacklist.buyers），不自动发货，请人工处理"
        )
    })
}

/// The rule for this order, or why there is none usable (a Chinese reason for the seller).
pub fn plan_for(config: &Config, order: &OrderRecord) -> Result<Plan, String> {
    if let Some(reason) = blacklisted(config, order) {
        return Err(reason);
    }
    let item_id = order
        .item_id
        .as_deref()
        .ok_or_else(|| "订单缺少商品ID，无法匹配商品规则".to_string())?;
    let product = config
        .product(item_id)
        .ok_or_else(|| format!("商品 {item_id} 没有配置规则"))?;
    if !product.active {
        return Err(format!("商品 {item_id} 的规则已停用 (status: inactive)"));
    }
    if let Some(acc) = &product.account {
        if acc != &order.account {
            return Err(format!(
                "商品 {item_id} 属于账号 {acc}，订单来自账号 {}",
                order.account
            ));
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
    Ok(Plan {
        product: product.clone(),
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
