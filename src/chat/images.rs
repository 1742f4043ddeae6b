//! The images of a chat reply (`images:` on a keyword rule or the default reply): put on the
//! platform's CDN before the reply is committed, through the upload cache the deliveries use
//! ([`crate::store::UploadedImage`], by SHA-256), so a file is uploaded once across
//! conversations, orders and restarts.
//!
//! An upload shows the buyer nothing, so it needs no claim. If one fails, nothing of the reply
//! is sent: the reply is recorded as not delivered with a Chinese reason for the 会话 page.
//! The image messages themselves are claimed one by one like the reply's texts.

use crate::config::DeliveryImage;
use crate::marketplace::{ImageUpload, UploadOutcome};
use crate::store::{ReplyImage, UploadedImage};
use crate::why::Failure;

use super::runner::ChatRunner;

/// Every image on the CDN, in order, or the seller-facing reason why the reply cannot go out.
pub(super) async fn upload_all(
    runner: &ChatRunner,
    account: &str,
    images: &[DeliveryImage],
) -> Result<Vec<ReplyImage>, String> {
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let uploaded = match cached(runner, image).await {
            Some(u) => u,
            None => upload(runner, account, image).await?,
        };
        out.push(ReplyImage {
            path: image.path.clone(),
            url: uploaded.url,
            width: uploaded.width,
            height: uploaded.height,
        });
    }
    Ok(out)
}

async fn cached(runner: &ChatRunner, image: &DeliveryImage) -> Option<UploadedImage> {
    let sha = image.sha256.clone();
    match runner.store().call(move |s| s.uploaded_image(&sha)).await {
        Ok(found) => found,
        Err(e) => {
            // Uploading again is harmless: the cache keeps the first URL.
            tracing::warn!(image = %image.path, error = %e, "Could not read the upload cache.");
            None
        }
    }
}

async fn upload(
    runner: &ChatRunner,
    account: &str,
    image: &DeliveryImage,
) -> Result<UploadedImage, String> {
    let request = ImageUpload {
        account,
        file_name: image.file_name(),
        mime: image.mime,
        bytes: &image.bytes,
    };
    match runner.inner.port.upload_image(&request).await {
        UploadOutcome::Uploaded { url, width, height } => {
            let uploaded = UploadedImage {
                url,
                width,
                height,
                bytes: image.bytes.len() as u64,
                account: account.to_string(),
                path: image.path.clone(),
                uploaded_at: runner.store().now(),
            };
            let (sha, row) = (image.sha256.clone(), uploaded.clone());
            if let Err(e) = runner
                .store()
                .call(move |s| s.record_uploaded_image(&sha, &row))
                .await
            {
                tracing::warn!(image = %image.path, error = %e, "Could not remember an uploaded image.");
            }
            Ok(uploaded)
        }
        UploadOutcome::Failed { reason, .. } => {
            tracing::warn!(account, image = %image.path, reason = %reason, "Chat reply image not uploaded; the reply is not sent.");
            Err(format!(
                "图片 {} 上传失败（{}），这条回复没有发出",
                image.path,
                Failure::classify(&reason).label()
            ))
        }
    }
}
