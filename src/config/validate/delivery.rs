//! `products[].delivery` (message shape, follow-up, images) and `blacklist:`; the image
//! check is shared with chat replies (`images:` on keyword rules and the default reply).

use super::*;
use crate::config::delivery::{
    Blacklist, DeliveryImage, DeliveryOptions, IMAGE_MAX_BYTES, Proof, ProofCards, ProofKind,
};

/// Most images one delivery or chat reply may send.
const MAX_IMAGES: usize = 9;

impl Validator<'_> {
    /// `blacklist.buyers`: buyer ids are the numbers Xianyu shows as 用户ID; a nickname would
    /// silently never match, so anything else is refused.
    pub(super) fn blacklist(&mut self, doc: &YamlDoc, raw: &raw::Blacklist) -> Blacklist {
        let buyers = self.numeric_ids(doc, "blacklist.buyers", &raw.buyers, |path, id| {
            format!("{path}: `{id}` is not a buyer id; write the buyer's numeric user id (用户ID, e.g. 2200000000001), a nickname cannot be matched")
        });
        Blacklist {
            buyers: buyers.into_iter().collect(),
        }
    }

    /// The ids listed at `at` (Xianyu's numeric buyer or item ids), trimmed, in order and
    /// without repeats; any other entry is reported as `refusal(path, entry)`.
    pub(super) fn numeric_ids(
        &mut self,
        doc: &YamlDoc,
        at: &str,
        listed: &[raw::ItemId],
        refusal: impl Fn(&str, &str) -> String,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for (i, id) in listed.iter().enumerate() {
            let path = format!("{at}[{i}]");
            let id = id.clone().into_string().trim().to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                self.err(doc, &path, refusal(&path, &id));
            } else if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// `products[i].delivery`: the shape, and a follow-up template that exists and renders.
    pub(super) fn delivery_options(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        raw: Option<&raw::ProductDelivery>,
    ) -> DeliveryOptions {
        let Some(raw) = raw else {
            return DeliveryOptions::default();
        };
        let dpath = format!("{path}.delivery");
        if let Some(name) = raw.follow_up.as_deref() {
            self.template_ref(doc, &format!("{dpath}.follow_up"), name);
        }
        let proof = match raw.proof.unwrap_or_default() {
            ProofKind::Off => Proof::Off,
            ProofKind::Content => Proof::Content,
            ProofKind::Summary => match raw.proof_template.as_deref() {
                Some(name) => {
                    self.template_ref(doc, &format!("{dpath}.proof_template"), name);
                    Proof::Summary(name.to_string())
                }
                None => {
                    self.err(doc, &format!("{dpath}.proof"), format!("{dpath}.proof: `summary` needs `proof_template:` (a file in {TEMPLATES_DIR}/)"));
                    Proof::Off
                }
            },
        };
        if raw.proof_template.is_some() && !matches!(proof, Proof::Summary(_)) {
            self.key_err(
                doc,
                &format!("{dpath}.proof_template"),
                format!("{dpath}.proof_template: only used with `proof: summary`"),
            );
        }
        let images = self.images(doc, &format!("{dpath}.images"), &raw.images);
        let sku_images = raw
            .sku_images
            .iter()
            .map(|(sku, paths)| {
                let list = format!("{dpath}.sku_images.{sku}");
                (sku.trim().to_string(), self.images(doc, &list, paths))
            })
            .collect();
        let proof_images = raw.proof_images.unwrap_or(false);
        let no_images = raw.images.is_empty() && raw.sku_images.values().all(Vec::is_empty);
        if proof_images && no_images {
            self.key_err(
                doc,
                &format!("{dpath}.proof_images"),
                format!("{dpath}.proof_images: there are no `images:` to put into the form"),
            );
        }
        DeliveryOptions {
            shape: raw.shape.unwrap_or_default(),
            follow_up: raw.follow_up.clone(),
            proof,
            proof_plain_cards: raw.proof_cards == Some(ProofCards::Plain),
            images,
            proof_images,
            sku_images,
        }
    }

    /// An image list at `list` (`delivery.images`, a SKU's `delivery.sku_images` entry, a
    /// keyword rule's, the default reply's or a greeting's `images`): files under the config dir, each a PNG,
    /// JPEG, GIF or WebP image of at most [`IMAGE_MAX_BYTES`], at most [`MAX_IMAGES`] of them;
    /// read once here, so what was checked is what is sent.
    pub(super) fn images(
        &mut self,
        doc: &YamlDoc,
        list: &str,
        paths: &[String],
    ) -> Vec<DeliveryImage> {
        if paths.len() > MAX_IMAGES {
            self.err(
                doc,
                list,
                format!("{list}: at most {MAX_IMAGES} images (got {})", paths.len()),
            );
        }
        let mut out = Vec::new();
        for (i, raw_path) in paths.iter().enumerate().take(MAX_IMAGES) {
            let path = format!("{list}[{i}]");
            match read_image(self.dir, raw_path.trim()) {
                Ok(image) => out.push(image),
                Err(why) => self.err(doc, &path, format!("{path}: {why}")),
            }
        }
        out
    }

    /// A template named at `path`: it must exist in `templates/`, pass the static checks and
    /// render a non-empty message with sample data within the render budget (checked once per
    /// template; problems are reported at the template's own line).
    pub(super) fn template_ref(&mut self, doc: &YamlDoc, path: &str, name: &str) {
        if self.templates.is_broken(name) {
            return; // reported at templates/NAME:LINE
        }
        if !self.templates.exists(name) {
            self.err(
                doc,
                path,
                format!("{path}: template `{name}` not found in {TEMPLATES_DIR}/"),
            );
            return;
        }
        if !self.checked_templates.insert(name.to_string()) {
            return; // another product uses it; reported once
        }
        for p in self.templates.delivery_problems(name) {
            self.errors.push(ConfigError::at(
                &p.file,
                Pos {
                    line: p.line,
                    col: 1,
                },
                p.message,
            ));
        }
    }
}

