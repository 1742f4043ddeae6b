//! A product's chat settings: `price`, `replies`, `facts`, `greeting`, `bargain`.

use super::super::super::chat::{BargainRule, ChatTexts, Greeting, ProductChat, Reply};
use super::super::super::raw_chat as rc;
use super::super::super::yaml::YamlDoc;
use super::super::Validator;
use super::{RawProductChat, amount};

impl Validator<'_> {
    pub(in super::super) fn product_chat(
        &mut self,
        doc: &YamlDoc,
        raw: &RawProductChat,
        texts: &mut ChatTexts,
    ) -> ProductChat {
        let path = format!("products[{}]", raw.index);
        let price = raw
            .price
            .as_ref()
            .and_then(|p| amount(self, doc, &format!("{path}.price"), p));
        let scope = format!("item:{}", raw.item_id);
        let replies = raw
            .replies
            .iter()
            .enumerate()
            .filter_map(|(j, r)| {
                self.keyword_rule(doc, &format!("{path}.replies[{j}]"), &scope, r, texts)
            })
            .collect();
        let greeting = raw
            .greeting
            .as_ref()
            .and_then(|g| self.greeting(doc, &format!("{path}.greeting"), g, texts));
        let bargain = raw
            .bargain
            .as_ref()
            .and_then(|b| self.bargain_rule(doc, &format!("{path}.bargain"), b, price));
        ProductChat {
            price,
            replies,
            facts: raw.facts.as_deref().unwrap_or_default().trim().to_string(),
            greeting,
            bargain,
        }
    }

    /// Texts as a keyword rule's `reply`/`template`, images checked like its `images`; a
    /// greeting of images alone has no text.
    fn greeting(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        g: &rc::Greeting,
        texts: &mut ChatTexts,
    ) -> Option<Greeting> {
        let (reply, images) = match g {
            rc::Greeting::Text(t) => (self.reply(doc, path, Some(t), None, texts), Vec::new()),
            rc::Greeting::Params(p) => {
                let images = self.images(doc, &format!("{path}.images"), &p.images);
                let reply = match (&p.reply, &p.template) {
                    (None, None) if !p.images.is_empty() => Some(Reply::Swallow),
                    (reply, template) => {
                        self.reply(doc, path, reply.as_ref(), template.as_deref(), texts)
                    }
                };
                (reply, images)
            }
        };
        Some(Greeting {
            reply: reply?,
            images,
        })
    }

    fn bargain_rule(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        b: &rc::Bargain,
        price: Option<crate::money::Cents>,
    ) -> Option<BargainRule> {
        let floor = amount(self, doc, &format!("{path}.floor"), &b.floor);
        let step = amount(self, doc, &format!("{path}.step"), &b.step);
        let max_rounds = b.max_rounds.unwrap_or(3);
        if !(1..=20).contains(&max_rounds) {
            self.field_err(
                doc,
                path,
                "max_rounds",
                format!("{max_rounds} is outside 1 to 20"),
            );
        }
        if step.is_some_and(|s| s.0 == 0) {
            self.field_err(doc, path, "step", "must be more than 0");
        }
        let Some(price) = price else {
            let product = path.trim_end_matches(".bargain");
            self.key_err(
                doc,
                path,
                format!("{path}: needs the list price; add price: to {product}"),
            );
            return None;
        };
        if let Some(f) = floor.filter(|f| *f > price) {
            self.field_err(
                doc,
                path,
                "floor",
                format!(
                    "{f} is above the list price {price}; the floor is the lowest price you accept"
                ),
            );
        }
        Some(BargainRule {
            floor: floor?,
            step: step?,
            max_rounds: max_rounds.clamp(1, 20),
        })
    }
}
