//! What a product's delivery looks like beyond its template: the message shape, the follow-up
//! message, and the buyers no order is delivered to automatically.
//!
//! Validated in `validate/products.rs` (per product) and `validate/mod.rs` (the blacklist);
//! the ship stage reads these through the [`super::Product`] and [`super::Config`] it holds.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// How the keys of one order are put into chat messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageShape {
    /// One message with every key (the template sees all of them in `cards`).
    #[default]
    Merged,
    /// One message per key (the template sees one key in `cards`, and `unit`/`units`).
    PerKey,
}

impl MessageShape {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merged => "merged",
            Self::PerKey => "per_key",
        }
    }
}

/// `delivery.proof`: what goes into the platform's 无需寄件 form when the shipment is
/// confirmed (`tradeText`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofKind {
    /// Nothing (the form stays empty, as before).
    #[default]
    Off,
    /// The delivered messages themselves.
    Content,
    /// `delivery.proof_template`, rendered like a delivery template.
    Summary,
}

/// `delivery.proof_cards`: whether keys in the proof are masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofCards {
    #[default]
    Masked,
    Plain,
}

/// The proof of delivery a product asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Proof {
    #[default]
    Off,
    Content,
    /// A template in `templates/`.
    Summary(String),
}

/// `products[].delivery`: shape and extras of one product's delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryOptions {
    pub shape: MessageShape,
    /// A template sent once after the delivery succeeded (usage instructions, …).
    pub follow_up: Option<String>,
    pub proof: Proof,
    /// Keys appear in full in the proof (the seller opted in with `proof_cards: plain`).
    pub proof_plain_cards: bool,
    /// Images sent after the text messages, one chat message each (`delivery.images`).
    pub images: Vec<DeliveryImage>,
    /// The images' CDN URLs (the first [`PROOF_PICS_MAX`]) go into the 无需寄件 form.
    pub proof_images: bool,
    /// Per SKU (`delivery.sku_images`), the images that replace `images` for its orders, the
    /// way `sku_cards` picks a pool.
    pub sku_images: BTreeMap<String, Vec<DeliveryImage>>,
}

impl DeliveryOptions {
    /// Narrow these options to an order of `sku`: its own images when `sku_images` names it.
    pub fn select_sku(&mut self, sku: Option<&str>) {
        if let Some(images) = sku.and_then(|s| self.sku_images.get(s.trim())) {
            self.images = images.clone();
        }
    }
}

/// The 无需寄件 form takes at most this many pictures (`picList`).
pub const PROOF_PICS_MAX: usize = 3;

/// Largest image file `delivery.images` accepts.
pub const IMAGE_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// One image of `delivery.images`, read and checked when the config was loaded: what was
/// validated is what is sent, even if the file changes before the next reload.
#[derive(Clone, PartialEq, Eq)]
pub struct DeliveryImage {
    /// As written in products.yaml (relative to the config dir).
    pub path: String,
    /// SHA-256 of `bytes`, hex: the upload cache key.
    pub sha256: String,
    pub bytes: std::sync::Arc<[u8]>,
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

impl DeliveryImage {
    /// The file name alone, for the upload form and the status page.
    pub fn file_name(&self) -> &str {
        self.path.rsplit(['/', '\\']).next().unwrap_or(&self.path)
    }
}

impl std::fmt::Debug for DeliveryImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryImage")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("bytes", &self.bytes.len())
            .field("mime", &self.mime)
            .finish_non_exhaustive()
    }
}

/// `blacklist:` in pipeline.yaml: buyers whose paid orders always go to the seller. The chat
/// side reads the same list (through [`super::Config::is_blacklisted`]) to leave them alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blacklist {
    pub buyers: BTreeSet<String>,
}

impl Blacklist {
    pub fn contains(&self, buyer: &str) -> bool {
        self.buyers.contains(buyer.trim())
    }
}
