//! ship: deliver automatically, or hand the order to the seller.
//!
//! The ship mode orders two steps, sending the rendered content in chat and confirming the
//! shipment on the platform. Each step is claimed in the ledger before the marketplace is
//! called and recorded after, so a resumed job skips finished steps and a send that was in
//! flight during a crash becomes `needs_human` instead of being repeated. A failure that
//! provably did not reach the buyer is retried with exponential backoff up to `max_retries`
//! (each step has its own budget), then handed over as `ship_failed`, whose advice says whether
//! the message had already reached the buyer.

use std::sync::Mutex;

use crate::config::{Category, ShipParams, Stage};
use crate::marketplace::{ConsignOutcome, ConsignRequest};
use crate::order::ShipMode;
use crate::store::{
    BeginStep, ConfirmProof, DeliveryState, JobDone, OrderRecord, SendThen, ShipStep, StepResult,
    StoreError,
};
use crate::why::{Failure, Why};

use super::alerts;
use super::content;
use super::images;
use super::plan::Plan;
use super::send;
use super::stage::{Outcome, Resume, StageCtx};
use super::supplier;

pub(super) async fn run(ctx: &StageCtx<'_>, params: &ShipParams) -> Result<Outcome, StoreError> {
    let plan = match ctx.plan() {
        Ok(p) => p,
        Err(why) => return Ok(ctx.manual(why)),
    };
    if !plan.auto {
        return Ok(ctx.manual(why_manual(&plan, params)));
    }
    let steps = steps(plan.mode);
    // A supplier product's cards are bought and stored before anything goes out.
    if steps.contains(&ShipStep::Send) {
        if let Some(outcome) = supplier::fetch_all(ctx, &plan, params).await? {
            return Ok(outcome);
        }
    }
    // Every image is on the CDN before any part is claimed or the shipment confirmed.
    let proof_pics = plan.product.delivery.proof_images && steps.contains(&ShipStep::Confirm);
    if steps.contains(&ShipStep::Send) || proof_pics {
        if let Some(outcome) = images::upload_all(ctx, &plan, params).await? {
            return Ok(outcome);
        }
    }
    let call = ConfirmCall::new(ctx, &plan);
    let build = |order: &OrderRecord, cards: &[String]| call.build(order, cards);
    let mut claimed = None;
    for (i, step) in steps.iter().enumerate() {
        let next = steps.get(i + 1);
        let end = match step {
            ShipStep::Send => {
                let done = next.is_none().then(|| job_done(ctx, &plan)).flatten();
                let then = match next {
                    None => SendThen::Last(done.as_ref()),
                    Some(ShipStep::Confirm) => SendThen::Confirm(&build),
                    Some(ShipStep::Send) => SendThen::More,
                };
                send::step(ctx, &plan, params, then).await?
            }
            ShipStep::Confirm => {
                let last = next.is_none();
                confirm_step(ctx, &plan, params, last, claimed.take(), &call).await?
            }
        };
        match end {
            StepEnd::Next(claim) => claimed = claim,
            StepEnd::End(outcome) => return Ok(outcome),
        }
    }
    Ok(send::follow_up(ctx, &plan, params)
        .await?
        .unwrap_or(Outcome::Continue))
}

/// How a ship step ended.
pub(super) enum StepEnd {
    /// Go on with the next step; `Some(attempt)` when its claim rode on this step's result.
    Next(Option<u32>),
    /// The ship stage ends here with this outcome.
    End(Outcome),
}

/// The confirm call, built inside the transaction that claims it (the claim keeps what the
/// call carries): by `begin_confirm`, or by the send result that carries the confirm claim.
pub(super) struct ConfirmCall<'a> {
    ctx: &'a StageCtx<'a>,
    plan: &'a Plan,
    pic_list: Vec<String>,
    request: Mutex<Option<ConsignRequest>>,
}

impl<'a> ConfirmCall<'a> {
    fn new(ctx: &'a StageCtx<'a>, plan: &'a Plan) -> Self {
        Self {
            ctx,
            plan,
            pic_list: images::proof_pics(ctx, plan),
            request: Mutex::default(),
        }
    }

