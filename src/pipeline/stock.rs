//! stock-check: hold what the order needs, all units or none, in one transaction.
//!
//! Card products reserve `quantity × units` keys (only when delivering automatically: a
//! manual order's keys stay in the pool for the seller to decide). Counted products reserve
//! units whether shipped automatically or by hand, so a physical item with `stock: 1` cannot
//! be sold twice. Short stock hands the order over with `out_of_stock` + `manual_ship`;
//! crossing the low-stock threshold emits `low_stock`.

use crate::config::{Config, Stock, StockParams};
use crate::notify::{Alert, EventKind};
use crate::store::{OutboxDraft, ReserveOutcome, ReserveRequest, StoreError};

use super::{Outcome, Plan, StageCtx};

pub(super) async fn run(ctx: &StageCtx<'_>, params: &StockParams) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(reason) => {
            return Ok(Outcome::Manual {
                alerts: vec![super::ship::manual_alert(ctx.config, ctx.order, &reason)],
                reason,
            });
        }
    };
    let req = request(
        ctx.config,
        &plan,
        ctx.order.quantity,
        ctx.order.sku.as_deref(),
        params,
    );
    let subject = match &req {
        ReserveRequest::Cards { pool, .. } => format!("卡池 {pool}"),
        ReserveRequest::Stock { item_id, .. } => format!("商品 {item_id}"),
        ReserveRequest::Nothing => return reserve_nothing(ctx).await,
        ReserveRequest::NoPool => {
            let reason = format!(
                "规格「{}」没有对应的卡池 (sku_cards)",
                ctx.order.sku.as_deref().unwrap_or("未知")
            );
            let alerts = vec![super::ship::manual_alert(ctx.config, ctx.order, &reason)];
            return Ok(Outcome::Manual { reason, alerts });
        }
    };
    let router = ctx.router();
    let on_short: Vec<OutboxDraft> = [
        Alert::new(EventKind::OutOfStock)
            .order(&ctx.order.order_id)
            .fact("商品", plan.product.title.clone())
            .fact("库存", subject.clone())
            .action("请补充库存后手动发货，或退款给买家"),
        super::ship::manual_alert(ctx.config, ctx.order, "库存不足"),
    ]
    .iter()
    .flat_map(|a| router.drafts(a))
    .collect();
    let title = plan.product.title.clone();
    let low_alert = move |remaining: i64| -> Vec<OutboxDraft> {
        let alert = Alert::new(EventKind::LowStock)
            .fact("商品", title.clone())
            .fact("库存", subject.clone())
            .fact("剩余", remaining.to_string())
            .action("请尽快补充库存（cards import 或修改 products.yaml 的 stock）");
        router.drafts(&alert)
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
    let outcome =
        ctx.store_op(|s| s.reserve(&oid, &ReserveRequest::Nothing, &[], &|_| Vec::new()))?;
    Ok(match outcome {
        ReserveOutcome::NotActive(state) => {
            Outcome::Stop(format!("delivery is {}", state.as_str()))
        }
        _ => Outcome::Continue,
    })
}

fn request(
    config: &Config,
    plan: &Plan,
    quantity: u32,
    sku: Option<&str>,
    params: &StockParams,
) -> ReserveRequest {
    let product = &plan.product;
    let units = quantity.max(1).saturating_mul(product.units);
    match &product.stock {
        Stock::Unlimited => ReserveRequest::Nothing,
        Stock::Quantity(configured) => ReserveRequest::Stock {
            item_id: product.item_id.clone(),
            units,
            configured: *configured,
            low_stock_alert: product.low_stock_alert.unwrap_or(params.low_stock_alert),
        },
        Stock::Cards { .. } if !plan.auto => ReserveRequest::Nothing,
        Stock::Cards { .. } => {
            let Some(pool) = product.pool_for(sku) else {
                return ReserveRequest::NoPool;
            };
            let pool_cfg = config.pools.get(pool).cloned().unwrap_or_default();
            ReserveRequest::Cards {
                pool: pool.to_string(),
                count: units,
                reusable: pool_cfg.reusable,
                low_stock_alert: product
                    .low_stock_alert
                    .or(pool_cfg.low_stock_alert)
                    .unwrap_or(params.low_stock_alert),
            }
        }
    }
}
