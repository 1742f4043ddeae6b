//! Uploaded delivery images, by the SHA-256 of their bytes: a file is uploaded to the
//! platform's CDN once and its URL reused by every later order, across restarts.
//!
//! An upload has no effect a buyer can see (it only puts a file on the CDN), so it needs no
//! claim before the call: an upload whose answer was lost is simply made again. What the
//! buyer sees, the image message, is claimed in the ledger like any text part.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Result, Store, decode, encode};

/// sha256 (hex) → [`UploadedImage`].
pub(super) const IMAGE_UPLOADS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("image_uploads");

/// Where one image file lives on the platform's CDN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedImage {
    /// The CDN URL the upload answered (`object.url`).
    pub url: String,
    /// From the upload's `object.pix` (`<width>x<height>`).
    pub width: u32,
    pub height: u32,
    /// The file's size in bytes, when it was uploaded.
    pub bytes: u64,
    /// The account that uploaded it.
    pub account: String,
    /// The config-relative path it was uploaded from (the same bytes may have other names).
    pub path: String,
    pub uploaded_at: u64,
}

impl Store {
    /// The CDN copy of the file with this SHA-256 (hex), if it was uploaded before.
    pub fn uploaded_image(&self, sha256: &str) -> Result<Option<UploadedImage>> {
        self.read(|tx| {
            let table = match tx.open_table(IMAGE_UPLOADS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            match table.get(sha256)? {
                Some(v) => decode("image_uploads", v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Remember an upload. A second upload of the same bytes (two orders racing) keeps the
    /// first URL, so every order shows the same one.
    pub fn record_uploaded_image(&self, sha256: &str, image: &UploadedImage) -> Result<()> {
        let row = encode(image);
        self.write(|tx| {
            let mut table = tx.image_uploads()?;
            if table.get(sha256)?.is_none() {
                table.insert(sha256, row.as_slice())?;
            }
            Ok(())
        })
    }
}