    /// Build the request for `order` with its `cards`; returns what the ledger keeps of it.
    /// Runs inside a write request, which may run more than once.
    pub(super) fn build(&self, order: &OrderRecord, cards: &[String]) -> Option<ConfirmProof> {
        let (req, proof) = consign_request(self.ctx, self.plan, order, cards, &self.pic_list);
        *self.request.lock().unwrap_or_else(|p| p.into_inner()) = Some(req);
        proof
    }

    fn take(&self) -> Option<ConsignRequest> {
        self.request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// The job's end, when it may ride on the ship stage's last step: no follow-up message is
/// due, and no stage after this one writes anything but the notify stage's `delivered`
/// announcement, which is queued with it. `None`: the runner ends the job as usual.
fn job_done(ctx: &StageCtx<'_>, plan: &Plan) -> Option<JobDone> {
    if plan.product.delivery.follow_up.is_some() {
        return None;
    }
    let rest = ctx
        .config
        .stages
        .get(ctx.stage_index + 1..)
        .unwrap_or_default();
    if !rest.iter().all(|s| matches!(s, Stage::Notify(_))) {
        return None;
    }
    let announce = rest
        .iter()
        .flat_map(|_| ctx.router().drafts(&alerts::delivered(ctx.order)))
        .collect();
    Some(JobDone {
        job_id: ctx.job_id,
        announce,
    })
}

fn steps(mode: ShipMode) -> &'static [ShipStep] {
    match mode {
        ShipMode::SendThenConfirm => &[ShipStep::Send, ShipStep::Confirm],
        ShipMode::ConfirmThenSend => &[ShipStep::Confirm, ShipStep::Send],
        ShipMode::SendOnly => &[ShipStep::Send],
        ShipMode::ConfirmOnly => &[ShipStep::Confirm],
    }
}

fn why_manual(plan: &Plan, params: &ShipParams) -> Why {
    if plan.product.category == Category::Physical {
        Why::Physical
    } else if !plan.product.auto_ship {
        Why::AutoShipOff
    } else {
        debug_assert!(!params.enabled, "plan.auto is false for a reason");
        Why::ShippingOff
    }
}

/// A step's result, plus whether a safe failure is worth retrying.
struct Attempted {
    result: StepResult,
    retryable: bool,
}

/// The confirm step, claimed here or by the send result before it (`claimed`: that attempt).
/// When it is the last step, the job's end rides on its result.
async fn confirm_step(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    last: bool,
    claimed: Option<u32>,
    call: &ConfirmCall<'_>,
) -> Result<StepEnd, StoreError> {
    let oid = ctx.order.order_id.clone();
    let attempt = match claimed {
        Some(attempt) => attempt,
        None => {
            let mut build = |order: &OrderRecord, cards: &[String]| call.build(order, cards);
            match ctx.store_op(|s| s.begin_confirm(&oid, &[], &mut build))? {
                BeginStep::Go { attempt, .. } => attempt,
                BeginStep::AlreadyDone => return Ok(StepEnd::Next(None)),
                // A send was in flight at a crash (recorded as needs_human by begin_step).
                BeginStep::OutcomeUnknown => {
                    return Ok(StepEnd::End(Outcome::Stop(
                        "send outcome unknown; needs_human".into(),
                    )));
                }
                BeginStep::NotShippable(why) => return Ok(StepEnd::End(Outcome::Stop(why))),
            }
        }
    };
    // The request was built inside the claim, which keeps what it carries (keys masked).
    let Some(request) = call.take() else {
        return Err(StoreError::Rejected(format!(
            "order {oid}: the confirm request was not built"
        )));
    };
    let attempted = confirm(ctx, &request).await;
    let done = last.then(|| job_done(ctx, plan)).flatten();
    let state = ctx
        .store
        .finish_step_async(&oid, &attempted.result, last, &[], done.as_ref())
        .await?;
    Ok(match attempted.result {
        StepResult::FailedSafe { reason } => StepEnd::End(after_failure(
            ctx,
            plan,
            params,
            Failed {
                attempt,
                retryable: attempted.retryable,
                message_sent: plan.mode == ShipMode::SendThenConfirm,
                confirm: true,
                reason,
            },
        )),
        _ if done.is_some() && state == DeliveryState::Delivered => StepEnd::End(Outcome::Finished),
        _ => StepEnd::Next(None),
    })
}

/// A send step that failed safely: nothing reached the buyer.
pub(super) fn after_safe_failure(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    attempt: u32,
    retryable: bool,
    reason: String,
) -> Outcome {
    let failed = Failed {
        attempt,
        retryable,
        message_sent: false,
        confirm: false,
        reason,
    };
    after_failure(ctx, plan, params, failed)
}

/// A step that failed safely: which attempt of that step, whether to try again, and whether
/// the delivery message had already reached the buyer (a failed confirm after the send).
struct Failed {
    attempt: u32,
    retryable: bool,
    message_sent: bool,
    /// The confirm step failed (else the send step).
    confirm: bool,
    reason: String,
}

fn after_failure(ctx: &StageCtx<'_>, plan: &Plan, params: &ShipParams, failed: Failed) -> Outcome {
    let Failed {
        attempt,
        retryable,
        message_sent,
        confirm,
        reason,
    } = failed;
    let max_retries = plan.product.max_retries.unwrap_or(params.max_retries);
    if retryable && attempt <= max_retries {
        let backoff = params
            .retry_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        tracing::info!(order_id = %ctx.order.order_id, attempt, reason = %reason, "Delivery failed safely; will retry.");
        return Outcome::Defer {
            until: crate::clock::after_ms(ctx.now(), backoff),
            resume: Resume::Same,
        };
    }
    let failure = Failure::classify(&reason);
    let why = if confirm {
        Why::ConfirmFailed {
            failure,
            attempts: attempt,
            message_sent,
        }
    } else {
        Why::SendFailed {
            failure,
            attempts: attempt,
        }
    };
    let alert = alerts::ship_failed(ctx.order, &plan.product.title, attempt, &why);
    Outcome::Manual {
        why,
        alerts: vec![alert],
    }
}

/// The confirm call for `order` with its `cards`, and what of it the ledger keeps (`None`
/// when the form stays empty).
fn consign_request(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    order: &OrderRecord,
    cards: &[String],
    pic_list: &[String],
) -> (ConsignRequest, Option<ConfirmProof>) {
    let (trade_text, kept, error) = match content::proof(ctx.config, plan, order, cards) {
        Some(Ok(text)) => (Some(text.sent), text.masked, None),
        Some(Err(reason)) => {
            // The shipment still gets confirmed; only the form stays empty.
            tracing::warn!(order_id = %order.order_id, reason = %reason, "Proof of delivery not built; confirming without it.");
            (None, String::new(), Some(reason))
        }
        None => (None, String::new(), None),
    };
    let proof =
        (trade_text.is_some() || !pic_list.is_empty() || error.is_some()).then(|| ConfirmProof {
            trade_text: kept,
            plain_cards: trade_text.is_some() && plan.product.delivery.proof_plain_cards,
            pic_list: pic_list.to_vec(),
            error,
            ..ConfirmProof::default()
        });
    let req = ConsignRequest {
        account: order.account.clone(),
        order_id: order.order_id.clone(),
        trade_text,
        pic_list: pic_list.to_vec(),
    };
    (req, proof)
}

async fn confirm(ctx: &StageCtx<'_>, req: &ConsignRequest) -> Attempted {
    match ctx.market.confirm_shipment(req).await {
        ConsignOutcome::Confirmed | ConsignOutcome::AlreadyShipped => Attempted {
            result: StepResult::Confirmed,
            retryable: false,
        },
        // Confirming is idempotent on the platform, so even an unclear failure is safe to retry.
        ConsignOutcome::Failed { reason, retryable } => Attempted {
            result: StepResult::FailedSafe {
                reason: format!("确认发货失败: {reason}"),
            },
            retryable,
        },
    }
}
