//! The supplier step of the ship stage: buy each unit's card before anything is sent.
//!
//! Each unit is claimed in the store ([`crate::store::Store::begin_supplier_call`]) before the
//! supplier is called and recorded after, so the card is stored before the chat send and a
//! retry or a restart reuses it. A call that provably bought nothing is tried again later
//! with the same idempotency key (`supplier.retries`, backing off like a delivery); one whose
//! outcome is unknown hands the order to the seller as `needs_human` with an alert.

use crate::config::supplier::{SupplierConfig, SupplierFields};
use crate::config::{Config, ShipParams};
use crate::store::{BeginCall, CallResult, OrderRecord, Store, StoreError};
use crate::supplier::{CardSupplier, ReturnOutcome};
use crate::why::{Failure, Why};

use super::alerts;
use super::plan::Plan;
use super::stage::{Outcome, Resume, StageCtx};

/// Buy every unit's card that is not stored yet. `None` means "all cards are stored, go on".
pub(super) async fn fetch_all(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
) -> Result<Option<Outcome>, StoreError> {
    let Some(config) = plan.product.supplier.as_ref() else {
        return Ok(None);
    };
    let oid = ctx.order.order_id.clone();
    let units = u32::try_from(u64::from(ctx.order.quantity.max(1)) * u64::from(plan.product.units))
        .unwrap_or(u32::MAX);
    let on_uncertain = ctx.router().drafts(&alerts::needs_human(
        ctx.config,
        ctx.order,
        "请求供应商途中进程停止，无法确定是否已购买卡密，请到供应商后台核对",
    ));
    loop {
        let begin = ctx.store_op(|s| s.begin_supplier_call(&oid, units, &on_uncertain))?;
        let (order, unit, total, key, attempt) = match begin {
            BeginCall::Go {
                order,
                unit,
                units,
                key,
                attempt,
            } => (order, unit, units, key, attempt),
            BeginCall::AllFetched => return Ok(None),
            BeginCall::Uncertain => {
                return Ok(Some(Outcome::Stop(
                    "supplier outcome unknown; needs_human".into(),
                )));
            }
            BeginCall::NotShippable(why) => return Ok(Some(Outcome::Stop(why))),
        };
        let fields = fields_of(&order, unit, total, &key);
        let result = call(ctx, config, &fields).await;
        tracing::info!(order_id = %oid, unit, attempt, result = ?result, "Supplier call settled.");
        let outcome = match &result {
            CallResult::Fetched { .. } => "fetched",
            CallResult::NotBought { .. } => "not_bought",
            CallResult::Uncertain { .. } => "uncertain",
        };
        crate::metrics::inc(crate::metrics::SUPPLIER_CALLS, &[("outcome", outcome)]);
        let alerts = match &result {
            CallResult::Uncertain { reason, .. } => {
                let why = Why::SupplierUncertain {
                    unit,
                    failure: Some(Failure::classify(reason)),
                };
                ctx.router().drafts(&alerts::needs_human(
                    ctx.config,
                    &order,
                    &why.sentence(&oid),
                ))
            }
            _ => Vec::new(),
        };
        ctx.store_op(|s| s.finish_supplier_call(&oid, unit, &result, &alerts))?;
        match result {
            CallResult::Fetched { .. } => continue,
            CallResult::Uncertain { reason, .. } => {
                return Ok(Some(Outcome::Stop(format!(
                    "supplier outcome unknown: {reason}"
                ))));
            }
            CallResult::NotBought {
                reason, retryable, ..
            } => {
                return Ok(Some(not_bought(
                    ctx, plan, params, config, attempt, retryable, reason,
                )));
            }
        }
    }
}

async fn call(ctx: &StageCtx<'_>, config: &SupplierConfig, fields: &SupplierFields) -> CallResult {
    match crate::supplier::request(config, fields) {
        Ok(req) => ctx.supplier.fetch(&req).await,
        Err(reason) => CallResult::NotBought {
            reason,
            status: None,
            retryable: false,
        },
    }
}

/// Nothing was bought: try again later with the same key, or hand the order over.
fn not_bought(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    config: &SupplierConfig,
    attempt: u32,
    retryable: bool,
    reason: String,
) -> Outcome {
    if retryable && attempt <= config.retries {
        let backoff = params
            .retry_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        return Outcome::Defer {
            until: ctx.now() + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            resume: Resume::Same,
        };
    }
    tracing::info!(order_id = %ctx.order.order_id, reason = %reason, "Supplier sold no card; handing over.");
    let why = Why::SupplierFailed {
        failure: Failure::classify(&reason),
    };
    let alert = alerts::ship_failed(ctx.order, &plan.product.title, attempt, &why);
    Outcome::Manual {
        why,
        alerts: vec![alert],
    }
}

fn fields_of(order: &OrderRecord, unit: u32, units: u32, key: &str) -> SupplierFields {
    SupplierFields {
        order_id: order.order_id.clone(),
        unit,
        units,
        item_id: order.item_id.clone().unwrap_or_default(),
        sku: order.sku.clone().unwrap_or_default(),
        quantity: order.quantity,
        buyer_id: order.buyer_id.clone().unwrap_or_default(),
        amount: order.amount.clone().unwrap_or_default(),
        idempotency_key: key.to_string(),
        card: String::new(),
    }
}

/// After a refund or close: give every fetched card that never reached the buyer back to the
/// supplier (`supplier.return`), each at most once. Failures are recorded for the seller.
pub(super) async fn give_back(
    store: &Store,
    supplier: &dyn CardSupplier,
    config: &Config,
    order_id: &str,
) -> Result<(), StoreError> {
    let oid = order_id.to_string();
    let Some(order) = store.call(move |s| s.order(&oid)).await? else {
        return Ok(());
    };
    let Some(sup) = order
        .item_id
        .as_deref()
        .and_then(|i| config.product(i))
        .and_then(|p| p.supplier.as_ref())
        .filter(|s| s.return_call.is_some())
    else {
        return Ok(());
    };
    let oid = order_id.to_string();
    let claimed = store.call(move |s| s.begin_supplier_returns(&oid)).await?;
    let units = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
    for (unit, key, card) in claimed {
        let mut fields = fields_of(&order, unit, units, &key);
        fields.card = card;
        let outcome = match crate::supplier::return_request(sup, &fields) {
            Some(Ok(req)) => supplier.give_back(&req).await,
            Some(Err(reason)) => ReturnOutcome::Failed { reason },
            None => continue,
        };
        let failure = match outcome {
            ReturnOutcome::Returned => None,
            ReturnOutcome::Failed { reason } => Some(reason),
        };
        let label = if failure.is_none() {
            "returned"
        } else {
            "return_failed"
        };
        crate::metrics::inc(crate::metrics::SUPPLIER_CALLS, &[("outcome", label)]);
        let oid = order_id.to_string();
        store
            .call(move |s| s.finish_supplier_return(&oid, unit, failure.as_deref()))
            .await?;
    }
    Ok(())
}
