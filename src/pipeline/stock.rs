//! stock-check: hold what the order needs, all units or none, in one transaction.
//!
//! Card products reserve `quantity × units` keys (only when delivering automatically: a
//! manual order's keys stay in the pool for the seller to decide). Counted products reserve
//! units whether shipped automatically or by hand, so a physical item with `stock: 1` cannot
//! be sold twice. Short stock hands the order over with `out_of_stock` + `manual_ship`;
//! crossing the low-stock threshold emits `low_stock`.

use crate::config::{Config, Stock};
use crate::store::{OutboxDraft, ReserveOutcome, ReserveRequest, StoreError};
use crate::why::Why;

use super::alerts;
use super::plan::Plan;
use super::stage::{Outcome, StageCtx};

/// The stage's own `low_stock_alert` is read through [`Config::low_stock_threshold`], the one
/// rule for which threshold applies (the status page asks it too).
pub(super) async fn run(ctx: &StageCtx<'_>) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(why) => return Ok(ctx.manual(why)),
    };
    let req = request(
        ctx.config,
        &plan,
        ctx.order.quantity,
        ctx.order.sku.as_deref(),
    );
    let subject = match &req {
        ReserveRequest::Cards { pool, .. } => format!("卡池 {pool}"),
        ReserveRequest::Stock { item_id, .. } => format!("商品 {item_id}"),
        ReserveRequest::Nothing => return reserve_nothing(ctx).await,
        ReserveRequest::NoPool => {
            let why = Why::NoPoolForSku {
                sku: ctx.order.sku.clone().unwrap_or_else(|| "未知".into()),
            };
            return Ok(ctx.manual(why));
        }
    };
    let router = ctx.router();
    let on_short = |why: &Why| -> Vec<OutboxDraft> {
        [
            alerts::out_of_stock(ctx.order, &plan.product.title, &subject, why),
            alerts::manual_ship(ctx.config, ctx.order, why),
        ]
        .iter()
        .flat_map(|a| router.drafts(a))
        .collect()
    };
    let title = plan.product.title.clone();
    let low_alert = |remaining: i64| -> Vec<OutboxDraft> {
        router.drafts(&alerts::low_stock(&title, &subject, remaining))
    };
    let oid = ctx.order.order_id.clone();
    let outcome = ctx.store_op(|s| s.reserve(&oid, &req, &on_short, &low_alert))?;
    Ok(match outcome {
        ReserveOutcome::Reserved | ReserveOutcome::AlreadyReserved => Outcome::Continue,
        ReserveOutcome::Short { needed, available } => Outcome::Stop(format!(
            "out of stock: needs {needed}, {available} available"
        )),
        ReserveOutcome::NotActive(state) => {
            Outcome::Stop(format!("delivery is {}", state.as_str()))
        }
    })
}

async fn reserve_nothing(ctx: &StageCtx<'_>) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let outcome = ctx.store_op(|s| {
        s.reserve(&oid, &ReserveRequest::Nothing, &|_| Vec::new(), &|_| {
            Vec::new()
        })
    })?;
    Ok(match outcome {
        ReserveOutcome::NotActive(state) => {
            Outcome::Stop(format!("delivery is {}", state.as_str()))
        }
        _ => Outcome::Continue,
    })
}

fn request(config: &Config, plan: &Plan, quantity: u32, sku: Option<&str>) -> ReserveRequest {
    let product = &plan.product;
    // 64-bit product of two u32s: exact, never wraps; the store compares it with the pool.
    let units = u64::from(quantity.max(1)) * u64::from(product.units);
    match &product.stock {
        Stock::Unlimited => ReserveRequest::Nothing,
        Stock::Quantity(configured) => ReserveRequest::Stock {
            item_id: product.item_id.clone(),
            units,
            configured: *configured,
            low_stock_alert: config.listing_low_stock_threshold(product, *configured),
        },
        Stock::Cards { .. } if !plan.auto => ReserveRequest::Nothing,
        Stock::Cards { .. } => {
            let Some(pool) = product.pool_for(sku) else {
                return ReserveRequest::NoPool;
            };
            ReserveRequest::Cards {
                pool: pool.to_string(),
                count: units,
                reusable: config.pools.get(pool).is_some_and(|p| p.reusable),
                low_stock_alert: config.low_stock_threshold(Some(product), Some(pool)),
            }
        }
    }
}
