//! stock-check: hold what the order needs, all units or none, in one transaction.
//!
//! Card products reserve `quantity × units` keys (only when delivering automatically: a
//! manual order's keys stay in the pool for the seller to decide). Counted products reserve
//! units whether shipped automatically or by hand, so a physical item with `stock: 1` cannot
//! be sold twice. Short stock hands the order over with `out_of_stock` + `manual_ship`;
//! crossing the low-stock threshold emits `low_stock`.

use std::borrow::Borrow;
use std::sync::Arc;

use crate::config::{Config, Stage, Stock};
use crate::notify::Router;
use crate::store::{
    EarlyReserve, OrderRecord, OutboxDraft, Reservation, ReserveOutcome, ReserveRequest, StoreError,
};
use crate::why::Why;

use super::alerts;
use super::plan::{Plan, plan_for};
use super::stage::{Outcome, StageCtx};

/// The stage's own `low_stock_alert` is read through [`Config::low_stock_threshold`], the one
/// rule for which threshold applies (the status page asks it too).
pub(super) async fn run(ctx: &StageCtx<'_>) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(why) => return Ok(ctx.manual(why)),
    };
    let r = match reservation(ctx.config, &plan, ctx.order) {
        Held::Reserve(r) => r,
        Held::Nothing => return reserve_nothing(ctx).await,
        Held::NoPool(why) => return Ok(ctx.manual(why)),
    };
    let oid = ctx.order.order_id.clone();
    let outcome = ctx.store_op(|s| s.reserve(&oid, &r.request, &*r.on_short, &*r.low_stock))?;
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

/// What the stage holds for an order.
enum Held<'a> {
    Reserve(Reservation<'a>),
    Nothing,
    NoPool(Why),
}

/// The stage's reservation for `order` under `config`, with its alerts (owned, so a paid
/// order's ingest transaction can carry it too: [`early`]).
fn reservation<'a, C>(config: C, plan: &Plan, order: &OrderRecord) -> Held<'a>
where
    C: Borrow<Config> + Clone + Send + Sync + 'a,
{
    let request = request(config.borrow(), plan, order.quantity, order.sku.as_deref());
    let subject = match &request {
        ReserveRequest::Cards { pool, .. } => format!("卡池 {pool}"),
        ReserveRequest::Stock { item_id, .. } => format!("商品 {item_id}"),
        ReserveRequest::Nothing => return Held::Nothing,
        ReserveRequest::NoPool => {
            return Held::NoPool(Why::NoPoolForSku {
                sku: order.sku.clone().unwrap_or_else(|| "未知".into()),
            });
        }
    };
    let title = plan.product.title.clone();
    let (cfg, order, subject_short) = (config.clone(), order.clone(), subject.clone());
    let short_title = title.clone();
    let on_short = move |why: &Why| -> Vec<OutboxDraft> {
        let cfg: &Config = cfg.borrow();
        let router = Router::new(cfg.notify());
        [
            alerts::out_of_stock(&order, &short_title, &subject_short, why),
            alerts::manual_ship(cfg, &order, why),
        ]
        .iter()
        .flat_map(|a| router.drafts(a))
        .collect()
    };
    let low_stock = move |remaining: i64| -> Vec<OutboxDraft> {
        let cfg: &Config = config.borrow();
        Router::new(cfg.notify()).drafts(&alerts::low_stock(&title, &subject, remaining))
    };
    Held::Reserve(Reservation {
        request,
        on_short: Box::new(on_short),
        low_stock: Box::new(low_stock),
    })
}

/// The reservation a paid order's ingest makes in its own transaction (one durable point
/// instead of two, see ARCHITECTURE.md "Durability"), when that is exactly what this stage
/// would do next: only classify (pure) comes between ingest and stock-check, and classify
/// lets the order through with keys or counted stock to hold. Otherwise `None`, and the stage
/// reserves as before; when it runs after an early reservation it finds the delivery
/// `reserved` and writes nothing.
pub(super) fn early(config: &Arc<Config>) -> Option<Arc<EarlyReserve>> {
    let before = config
        .stages
        .iter()
        .take_while(|s| !matches!(s, Stage::StockCheck(_)));
    if !before
        .clone()
        .all(|s| matches!(s, Stage::Ingest(_) | Stage::Classify(_)))
        || before.count() == config.stages.len()
    {
        return None;
    }
    let config = config.clone();
    Some(Arc::new(move |order: &OrderRecord| {
        let plan = plan_for(&config, order).ok()?;
        match reservation(config.clone(), &plan, order) {
            Held::Reserve(r) => Some(r),
            Held::Nothing | Held::NoPool(_) => None,
        }
    }))
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