/// Read and check one image named relative to the config dir `dir`.
fn read_image(dir: &std::path::Path, rel: &str) -> Result<DeliveryImage, String> {
    use sha2::{Digest, Sha256};
    use std::path::Component;
    if rel.is_empty() {
        return Err("empty path; name an image file under the config directory".into());
    }
    let relative = std::path::Path::new(rel);
    let escapes = relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(format!(
            "`{rel}` is outside the config directory; put the image under it and write a relative path such as images/guide.png"
        ));
    }
    let full = dir.join(relative);
    let meta = std::fs::metadata(&full).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("image `{rel}` not found (paths are relative to the config directory)")
        }
        _ => format!("image `{rel}` cannot be read: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("`{rel}` is not a file"));
    }
    // A symlink may point anywhere: the file itself must live under the config dir too.
    if let (Ok(real), Ok(base)) = (full.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&base) {
            return Err(format!(
                "`{rel}` leads outside the config directory (a link); copy the image into it"
            ));
        }
    }
    if meta.len() > IMAGE_MAX_BYTES {
        return Err(format!(
            "image `{rel}` is {} bytes; at most {} MB (compress or shrink it)",
            meta.len(),
            IMAGE_MAX_BYTES / (1024 * 1024)
        ));
    }
    let bytes = std::fs::read(&full).map_err(|e| format!("image `{rel}` cannot be read: {e}"))?;
    let mime = match imagesize::image_type(&bytes) {
        Ok(imagesize::ImageType::Png) => "image/png",
        Ok(imagesize::ImageType::Jpeg) => "image/jpeg",
        Ok(imagesize::ImageType::Gif) => "image/gif",
        Ok(imagesize::ImageType::Webp) => "image/webp",
        _ => return Err(format!("`{rel}` is not a PNG, JPEG, GIF or WebP image")),
    };
    let size = imagesize::blob_size(&bytes)
        .ok()
        .filter(|s| s.width > 0 && s.height > 0)
        .ok_or_else(|| format!("image `{rel}` is damaged (its size cannot be read)"))?;
    Ok(DeliveryImage {
        path: rel.to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        mime,
        width: u32::try_from(size.width).unwrap_or(u32::MAX),
        height: u32::try_from(size.height).unwrap_or(u32::MAX),
        bytes: bytes.into(),
    })
}
