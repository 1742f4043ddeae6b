//! The image step of the ship stage: every image of a delivery is on the platform's CDN
//! before the first part is claimed or the shipment confirmed.
//!
//! An upload shows the buyer nothing, so it is not claimed in the ledger; its result is kept
//! by content hash ([`crate::store::UploadedImage`]), so a file is uploaded once across orders
//! and restarts. If one upload fails nothing has happened yet: the send step's attempt is
//! counted (`failed_safe`, [`crate::why::Why::UploadFailed`]) and the order is retried like a
//! failed send, then handed to the seller when the retries are used up.

use std::collections::HashMap;

use crate::config::{DeliveryImage, ShipParams};
use crate::marketplace::{ImageUpload, UploadOutcome};
use crate::store::{StoreError, UploadedImage};
use crate::why::{Failure, Why};

use super::alerts;
use super::plan::Plan;
use super::stage::{Outcome, Resume, StageCtx};

/// Upload every image of the product that is not on the CDN yet. `None` means "all are
/// there, go on".
pub(super) async fn upload_all(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
) -> Result<Option<Outcome>, StoreError> {
    for image in &plan.product.delivery.images {
        if ctx.store_op(|s| s.uploaded_image(&image.sha256))?.is_some() {
            continue;
        }
        match upload(ctx, image).await {
            Ok(uploaded) => {
                ctx.store_op(|s| s.record_uploaded_image(&image.sha256, &uploaded))?;
            }
            Err((reason, retryable)) => {
                return failed(ctx, plan, params, image, &reason, retryable).map(Some);
            }
        }
    }
    Ok(None)
}

/// The CDN URLs of the product's images for the proof form (`delivery.proof_images`), at most
/// [`crate::config::delivery::PROOF_PICS_MAX`]; those not uploaded are left out.
pub(super) fn proof_pics(ctx: &StageCtx<'_>, plan: &Plan) -> Vec<String> {
    if !plan.product.delivery.proof_images {
        return Vec::new();
    }
    plan.product
        .delivery
        .images
        .iter()
        .filter_map(|i| ctx.store_op(|s| s.uploaded_image(&i.sha256)).ok().flatten())
        .map(|u| u.url)
        .take(crate::config::delivery::PROOF_PICS_MAX)
        .collect()
}

/// The CDN URL of each of the product's images that is uploaded, by SHA-256, read before the
/// parts are planned so each image part keeps the URL it goes out with.
pub(super) fn cdn_urls(ctx: &StageCtx<'_>, plan: &Plan) -> HashMap<String, String> {
    let images = &plan.product.delivery.images;
    images
        .iter()
        .filter_map(|i| {
            let uploaded = ctx
                .store_op(|s| s.uploaded_image(&i.sha256))
                .ok()
                .flatten()?;
            Some((i.sha256.clone(), uploaded.url))
        })
        .collect()
}

async fn upload(
    ctx: &StageCtx<'_>,
    image: &DeliveryImage,
) -> Result<UploadedImage, (String, bool)> {
    let request = ImageUpload {
        account: &ctx.order.account,
        file_name: image.file_name(),
        mime: image.mime,
        bytes: &image.bytes,
    };
    match ctx.market.upload_image(&request).await {
        UploadOutcome::Uploaded { url, width, height } => Ok(UploadedImage {
            url,
            width,
            height,
            bytes: image.bytes.len() as u64,
            account: ctx.order.account.clone(),
            path: image.path.clone(),
            uploaded_at: ctx.now(),
        }),
        UploadOutcome::Failed { reason, retryable } => Err((reason, retryable)),
    }
}

/// Nothing left and nothing was confirmed: retry later like a failed send, or hand over.
fn failed(
    ctx: &StageCtx<'_>,
    plan: &Plan,
    params: &ShipParams,
    image: &DeliveryImage,
    reason: &str,
    retryable: bool,
) -> Result<Outcome, StoreError> {
    let oid = ctx.order.order_id.clone();
    let attempt = ctx.store_op(|s| s.upload_failed(&oid, &image.path, reason))?;
    tracing::warn!(order_id = %oid, image = %image.path, attempt, reason = %reason, "Delivery image not uploaded; nothing was sent.");
    let max_retries = plan.product.max_retries.unwrap_or(params.max_retries);
    if retryable && attempt <= max_retries {
        let backoff = params
            .retry_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
        return Ok(Outcome::Defer {
            until: crate::clock::after_ms(ctx.now(), backoff),
            resume: Resume::Same,
        });
    }
    let why = Why::UploadFailed {
        failure: Failure::classify(reason),
        attempts: attempt,
        image: image.path.clone(),
    };
    let alert = alerts::ship_failed(ctx.order, &plan.product.title, attempt, &why);
    Ok(Outcome::Manual {
        why,
        alerts: vec![alert],
    })
}
