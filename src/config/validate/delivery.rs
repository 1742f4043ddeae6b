//! `products[].delivery` (message shape, follow-up) and `blacklist:`.

use super::*;
use crate::config::delivery::{Blacklist, DeliveryOptions, Proof, ProofCards, ProofKind};

impl Validator<'_> {
    /// `blacklist.buyers`: buyer ids are the numbers Xianyu shows as 用户ID; a nickname would
    /// silently never match, so anything else is refused.
    pub(super) fn blacklist(&mut self, doc: &YamlDoc, raw: &raw::Blacklist) -> Blacklist {
        let mut buyers = std::collections::BTreeSet::new();
        for (i, id) in raw.buyers.iter().enumerate() {
            let path = format!("blacklist.buyers[{i}]");
            let id = id.clone().into_string().trim().to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                self.err(
                    doc,
                    &path,
                    format!("{path}: `{id}` is not a buyer id; write the buyer's numeric user id (用户ID, e.g. 2200000000001), a nickname cannot be matched"),
                );
                continue;
            }
            buyers.insert(id);
        }
        Blacklist { buyers }
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
        DeliveryOptions {
            shape: raw.shape.unwrap_or_default(),
            follow_up: raw.follow_up.clone(),
            proof,
            proof_plain_cards: raw.proof_cards == Some(ProofCards::Plain),
        }
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
