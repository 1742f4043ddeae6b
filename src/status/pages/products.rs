//! 商品 (`/products`): every product rule with its stock, every card pool, and which of them
//! are low (by the same threshold rule as the stock-check stage: `Config::low_stock_threshold`).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::{Category, Config, Product, Stock};
use crate::store::views::ShopView;
use crate::store::{CardState, PoolCounts};

use crate::status::page::{Built, Input, ready};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    ready(products(input.view, input.config))
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub name: String,
    pub available: u64,
    pub reserved: u64,
    pub delivered: u64,
    pub revoked: u64,
    pub reusable: bool,
    pub low_stock_alert: u32,
    pub low: bool,
    /// Declared in the config (a pool only in the store was removed from `products.yaml`).
    pub configured: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantityView {
    pub configured: u32,
    pub committed: u32,
    pub remaining: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductView {
    pub item_id: String,
    pub title: String,
    pub account: Option<String>,
    pub category: &'static str,
    pub category_label: &'static str,
    pub auto_ship: bool,
    pub active: bool,
    /// `cards`, `quantity` or `unlimited`.
    pub stock_kind: &'static str,
    pub pools: Vec<PoolView>,
    pub quantity: Option<QuantityView>,
    /// None: no low-stock alert for this listing (see `Config::listing_low_stock_threshold`).
    pub low_stock_alert: Option<u32>,
    pub low: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductsPage {
    pub products: Vec<ProductView>,
    pub pools: Vec<PoolView>,
    pub low_stock: usize,
}

pub fn products(view: &ShopView, config: &Config) -> ProductsPage {
    let mut products: Vec<ProductView> = config
        .products
        .values()
        .map(|p| product_view(view, config, p))
        .collect();
    products.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let mut names: Vec<&String> = config.pools.keys().chain(view.pools.keys()).collect();
    names.sort();
    names.dedup();
    let pools: Vec<PoolView> = names
        .into_iter()
        .map(|n| pool_view(view, config, n, None))
        .collect();
    let low_stock = products.iter().filter(|p| p.low).count();
    ProductsPage {
        products,
        pools,
        low_stock,
    }
}

fn product_view(view: &ShopView, config: &Config, p: &Product) -> ProductView {
    let mut alert = Some(config.low_stock_threshold(Some(p), None));
    let (kind, pools, quantity) = match &p.stock {
        Stock::Cards { pool: main, by_sku } => {
            let mut names: Vec<&String> = main.iter().chain(by_sku.values()).collect();
            names.sort();
            names.dedup();
            let pools: Vec<PoolView> = names
                .into_iter()
                .map(|n| pool_view(view, config, n, Some(p)))
                .collect();
            // The pool's own threshold applies when the product sets none.
            alert = pools.first().map_or(alert, |pv| Some(pv.low_stock_alert));
            ("cards", pools, None)
        }
        Stock::Quantity(n) => {
            alert = config.listing_low_stock_threshold(p, *n);
            let row = view.stock.get(&p.item_id).copied().unwrap_or_default();
            let q = QuantityView {
                configured: *n,
                committed: row.committed,
                remaining: i64::from(*n) - i64::from(row.committed),
            };
            ("quantity", Vec::new(), Some(q))
        }
        Stock::Unlimited => ("unlimited", Vec::new(), None),
    };
    let low = pools.iter().any(|pv| pv.low)
        || quantity
            .as_ref()
            .is_some_and(|q| q.remaining <= alert.map_or(0, i64::from));
    ProductView {
        item_id: p.item_id.clone(),
        title: p.title.clone(),
        account: p.account.clone(),
        category: p.category.as_str(),
        category_label: match p.category {
            Category::Virtual => "虚拟",
            Category::Physical => "实物",
        },
        auto_ship: p.auto_ship,
        active: p.active,
        stock_kind: kind,
        pools,
        quantity,
        low_stock_alert: alert,
        // A product taken off sale is not a restocking task.
        low: low && p.active,
    }
}

/// `product` is the product whose stock this pool is (its threshold comes first), if any.
fn pool_view(view: &ShopView, config: &Config, name: &str, product: Option<&Product>) -> PoolView {
    let counts: PoolCounts = view.pools.get(name).cloned().unwrap_or_default();
    let cfg = config.pools.get(name);
    let alert = config.low_stock_threshold(product, Some(name));
    let reusable = cfg.is_some_and(|c| c.reusable) || counts.reusable > 0;
    let available = counts.get(CardState::Available);
    PoolView {
        name: name.to_string(),
        available,
        reserved: counts.get(CardState::Reserved),
        delivered: counts.get(CardState::Delivered),
        revoked: counts.get(CardState::Revoked),
        reusable,
        low_stock_alert: alert,
        // A reusable key is never used up: low only when there is none at all.
        low: if reusable {
            available == 0
        } else {
            available <= u64::from(alert)
        },
        configured: cfg.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_one_off_listing_is_not_low_until_it_is_sold_out() {
        // The example shop lists a second-hand iPhone with `stock: { quantity: 1 }` under the
        // stage's `low_stock_alert: 5`: it is not "running low" on the day it is listed.
        let config = crate::config::load(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let page = products(&ShopView::default(), &config);
        let iphone = page
            .products
            .iter()
            .find(|p| p.title.contains("iPhone"))
            .unwrap();
        assert_eq!(iphone.quantity.as_ref().map(|q| q.remaining), Some(1));
        assert_eq!(iphone.low_stock_alert, None);
        assert!(!iphone.low);
    }
}
