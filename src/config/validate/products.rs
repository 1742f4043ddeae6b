//! `products.yaml`: card pools and per-product rules.

use super::*;

impl Validator<'_> {
    pub(super) fn pools(
        &mut self,
        doc: &YamlDoc,
        raw: &BTreeMap<String, raw::Pool>,
    ) -> BTreeMap<String, PoolConfig> {
        raw.iter()
            .map(|(name, p)| {
                let path = format!("pools.{name}.low_stock_alert");
                let low_stock_alert =
                    self.count(doc, &path, p.low_stock_alert, MAX_LOW_STOCK_ALERT);
                (
                    name.clone(),
                    PoolConfig {
                        reusable: p.reusable,
                        low_stock_alert,
                    },
                )
            })
            .collect()
    }

    pub(super) fn products(
        &mut self,
        doc: &YamlDoc,
        raw: Vec<raw::Product>,
        accounts: &[Account],
        pools: &BTreeMap<String, PoolConfig>,
        stages: &[Stage],
    ) -> HashMap<String, Product> {
        let default_mode = stages
            .iter()
            .find_map(|s| {
                if let Stage::Ship(p) = s {
                    Some(p.mode)
                } else {
                    None
                }
            })
            .unwrap_or(ShipMode::SendThenConfirm);
        let mut out: HashMap<String, Product> = HashMap::new();
        let mut first_at: HashMap<String, usize> = HashMap::new();
        for (i, p) in raw.into_iter().enumerate() {
            let path = format!("products[{i}]");
            let product = self.product(doc, &path, p, accounts, pools, default_mode);
            if let Some(first) = first_at.get(&product.item_id) {
                let line = doc.pos(&format!("products[{first}].item_id")).line;
                self.err(
                    doc,
                    &format!("{path}.item_id"),
                    format!(
                        "{path}.item_id: duplicate item_id `{}` (first defined at line {line})",
                        product.item_id
                    ),
                );
                continue;
            }
            first_at.insert(product.item_id.clone(), i);
            out.insert(product.item_id.clone(), product);
        }
        out
    }

    pub(super) fn product(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: raw::Product,
        accounts: &[Account],
        pools: &BTreeMap<String, PoolConfig>,
        default_mode: ShipMode,
    ) -> Product {
        let item_id = p.item_id.clone().into_string().trim().to_string();
        let category = p.category.unwrap_or(Category::Physical);
        self.product_basics(doc, path, &p, &item_id, category, accounts);
        let ship_mode = p.ship.as_ref().and_then(|s| s.mode);
        let mode = ship_mode.unwrap_or(default_mode);
        self.product_template(
            doc,
            path,
            p.template.as_deref(),
            p.auto_ship && mode.sends(),
        );
        let stock = self.product_stock(doc, path, p.stock.as_ref(), p.cards, p.sku_cards, pools);
        let delay = p
            .delay
            .as_ref()
            .map(|w| self.window(doc, &format!("{path}.delay"), w));
        let units = p.units.unwrap_or(1);
        if units == 0 || units > MAX_UNITS {
            self.err(
                doc,
                &format!("{path}.units"),
                format!("{path}.units: must be between 1 and {MAX_UNITS} (got {units})"),
            );
        }
        let delivery = self.delivery_options(doc, path, p.delivery.as_ref());
        let supplier = self.supplier(doc, path, p.supplier.as_ref(), &stock);
        Product {
            item_id,
            title: p.title,
            account: p.account,
            category,
            auto_ship: p.auto_ship,
            delay,
            ship_mode,
            max_retries: self.count(
                doc,
                &format!("{path}.ship.max_retries"),
                p.ship.as_ref().and_then(|s| s.max_retries),
                MAX_RETRIES,
            ),
            logistics_company: p.logistics_company,
            template: p.template,
            stock,
            units: units.clamp(1, MAX_UNITS),
            active: p.status.unwrap_or(ProductStatus::Active) == ProductStatus::Active,
            low_stock_alert: self.count(
                doc,
                &format!("{path}.low_stock_alert"),
                p.low_stock_alert,
                MAX_LOW_STOCK_ALERT,
            ),
            resend_if_absent: p.readback.as_ref().is_some_and(|r| r.resend_if_absent),
            chat: Default::default(),
            delivery,
            supplier,
        }
    }

    /// The rules on a product's own fields: an item id and a title, a known account, and no
    /// automatic shipping of physical goods.
    fn product_basics(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        p: &raw::Product,
        item_id: &str,
        category: Category,
        accounts: &[Account],
    ) {
        if item_id.is_empty() {
            self.err(
                doc,
                &format!("{path}.item_id"),
                format!("{path}.item_id: must not be empty"),
            );
        }
        if p.title.trim().is_empty() {
            self.err(
                doc,
                &format!("{path}.title"),
                format!("{path}.title: must not be empty"),
            );
        }
        if let Some(acc) = &p.account {
            if !accounts.iter().any(|a| &a.id == acc) {
                self.err(
                    doc,
                    &format!("{path}.account"),
                    format!(
                        "{path}.account: unknown account `{acc}` (see accounts: in pipeline.yaml)"
                    ),
                );
            }
        }
        if p.auto_ship && category == Category::Physical {
            self.err(
                doc,
                &format!("{path}.auto_ship"),
                format!("{path}.auto_ship: a physical product cannot be shipped automatically, because xianyu-shopd never fabricates tracking numbers. Set auto_ship: false (you will be notified to ship it and can record the tracking number with `orders ship`), or category: virtual if nothing is posted"),
            );
        }
    }

    pub(super) fn product_template(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        template: Option<&str>,
        required: bool,
    ) {
        let tpath = format!("{path}.template");
        let Some(name) = template else {
            if required {
                self.err(doc, path, format!("{path}: auto_ship sends a chat message, so it needs `template:` (a file in templates/)"));
            }
            return;
        };
        self.template_ref(doc, &tpath, name);
    }

    pub(super) fn product_stock(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        stock: Option<&serde_yaml::Value>,
        cards: Option<String>,
        sku_cards: BTreeMap<String, String>,
        pools: &BTreeMap<String, PoolConfig>,
    ) -> Stock {
        if let Some(pool) = &cards {
            self.pool_ref(doc, &format!("{path}.cards"), pool, pools);
        }
        for (sku, pool) in &sku_cards {
            self.pool_ref(doc, &format!("{path}.sku_cards.{sku}"), pool, pools);
        }
        let uses_cards = cards.is_some() || !sku_cards.is_empty();
        match (stock, uses_cards) {
            (Some(_), true) => {
                self.key_err(doc, &format!("{path}.stock"), format!("{path}: give either `stock` (a count) or `cards`/`sku_cards` (a card pool), not both"));
                Stock::Unlimited
            }
            (None, true) => Stock::Cards {
                pool: cards,
                by_sku: sku_cards,
            },
            (None, false) => Stock::Unlimited,
            (Some(v), false) => self.stock_value(doc, &format!("{path}.stock"), v),
        }
    }

    pub(super) fn stock_value(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        v: &serde_yaml::Value,
    ) -> Stock {
        let quantity = match v {
            serde_yaml::Value::String(s) if s == "unlimited" => return Stock::Unlimited,
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::Mapping(m) if m.len() == 1 => {
                m.get("quantity").and_then(|q| q.as_u64())
            }
            _ => None,
        };
        match quantity.and_then(|q| u32::try_from(q).ok()) {
            Some(q) => Stock::Quantity(q),
            None => {
                self.err(
                    doc,
                    path,
                    format!("{path}: write `unlimited`, a number, or `{{ quantity: N }}`"),
                );
                Stock::Unlimited
            }
        }
    }

    pub(super) fn pool_ref(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        pool: &str,
        pools: &BTreeMap<String, PoolConfig>,
    ) {
        if pools.contains_key(pool) {
            return;
        }
        let names: Vec<String> = pools.keys().cloned().collect();
        let hint = did_you_mean_or(pool, &names, || {
            "declare it under `pools:` in products.yaml".to_string()
        });
        self.err(
            doc,
            path,
            format!("{path}: unknown card pool `{pool}`, {hint}"),
        );
    }
}
